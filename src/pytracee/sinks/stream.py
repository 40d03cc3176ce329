"""Streams: Tracee's routing of events to destinations, one pipeline Sink per stream.

A stream has filters (events, by id, and policy names: an event passes when it is
in the first and one of its matched policies in the second; an empty filter passes
all), a format per destination, and a bounded buffer of `size` events:

  block  (Tracee's default) write_batch waits until the buffer has room:
         a slow destination slows the event reader (backpressure), nothing is dropped.
  drop   write_batch never waits: events that do not fit are dropped and counted.
         A slow or dead destination costs only its own stream's events.

Threads. Events are filtered and rendered in the caller's thread (the event
reader), only for the events that fit in the buffer; the rendered batches go to a
worker thread per stream that calls each destination's `send`. Rendering early
keeps the format's view of the task (exe, container) as it was at delivery, and
costs no more than in a worker: both hold the GIL. The worker joins what piled up
while it was sending into one send (one POST for a backlog, not one per batch).

A stream in block mode whose destinations are all local (a file or stdout:
`local = True` on the destination) has no thread: it sends from write_batch
directly. Blocking is what block mode does anyway, and a handoff per batch to a
thread would only add GIL switches to the path `-o json` takes (measured on
JSON to /dev/null, 256-event batches: inline 0.97-1.02x the former JsonSink,
through a thread 0.93-1.0x).

Errors. A destination that raises is counted (`dest_errors`, events); the stream
goes on. Failures are logged once per outage, not once per batch or retry: a
destination that reports its attempts (`on_attempt`: the webhook, Fluent Forward)
is logged as failing at its first failed attempt, before its retries; the first
batch it gives up on is logged; when it delivers again, its recovery is logged.
BrokenPipeError (the reader of stdout or of a FIFO went away) ends that
destination; when a stream has no destination left, its next write_batch or flush
raises BrokenPipeError, which the pipeline takes as "this output is closed" (and
stops tracing once no output is left, as `pytracee | head` expects). In a stream
without a thread this happens in the write_batch that hit it.

Counters, plain ints readable from any thread at any time (metrics):

  queued     events accepted into the buffer
  dropped    never sent: the buffer was full (drop mode), or still buffered when
             pytracee stopped waiting at exit (`dropped_at_exit`, included)
  refused    given to write_batch after every destination had closed
  delivered  events every destination of the stream acknowledged: a file once they
             are written (not while in its buffer), a webhook on a 2xx, Fluent
             Forward on the ack
  errors     events not delivered to every destination: a destination failed (gave
             up after its retries, refused them, a write failed) or a format could
             not render them
  depth      events buffered or being sent
  pending    depth plus what a file destination still holds in its buffer

Every event given to write_batch is in exactly one of: filtered out, dropped,
refused, delivered, errors, pending; `undelivered` is the sum of all but the first
and `delivered`. The same per destination (`delivery()`): delivered, dropped,
failed, pending.

At exit `close_streams` sends what is buffered: it says what it waits for and for
how long at most, and a second SIGINT or SIGTERM stops the wait. What is then still
queued is dropped; the batch being sent is aborted (failed), or, when its
destination does not return at once, stays pending.

One producer: write_batch and flush are called from one thread (the pipeline's).
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pytracee.events.event import Event
from pytracee.sinks.destinations import Destination
from pytracee.sinks.formats import Format

log = logging.getLogger(__name__)

BLOCK = "block"
DROP = "drop"
MODES = (BLOCK, DROP)
DEFAULT_SIZE = 1024


class _Group:
    """Destinations of one stream that share one format (rendered once per batch).
    `dests`: those still open; `all`: every one, for the counts."""

    __slots__ = ("fmt", "dests", "all")

    def __init__(self, fmt: Format, dests: list[Destination]) -> None:
        self.fmt = fmt
        self.dests = dests
        self.all: list[Destination] = []


class _Dest:
    """One destination's counts and health, as its stream keeps them."""

    __slots__ = ("dest", "sent", "failed", "down_since", "outage_failed", "logged")

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.sent = 0  # events its send() took (a file may still hold them in its buffer)
        self.failed = 0  # events it did not get: a failed send, a format that failed, closed
        self.down_since: float | None = None  # monotonic time of the outage's first failure
        self.outage_failed = 0  # events failed since then
        self.logged = False  # a failed batch of this outage was logged


@dataclass(frozen=True)
class Delivery:
    """What became of the events a stream was given, for one of its destinations."""

    stream: str
    destination: str
    delivered: int  # acknowledged: written (file), 2xx (webhook), acked (forward)
    dropped: int  # never sent (the stream's: buffer full, or still queued at exit)
    failed: int  # the destination gave up on them, refused them, or was closed
    pending: int  # queued, being sent, or in the destination's buffer
    up: bool  # False from a failure until the next delivery


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _secs(s: float) -> str:
    """Seconds for people: 25.5, 10, 0.003, 123."""
    if s >= 100:
        return f"{s:.0f}"
    if s >= 1 or s == 0:
        return f"{s:.1f}".removesuffix(".0")
    return f"{s:.2g}"


class Stream:
    CLOSE_WAIT_S = 10.0  # close(): how long the worker may take to send what is buffered
    ABORT_GRACE_S = 0.3  # after abandon(): how long an aborted send may take to return

    def __init__(self, name: str, outputs: Sequence[tuple[Destination, Format]], *,
                 event_ids: Iterable[int] | None = None, policies: Iterable[str] | None = None,
                 policy_names: Callable[[int], list[str]] | None = None,
                 size: int = DEFAULT_SIZE, mode: str = BLOCK, threaded: bool | None = None) -> None:
        """`outputs`: each destination with its format (destinations that share a Format
        object get one rendering). `event_ids`/`policies`: the filters (None or empty:
        everything); `policy_names(version)` names the policy bits of a policy set.
        `threaded`: None decides as described above."""
        if mode not in MODES:
            raise ValueError(f"buffer mode must be block or drop, not {mode!r}")
        if size < 1:
            raise ValueError("buffer size must be >= 1")
        if not outputs:
            raise ValueError("a stream needs at least one destination")
        self.name = name
        self.mode = mode
        self.size = size
        groups: dict[int, _Group] = {}
        for dest, fmt in outputs:
            groups.setdefault(id(fmt), _Group(fmt, [])).dests.append(dest)
        self._groups = list(groups.values())
        for g in self._groups:
            g.all = list(g.dests)
        self.destinations = [d for d, _ in outputs]
        self._dests = [_Dest(d) for d in self.destinations]
        self._dest_of = {id(st.dest): st for st in self._dests}
        for st in self._dests:
            if hasattr(st.dest, "on_attempt"):  # it reports each attempt (retrying destinations)
                st.dest.on_attempt = functools.partial(self._attempt, st)  # type: ignore[attr-defined]
        ids = set(event_ids or ())
        self._event_ids: set[int] | None = ids or None
        wanted = set(policies or ())
        self._policies: set[str] | None = wanted or None
        if self._policies is not None and policy_names is None:
            raise ValueError("a policy filter needs policy_names")
        self._policy_names = policy_names
        self._masks: dict[int, int] = {}  # policy set version -> bits of the wanted policies
        if threaded is None:
            threaded = mode == DROP or not all(getattr(d, "local", False) for d in self.destinations)
        self.threaded = threaded
        # Counters (see the module doc).
        self.queued = 0
        self._delivered = 0  # events every destination's send() took
        self.dropped = 0
        self.dropped_at_exit = 0
        self.refused = 0
        self.depth = 0
        self.send_errors = 0  # events a send failed for (at one destination or more)
        self.render_errors = 0  # events a format could not render
        self.dest_errors: dict[str, int] = {d.name: 0 for d in self.destinations}
        self._warned: set[str] = set()
        self._ended = False  # every destination is gone (closed by its reader)
        self._started = False
        self._closed = False
        self._queue: deque[tuple[list[Event], list[bytes | None], list[int]]] = deque()
        self._cond = threading.Condition()
        self._flush_wanted = False
        self._closing = False
        self._sending = False  # the worker is in a send
        self._abandoned = False  # stop sending (exit): the worker sends nothing more
        self._frozen = False  # after abandon(): the worker counts nothing more
        self._thread: threading.Thread | None = None

    # -- the counts

    def _held_lost(self) -> tuple[int, int]:
        """Events the destinations took but still hold in a buffer (the most any holds),
        and those they lost writing them (summed)."""
        held = lost = 0
        for d in self.destinations:
            held = max(held, getattr(d, "held_events", 0))
            lost += getattr(d, "lost_events", 0)
        return held, lost

    @property
    def delivered(self) -> int:
        held, lost = self._held_lost()
        return max(0, self._delivered - held - lost)

    @property
    def errors(self) -> int:
        return self.send_errors + self.render_errors + self._held_lost()[1]

    @property
    def pending(self) -> int:
        return self.depth + self._held_lost()[0]

    @property
    def received(self) -> int:
        """Events that passed the stream's filters."""
        return self.queued + self.dropped - self.dropped_at_exit + self.refused

    @property
    def undelivered(self) -> int:
        """Events that passed the filters and were not delivered to every destination."""
        return max(0, self.received - self.delivered)

    def delivery(self) -> list[Delivery]:
        """Per destination: delivered, dropped, failed, pending (they add up to `received`)."""
        out = []
        queued, dropped, at_exit, refused = (self.queued, self.dropped, self.dropped_at_exit,
                                             self.refused)
        for st in self._dests:
            d = st.dest
            held, lost = getattr(d, "held_events", 0), getattr(d, "lost_events", 0)
            delivered = max(0, st.sent - held - lost)
            failed = st.failed + lost
            pending = max(0, queued - at_exit - delivered - failed)
            out.append(Delivery(self.name, d.name, delivered, dropped, failed + refused, pending,
                                st.down_since is None))
        return out

    # -- the producer side (the pipeline's thread)

    def start(self) -> None:
        """Headers (the table's) to the destinations that want one, and the worker.
        Called by the first write_batch if not before."""
        if self._started:
            return
        self._started = True
        for g in self._groups:
            head = g.fmt.header()
            if head:
                for d in list(g.dests):
                    if getattr(d, "wants_header", False):
                        self._send(g, d, head, [], 0)
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name=f"pytracee-stream-{self.name}",
                                            daemon=True)
            self._thread.start()

    def write_batch(self, events: list[Event]) -> None:
        if not self._started:
            self.start()
        ids = self._event_ids
        if ids is not None:
            events = [ev for ev in events if ev.event_id in ids]
        if self._policies is not None:
            masks = self._masks
            mask = self._mask
            events = [ev for ev in events
                      if ev.matched & (masks[ev.version] if ev.version in masks else mask(ev.version))]
        n = len(events)
        if self._ended:
            self.refused += n
            raise BrokenPipeError(f"stream {self.name}: every destination is closed")
        if not n:
            return
        if not self.threaded:
            self.queued += n
            self.depth = n
            payloads, bads = self._render(events)
            self._deliver(events, payloads, bads)
            if self._ended:
                raise BrokenPipeError(f"stream {self.name}: every destination is closed")
            return
        size = self.size
        if self.mode == DROP:
            # Only the worker changes depth meanwhile, and only down: the room is a lower bound.
            room = size - self.depth
            if n > room:
                if room <= 0:
                    self.dropped += n
                    return
                self.dropped += n - room
                events = events[:room]
            self._put(events)
            return
        for i in range(0, n, size):
            chunk = events[i:i + size] if n > size else events
            payloads, bads = self._render(chunk)
            with self._cond:
                while self.depth + len(chunk) > size and not self._ended:
                    self._cond.wait(0.5)
                if self._ended:
                    self.refused += n - i
                    raise BrokenPipeError(f"stream {self.name}: every destination is closed")
                self._queue.append((chunk, payloads, bads))
                self.depth += len(chunk)
                self.queued += len(chunk)
                self._cond.notify_all()

    def _put(self, events: list[Event]) -> None:
        payloads, bads = self._render(events)
        n = len(events)
        with self._cond:
            self._queue.append((events, payloads, bads))
            self.depth += n
            self.queued += n
            self._cond.notify_all()

    def _mask(self, version: int) -> int:
        assert self._policy_names is not None and self._policies is not None
        wanted = self._policies
        mask = 0
        for i, name in enumerate(self._policy_names(version)):
            if name in wanted:
                mask |= 1 << i
        self._masks[version] = mask
        return mask

    def _render(self, events: list[Event]) -> tuple[list[bytes | None], list[int]]:
        """Each group's payload (None: its format failed on the batch) and the number
        of events its format could not render."""
        payloads: list[bytes | None] = []
        bads: list[int] = []
        for g in self._groups:
            fmt = g.fmt
            before = fmt.errors
            try:
                payloads.append(fmt.render(events))
                bads.append(min(len(events), fmt.errors - before))
            except Exception as exc:  # a bug in a format must not stop tracing
                payloads.append(None)
                bads.append(len(events))
                self._warn(f"format:{fmt.name}", "output format %s failed on %d events "
                           "(counted, further failures not logged): %s", fmt.name, len(events), exc)
        return payloads, bads

    def flush(self) -> None:
        """Destinations flush what they buffer (in a thread: once it is idle)."""
        if self._ended:
            raise BrokenPipeError(f"stream {self.name}: every destination is closed")
        if not self._started:
            return
        if self.threaded:
            with self._cond:
                self._flush_wanted = True
                self._cond.notify_all()
            return
        self._flush_destinations()
        if self._ended:
            raise BrokenPipeError(f"stream {self.name}: every destination is closed")

    # -- closing

    def finish(self) -> None:
        """Ask the worker to send what is buffered and stop; close() waits for it."""
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify_all()

    def busy(self) -> bool:
        """The worker is still sending (after finish(): what was buffered)."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def backlog(self) -> tuple[int, int]:
        """(batches, events) buffered or being sent."""
        with self._cond:
            return len(self._queue) + (1 if self._sending else 0), self.depth

    def wait_s(self) -> float:
        """How long close() waits for the worker: CLOSE_WAIT_S, or a destination's retry
        window when longer (a receiver down at exit for less than that loses nothing)."""
        windows = [float(d.retry_window_s()) for d in self.destinations  # type: ignore[attr-defined]
                   if hasattr(d, "retry_window_s")]
        return max([self.CLOSE_WAIT_S, *windows])

    def abandon(self) -> None:
        """Stop waiting for the worker: what is still queued is dropped (never sent), the
        send in progress is aborted (counted as failed when it returns within
        ABORT_GRACE_S, else left pending), and the worker counts nothing more."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            if self._abandoned:
                return
            self._abandoned = True
            left = sum(len(item[0]) for item in self._queue)
            self._queue.clear()
            self.depth -= left
            self.dropped += left
            self.dropped_at_exit += left
            self._cond.notify_all()
        for d in self.destinations:
            abort = getattr(d, "abort", None)
            if abort is not None:
                try:
                    abort()
                except Exception:  # stopping must go on
                    log.debug("output %s: abort failed", d.name, exc_info=True)
        thread.join(self.ABORT_GRACE_S)
        with self._cond:
            self._frozen = True

    def close(self, wait: float | None = None) -> None:
        """Send what is buffered, waiting up to `wait` s (None: wait_s()), then give up
        on the rest (abandon()) and close the destinations."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None:
            self.finish()
            limit = self.wait_s() if wait is None else wait
            thread.join(limit)
            if thread.is_alive():
                self.abandon()
                if wait is None:
                    log.warning("stream %s: gave up after %s s (destination too slow): %d events "
                                "dropped, %d pending", self.name, _secs(limit),
                                self.dropped_at_exit, self.depth)
        elif self._started and not self._ended:
            self._flush_destinations()
        for d in self.destinations:
            try:
                d.close()
            except BrokenPipeError:
                pass
            except Exception as exc:
                self._warn(d.name, "output %s failed to close: %s", d.name, exc)

    # -- the consumer side (the worker thread, or write_batch without one)

    def _run(self) -> None:
        queue, cond = self._queue, self._cond
        while True:
            with cond:
                while (not queue and not self._flush_wanted and not self._closing
                       and not self._abandoned):
                    cond.wait()
                if self._abandoned:
                    return
                items = list(queue)
                queue.clear()
                flush = self._flush_wanted
                self._flush_wanted = False
                closing = self._closing
                self._sending = bool(items)
            if items:
                if len(items) == 1:
                    events, payloads, bads = items[0]
                else:  # one send for the backlog
                    events = [ev for item in items for ev in item[0]]
                    # A batch a format failed on (None) is counted in its `bads` already.
                    payloads = [b"".join(p for item in items if (p := item[1][i]) is not None)
                                for i in range(len(self._groups))]
                    bads = [sum(item[2][i] for item in items) for i in range(len(self._groups))]
                try:
                    self._deliver(events, payloads, bads)
                except Exception:  # never let the worker die (counted by _deliver)
                    log.exception("stream %s: failed to deliver %d events", self.name, len(events))
            if self._abandoned:
                return
            if (flush or closing) and not self._ended:
                with cond:
                    idle = not queue
                if idle:
                    self._flush_destinations()
                else:
                    with cond:
                        self._flush_wanted = self._flush_wanted or flush
            if closing:
                with cond:
                    if not queue:
                        return

    def _deliver(self, events: list[Event], payloads: list[bytes | None], bads: list[int]) -> None:
        n = len(events)
        results: list[tuple[_Dest, int, int]] = []  # (destination, events sent, events failed)
        failed = True
        try:
            if self._ended:  # buffered before the last destination went away
                results = [(st, 0, n) for st in self._dests]
                return
            failed = False
            dest_of = self._dest_of
            for g, payload, bad in zip(self._groups, payloads, bads):
                alive = list(g.dests)
                for d in g.all:
                    st = dest_of[id(d)]
                    if payload is None or d not in alive:  # the format failed; or closed
                        results.append((st, 0, n))
                    elif not payload:  # e.g. a template that printed nothing for these events
                        results.append((st, n - bad, bad))
                    # A format that skipped events it could not render: the payload carries fewer.
                    elif self._send(g, d, payload, events if not bad else events[:n - bad], n):
                        results.append((st, n - bad, bad))
                    else:
                        results.append((st, 0, n))
                        failed = True
        except BaseException:
            failed = True
            raise
        finally:
            self._count(n, max(bads, default=0), results, failed)

    def _count(self, n: int, bad: int, results: list[tuple[_Dest, int, int]], failed: bool) -> None:
        """A delivered batch's counts; under the lock with a worker, so that abandon()
        sees either all of them or none."""
        if not self.threaded:
            self._add(n, bad, results, failed)
            self.depth = 0
            return
        with self._cond:
            if self._frozen:
                return
            self._add(n, bad, results, failed)
            self.depth -= n
            self._sending = False
            self._cond.notify_all()

    def _add(self, n: int, bad: int, results: list[tuple[_Dest, int, int]], failed: bool) -> None:
        for st, sent, nfailed in results:
            st.sent += sent
            st.failed += nfailed
        if failed:
            self.send_errors += n
        else:
            self._delivered += n - bad
            self.render_errors += bad

    def _send(self, g: _Group, d: Destination, payload: bytes, events: list[Event],
              n: int) -> bool:
        st = self._dest_of[id(d)]
        try:
            d.send(payload, events)
        except BrokenPipeError:
            self._gone(g, d)
        except Exception as exc:
            self._failed(st, exc, n)
        else:
            if not getattr(d, "held_events", 0):  # written (a file's buffer: at its flush)
                self._ok(st)
            return True
        self.dest_errors[d.name] = self.dest_errors.get(d.name, 0) + n
        return False

    # -- health: once per outage

    def _attempt(self, st: _Dest, reason: str | None) -> None:
        """A retrying destination's attempt (from its send): None delivered, else why not."""
        if reason is None:
            self._ok(st)
        elif st.down_since is None:
            st.down_since = time.monotonic()
            window = getattr(st.dest, "retry_window_s", None)
            retry = (f"retrying for up to {_secs(window())} s before a batch counts as failed"
                     if window is not None else "retrying")
            log.warning("stream %s: output %s is failing: %s; %s (not logged again until it "
                        "recovers)", self.name, st.dest.name, reason, retry)

    def _failed(self, st: _Dest, exc: BaseException, n: int) -> None:
        if st.down_since is None:
            st.down_since = time.monotonic()
        st.outage_failed += n
        if not st.logged and not self._abandoned:  # at exit the summary says it
            st.logged = True
            log.warning("output %s failed (counted, keeps trying): %s", st.dest.name, exc)

    def _ok(self, st: _Dest) -> None:
        if st.down_since is not None:
            log.warning("stream %s: output %s recovered after %s s (%s failed meanwhile)",
                        self.name, st.dest.name, _secs(time.monotonic() - st.down_since),
                        _plural(st.outage_failed, "event"))
            st.down_since = None
            st.outage_failed = 0
            st.logged = False

    def _flush_destinations(self) -> None:
        for g in self._groups:
            for d in list(g.dests):
                held = getattr(d, "held_events", 0)
                try:
                    d.flush()
                except BrokenPipeError:
                    self._gone(g, d)
                except Exception as exc:
                    self._failed(self._dest_of[id(d)], exc, 0)
                    self.dest_errors[d.name] = self.dest_errors.get(d.name, 0) + 1
                else:
                    if held:  # it wrote what it held
                        self._ok(self._dest_of[id(d)])

    def _gone(self, g: _Group, d: Destination) -> None:
        """The reader of `d` went away: it gets nothing more."""
        if d in g.dests:
            g.dests.remove(d)
        if any(grp.dests for grp in self._groups):
            log.warning("output %s closed by its reader; it gets no more events", d.name)
        else:
            # The pipeline says so when write_batch/flush raises (the stream is then removed).
            self._ended = True
            with self._cond:
                self._cond.notify_all()  # a producer blocked for room must not wait forever

    def _warn(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    # -- reporting

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "size": self.size, "queued": self.queued,
                "delivered": self.delivered, "dropped": self.dropped, "errors": self.errors,
                "depth": self.depth, "destinations": dict(self.dest_errors)}


def close_streams(streams: Iterable[Stream], echo: Callable[[str], None] | None = None,
                  signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> bool:
    """Close every stream at exit. When some still have batches to send, say so through
    `echo` (to whom, how much, how long at most) and wait, each stream up to its
    wait_s(); SIGINT or SIGTERM meanwhile (the second Ctrl-C) stops the wait, and what
    is left is counted (see Stream.abandon). True when a signal stopped the wait."""
    streams = list(streams)
    start = time.monotonic()
    for s in streams:
        s.finish()
    waiting = []
    for s in streams:
        if s.busy():
            batches, events = s.backlog()
            if events:
                waiting.append((s, batches, events))
    stopped: list[int] = []
    previous: dict[int, Any] = {}
    if waiting and threading.current_thread() is threading.main_thread():
        for sig in signals:
            previous[sig] = signal.signal(sig, lambda signum, _frame: stopped.append(signum))
    try:
        if waiting and echo is not None:
            parts = [f"{_plural(b, 'batch', 'batches')} ({_plural(e, 'event')}) to stream {s.name} "
                     f"({', '.join(d.name for d in s.destinations)})" for s, b, e in waiting]
            limit = max(s.wait_s() for s, _, _ in waiting)
            echo(f"pytracee: waiting up to {_secs(limit)} s for {'; '.join(parts)}; "
                 "Ctrl-C again to stop waiting")
        for s in streams:
            deadline = start + s.wait_s()
            while not stopped and s.busy() and (left := deadline - time.monotonic()) > 0:
                s.join(min(left, 0.1))  # a signal's handler runs at the latest after this
        for s in streams:
            s.close(wait=0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(stopped)


def delivery_summary(streams: Iterable[Stream]) -> str:
    """For each stream that did not deliver every event it was given, per destination:
    ', stream NAME (DESTINATION): delivered N, dropped N, failed N, pending N'."""
    parts = []
    for s in streams:
        rows = s.delivery()
        if any(r.dropped or r.failed or r.pending for r in rows):
            parts.extend(f", stream {r.stream} ({r.destination}): delivered {r.delivered}, "
                         f"dropped {r.dropped}, failed {r.failed}, pending {r.pending}"
                         for r in rows)
    return "".join(parts)

