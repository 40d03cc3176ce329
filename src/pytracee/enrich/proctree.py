"""The process tree: every process pytracee knows, by entity id, bounded.

Seeded from /proc at start, then kept current by the kernel's fork, exec and
exit events (sent as signals whatever the policies select). Entries live in an
LRU of `capacity` processes; an exited process stays `exited_ttl_s` seconds so
that events still in flight resolve, and exited ones are evicted first.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from pytracee.events.event import Event, entity_id

_TICK_NS = 10_000_000  # /proc start times are in clock ticks of 10 ms (USER_HZ 100)
_ARGV_MAX = 32         # argv kept per process: enough to read, bounded for a fork storm


@dataclass(slots=True, eq=False)
class Process:
    entity: int
    pid: int            # host tgid
    ppid: int           # host tgid of the parent
    parent_entity: int
    start_ns: int       # boot ns
    comm: str
    exe: str
    argv: tuple[str, ...]
    uid: int
    cgroup_id: int
    exited_ns: int = 0  # boot ns of the exit, 0 while alive
    rev: int = 0        # bumped on every change, so cached renderings can tell

    def summary(self, boot_offset: int) -> dict[str, object]:
        """What ancestry shows of a process (Tracee's ProcessInfo, legacy JSON names)."""
        return {"processEntityId": self.entity, "hostProcessId": self.pid,
                "hostParentProcessId": self.ppid, "processName": self.comm,
                "executable": {"path": self.exe}, "argv": list(self.argv),
                "startTime": self.start_ns + boot_offset, "userId": self.uid}


class ProcessTree:
    def __init__(self, capacity: int = 10_000, exited_ttl_s: float = 10.0) -> None:
        if capacity < 1:
            raise ValueError("the process tree needs room for at least one process")
        self.capacity = capacity
        self.exited_ttl_ns = int(exited_ttl_s * 1e9)
        self._procs: OrderedDict[int, Process] = OrderedDict()
        self._exited: deque[tuple[int, int]] = deque()  # (exit boot ns, entity), in exit order
        self.evicted = 0  # live processes pushed out by the bound (their ancestry is cut there)

    def __len__(self) -> int:
        return len(self._procs)

    def get(self, entity: int) -> Process | None:
        return self._procs.get(entity)

    def __iter__(self) -> Iterator[Process]:
        return iter(list(self._procs.values()))

    def ancestry(self, entity: int, depth: int) -> list[Process]:
        """The process's parent, grandparent, ... up to `depth`, as far as known."""
        out: list[Process] = []
        p = self._procs.get(entity)
        seen = {entity}
        while p is not None and len(out) < depth:
            parent = self._procs.get(p.parent_entity)
            if parent is None or parent.entity in seen:  # pid 1's parent is 0; loops cannot be
                break
            seen.add(parent.entity)
            out.append(parent)
            p = parent
        return out

    # -- updates -------------------------------------------------------------

    def _put(self, p: Process) -> None:
        self._procs[p.entity] = p
        self._procs.move_to_end(p.entity)
        while len(self._procs) > self.capacity:
            self._evict_one()

    def _evict_one(self) -> None:
        while self._exited:  # exited processes go first
            _, entity = self._exited.popleft()
            old = self._procs.get(entity)
            if old is not None and old.exited_ns:
                del self._procs[entity]
                return
        self._procs.popitem(last=False)
        self.evicted += 1

    def on_fork(self, ev: Event) -> None:
        """sched_process_fork of a new process (threads are not kept)."""
        arg = ev.arg
        pid, tid = arg("child_pid"), arg("child_tid")
        if pid is None or pid != tid:
            return
        start = arg("start_time")
        ppid = arg("parent_process_pid")
        parent_entity = entity_id(ppid, arg("parent_process_start_time"))
        parent = self._procs.get(parent_entity)
        exe, argv = (parent.exe, parent.argv) if parent is not None else ("", ())
        ctx = ev.ctx
        self._put(Process(entity_id(pid, start), pid, ppid, parent_entity, start, ctx.comm, exe,
                          argv, ctx.uid, ctx.cgroup_id))

    def on_exec(self, ev: Event, pathname: str | None, argv: list[str] | None) -> Process:
        ctx = ev.ctx
        p = self._procs.get(ctx.process_entity)
        args = tuple((argv or ())[:_ARGV_MAX])
        if p is None:
            p = Process(ctx.process_entity, ctx.host_pid, ctx.host_ppid, ctx.parent_entity,
                        ctx.leader_start, ctx.comm, pathname or "", args, ctx.uid, ctx.cgroup_id)
        else:
            p.comm, p.exe, p.argv, p.uid = ctx.comm, pathname or p.exe, args, ctx.uid
            p.ppid, p.parent_entity, p.cgroup_id = ctx.host_ppid, ctx.parent_entity, ctx.cgroup_id
            p.rev += 1
        self._put(p)
        return p

    def on_exit(self, ev: Event) -> None:
        p = self._procs.get(ev.ctx.process_entity)
        if p is None or p.exited_ns:
            return
        p.exited_ns = ev.timestamp - (ev.ctx.start_time - ev.ctx.boot_start)  # back to boot ns
        p.rev += 1
        self._exited.append((p.exited_ns, p.entity))

    def expire(self, now_boot_ns: int | None = None) -> int:
        """Forget processes that exited more than exited_ttl ago; how many went."""
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME) if now_boot_ns is None else now_boot_ns
        n = 0
        while self._exited and now - self._exited[0][0] > self.exited_ttl_ns:
            _, entity = self._exited.popleft()
            p = self._procs.get(entity)
            if p is not None and p.exited_ns:
                del self._procs[entity]
                n += 1
        return n

    # -- seeding -------------------------------------------------------------

    def seed(self, proc: str = "/proc", cgroup_ids: dict[str, int] | None = None) -> int:
        """Every live process from /proc; returns how many were added. `cgroup_ids`
        maps v2 cgroup paths to ids (cgroupfs.walk), to give each its cgroup."""
        starts: dict[int, tuple[int, int, str]] = {}  # pid -> (ppid, start ns, comm)
        for name in os.listdir(proc):
            if name.isdigit():
                st = _stat(f"{proc}/{name}/stat")
                if st is not None:
                    starts[int(name)] = st
        added = 0
        for pid, (ppid, start, comm) in starts.items():
            parent = starts.get(ppid)
            parent_entity = entity_id(ppid, parent[1]) if parent is not None else 0
            base = f"{proc}/{pid}"
            try:
                exe = os.readlink(f"{base}/exe")
            except OSError:
                exe = ""  # kernel threads have none; or it exited
            argv = tuple(_read(f"{base}/cmdline").split(b"\0")[:-1][:_ARGV_MAX])
            uid = _status_uid(_read(f"{base}/status"))
            cgid = 0
            if cgroup_ids:
                cgid = cgroup_ids.get(_v2_cgroup(_read(f"{base}/cgroup")), 0)
            self._put(Process(entity_id(pid, start), pid, ppid, parent_entity, start, comm, exe,
                              tuple(a.decode("utf-8", "backslashreplace") for a in argv),
                              uid, cgid))
            added += 1
        return added


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _stat(path: str) -> tuple[int, int, str] | None:
    raw = _read(path)
    if not raw:
        return None
    close = raw.rindex(b")")
    comm = raw[raw.index(b"(") + 1:close].decode("utf-8", "backslashreplace")
    fields = raw[close + 2:].split()
    # fields[0] is state; ppid is field 4 of stat, starttime field 22 (1-based).
    return int(fields[1]), int(fields[19]) * _TICK_NS, comm


def _status_uid(raw: bytes) -> int:
    for line in raw.splitlines():
        if line.startswith(b"Uid:"):
            return int(line.split()[1])
    return 0


def _v2_cgroup(raw: bytes) -> str:
    for line in raw.splitlines():
        if line.startswith(b"0::"):
            return line[3:].decode("utf-8", "backslashreplace")
    return ""
