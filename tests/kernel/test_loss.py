"""Nothing is lost silently: what the ring could not take is counted, by reason."""

from __future__ import annotations

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
