"""The webhook output end to end: detections from the live tracer reach a real HTTP
server that is down for 10 s and then comes back."""

from __future__ import annotations

import socket
import subprocess
import sys
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
        time.sleep(2)
        _, err = stop(proc)
    finally:
        receiver.stop()
    records = receiver.records()
    assert [r["eventName"] for r in records] == ["anti_debugging", "anti_debugging"]
    assert all(r["metadata"]["Properties"]["signatureID"] == "TRC-102" for r in records)
    assert records[0]["timestamp"] < records[1]["timestamp"]
    assert "dropped" not in err and "errors" not in err.split("detections")[0]
