"""The signature engine: events in, detections (events themselves) out.

Dispatch is by event id: a signature sees only the events it selected (and
their origin: host, container or both); an event no signature selected costs
one dict lookup. A finding becomes a `Detection` event with the triggering
event's task context, the signature's metadata and the finding's data as args.
Detections are dispatched again to signatures that select them (chaining, at
most CHAIN_DEPTH deep). A signature that raises or is slow is counted and
logged once; the others keep running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytracee.detect.signature import Finding, Signature, SignatureContext, SignatureMetadata
from pytracee.events import definitions
from pytracee.events.definitions import ArgDef, EventDef
from pytracee.events.event import Event

log = logging.getLogger(__name__)

CHAIN_DEPTH = 5
SLOW_S = 0.005  # one on_event call longer than this is counted as slow
# Timing every call would cost more than most signatures do: one call in
# TIME_EVERY is timed (a power of two), so a signature that is slow as a rule is caught.
TIME_EVERY = 16


class _Group:
    """Selections of one event that prefilter the same string argument: the union of
    their patterns is tried first, so an event no member could match costs one test.
    Members that want only opens for writing have their own union, skipped for reads."""

    def __init__(self, idx: int | None, members: list[tuple[Signature, Any, Any]]) -> None:
        self.idx = idx
        self.members = members
        self.readers = [m for m in members if not m[1].write_only]
        self.all = self._union(members)
        self.read = self._union(self.readers)

    @staticmethod
    def _union(ms: list[tuple[Signature, Any, Any]]) -> tuple[tuple[str, ...], tuple[str, ...],
                                                               tuple[str, ...]]:
        return (tuple(p for _, s, _ in ms for p in s.prefixes),
                tuple(x for _, s, _ in ms for x in s.suffixes),
                tuple(c for _, s, _ in ms for c in s.contains))


class _Plan:
    """Who gets an event of one id and origin: signatures without a prefilter, then
    prefiltered groups by argument."""

    def __init__(self, eid: int, wants: list[tuple[Signature, Any, Any]]) -> None:
        d = definitions.EVENTS.get(eid)
        self.always = [(sig, stats) for sig, sel, stats in wants
                       if not sel.field and not sel.write_only]
        by_field: dict[str, list[tuple[Signature, Any, Any]]] = {}
        for w in wants:
            if w[1].field or w[1].write_only:
                by_field.setdefault(w[1].field, []).append(w)
        self.groups = [_Group(d.arg_index(f) if d is not None and f else None, ms)
                       for f, ms in by_field.items()]
        self.flags_idx = d.arg_index("flags") if d is not None else None
        # The fast path: nothing unfiltered, one group on a real argument (file opens).
        self.single = (self.groups[0] if not self.always and len(self.groups) == 1
                       and self.groups[0].idx is not None and eid < definitions.SIGNATURE_EVENTS_START
                       else None)


@dataclass
class DataStores:
    """What signatures may ask besides the event: the process tree and containers."""

    tree: Any = None        # pytracee.enrich.proctree.ProcessTree
    containers: Any = None  # pytracee.enrich.containers.ContainerManager

    def ancestry(self, ev: Event, depth: int = 5) -> list[Any]:
        """The event's process's ancestors, nearest first (Process records)."""
        return self.tree.ancestry(ev.ctx.process_entity, depth) if self.tree is not None else []


class Detection(Event):
    """A finding as an event: the triggering event's context, the finding's data as args."""

    __slots__ = ("metadata", "triggered_by", "data")

    def __init__(self, finding: Finding, definition: EventDef, matched: int) -> None:
        base = finding.event
        data = finding.data
        super().__init__(base.timestamp, 0, matched, definition.id, base.syscall, base.cpu,
                         base.version, 0, base.ctx,
                         EventDef(definition.id, definition.name, definition.sets,
                                  tuple(ArgDef(k, _type_of(v)) for k, v in data.items())),
                         list(data.values()))
        self.metadata = finding.signature
        self.triggered_by = base
        self.data = data


def _type_of(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]string" if all(isinstance(x, str) for x in v) else "[]interface{}"
    return "interface{}"


@dataclass
class SignatureStats:
    events: int = 0      # on_event calls
    findings: int = 0
    errors: int = 0      # on_event raised
    slow: int = 0        # on_event took longer than SLOW_S


@dataclass
class EngineCounts:
    detections: int = 0
    chain_depth_exceeded: int = 0
    by_signature: dict[str, SignatureStats] = field(default_factory=dict)


class Engine:
    def __init__(self, signatures: Sequence[Signature],
                 params: Mapping[str, Mapping[str, Any]] | None = None,
                 stores: Any = None) -> None:
        self.signatures: list[Signature] = []
        self.counts = EngineCounts()
        self._pending: list[Finding] = []
        self._warned: set[tuple[str, str]] = set()
        self._defs: dict[str, EventDef] = {}     # signature id -> its event
        self._calls = 0  # on_event calls, for sampling their duration
        self._params = params or {}
        self._stores = stores
        self._started: set[int] = set()  # ids of the signature objects init() was called on
        # event id -> (plan for host events, plan for container events)
        self._route: dict[int, tuple[_Plan, _Plan]] = {}
        self.set_signatures(signatures)

    def set_signatures(self, signatures: Sequence[Signature]) -> None:
        """Run these signatures from now on (a policy reload selects others). Those
        already running keep their state; new ones are initialised."""
        signatures = list(signatures)
        register(signatures)
        wants: dict[int, list[tuple[Signature, Any, SignatureStats]]] = {}
        for sig in signatures:
            md = sig.metadata
            stats = self.counts.by_signature.setdefault(md.id, SignatureStats())
            for sel in sig.selected_events:
                d = definitions.lookup(sel.name)
                assert d is not None  # register() checked
                wants.setdefault(d.id, []).append((sig, sel, stats))
            self._defs[md.id] = definitions.BY_NAME[md.event_name]
            if id(sig) not in self._started:
                self._started.add(id(sig))
                sig.init(SignatureContext(self._pending.append, self._params.get(md.id, {}),
                                          self._stores))
        self.signatures = signatures
        self._route = {
            eid: (_Plan(eid, [w for w in ws if w[1].origin != "container"]),
                  _Plan(eid, [w for w in ws if w[1].origin != "host"]))
            for eid, ws in wants.items()}

    @property
    def active(self) -> bool:
        """Some signature runs: the pipeline calls process() only then."""
        return bool(self._route)

    @property
    def selected_ids(self) -> frozenset[int]:
        return frozenset(self._route)

    def process(self, events: list[Event], bits: Any = None) -> list[Event]:
        """The events, each followed by the detections it caused. `bits(version)`
        gives event id -> policies for the policy set an event matched under: a
        detection goes to the policies that selected its signature (None: all)."""
        route = self._route
        if not route:
            return events
        out: list[Event] = []
        append = out.append
        call = self._call
        pending = self._pending
        for ev in events:
            append(ev)
            plans = route.get(ev.event_id)
            if plans is None:
                continue
            # _run(), inlined for the common case of one prefiltered group (file opens).
            plan = plans[ev.ctx.container is not None]
            g = plan.single
            if g is None:
                self._run(ev, plans)
            else:
                args = ev.args
                flags = args[plan.flags_idx] if plan.flags_idx is not None else None
                writing = flags.__class__ is int and flags & 3 in (1, 2)
                members = g.members if writing else g.readers
                if members:
                    v = args[g.idx]
                    pre, suf, con = g.all if writing else g.read
                    if v.__class__ is str and (v.startswith(pre) or v.endswith(suf) or (
                            con and any(c in v for c in con))):
                        for sig, sel, stats in members:
                            if sel.accepts(v, flags):
                                call(sig, ev, stats)
            if pending:
                self._emit(ev, bits, out, 1)
        return out

    def _run(self, ev: Event, plans: tuple[_Plan, _Plan]) -> None:
        plan = plans[ev.ctx.container is not None]
        call = self._call
        for sig, stats in plan.always:
            call(sig, ev, stats)
        if not plan.groups:
            return
        args = ev.args if ev.event_id < definitions.SIGNATURE_EVENTS_START else ()
        flags = args[plan.flags_idx] if plan.flags_idx is not None and args else None
        writing = isinstance(flags, int) and flags & 3 in (1, 2)
        for g in plan.groups:
            members = g.members if writing else g.readers
            if not members:
                continue
            v = args[g.idx] if g.idx is not None and args else None
            if g.idx is not None:
                pre, suf, con = g.all if writing else g.read
                if not (isinstance(v, str) and (v.startswith(pre) or v.endswith(suf) or (
                        con and any(c in v for c in con)))):
                    continue  # no signature of this group could match: none is called
            for sig, sel, stats in members:
                if sel.accepts(v, flags):
                    call(sig, ev, stats)

    def _call(self, sig: Signature, ev: Event, stats: SignatureStats) -> None:
        self._calls += 1
        stats.events += 1
        timed = not self._calls & (TIME_EVERY - 1)
        t0 = time.perf_counter() if timed else 0.0
        try:
            sig.on_event(ev)
        except Exception as exc:  # isolate: the others keep running
            stats.errors += 1
            self._warn_once(sig.metadata, "error", f"raised {type(exc).__name__}: {exc}")
        if timed:
            elapsed = time.perf_counter() - t0
            if elapsed > SLOW_S:
                stats.slow += 1
                self._warn_once(sig.metadata, "slow", f"took {elapsed * 1e3:.1f} ms on {ev.name}")

    def _emit(self, trigger: Event, bits: Any, out: list[Event], depth: int) -> None:
        findings, self._pending[:] = list(self._pending), []
        for f in findings:
            d = self._defs[f.signature.id]
            policies = bits(f.event.version) if bits is not None else None
            matched = f.event.matched if policies is None else f.event.matched & policies.get(d.id, 0)
            det = Detection(f, d, matched)
            self.counts.by_signature[f.signature.id].findings += 1
            chained = self._route.get(d.id)
            if matched:
                self.counts.detections += 1
                out.append(det)
            if chained is not None:
                if depth >= CHAIN_DEPTH:
                    self.counts.chain_depth_exceeded += 1
                    continue
                self._run(det, chained)
                if self._pending:
                    self._emit(det, bits, out, depth + 1)

    def _warn_once(self, md: SignatureMetadata, kind: str, what: str) -> None:
        if (md.id, kind) not in self._warned:
            self._warned.add((md.id, kind))
            log.warning("signature %s (%s) %s (counted; it keeps running, so do the others)",
                        md.id, md.name, what)

    def signal(self, signal: Any) -> None:
        for sig in self.signatures:
            try:
                sig.on_signal(signal)
            except Exception as exc:
                self._warn_once(sig.metadata, "error", f"raised {type(exc).__name__}: {exc}")

    def close(self) -> list[Event]:
        """Close every signature; findings made while closing come back as detections."""
        out: list[Event] = []
        for sig in self.signatures:
            try:
                sig.close()
            except Exception as exc:
                self._warn_once(sig.metadata, "error", f"raised {type(exc).__name__}: {exc}")
        if self._pending:
            for f in list(self._pending):
                self._pending.clear()
                d = self._defs[f.signature.id]
                out.append(Detection(f, d, f.event.matched))
        return out

    def summary(self) -> str:
        c = self.counts
        if not self.active and not c.detections:
            return ""  # no signature ran
        errors = sum(s.errors for s in c.by_signature.values())
        slow = sum(s.slow for s in c.by_signature.values())
        text = f", detections: {c.detections}"
        if errors or slow or c.chain_depth_exceeded:
            text += (f" (signature errors: {errors}, slow calls: {slow}, "
                     f"chains cut at depth {CHAIN_DEPTH}: {c.chain_depth_exceeded})")
        return text


def register(signatures: Sequence[Signature]) -> None:
    """Make every signature's event known (so policies and --events can select it),
    with the events it needs. SignatureSetError (a ValueError) for a duplicate id or an
    unknown event; its `usage` names the file and line (both files for a duplicate)."""
    from pytracee.detect.signature import SignatureSetError, duplicate_id, where_defined
    from pytracee.errors import UsageError

    ids: dict[str, Signature] = {}
    names = {s.metadata.event_name: s for s in signatures}
    for sig in signatures:
        md = sig.metadata
        if md.id in ids:
            raise duplicate_id(ids[md.id], sig)
        ids[md.id] = sig
        for sel in sig.selected_events:
            if definitions.lookup(sel.name) is None and sel.name not in names:
                text = f"signature {md.id} selects unknown event {sel.name!r}"
                raise SignatureSetError(text, UsageError(text, where=where_defined(sig)))
    for sig in signatures:  # chained signatures' events first exist without dependencies
        md = sig.metadata
        definitions.register_signature_event(md.event_name, tuple(md.tags), ())
    for sig in signatures:
        md = sig.metadata
        deps = tuple(definitions.BY_NAME[sel.name].id for sel in sig.selected_events)
        props = md.properties
        threat = {"severity": md.severity, "name": md.name,
                  "technique": str(props.get("external_id", "")),
                  "technique_name": str(props.get("Technique", "")),
                  "tactic": str(props.get("Category", props.get("tactic", "")))}
        definitions.register_signature_event(md.event_name, tuple(md.tags), deps, threat)


def active(signatures: Sequence[Signature], selected: set[int]) -> list[Signature]:
    """The signatures whose events are selected, and those they chain from."""
    by_event = {definitions.BY_NAME[s.metadata.event_name].id: s for s in signatures}
    out: dict[str, Signature] = {}
    todo = [by_event[e] for e in selected if e in by_event]
    while todo:
        sig = todo.pop()
        if sig.metadata.id in out:
            continue
        out[sig.metadata.id] = sig
        for sel in sig.selected_events:
            d = definitions.BY_NAME.get(sel.name)
            if d is not None and d.id in by_event:
                todo.append(by_event[d.id])
    return [s for s in signatures if s.metadata.id in out]
