"""What became of each event, through a stream to a real webhook server on loopback that
refuses connections or answers 500: delivered, dropped, failed, pending, counted exactly;
a failing webhook logged at its first failed attempt, once per outage, and its recovery;
at exit, what pytracee waits for, and a second signal that stops the wait."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from pytracee.events.event import Event
from pytracee.sinks.destinations.webhook import WebhookDestination
from pytracee.sinks.formats import JsonFormat
from pytracee.sinks.stream import Delivery, Stream, close_streams, delivery_summary
from tests.unit.signature_fixtures import make_event
from tests.unit.test_webhook import Receiver, free_port

LOGGER = "pytracee.sinks.stream"


def events(n: int, first: int = 0) -> list[Event]:
    return [make_event("getppid", {}, retval=first + i, ts=1_000_000 + first + i) for i in range(n)]


class Seen(logging.Handler):
    """Sets `event` when a record containing `needle` is logged (from any thread)."""

    def __init__(self, needle: str) -> None:
        super().__init__(logging.WARNING)
        self.needle = needle
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


@pytest.fixture
def seen() -> Iterator[list[Seen]]:
    handlers: list[Seen] = []
    yield handlers
    for h in handlers:
        logging.getLogger().removeHandler(h)


def watch(handlers: list[Seen], needle: str) -> threading.Event:
    h = Seen(needle)
    handlers.append(h)
    # On the root logger, after caplog's handler: the record is in caplog once this is set.
    logging.getLogger().addHandler(h)
    return h.event


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def wait_for(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_dead_webhook_is_logged_at_its_first_failed_attempt_without_credentials(
        caplog: pytest.LogCaptureFixture, seen: list[Seen]) -> None:
    port = free_port()  # nothing listens: connections are refused
    dest = WebhookDestination(f"http://siem:s3cret@127.0.0.1:{port}/ingest?token=t0ken")
    s = Stream("alerts", [(dest, JsonFormat(lambda v: []))])
    failing = watch(seen, "is failing")
    with caplog.at_level(logging.WARNING):
        t0 = time.monotonic()
        s.write_batch(events(3))
        assert failing.wait(5)
        took = time.monotonic() - t0
        # At once: the batch is still being retried (waits of 0.5 .. 10 s, 25.5 s in all).
        assert took < 0.5
        assert (dest.posts, dest.failures, s.backlog()) == (1, 0, (1, 3))
        assert messages(caplog) == [
            f"stream alerts: output webhook:http://127.0.0.1:{port}/ingest is failing: "
            "ConnectionRefusedError: [Errno 111] Connection refused; retrying for up to 25.5 s "
            "before a batch counts as failed (not logged again until it recovers)"]
        assert s.delivery() == [Delivery("alerts", f"webhook:http://127.0.0.1:{port}/ingest",
                                         delivered=0, dropped=0, failed=0, pending=3, up=False)]
        s.close(wait=0)  # gives up at once: the retrying batch is aborted
    assert "s3cret" not in caplog.text and "t0ken" not in caplog.text and "siem:" not in caplog.text
    assert dest.failures == 1
    assert s.delivery() == [Delivery("alerts", f"webhook:http://127.0.0.1:{port}/ingest",
                                     delivered=0, dropped=0, failed=3, pending=0, up=False)]
    assert (s.queued, s.delivered, s.errors, s.dropped, s.pending, s.undelivered) == (3, 0, 3, 0, 0, 3)


def test_once_per_outage_and_its_recovery_and_exact_counts(
        caplog: pytest.LogCaptureFixture) -> None:
    r = Receiver(statuses=[500] * 6)  # two batches of 3 attempts each get 500, then 200s
    url = f"http://127.0.0.1:{r.port}/in"
    name = f"webhook:{url}"
    try:
        dest = WebhookDestination(url + "?retries=2&backoff=1ms")
        s = Stream("alerts", [(dest, JsonFormat(lambda v: []))])
        with caplog.at_level(logging.WARNING):
            s.write_batch(events(2))
            wait_for(lambda: s.depth == 0)
            s.write_batch(events(3, 2))
            wait_for(lambda: s.depth == 0)
            assert s.delivery() == [Delivery("alerts", name, 0, 0, 5, 0, up=False)]
            s.write_batch(events(1, 5))  # the server answers 200 again
            wait_for(lambda: s.depth == 0)
            first = messages(caplog)
            r.statuses.extend([500])  # a second outage: one failed attempt, then delivered
            s.write_batch(events(4, 6))
            wait_for(lambda: s.depth == 0)
            s.close()
    finally:
        r.stop()
    assert r.answered == [500] * 6 + [200, 500, 200]
    assert [rec["returnValue"] for rec in r.records()] == [5, 6, 7, 8, 9]
    assert len(first) == 3
    assert first[0] == (f"stream alerts: output {name} is failing: HTTP 500 Internal Server Error: "
                        "nope; retrying for up to 0.003 s before a batch counts as failed (not "
                        "logged again until it recovers)")
    assert first[1] == (f"output {name} failed (counted, keeps trying): {name}: batch of 2 events "
                        "not delivered after 3 attempts: HTTP 500 Internal Server Error: nope")
    assert re.fullmatch(rf"stream alerts: output {re.escape(name)} recovered after [\d.]+ s "
                        r"\(5 events failed meanwhile\)", first[2]), first[2]
    again = messages(caplog)[3:]
    assert len(again) == 2 and again[0] == first[0]
    assert re.fullmatch(rf"stream alerts: output {re.escape(name)} recovered after [\d.]+ s "
                        r"\(0 events failed meanwhile\)", again[1]), again[1]
    assert s.delivery() == [Delivery("alerts", name, delivered=5, dropped=0, failed=5, pending=0,
                                     up=True)]
    assert (s.queued, s.delivered, s.errors, s.undelivered) == (10, 5, 5, 5)
    assert delivery_summary([s]) == (f", stream alerts ({name}): delivered 5, dropped 0, "
                                     "failed 5, pending 0")


def test_drop_mode_counts_dropped_failed_and_dropped_at_exit_exactly(seen: list[Seen]) -> None:
    port = free_port()
    dest = WebhookDestination(f"http://127.0.0.1:{port}/")
    s = Stream("alerts", [(dest, JsonFormat(lambda v: []))], size=4, mode="drop")
    failing = watch(seen, "is failing")
    s.write_batch(events(3))
    assert failing.wait(5)  # the worker holds these 3 in its retries
    s.write_batch(events(3, 3))  # room for 1: 2 dropped
    s.write_batch(events(2, 6))  # no room: 2 dropped
    assert (s.queued, s.dropped, s.depth, s.backlog()) == (4, 4, 4, (2, 4))
    s.close(wait=0)  # the one queued is dropped at exit, the 3 being retried fail
    assert (s.dropped, s.dropped_at_exit, s.errors, s.delivered, s.pending) == (5, 1, 3, 0, 0)
    assert s.delivery() == [Delivery("alerts", f"webhook:http://127.0.0.1:{port}/",
                                     delivered=0, dropped=5, failed=3, pending=0, up=False)]
    assert (s.received, s.undelivered) == (8, 8)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_close_streams_says_what_it_waits_for_and_a_second_signal_stops_it(
        sig: int, seen: list[Seen]) -> None:
    port = free_port()
    name = f"webhook:http://127.0.0.1:{port}/ingest"
    dest = WebhookDestination(f"http://127.0.0.1:{port}/ingest")  # the default 25.5 s of retries
    s = Stream("siem", [(dest, JsonFormat(lambda v: []))])
    failing = watch(seen, "is failing")
    s.write_batch(events(2))
    assert failing.wait(5)
    s.write_batch(events(3, 2))  # queued behind the batch being retried
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        os.kill(os.getpid(), sig)  # the second Ctrl-C, as soon as pytracee says it waits

    before = signal.getsignal(sig)
    t0 = time.monotonic()
    assert close_streams([s], echo) is True
    assert time.monotonic() - t0 < 2
    assert signal.getsignal(sig) is before
    assert lines == [f"pytracee: waiting up to 25.5 s for 2 batches (5 events) to stream siem "
                     f"({name}); Ctrl-C again to stop waiting"]
    # The batch being retried failed; the one never sent was dropped.
    assert s.delivery() == [Delivery("siem", name, delivered=0, dropped=3, failed=2, pending=0,
                                     up=False)]
    assert delivery_summary([s]) == (f", stream siem ({name}): delivered 0, dropped 3, failed 2, "
                                     "pending 0")


def test_close_streams_waits_for_a_webhook_that_comes_back(seen: list[Seen]) -> None:
    port = free_port()
    dest = WebhookDestination(f"http://127.0.0.1:{port}/?backoff=50ms")
    s = Stream("siem", [(dest, JsonFormat(lambda v: []))])
    failing = watch(seen, "is failing")
    s.write_batch(events(4))
    assert failing.wait(5)
    servers: list[Receiver] = []
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        servers.append(Receiver(port))  # back while pytracee waits

    try:
        assert close_streams([s], echo) is False
    finally:
        for r in servers:
            r.stop()
    assert lines == [f"pytracee: waiting up to 10 s for 1 batch (4 events) to stream siem "
                     f"(webhook:http://127.0.0.1:{port}/); Ctrl-C again to stop waiting"]
    assert [rec["returnValue"] for rec in servers[0].records()] == [0, 1, 2, 3]
    assert s.delivery() == [Delivery("siem", f"webhook:http://127.0.0.1:{port}/", 4, 0, 0, 0, True)]
    assert (s.undelivered, delivery_summary([s])) == (0, "")


def test_close_streams_says_nothing_when_nothing_is_left(seen: list[Seen]) -> None:
    r = Receiver()
    try:
        s = Stream("siem", [(WebhookDestination(f"http://127.0.0.1:{r.port}/"),
                             JsonFormat(lambda v: []))])
        s.write_batch(events(2))
        wait_for(lambda: s.delivered == 2)
        lines: list[str] = []
        assert close_streams([s], lines.append) is False
    finally:
        r.stop()
    assert lines == [] and s.delivery()[0].delivered == 2


def test_abort_ends_a_webhooks_retries_at_once() -> None:
    port = free_port()
    dest = WebhookDestination(f"http://127.0.0.1:{port}/")
    errors: list[BaseException] = []

    def send() -> None:
        try:
            dest.send(b'{"a":1}\n', events(1))
        except OSError as e:
            errors.append(e)

    attempts = threading.Event()
    dest.on_attempt = lambda reason: attempts.set()
    t = threading.Thread(target=send)
    t.start()
    assert attempts.wait(5)  # the first attempt failed; it now waits 0.5 s to retry
    t0 = time.monotonic()
    dest.abort()
    t.join(5)
    assert time.monotonic() - t0 < 0.4
    assert [str(e) for e in errors] == [f"webhook:http://127.0.0.1:{port}/: batch of 1 events not "
                                        "delivered: stopped waiting at exit"]
    assert (dest.posts, dest.failures, dest.events_sent) == (1, 1, 0)
    with pytest.raises(OSError, match="stopped waiting at exit"):
        dest.send(b'{"a":1}\n', events(1))  # later batches fail at once, not retried
    assert dest.posts == 1
