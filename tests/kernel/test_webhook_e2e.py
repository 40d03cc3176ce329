"""The webhook output end to end: detections from the live tracer reach a real HTTP
server that is down for 10 s and then comes back; a webhook that stays dead is
reported at once, and the exit line counts exactly what it failed (a second Ctrl-C
stops the wait for it)."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.kernel.cli_proc import _no_leftover_tracers, start, stop  # noqa: F401
from tests.unit.test_webhook import Receiver

pytestmark = pytest.mark.usefixtures("require_bpf")

TRACEME = "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_gets_exactly_the_detections_after_an_outage() -> None:
    port = free_port()  # nothing listens there yet
    proc = start("-e", "anti_debugging,getppid", "-s", f"comm={Path(sys.executable).name[:15]}",
                 "-o", "json:/dev/null",
                 "-o", "destinations.hook.type=webhook",
                 "-o", f"destinations.hook.url=http://127.0.0.1:{port}/ingest?timeout=1s",
                 "-o", "streams.alerts.destinations=hook",
                 "-o", "streams.alerts.filters.events=anti_debugging",
                 "-E", "none")
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    subprocess.run([sys.executable, "-c", "import os; os.getppid()"], check=True)
    time.sleep(10)  # the server is down: the first batch is being retried
    receiver = Receiver(port)
    try:
        subprocess.run([sys.executable, "-c", TRACEME], check=True)
        _, err = stop(proc)  # waits for the batch still being retried
    finally:
        receiver.stop()
    records = receiver.records()
    assert [r["eventName"] for r in records] == ["anti_debugging", "anti_debugging"]
    assert all(r["metadata"]["Properties"]["signatureID"] == "TRC-102" for r in records)
    assert records[0]["timestamp"] < records[1]["timestamp"]
    assert "dropped" not in err and "errors" not in err.split("detections")[0]
    name = f"webhook:http://127.0.0.1:{port}/ingest"
    assert (f"stream alerts: output {name} is failing: ConnectionRefusedError: [Errno 111] "
            "Connection refused; retrying for up to 25.5 s") in err
    assert re.search(rf"stream alerts: output {re.escape(name)} recovered after [\d.]+ s "
                     r"\(0 events failed meanwhile\)", err), err
    summary = err.splitlines()[-1]
    assert re.match(r"pytracee: events delivered: \d+, ", summary), summary  # every one
    assert ", stream " not in summary


class Stderr:
    """pytracee's stderr, line by line from a thread: wait for a line, then the rest."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._q.put(raw.decode().rstrip("\n"))
        self._q.put(None)

    def until(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, "\n".join(self.lines)
            self.lines.append(line)
            if needle in line:
                return line

    def rest(self, timeout: float = 30.0) -> list[str]:
        """Every line up to the end (pytracee exited, code 0)."""
        assert self.proc.wait(timeout) == 0, "\n".join(self.lines)
        while (line := self._q.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return self.lines


DEAD_COMM = "pt-deadhook"


def _dead_webhook(*query: str) -> tuple[subprocess.Popen[bytes], Stderr, str]:
    url = f"http://127.0.0.1:{free_port()}/ingest"  # nothing listens: refused
    proc = start("-e", "getppid", "-s", f"comm={DEAD_COMM}", "-E", "none",
                 "-o", f"webhook:{url}{'?' + '&'.join(query) if query else ''}",
                 stdout=subprocess.DEVNULL)
    return proc, Stderr(proc), f"webhook:{url}"


def test_a_dead_webhook_is_reported_at_once_and_its_failures_counted_exactly(
        syscaller: Path) -> None:
    proc, err, name = _dead_webhook("retries=1", "backoff=50ms", "timeout=1s")
    subprocess.run([str(syscaller), "-c", DEAD_COMM, "getppid", "5"], check=True)
    line = err.until("is failing", timeout=10)  # the first failed attempt, not its last
    assert line == (f"pytracee: WARNING pytracee.sinks.stream: stream webhook: output {name} is "
                    "failing: ConnectionRefusedError: [Errno 111] Connection refused; retrying "
                    "for up to 0.05 s before a batch counts as failed (not logged again until "
                    "it recovers)")
    proc.send_signal(signal.SIGINT)  # what the workload made is in the ring: drained at stop
    summary = err.rest()[-1]
    assert summary.startswith("pytracee: events delivered: 0 of 5, filtered in user space: 0, "
                              "lost: 0 "), summary
    assert (f", stream webhook ({name}): delivered 0, dropped 0, failed 5, pending 0, "
            in summary), summary


def test_a_second_ctrl_c_stops_waiting_for_a_dead_webhook(syscaller: Path) -> None:
    proc, err, name = _dead_webhook()  # the default retries: 25.5 s per batch
    subprocess.run([str(syscaller), "-c", DEAD_COMM, "getppid", "5"], check=True)
    err.until("is failing", timeout=10)
    proc.send_signal(signal.SIGINT)  # what the workload made is in the ring: drained at stop
    line = err.until("pytracee: waiting", timeout=10)
    m = re.fullmatch(r"pytracee: waiting up to 25\.5 s for (\d+) batch(es)? \(5 events\) to "
                     rf"stream webhook \({re.escape(name)}\); Ctrl-C again to stop waiting", line)
    assert m, line
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    summary = err.rest(timeout=10)[-1]
    assert time.monotonic() - t0 < 5
    assert summary.startswith("pytracee: events delivered: 0 of 5, "), summary
    counts = re.search(rf", stream webhook \({re.escape(name)}\): delivered 0, dropped (\d+), "
                       r"failed (\d+), pending 0, ", summary)
    assert counts, summary
    dropped, failed = int(counts.group(1)), int(counts.group(2))
    # The batch being retried failed; batches queued behind it were never sent: dropped.
    assert dropped + failed == 5 and failed >= 1
    assert (dropped > 0) == (int(m.group(1)) > 1)
