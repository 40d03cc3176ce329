"""Delivered means written: real files (and /dev/full, where every write fails), the
exit line's "events delivered" that counts only what every output delivered, and the
Fluent Forward destination's first failed attempt logged at once."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytracee.events.definitions import BY_NAME
from pytracee.events.event import Event
from pytracee.pipeline import Counts, Pipeline
from pytracee.sinks.destinations.file import FileDestination
from pytracee.sinks.destinations.forward import ForwardDestination
from pytracee.sinks.formats import JsonFormat
from pytracee.sinks.stream import Delivery, Stream, delivery_summary
from tests.unit.signature_fixtures import make_event
from tests.unit.test_webhook import free_port

LOGGER = "pytracee.sinks.stream"


def events(name: str, n: int) -> list[Event]:
    return [make_event(name, {}, retval=i, ts=1_000_000 + i) for i in range(n)]


def json_stream(name: str, path: str, **kw: Any) -> Stream:
    return Stream(name, [(FileDestination(path), JsonFormat(lambda v: []))], **kw)


def test_a_file_delivers_what_is_written_not_what_waits_in_its_buffer(tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    s = json_stream("logs", str(out))
    assert not s.threaded
    s.write_batch(events("getppid", 3))
    assert out.read_bytes() == b""  # in the buffer
    assert s.delivery() == [Delivery("logs", f"file:{out}", delivered=0, dropped=0, failed=0,
                                     pending=3, up=True)]
    assert (s.delivered, s.pending, s.undelivered) == (0, 3, 3)
    s.flush()
    assert len(out.read_bytes().splitlines()) == 3
    assert s.delivery() == [Delivery("logs", f"file:{out}", 3, 0, 0, 0, True)]
    # A batch larger than the buffer is written at once (after what was buffered).
    s.write_batch(events("getppid", 2))
    s.write_batch(events("getppid", 300))
    assert len(out.read_bytes().splitlines()) == 305
    assert (s.delivered, s.pending) == (305, 0)
    s.write_batch(events("getppid", 1))
    assert (s.delivered, s.pending) == (305, 1)
    s.close()
    assert (s.queued, s.delivered, s.pending, s.errors, s.undelivered) == (306, 306, 0, 0, 0)
    assert delivery_summary([s]) == ""


def test_a_write_that_fails_fails_the_events_it_held(caplog: pytest.LogCaptureFixture) -> None:
    s = json_stream("full", "/dev/full")  # every write: ENOSPC
    with caplog.at_level(logging.WARNING):
        s.write_batch(events("getppid", 3))  # buffered: no write yet
        assert s.delivery() == [Delivery("full", "file:/dev/full", 0, 0, 0, 3, True)]
        s.flush()
        assert s.delivery() == [Delivery("full", "file:/dev/full", 0, 0, 3, 0, up=False)]
        s.write_batch(events("getppid", 300))  # written at once: the send fails
        s.write_batch(events("getppid", 2))
        s.close()  # the 2 buffered ones fail in close's flush
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "output file:/dev/full failed (counted, keeps trying): [Errno 28] No space left on device"]
    assert s.delivery() == [Delivery("full", "file:/dev/full", delivered=0, dropped=0, failed=305,
                                     pending=0, up=False)]
    assert (s.queued, s.delivered, s.errors, s.undelivered) == (305, 0, 305, 305)
    assert delivery_summary([s]) == (", stream full (file:/dev/full): delivered 0, dropped 0, "
                                     "failed 305, pending 0")


def fake_pipeline(sent: dict[str, int]) -> Any:
    counts = Counts()
    for name, n in sent.items():
        counts.delivered[BY_NAME[name].id] = n
    return SimpleNamespace(counts=counts, lost=lambda: {"ring_full": 0, "submit_error": 0},
                           decoder=SimpleNamespace(malformed=0, unknown_events=0),
                           skipped_runs=lambda: {}, capture=None, network=None, _net_on=False)


def test_events_delivered_counts_only_what_every_output_delivered(tmp_path: Path) -> None:
    pipeline = fake_pipeline({"getppid": 5, "getpid": 3})
    batch = events("getppid", 5) + events("getpid", 3)
    ok = json_stream("logs", str(tmp_path / "a.json"))
    full = json_stream("alerts", "/dev/full", event_ids=[BY_NAME["getpid"].id])
    for s in (ok, full):
        s.write_batch(batch)
        s.close()
    tail = ", filtered in user space: 0, lost: 0 (ring_full=0, submit_error=0)"
    assert Pipeline.summary(pipeline) == "pytracee: events delivered: 8" + tail
    assert Pipeline.summary(pipeline, [ok]) == "pytracee: events delivered: 8" + tail
    # The 3 getpid events the second output failed are not delivered (the first has them).
    assert Pipeline.summary(pipeline, [ok, full]) == "pytracee: events delivered: 5 of 8" + tail
    assert delivery_summary([ok, full]) == (", stream alerts (file:/dev/full): delivered 0, "
                                            "dropped 0, failed 3, pending 0")
    # Two outputs lost events, maybe the same ones: what is sure.
    other = json_stream("more", "/dev/full")
    other.write_batch(batch[:2])
    other.close()
    assert (Pipeline.summary(pipeline, [ok, full, other])
            == "pytracee: events delivered: at least 3 of 8" + tail)


def test_a_closed_output_refuses_and_counts(tmp_path: Path) -> None:
    class Gone(FileDestination):
        def send(self, payload: bytes, events: list[Event]) -> None:
            raise BrokenPipeError("reader gone")

    s = Stream("pipe", [(Gone(str(tmp_path / "x")), JsonFormat(lambda v: []))])
    with pytest.raises(BrokenPipeError):
        s.write_batch(events("getppid", 2))  # the reader went away: this batch failed
    with pytest.raises(BrokenPipeError):
        s.write_batch(events("getppid", 3))  # and this one is refused
    s.close()
    assert (s.errors, s.refused, s.received, s.undelivered) == (2, 3, 5, 5)
    assert s.delivery() == [Delivery("pipe", f"file:{tmp_path}/x", 0, 0, failed=5, pending=0,
                                     up=True)]


def test_a_dead_forward_peer_is_logged_at_its_first_failed_attempt(
        caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    dest = ForwardDestination(f"tcp://u:pw@127.0.0.1:{port}?tag=sec")
    name = f"forward:tcp://127.0.0.1:{port}?tag=sec"
    assert dest.name == name
    s = Stream("fwd", [(dest, JsonFormat(lambda v: []))])
    failing = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "is failing" in record.getMessage():
                failing.set()

    handler = Seen(logging.WARNING)
    logging.getLogger().addHandler(handler)  # after caplog's: caplog has it once this is set
    try:
        with caplog.at_level(logging.WARNING):
            s.write_batch(events("getppid", 4))
            assert failing.wait(5)
            assert (dest.sends, dest.failures, s.backlog()) == (0, 0, (1, 4))  # it never connected
            s.close(wait=0)
    finally:
        logging.getLogger().removeHandler(handler)
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        f"stream fwd: output {name} is failing: ConnectionRefusedError: [Errno 111] Connection "
        "refused; retrying for up to 25.5 s before a batch counts as failed (not logged again "
        "until it recovers)"]
    assert "pw" not in caplog.text
    assert s.delivery() == [Delivery("fwd", name, 0, 0, failed=4, pending=0, up=False)]
    assert dest.failures == 1


def test_an_event_made_in_user_space_is_counted_like_the_others(tmp_path: Path) -> None:
    """pipeline.emit (policy_reload): counted with what went to the outputs, so that an
    output that fails it does not take it off the events the kernel sent."""
    out = tmp_path / "x.json"
    s = json_stream("logs", str(out))
    pipeline = fake_pipeline({})
    pipeline.sinks = [s]
    Pipeline.emit(pipeline, make_event("policy_reload", {}))
    assert pipeline.counts.delivered[BY_NAME["policy_reload"].id] == 1
    assert len(out.read_bytes().splitlines()) == 1  # emit flushes
    assert Pipeline.summary(pipeline, [s]).startswith("pytracee: events delivered: 1, ")
    full = json_stream("alerts", "/dev/full")
    pipeline.sinks = [s, full]
    Pipeline.emit(pipeline, make_event("policy_reload", {}))
    s.close()
    full.close()
    assert Pipeline.summary(pipeline, [s, full]).startswith("pytracee: events delivered: 1 of 2, ")
