"""Nothing is lost silently: what the ring could not take is counted, by reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pytracee.events import wire
from tests.kernel.harness import Session, run

GETPPID = 110


def test_full_ring_counts_every_lost_event(syscaller: Path) -> None:
    calls = 200_000
    # One page of ring (about 22 records) and no reader while the storm runs.
    with Session(["getppid"], ["comm=pt-loss"], ring_bytes=4096) as s:
        run(syscaller, "-c", "pt-loss", "getppid", str(calls))
        events = s.drain()
        stats = s.tracer.stats([GETPPID])
    delivered = len(events)
    submitted = stats[wire.STAT_SUBMITTED][GETPPID]
    lost = stats[wire.STAT_LOST_RING_FULL].get(GETPPID, 0)
    assert lost > 0
    assert stats[wire.STAT_LOST_OTHER] == {}
    assert delivered == submitted
    assert delivered + lost == calls
    assert {e.ctx.comm for e in events} == {"pt-loss"}


def test_large_ring_loses_nothing(syscaller: Path) -> None:
    calls = 50_000
    with Session(["getppid"], ["comm=pt-noloss"], ring_bytes=64 << 20) as s:
        run(syscaller, "-c", "pt-noloss", "getppid", str(calls))
        events = s.drain()
        stats = s.tracer.stats([GETPPID])
    assert len(events) == calls
    assert stats[wire.STAT_LOST_RING_FULL] == {}
    assert stats[wire.STAT_SUBMITTED][GETPPID] == calls


def test_skipped_program_runs_are_read_for_every_loaded_program(syscaller: Path) -> None:
    """A run the kernel skips (the program was already running on that CPU) sends
    nothing and counts nothing in the stats map: the tracer reads the kernel's own
    count for each of its programs (tests/kernel/test_libbpf.py shows the count is
    exact when runs are skipped)."""
    with Session(["getppid"], ["comm=pt-skip"]) as s:
        run(syscaller, "-c", "pt-skip", "getppid", "1000")
        assert len(s.drain()) == 1000
        skipped = s.pipeline.skipped_runs()
        assert s.tracer.obj is not None
        ids = {p.name: p.info().id for p in s.tracer.obj.programs() if p.fd >= 0}
        shown = {p["id"]: p for p in json.loads(subprocess.run(
            ["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True).stdout)}
    assert {"trace_sys_enter", "trace_sys_exit", "trace_sched_process_exec"} <= ids.keys()
    assert skipped.keys() == ids.keys()
    assert skipped == {n: shown[i].get("recursion_misses", 0) for n, i in ids.items()}
