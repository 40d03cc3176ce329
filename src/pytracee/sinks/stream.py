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

Errors. A destination that raises is counted (`dest_errors`, events) and logged
once; the stream goes on. BrokenPipeError (the reader of stdout or of a FIFO went
away) ends that destination; when a stream has no destination left, its next
write_batch or flush raises BrokenPipeError, which the pipeline takes as "this
output is closed" (and stops tracing once no output is left, as `pytracee | head`
expects). In a stream without a thread this happens in the write_batch that hit it.

Counters, plain ints readable from any thread at any time (metrics): `queued`
(events accepted into the buffer), `delivered` (events every destination of the
stream took: a file destination may still hold them in its buffer until flush), `dropped` (buffer full in drop mode, or still buffered when
close() gave up waiting), `errors` (events not delivered to every destination: a
failed send, or a format that could not render them), `depth` (events buffered or
being sent). Every event given to write_batch is in exactly one of: filtered out,
dropped, delivered, errors, depth.

One producer: write_batch and flush are called from one thread (the pipeline's).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
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
    """Destinations of one stream that share one format (rendered once per batch)."""

    __slots__ = ("fmt", "dests")

    def __init__(self, fmt: Format, dests: list[Destination]) -> None:
        self.fmt = fmt
        self.dests = dests


class Stream:
    CLOSE_WAIT_S = 10.0  # close(): how long the worker may take to send what is buffered

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
        self.destinations = [d for d, _ in outputs]
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
        self.delivered = 0
        self.dropped = 0
        self.depth = 0
        self.send_errors = 0  # events a send failed for (at one destination or more)
        self.render_errors = 0  # events a format could not render
        self.dest_errors: dict[str, int] = {d.name: 0 for d in self.destinations}
        self._warned: set[str] = set()
        self._ended = False  # every destination is gone (closed by its reader)
        self._started = False
        self._closed = False
        self._queue: deque[tuple[list[Event], list[bytes | None], int]] = deque()
        self._cond = threading.Condition()
        self._flush_wanted = False
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def errors(self) -> int:
        return self.send_errors + self.render_errors

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
                        self._send(g, d, head, [])
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name=f"pytracee-stream-{self.name}",
                                            daemon=True)
            self._thread.start()

    def write_batch(self, events: list[Event]) -> None:
        if not self._started:
            self.start()
        if self._ended:
            raise BrokenPipeError(f"stream {self.name}: every destination is closed")
        ids = self._event_ids
        if ids is not None:
            events = [ev for ev in events if ev.event_id in ids]
        if self._policies is not None:
            masks = self._masks
            mask = self._mask
            events = [ev for ev in events
                      if ev.matched & (masks[ev.version] if ev.version in masks else mask(ev.version))]
        n = len(events)
        if not n:
            return
        if not self.threaded:
            self.queued += n
            self.depth = n
            payloads, bad = self._render(events)
            self._deliver(events, payloads, bad)
            self.depth = 0
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
            payloads, bad = self._render(chunk)
            with self._cond:
                while self.depth + len(chunk) > size and not self._ended:
                    self._cond.wait(0.5)
                if self._ended:
                    raise BrokenPipeError(f"stream {self.name}: every destination is closed")
                self._queue.append((chunk, payloads, bad))
                self.depth += len(chunk)
                self.queued += len(chunk)
                self._cond.notify_all()

    def _put(self, events: list[Event]) -> None:
        payloads, bad = self._render(events)
        n = len(events)
        with self._cond:
            self._queue.append((events, payloads, bad))
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

    def _render(self, events: list[Event]) -> tuple[list[bytes | None], int]:
        """Each group's payload (None: its format failed on the batch) and the number
        of events some format could not render."""
        payloads: list[bytes | None] = []
        bad = 0
        for g in self._groups:
            fmt = g.fmt
            before = fmt.errors
            try:
                payloads.append(fmt.render(events))
                bad = max(bad, fmt.errors - before)
            except Exception as exc:  # a bug in a format must not stop tracing
                payloads.append(None)
                bad = len(events)
                self._warn(f"format:{fmt.name}", "output format %s failed on %d events "
                           "(counted, further failures not logged): %s", fmt.name, len(events), exc)
        return payloads, bad

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

    def close(self) -> None:
        """Send what is buffered (waiting up to CLOSE_WAIT_S), then close the destinations."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            thread.join(self.CLOSE_WAIT_S)
            if thread.is_alive():
                with self._cond:
                    left = sum(len(item[0]) for item in self._queue)
                    self._queue.clear()
                self.dropped += left
                log.warning("stream %s: %d events still buffered after %.0f s (destination "
                            "too slow): dropped", self.name, left, self.CLOSE_WAIT_S)
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
                while not queue and not self._flush_wanted and not self._closing:
                    cond.wait()
                items = list(queue)
                queue.clear()
                flush = self._flush_wanted
                self._flush_wanted = False
                closing = self._closing
            if items:
                if len(items) == 1:
                    events, payloads, bad = items[0]
                else:  # one send for the backlog
                    events = [ev for item in items for ev in item[0]]
                    # A batch a format failed on (None) is counted in its `bad` already.
                    payloads = [b"".join(p for item in items if (p := item[1][i]) is not None)
                                for i in range(len(self._groups))]
                    bad = sum(item[2] for item in items)
                try:
                    self._deliver(events, payloads, bad)
                except Exception:  # never let the worker die
                    self.send_errors += len(events)
                    log.exception("stream %s: failed to deliver %d events", self.name, len(events))
                with cond:
                    self.depth -= len(events)
                    cond.notify_all()
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

    def _deliver(self, events: list[Event], payloads: list[bytes | None], bad: int) -> None:
        n = len(events)
        if self._ended:  # buffered before the last destination went away
            self.send_errors += n
            return
        failed = False
        for g, payload in zip(self._groups, payloads):
            if payload is None:
                continue  # counted in `bad`
            if not payload:
                continue  # e.g. a template that printed nothing for these events
            for d in list(g.dests):
                if not self._send(g, d, payload, events):
                    failed = True
        if failed:
            self.send_errors += n
        else:
            self.delivered += n - bad
            self.render_errors += bad

    def _send(self, g: _Group, d: Destination, payload: bytes, events: list[Event]) -> bool:
        try:
            d.send(payload, events)
            return True
        except BrokenPipeError:
            self._gone(g, d)
        except Exception as exc:
            self._warn(d.name, "output %s failed (counted, keeps trying): %s", d.name, exc)
        self.dest_errors[d.name] = self.dest_errors.get(d.name, 0) + len(events)
        return False

    def _flush_destinations(self) -> None:
        for g in self._groups:
            for d in list(g.dests):
                try:
                    d.flush()
                except BrokenPipeError:
                    self._gone(g, d)
                except Exception as exc:
                    self._warn(d.name, "output %s failed (counted, keeps trying): %s", d.name, exc)
                    self.dest_errors[d.name] = self.dest_errors.get(d.name, 0) + 1

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


def summary(streams: Iterable[Stream]) -> str:
    """', stream NAME: dropped N, errors M' for each stream that dropped or failed events."""
    parts = []
    for s in streams:
        if s.dropped or s.errors:
            parts.append(f", stream {s.name}: dropped {s.dropped}, errors {s.errors}")
    return "".join(parts)
