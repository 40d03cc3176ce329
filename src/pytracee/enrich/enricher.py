"""The enrich stage: between decode and the policy checks.

For each batch, in order: lifecycle events update the process tree and the
container table, every task context gets its process and container, container
events are derived from cgroup_mkdir/rmdir, and events the kernel sent only for
our own state (signals no policy selected) stop here.

Events of a container whose runtime data is still being fetched are held, in
order with everything after them, for at most `max_wait_s`; then they go out
with what is known (counted as late).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pytracee.derive.containers import container_event, fill_container_args
from pytracee.enrich.containers import PENDING, Container, ContainerManager
from pytracee.enrich.proctree import ProcessTree
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext

CGROUP_MKDIR = d.CGROUP_MKDIR
CGROUP_RMDIR = d.CGROUP_RMDIR
_LIFECYCLE = frozenset({d.SCHED_PROCESS_FORK, d.SCHED_PROCESS_EXEC, d.SCHED_PROCESS_EXIT,
                        CGROUP_MKDIR, CGROUP_RMDIR})


class Enricher:
    def __init__(self, tree: ProcessTree | None, containers: ContainerManager | None,
                 event_bits: Callable[[int], Mapping[int, int] | None],
                 max_wait_s: float = 2.0) -> None:
        self.tree = tree
        self.containers = containers
        self.event_bits = event_bits  # policy set version -> event id -> policy bits
        self.max_wait_s = max_wait_s
        self._held: list[Event] = []
        self._waits: dict[int, Container] = {}  # id(event) -> the container it waits for
        self.signals_dropped = 0  # events sent only for our state

    # -- per batch ---------------------------------------------------------

    def process(self, events: list[Event]) -> list[Event]:
        """Enrich a decoded batch; return the events ready to go on."""
        out: list[Event] = []
        append = out.append
        resolve = self._resolve
        lifecycle = self._lifecycle
        for ev in events:
            if not ev.ctx.resolved:  # once per task context, in stream order
                resolve(ev.ctx)
            if ev.event_id in _LIFECYCLE:
                lifecycle(ev, append)
            else:
                append(ev)  # only lifecycle events can come with no policy matched
        if self.containers is None:
            return out
        return self._hold(out)

    def _resolve(self, ctx: TaskContext) -> None:
        if self.containers is not None:
            c = ctx.container = self.containers.get(ctx.cgroup_id)
            ctx.container_started = c is not None and c.started
        if self.tree is not None:
            ctx.proc = self.tree.get(ctx.process_entity)
        ctx.resolved = True

    def _lifecycle(self, ev: Event, append: Callable[[Event], None]) -> None:
        """Update the tree and container table; pass on the event (when a policy
        selected it) and what is derived from it."""
        derived = self._update(ev)
        if ev.matched:
            append(ev)
        else:
            self.signals_dropped += 1  # sent for our state only (a signal, or a derived event's base)
        if derived is not None:
            append(derived)

    def _update(self, ev: Event) -> Event | None:
        eid = ev.event_id
        tree, containers = self.tree, self.containers
        if eid == d.SCHED_PROCESS_EXEC:
            if tree is not None:
                ev.ctx.proc = tree.on_exec(ev, ev.arg("pathname"), ev.arg("argv"))
            if containers is not None:
                containers.on_exec(ev.ctx.cgroup_id)
                ev.ctx.container_started = ev.ctx.container is not None  # this exec started it
        elif eid == d.SCHED_PROCESS_FORK:
            if tree is not None:
                tree.on_fork(ev)
        elif eid == d.SCHED_PROCESS_EXIT:
            if tree is not None and ev.arg("process_group_exit"):
                tree.on_exit(ev)
        else:
            return self._cgroup(ev)
        return None

    def _cgroup(self, ev: Event) -> Event | None:
        """cgroup_mkdir/rmdir: the container table, and the derived container event
        for the policies that select it. The base keeps only the policies that
        selected it for itself (the others made the kernel send it for us)."""
        bits = self.event_bits(ev.version) or {}
        create = ev.event_id == CGROUP_MKDIR
        derived_id = d.CONTAINER_CREATE if create else d.CONTAINER_REMOVE
        wanted = ev.matched & bits.get(derived_id, 0)
        ev.matched &= bits.get(ev.event_id, 0)
        containers = self.containers
        if containers is None or ev.arg("hierarchy_id") != 0:
            return None
        cgid = ev.arg("cgroup_id")
        if create:
            c = containers.on_mkdir(cgid, ev.arg("cgroup_path") or "")
        else:
            c = containers.on_rmdir(cgid)
        if c is None or not wanted:
            return None
        out = container_event(derived_id, ev.ctx, ev.timestamp, wanted, ev.version, c)
        if create:
            self._waits[id(out)] = c
        return out

    # -- waiting for runtime data ------------------------------------------

    def _pending(self, ev: Event) -> Container | None:
        c = self._waits.get(id(ev)) or ev.ctx.container
        return c if c is not None and c.status == PENDING else None

    def _hold(self, events: list[Event]) -> list[Event]:
        if not self._held and not self._waits and not self.containers.pending:  # type: ignore[union-attr]
            return events  # the common case: nothing to wait for
        if not self._held:
            for i, ev in enumerate(events):
                if self._pending(ev) is not None:
                    self._held = events[i:]
                    events = events[:i]
                    break
            else:
                self._finish(events)
                return events
            self._finish(events)
            return events + self.release()
        self._held.extend(events)
        return self.release()

    def release(self, force: bool = False) -> list[Event]:
        """Held events whose container is ready, or that waited long enough (in order)."""
        if not self._held:
            return []
        now = time.monotonic()
        i = 0
        held = self._held
        while i < len(held):
            c = self._pending(held[i])
            if c is not None and not force and now - c.asked_at < self.max_wait_s:
                break
            if c is not None:
                self.containers.counts.late += 1  # type: ignore[union-attr]
            i += 1
        out, self._held = held[:i], held[i:]
        self._finish(out)
        return out

    def _finish(self, events: list[Event]) -> None:
        """Container events get their runtime data once it is there (or the wait is over)."""
        if not self._waits:
            return
        for ev in events:
            c = self._waits.pop(id(ev), None)
            if c is not None:
                fill_container_args(ev, c)

    def inject(self, events: list[Event], waits_for: list[Container]) -> None:
        """Events made outside a batch (existing_container at start) that wait for
        their container's runtime data like the others, ahead of what is held."""
        for ev, c in zip(events, waits_for):
            self._waits[id(ev)] = c
        self._held = events + self._held

    @property
    def held(self) -> int:
        return len(self._held)
