"""Containers: which cgroup is which container, and what the runtime says of it.

cgroup ids come with every event; the cgroup path (from a cgroupfs walk at
start and from cgroup_mkdir signals after) gives the container id. Names,
images and pod labels come from the runtime's API, queried by a worker thread
(never on the event path), cached per container. A runtime that is down is
retried; until it answers, events carry the id alone and the failure is counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pytracee.enrich import cgroupfs
from pytracee.enrich.container_ids import parse_container_id
from pytracee.enrich.runtime_api import (
    ContainerInfo,
    ContainerNotFound,
    RuntimeClient,
    RuntimeUnavailable,
)

log = logging.getLogger(__name__)

# Kernel container states (bpf/common/scope.h enum container_state).
EXISTED, CREATED, STARTED = 1, 2, 3

PENDING, READY, FAILED = "pending", "ready", "failed"


@dataclass(slots=True, eq=False)
class Container:
    id: str
    runtime: str
    cgroup_id: int
    cgroup_path: str
    existed: bool           # running before pytracee started
    seen_ns: int            # when pytracee learnt of it (epoch ns): ctime when the runtime is silent
    info: ContainerInfo | None = None
    status: str = PENDING
    asked_at: float = 0.0   # monotonic time of the first lookup
    retry_at: float = 0.0
    removed: bool = False
    started: bool = False   # an exec happened in it (container=started)
    rev: int = 0            # bumped when info arrives, so cached renderings can tell

    @property
    def name(self) -> str:
        return self.info.name if self.info else ""

    @property
    def image(self) -> str:
        return self.info.image if self.info else ""

    @property
    def image_digest(self) -> str:
        return self.info.image_digest if self.info else ""

    @property
    def ctime(self) -> int:
        return self.info.created_ns if self.info and self.info.created_ns else self.seen_ns


@dataclass
class EnrichCounts:
    lookups: int = 0        # runtime queries made
    errors: int = 0         # queries that failed because the runtime was unavailable
    not_found: int = 0      # the runtime did not know the id
    unsupported: int = 0    # containers of a runtime we have no client for
    late: int = 0           # events released after the wait without the runtime's data
    seen: int = 0           # containers known during the run: running at start or created since


class ContainerManager:
    """cgroup id -> Container, and the worker that fills in runtime data."""

    def __init__(self, clients: Mapping[str, RuntimeClient], cgroup_root: str | None,
                 on_state: Callable[[int, int | None], None] | None = None,
                 retry_s: float = 2.0) -> None:
        self.clients = dict(clients)
        self.root = cgroup_root
        self.on_state = on_state  # (cgroup id, kernel state or None = gone) -> kernel map
        self.retry_s = retry_s
        self.counts = EnrichCounts()
        self._by_cgroup: dict[int, Container | None] = {}
        self._queue: queue.Queue[Container | None] = queue.Queue()
        self._failed: list[Container] = []
        # Containers whose first lookup has not finished (set ops are atomic: the
        # worker removes, the event thread adds and reads).
        self.pending: set[Container] = set()
        self._thread: threading.Thread | None = None

    # -- cgroups -----------------------------------------------------------

    def scan(self, cgroups: dict[str, int] | None = None) -> list[Container]:
        """Containers already running (from `cgroups`, a cgroupfs walk: path -> id):
        recorded as EXISTED."""
        if self.root is None:
            return []
        found = []
        for path, cgid in (cgroups if cgroups is not None else cgroupfs.walk(self.root)).items():
            c = self._add(cgid, path, existed=True)
            if c is not None:
                found.append(c)
        return found

    def seed_kernel(self, cgroups: dict[str, int]) -> None:
        """Before the programs attach: tell the kernel which cgroups are containers, so
        container scopes hold from the first event. scan() records them after attach."""
        if self.on_state is None:
            return
        for path, cgid in cgroups.items():
            if parse_container_id(path) is not None:
                self.on_state(cgid, EXISTED)

    def on_mkdir(self, cgroup_id: int, path: str) -> Container | None:
        """A new v2 cgroup: a Container when its path names one."""
        known = self._by_cgroup.get(cgroup_id)
        if known is not None:
            return None  # seen by the start-up walk already
        return self._add(cgroup_id, path, existed=False)

    def on_rmdir(self, cgroup_id: int) -> Container | None:
        c = self._by_cgroup.pop(cgroup_id, None)
        if c is not None:
            c.removed = True
            if self.on_state is not None:
                self.on_state(cgroup_id, None)
        return c

    def on_exec(self, cgroup_id: int) -> None:
        c = self._by_cgroup.get(cgroup_id)
        if c is not None:
            c.started = True  # the kernel marked it STARTED itself

    def get(self, cgroup_id: int) -> Container | None:
        return self._by_cgroup.get(cgroup_id)

    def containers(self) -> list[Container]:
        return [c for c in self._by_cgroup.values() if c is not None]

    def _add(self, cgroup_id: int, path: str, existed: bool) -> Container | None:
        parsed = parse_container_id(path)
        if parsed is None:
            return None
        runtime, cid = parsed
        c = Container(cid, runtime, cgroup_id, path, existed, time.time_ns(), started=existed)
        self._by_cgroup[cgroup_id] = c
        self.counts.seen += 1
        if self.on_state is not None:
            self.on_state(cgroup_id, EXISTED if existed else CREATED)
        c.asked_at = time.monotonic()
        if c.runtime not in self.clients:  # e.g. containerd: ids only, nothing to wait for
            self.counts.unsupported += 1
            c.status = READY
            return c
        self.pending.add(c)
        self._queue.put(c)
        return c

    # -- runtime lookups ---------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="pytracee-containers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _work(self) -> None:
        while True:
            try:
                c = self._queue.get(timeout=self.retry_s)
            except queue.Empty:
                c = None
            else:
                if c is None:
                    return
                self._lookup(c)
            self._retry_due()

    def _retry_due(self) -> None:
        now = time.monotonic()
        due = [c for c in self._failed if c.retry_at <= now]
        if not due:
            return
        self._failed = [c for c in self._failed if c.retry_at > now]
        for c in due:
            if not c.removed:
                self._lookup(c)

    def _lookup(self, c: Container) -> None:
        try:
            self._ask(c)
        finally:
            self.pending.discard(c)

    def _ask(self, c: Container) -> None:
        client = self.clients[c.runtime]
        self.counts.lookups += 1
        t0 = time.monotonic()
        try:
            info = client.inspect(c.id)
        except ContainerNotFound:
            self.counts.not_found += 1
            c.status = READY
            return
        except RuntimeUnavailable as exc:
            self.counts.errors += 1
            if c.status != FAILED:
                log.warning("container %s: %s (events carry its id only; retrying)", c.id[:12], exc)
            c.status = FAILED
            c.retry_at = time.monotonic() + self.retry_s
            self._failed.append(c)
            return
        except Exception:  # a reply we did not expect must not end enrichment
            self.counts.errors += 1
            log.exception("container %s: lookup failed", c.id[:12])
            c.status = FAILED
            c.retry_at = time.monotonic() + self.retry_s
            self._failed.append(c)
            return
        c.info = info
        c.rev += 1
        c.status = READY
        log.debug("container %s: %s in %.0f ms", c.id[:12], info.name, (time.monotonic() - t0) * 1e3)


def default_manager(on_state: Callable[[int, int | None], None] | None,
                    sockets: Mapping[str, str] | None = None,
                    timeout: float = 2.0) -> ContainerManager:
    """Clients for every runtime socket configured (present or not: a runtime that
    starts later is found at the next lookup) on the host's cgroup v2 tree."""
    from pytracee.enrich.runtime_api import DEFAULT_SOCKETS, default_clients

    clients = default_clients(sockets or DEFAULT_SOCKETS, timeout, present_only=False)
    return ContainerManager(clients, cgroupfs.v2_mount(), on_state)
