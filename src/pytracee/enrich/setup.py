"""The enrich stage as `pytracee` runs it: process tree, containers, their upkeep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from pytracee.derive.containers import existing_events
from pytracee.ebpf.tracer import SIGNAL_CONTAINERS, SIGNAL_PROCTREE, Tracer
from pytracee.enrich import cgroupfs
from pytracee.enrich.containers import ContainerManager, default_manager
from pytracee.enrich.enricher import Enricher
from pytracee.enrich.options import EnrichOptions
from pytracee.enrich.proctree import ProcessTree
from pytracee.errors import UsageError
from pytracee.events import definitions as d
from pytracee.events.event import TaskContext
from pytracee.policy.reload import self_context
from pytracee.policy.runtime import PolicyRuntime

_CONTAINER_EVENTS = (d.CONTAINER_CREATE, d.CONTAINER_REMOVE, d.EXISTING_CONTAINER)
_HOUSEKEEPING_S = 1.0


class Enrichment:
    def __init__(self, opts: EnrichOptions, tracer: Tracer, boot_offset: int) -> None:
        self.opts = opts
        self.boot_offset = boot_offset
        self.tree = ProcessTree(opts.max_processes, opts.exited_ttl_s) if opts.proctree else None
        self.manager: ContainerManager | None = (
            default_manager(tracer.set_container, opts.sockets) if opts.containers else None)
        self._enricher: Enricher | None = None
        self._next_housekeeping = 0.0

    def signals(self) -> int:
        return ((SIGNAL_PROCTREE if self.tree is not None else 0)
                | (SIGNAL_CONTAINERS if self.manager is not None else 0))

    def check(self, runtime: PolicyRuntime) -> None:
        """Refuse a policy set that needs what is switched off."""
        if self.tree is None and any(s.executable for s in runtime.userland_scopes.values()):
            raise UsageError("executable scopes need the process tree (drop --stores none)",
                             token="executable")
        if self.manager is None:
            wanted = [d.EVENTS[e].name for e in _CONTAINER_EVENTS if e in runtime.event_bits]
            if wanted or runtime.kscope.container or runtime.kscope.not_container \
                    or any(s.container_ids for s in runtime.userland_scopes.values()):
                raise UsageError("container events and scopes need container enrichment "
                                 "(drop --enrichment none)", token=(wanted or ["container"])[0])

    def enricher(self, event_bits: Callable[[int], Mapping[int, int] | None]) -> Enricher:
        self._enricher = Enricher(self.tree, self.manager, event_bits, self.opts.wait_s)
        return self._enricher

    def seed_kernel(self) -> None:
        """Before the programs are attached (Tracer.load's before_attach): the kernel's
        container table, so that `container`/`not-container` scopes are right for the
        events that come before start() has scanned."""
        root = cgroupfs.v2_mount()
        if self.manager is not None and root:
            self.manager.seed_kernel(cgroupfs.walk(root))

    def start(self, runtime: PolicyRuntime) -> None:
        """After the programs are attached (so nothing falls between the scan and
        the first signal): seed from /proc and cgroupfs, start runtime lookups."""
        root = cgroupfs.v2_mount()
        cgroups = cgroupfs.walk(root) if root else None  # one walk for both
        if self.manager is not None:
            found = self.manager.scan(cgroups)
            self.manager.start()
            matched = runtime.event_bits.get(d.EXISTING_CONTAINER, 0)
            if found and matched and self._enricher is not None:
                ctx = self_context(self.boot_offset)
                self._enricher.inject(existing_events(found, ctx, matched, runtime.version), found)
        if self.tree is not None:
            self.tree.seed(cgroup_ids=cgroups)

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + _HOUSEKEEPING_S
        if self.tree is not None:
            self.tree.expire()

    def stop(self) -> None:
        if self.manager is not None:
            self.manager.stop()

    # -- for outputs ---------------------------------------------------------

    def show_containers(self) -> bool:
        """Container columns: when enrichment is on and some runtime is installed."""
        return self.manager is not None and any(
            os.path.exists(p) for p in self.opts.sockets.values())

    def parent_comm(self, entity: int) -> str | None:
        p = self.tree.get(entity) if self.tree is not None else None
        return p.comm if p is not None else None

    def parent_chain(self, entity: int, depth: int) -> list[tuple[str, int]]:
        """(comm, pid) of the process's ancestors, nearest first; [] without the tree."""
        if self.tree is None:
            return []
        return [(p.comm, p.pid) for p in self.tree.ancestry(entity, depth)]

    def ancestry_of(self, depth: int) -> Callable[[TaskContext], list[dict[str, Any]]]:
        tree, boot = self.tree, self.boot_offset
        assert tree is not None

        def ancestry(ctx: TaskContext) -> list[dict[str, Any]]:
            return [p.summary(boot) for p in tree.ancestry(ctx.process_entity, depth)]

        return ancestry

    def summary(self) -> str:
        parts = []
        if self.tree is not None:
            parts.append(f"processes tracked: {len(self.tree)}")
            if self.tree.evicted:
                parts.append(f"evicted live: {self.tree.evicted}")
        if self.manager is not None:
            c = self.manager.counts
            parts.append(f"containers seen: {c.seen}")
            if c.errors or c.late or c.not_found or c.unsupported:
                parts.append(f"runtime errors: {c.errors}, not found: {c.not_found}, "
                             f"unsupported runtime: {c.unsupported}, sent without runtime data: {c.late}")
        return (", " + ", ".join(parts)) if parts else ""
