"""Running the `pytracee` command in tests: start it, wait until attached, stop it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PYTRACEE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pytracee"
_started: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_leftover_tracers() -> Iterator[None]:
    """A failed assertion must not leave a pytracee attached for the next test."""
    yield
    while _started:
        _started.pop().kill()


def start(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start pytracee and wait until it is attached (it says so on stderr)."""
    proc = subprocess.Popen([str(PYTRACEE), *args], stdout=stdout, stderr=subprocess.PIPE)
    _started.append(proc)
    assert proc.stderr is not None
    seen = []
    line = proc.stderr.readline().decode()
    while line.startswith("pytracee: WARNING"):  # e.g. a container runtime that is down
        seen.append(line)
        line = proc.stderr.readline().decode()
    assert line.startswith("pytracee: tracing"), "".join(seen) + line
    return proc


def stop(proc: subprocess.Popen[bytes]) -> tuple[bytes, str]:
    time.sleep(0.3)  # let the ring drain what the workload produced
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return out or b"", err.decode()
