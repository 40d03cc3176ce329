"""--server on a real pytracee: /healthz and /metrics scraped over HTTP while it
traces, the counters matching the events the workload made."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")

COMM = "pt-srv"
# PR_SET_NAME (15) to COMM, then PTRACE_TRACEME: one anti_debugging detection (TRC-102).
TRACEME = (f"import ctypes; libc = ctypes.CDLL(None); libc.prctl(15, b'{COMM}', 0, 0, 0); "
           "libc.ptrace(0, 0, 0, 0)")
N = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def samples(text: str) -> dict[str, float]:
    """'name{labels}' -> value, for every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def events_and_detections(got: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in got.items() if k.startswith(("pytracee_events", "pytracee_detections"))}


def scrape_until(url: str, key: str, want: float, timeout: float = 15.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        status, _, text = get(url)
        assert status == 200, text
        got = samples(text)
        if got.get(key) == want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_metrics_count_the_events_seen_and_healthz_is_ok(syscaller: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start("-e", "getppid", "-e", "anti_debugging", "-s", f"comm={COMM}", "-o", "none",
                 "--server", f"http-address=127.0.0.1:{port}")
    status, ctype, body = get(base + "/healthz")
    assert (status, body) == (200, "OK") and ctype.startswith("text/plain")

    before = samples(get(base + "/metrics")[2])
    assert 'pytracee_events_total{event="getppid"}' not in before

    subprocess.run([str(syscaller), "-c", COMM, "getppid", str(N)], check=True)
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    key = 'pytracee_events_total{event="getppid"}'
    got = scrape_until(base + "/metrics", key, N)
    assert got[key] == N
    got = scrape_until(base + "/metrics", 'pytracee_events_total{event="anti_debugging"}', 1)
    time.sleep(0.5)  # nothing more arrives later: the counts are exact, not lower bounds
    status, ctype, text = get(base + "/metrics")
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    later = samples(text)
    assert events_and_detections(later) == events_and_detections(got)
    got = later
    assert got[key] == N
    assert got['pytracee_events_total{event="anti_debugging"}'] == 1
    assert not any(k.startswith('pytracee_events_total{event="ptrace"') for k in got)  # signature input only
    assert got['pytracee_events_lost_total{reason="ring_full"}'] == 0
    assert got['pytracee_events_lost_total{reason="submit_error"}'] == 0
    assert got['pytracee_bpf_runs_skipped_total{program="trace_sys_enter"}'] == 0
    assert got['pytracee_bpf_runs_skipped_total{program="trace_sys_exit"}'] == 0
    assert got["pytracee_events_filtered_total"] == 0
    assert got["pytracee_output_errors_total"] == 0
    assert got['pytracee_detections_total{signature="TRC-102",event="anti_debugging"}'] == 1
    assert got['pytracee_signature_errors_total{signature="TRC-102"}'] == 0
    assert got["pytracee_proctree_processes"] > 0
    assert "pytracee_containers" in got
    assert got['pytracee_enrichment_errors_total{kind="runtime"}'] >= 0
    assert re.search(r"^# TYPE pytracee_proctree_processes gauge$", text, re.M)
    assert re.search(r"^# TYPE pytracee_events_total counter$", text, re.M)
    assert get(base + "/nope")[0] == 404

    _, err = stop(proc)
    assert f"events delivered: {N + 1}," in err  # the summary agrees with the scrapes
    with pytest.raises(urllib.error.URLError):  # the server is gone with the process
        get(base + "/healthz")


def test_a_dead_webhooks_events_are_failed_not_delivered_in_metrics(syscaller: Path) -> None:
    """pytracee_events_total counts what went to the outputs; what the webhook that never
    answered did with it is in the per-destination metrics, and in the exit line."""
    port, hook = free_port(), free_port()  # nothing listens on `hook`
    base = f"http://127.0.0.1:{port}"
    url = f"http://127.0.0.1:{hook}/in"
    proc = start("-e", "getppid", "-s", f"comm={COMM}", "-E", "none",
                 "-o", f"webhook:{url}?retries=0", "--server", f"http-address=127.0.0.1:{port}")
    subprocess.run([str(syscaller), "-c", COMM, "getppid", "3"], check=True)
    labels = f'{{stream="webhook",destination="webhook:{url}"}}'
    got = scrape_until(base + "/metrics", f"pytracee_destination_failed_total{labels}", 3)
    assert got['pytracee_events_total{event="getppid"}'] == 3
    assert got[f"pytracee_destination_failed_total{labels}"] == 3
    assert got[f"pytracee_destination_delivered_total{labels}"] == 0
    assert got[f"pytracee_destination_pending{labels}"] == 0
    assert got[f"pytracee_destination_up{labels}"] == 0
    assert got['pytracee_stream_delivered_total{stream="webhook"}'] == 0
    assert got['pytracee_stream_errors_total{stream="webhook"}'] == 3
    assert got['pytracee_stream_dropped_total{stream="webhook"}'] == 0
    _, err = stop(proc)
    assert "events delivered: 0 of 3," in err
    assert (f", stream webhook (webhook:{url}): delivered 0, dropped 0, failed 3, pending 0"
            in err), err


def test_only_metrics_when_only_metrics_is_named(syscaller: Path) -> None:
    port = free_port()
    proc = start("-e", "getppid", "-s", f"comm={COMM}", "-o", "none", "-E", "none",
                 "--stores", "none", "--server", "metrics", "--server", f"http-address=:{port}")
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 404
    text = get(f"http://127.0.0.1:{port}/metrics")[2]
    assert "pytracee_proctree" not in text and "pytracee_containers" not in text  # both off
    stop(proc)


def test_non_loopback_address_without_the_flag_is_exit_2_one_line() -> None:
    res = subprocess.run([str(PYTRACEE), "-e", "getppid", "--server", "http-address=0.0.0.0:3366"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "allow-remote" in res.stderr
    assert "Traceback" not in res.stderr


def test_address_in_use_is_exit_1_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([str(PYTRACEE), "-e", "getppid", "-s", f"comm={COMM}", "-E", "none",
                              "--server", f"http-address=127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
