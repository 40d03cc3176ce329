"""Ring buffer -> decode -> user-space filters -> sinks, and the counts of each step."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pytracee.capture.stage import Capture
from pytracee.derive.network import NetworkStage
from pytracee.detect.engine import Engine
from pytracee.ebpf.tracer import Tracer
from pytracee.enrich.enricher import Enricher
from pytracee.events import wire
from pytracee.events.definitions import NET_BASES, NET_TCP_CONNECT, SIGNATURE_EVENTS_START
from pytracee.events.decoder import Decoder
from pytracee.events.event import Event
from pytracee.policy.runtime import PolicyRuntime

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write_batch(self, events: list[Event]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class Counts:
    # By event id (signatures from 6000): events that passed every filter and went to the
    # outputs (Tracee's events count). What each output delivered of them, it counts itself.
    delivered: list[int] = field(default_factory=lambda: [0] * 8192)
    filtered: int = 0  # dropped by user-space filters
    sink_errors: int = 0  # failed writes to an output
    pipeline_errors: int = 0  # events lost to a fault in pytracee itself (logged)


# After a read that emptied the ring, the next one waits this long, so that events are
# handled in batches (each costs a wakeup and a pass through every stage). 20 ms cut the
# reader's CPU a little more on the mixed workload, but put detections' p99 latency at
# 10,000 events/s past 20 ms (bench/signature_engine.py) ...
COALESCE_S = 0.01
# ... but never long enough for the rate just seen to fill this share of the ring.
COALESCE_RING_SHARE = 1 / 8


def coalesce_pause(nbytes: int, since_s: float, ring_size: int) -> float:
    """How long to wait before the next read, after one that emptied the ring of the
    `nbytes` that came in over the last `since_s` seconds."""
    rate = nbytes / max(since_s, 1e-3)
    return min(COALESCE_S, ring_size * COALESCE_RING_SHARE / rate) if rate > 0 else COALESCE_S


class Pipeline:
    """Reads the tracer's ring and runs every event through decode, the user-space
    policy checks of the policy set it matched under, and the sinks."""

    # Policy sets remembered for events still in flight after reloads: the ring may hold
    # seconds of events (it is sized by the host's memory), and a syscall entered under
    # an old set reports under it when it returns. Events of a forgotten set are counted.
    KEEP_VERSIONS = 64
    DRAIN_LIMIT = 1 << 15  # records per read, about 50 ms of a storm
    FLUSH_S = 0.2          # outputs are flushed at least this often, and whenever idle

    def __init__(self, tracer: Tracer, decoder: Decoder, runtime: PolicyRuntime,
                 sinks: Sequence[Sink], enricher: Enricher | None = None,
                 engine: Engine | None = None, capture: Capture | None = None,
                 network: NetworkStage | None = None) -> None:
        self.tracer = tracer
        self.enricher = enricher
        self.engine = engine
        self.capture = capture  # artifacts (--capture) and exec hashes; its inputs in `runtime` already
        self.network = network  # packets -> network events, pcap; net_tcp_connect
        # Once a policy set made the kernel send packets (or connects for net_tcp_connect),
        # every batch goes through the network stage: events of that set may still be in flight.
        self._net_on = False
        self._oldest = 0  # versions below this were forgotten (KEEP_VERSIONS)
        self.decoder = decoder
        self.runtime = runtime
        self.runtimes: dict[int, PolicyRuntime] = {runtime.version: runtime}
        self.sinks = list(sinks)
        self.counts = Counts()
        self.stop_event = threading.Event()
        self._warned: set[int] = set()
        self._flushed = time.monotonic()
        self._last_read = time.monotonic()
        self._urgent = False  # set when a detection is delivered: flush at once
        self._note_network(runtime)
        self.handle_batch = self._make_handler()

    def _note_network(self, runtime: PolicyRuntime) -> None:
        if self.network is not None and not self._net_on and (
                any(runtime.kernel_bits.get(b) for b in NET_BASES)
                or runtime.event_bits.get(NET_TCP_CONNECT)):
            self._net_on = True

    def event_bits(self, version: int) -> dict[int, int] | None:
        """What each event's policies are in policy set `version` (None once forgotten)."""
        rt = self.runtimes.get(version)
        return rt.event_bits if rt is not None else None

    def policy_names(self, version: int) -> list[str]:
        rt = self.runtimes.get(version)
        return rt.names if rt is not None else []

    def reload(self, runtime: PolicyRuntime) -> None:
        """Make `runtime` the active policy set, in the kernel and here. Events are
        read in this thread, so none of the new version is seen before this returns."""
        if self.capture is not None:
            self.capture.prepare(runtime)  # capture follows the new policies' scopes
        self.tracer.apply(runtime)  # raises before the switch if the kernel refuses
        self.runtimes[runtime.version] = runtime
        self.runtime = runtime
        for old in sorted(self.runtimes)[:-self.KEEP_VERSIONS]:
            del self.runtimes[old]
            self._oldest = old + 1
        self._note_network(runtime)

    def _make_handler(self) -> Callable[[list[memoryview]], None]:
        """The per-batch function, with what it touches bound to locals."""
        decode_batch = self.decoder.decode_batch
        counts = self.counts
        enrich = self.enricher.process if self.enricher is not None else None
        early = self.capture.on_decoded if self.capture is not None else None
        deliver = self.deliver

        def handle_batch(views: list[memoryview]) -> None:
            try:
                events = decode_batch(views)
                if early is not None:  # open what capture reads while the process lives
                    early(events)
                if enrich is not None:
                    events = enrich(events)
            except Exception:  # a bug of ours must not stop tracing: count and log it
                counts.pipeline_errors += len(views)
                log.exception("failed to process %d events", len(views))
                return
            deliver(events)

        return handle_batch

    def deliver(self, events: list[Event]) -> None:
        """User-space policy checks, counts, sinks."""
        runtimes = self.runtimes
        counts = self.counts
        delivered = counts.delivered
        if events:
            try:
                if self._net_on:  # here, not in handle_batch: events the enricher held come back here
                    assert self.network is not None
                    events = self.network.process(events)
                if self._oldest:  # a set was forgotten: its late events cannot be named
                    oldest = self._oldest
                    late = [ev for ev in events if ev.version < oldest]
                    if late:
                        counts.pipeline_errors += len(late)
                        events = [ev for ev in events if ev.version >= oldest]
                if self.capture is not None:
                    # Artifacts; events the kernel sent only for them stop here (not "filtered").
                    events = self.capture.process(events, runtimes)
                if any(rt.check_events for rt in runtimes.values()):
                    kept = []
                    for ev in events:
                        rt = runtimes.get(ev.version)
                        if rt is None:
                            counts.pipeline_errors += 1  # cannot happen unless versions wrap
                        elif ev.event_id not in rt.check_events or rt.keep(ev):
                            kept.append(ev)
                        else:
                            counts.filtered += 1
                    events = kept
                if self.engine is not None and self.engine.active:
                    events = self._detect(events)
                for ev in events:
                    delivered[ev.event_id] += 1
            except Exception:  # a bug of ours must not stop tracing: count and log it
                counts.pipeline_errors += len(events)
                log.exception("failed to process %d events", len(events))
                return
        if not events:
            return
        for sink in list(self.sinks):
            try:
                sink.write_batch(events)
            except OSError as exc:
                counts.sink_errors += len(events)
                self._sink_failed(sink, exc)

    def _detect(self, events: list[Event]) -> list[Event]:
        """Signatures see the events (with their detections inserted after them); then
        events the kernel sent only because a signature needs them stop here."""
        assert self.engine is not None
        runtimes = self.runtimes
        out = []
        for ev in self.engine.process(events, self.event_bits):
            rt = runtimes.get(ev.version)
            if rt is not None:
                ev.matched &= rt.event_bits.get(ev.event_id, 0)
                detection = ev.event_id >= SIGNATURE_EVENTS_START
                # Detections are events: the user's filters on them apply too.
                if detection and ev.matched and ev.event_id in rt.check_events and not rt.keep(ev):
                    self.counts.filtered += 1
                    continue
            if ev.matched:
                out.append(ev)
                if ev.event_id >= SIGNATURE_EVENTS_START:
                    self._urgent = True  # a detection is written out without waiting
        return out

    def drain_once(self, timeout_ms: int = 100) -> int:
        """Wait for events (up to timeout_ms), handle what is there, return the count.

        Every event would otherwise wake us and go through the stages alone or
        nearly so: after a read that emptied the ring we let events gather for up
        to COALESCE_S (that much latency; coalesce_pause) and flush outputs at most
        every FLUSH_S, or when idle.
        """
        reader = self.tracer.reader
        assert reader is not None
        n = 0
        pause = 0.0
        if reader.wait(timeout_ms):
            started, pos = time.monotonic(), reader.consumer_pos
            # Bounded, so that reloads and stop requests are seen during a storm too.
            n = reader.drain_batches(self.handle_batch, limit=self.DRAIN_LIMIT)
            if n < self.DRAIN_LIMIT:  # the ring was emptied (a storm leaves more: no wait)
                pause = coalesce_pause(reader.consumer_pos - pos, started - self._last_read,
                                       reader.size)
            self._last_read = started
        if self.enricher is not None and self.enricher.held:
            self.deliver(self.enricher.release())
        now = time.monotonic()
        if n == 0 or self._urgent or now - self._flushed >= self.FLUSH_S:
            self._urgent = False
            self.flush()
            self._flushed = now
        if n and pause > 0:
            time.sleep(pause)
        return n

    def flush(self) -> None:
        for sink in list(self.sinks):
            try:
                sink.flush()
            except OSError as exc:
                self.counts.sink_errors += 1
                self._sink_failed(sink, exc)

    def _sink_failed(self, sink: Sink, exc: OSError) -> None:
        """An output failed: counted. A reader that went away (closed pipe) ends that
        output; when no output is left, tracing stops, as `pytracee | head` expects."""
        if isinstance(exc, BrokenPipeError):
            log.warning("output closed by its reader; it gets no more events")
            self.sinks.remove(sink)
            if not self.sinks:
                self.stop_event.set()
        elif id(sink) not in self._warned:
            self._warned.add(id(sink))
            log.warning("output failed (counted, keeps trying): %s", exc)

    def emit(self, ev: Event) -> None:
        """An event made in user space (e.g. policy_reload), straight to the sinks."""
        self.counts.delivered[ev.event_id] += 1  # an event to the outputs like any other
        for sink in list(self.sinks):
            try:
                sink.write_batch([ev])
                sink.flush()
            except OSError as exc:
                self.counts.sink_errors += 1
                self._sink_failed(sink, exc)

    def run(self, tick: Callable[[], None] | None = None,
            on_start: Callable[[], None] | None = None) -> None:
        """Until SIGINT/SIGTERM (or stop_event): read, decode, filter, write.
        `tick` runs between reads (at least every 100 ms): reloads, housekeeping.
        `on_start` runs once the signal handlers are in place and the reader counts as
        running (/healthz), just before the first read: where to say "tracing"."""
        previous = {sig: signal.signal(sig, lambda *_: self.stop_event.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.last_tick = time.monotonic()
            if on_start is not None:
                on_start()
            while not self.stop_event.is_set():
                self.last_tick = time.monotonic()  # heartbeat: /healthz checks the reader runs
                self.drain_once()
                if tick is not None:
                    tick()
            # What the kernel sent before the stop is still delivered.
            while self.drain_once(0):
                pass
            if self.enricher is not None:
                # Lookups still in flight get their usual bounded wait, then what is left goes.
                deadline = time.monotonic() + self.enricher.max_wait_s
                while self.enricher.held and time.monotonic() < deadline:
                    time.sleep(0.02)
                    self.deliver(self.enricher.release())
                self.deliver(self.enricher.release(force=True))
            if self.engine is not None:
                self.deliver(self.engine.close())
            self.flush()
            if self.capture is not None:
                self.capture.close()  # the queued copies are written before the summary
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def lost(self) -> dict[str, int]:
        """Kernel-side losses by reason, over the events any policy set selected."""
        # What the kernel emits for any set (bases of derived events and capture inputs
        # included); it counts only those.
        ids = {eid for rt in self.runtimes.values() for eid in rt.kernel_bits
               if eid < wire.MAX_EVENT_ID}
        stats = self.tracer.stats(ids)
        out = {}
        for kind, name in wire.STAT_NAMES.items():
            out[name] = sum(stats.get(kind, {}).values())
        return out

    def skipped_runs(self) -> dict[str, int]:
        """Runs of our BPF programs the kernel skipped (re-entered on a CPU), by program."""
        return self.tracer.skipped_runs()

    def summary(self, outputs: Sequence[object] = ()) -> str:
        """The exit line's counts. `outputs`: the streams (also those closed meanwhile):
        "events delivered: N" counts only the events that every output that selected
        them delivered; "N of M" when some output did not (M: after every filter)."""
        sent = sum(self.counts.delivered)
        short = [n for s in outputs if (n := int(getattr(s, "undelivered", 0))) > 0]
        if not short:
            delivered = str(sent)
        elif len(short) == 1:
            delivered = f"{max(0, sent - short[0])} of {sent}"
        else:  # several outputs lost events, maybe the same ones: what is sure
            delivered = f"at least {max(0, sent - sum(short))} of {sent}"
        lost = self.lost()
        lost_s = ", ".join(f"{k}={v}" for k, v in lost.items())
        extra = ""
        if self.decoder.malformed or self.decoder.unknown_events:
            extra = f", undecodable: {self.decoder.malformed + self.decoder.unknown_events}"
        skipped = sum(self.skipped_runs().values())
        if skipped:
            extra += f", BPF program runs skipped by the kernel: {skipped}"
        if self.counts.sink_errors:
            extra += f", output errors: {self.counts.sink_errors}"
        if self.counts.pipeline_errors:
            extra += f", internal errors: {self.counts.pipeline_errors}"
        if self.capture is not None:
            extra += self.capture.summary()
        if self.network is not None and self._net_on:
            extra += self.network.summary()
        return (f"pytracee: events delivered: {delivered}, filtered in user space: "
                f"{self.counts.filtered}, lost: {sum(lost.values())} ({lost_s}){extra}")
