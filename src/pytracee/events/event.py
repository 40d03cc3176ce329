"""The decoded event: one small object per event, task context shared."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pytracee.events.definitions import EVENTS

if TYPE_CHECKING:
    from pytracee.events.definitions import EventDef

# Tracee's scope field names -> TaskContext attributes.
_CTX_ATTRS = {
    "processId": "pid", "threadId": "tid", "parentProcessId": "ppid",
    "hostProcessId": "host_pid", "hostThreadId": "host_tid", "hostParentProcessId": "host_ppid",
    "userId": "uid", "mountNamespace": "mnt_ns", "pidNamespace": "pid_ns",
    "processName": "comm", "hostName": "hostname", "cgroupId": "cgroup_id",
}
# Container fields by Tracee's name -> how to read them off the enrich stage's Container.
_CONTAINER_FIELDS: dict[str, Any] = {
    "container": lambda c: True,
    "containerId": lambda c: c.id,
    "containerImage": lambda c: c.image,
    "containerImageDigest": lambda c: c.image_digest,
    "containerName": lambda c: c.name,
    "podName": lambda c: c.info.pod_name if c.info else "",
    "podNamespace": lambda c: c.info.pod_namespace if c.info else "",
    "podUid": lambda c: c.info.pod_uid if c.info else "",
    "podSandbox": lambda c: c.info.pod_sandbox if c.info else False,
}
# The same fields for a host task.
_HOST_ONLY: dict[str, Any] = {
    "container": False, "containerStarted": False, "containerId": "", "containerImage": "",
    "containerImageDigest": "", "containerName": "", "podName": "", "podNamespace": "",
    "podUid": "", "podSandbox": False,
}


_ENTITY = struct.Struct(">IQ")
# /proc gives start times in clock ticks (USER_HZ = 100): ids round to that, so
# a process seeded from /proc and seen by the kernel gets the same id.
_TICK_NS = 10_000_000


@lru_cache(maxsize=16384)  # a parent's id is asked for by each of its children
def entity_id(host_id: int, start_boot_ns: int) -> int:
    """A task's id that survives pid reuse: a 32-bit hash of (host pid/tid, start
    time rounded to clock ticks), as Tracee's entity ids (not the same numbers)."""
    key = _ENTITY.pack(host_id & 0xFFFFFFFF, start_boot_ns // _TICK_NS * _TICK_NS)
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")


def text(raw: bytes) -> str:
    """Kernel bytes to str. Bytes that are not UTF-8 become \\xNN escapes, so
    every name survives into JSON and nothing is silently replaced."""
    return raw.decode("utf-8", "backslashreplace")


class TaskContext:
    """The task part of the header. Interned: every event of the same task
    (same ids, namespaces, comm) shares one instance."""

    __slots__ = (
        "start_time", "boot_start", "leader_start", "parent_start", "cgroup_id", "pid", "tid",
        "ppid", "host_pid", "host_tid", "host_ppid", "uid", "gid", "mnt_ns", "pid_ns", "comm",
        "hostname", "cache", "thread_entity", "process_entity", "parent_entity",
        "proc", "container", "container_started", "resolved",
    )

    def __init__(self, fields: tuple[Any, ...], boot_offset: int) -> None:
        (start, self.leader_start, self.parent_start, self.cgroup_id, self.pid, self.tid,
         self.ppid, self.host_pid, self.host_tid, self.host_ppid, self.uid, self.gid,
         self.mnt_ns, self.pid_ns, comm, uts) = fields
        self.boot_start = start  # boot ns, as the process tree keys it
        self.start_time = start + boot_offset
        self.thread_entity = entity_id(self.host_tid, start)
        # A process's main thread: the same id (most tasks).
        self.process_entity = (self.thread_entity if self.host_pid == self.host_tid
                               and self.leader_start == start
                               else entity_id(self.host_pid, self.leader_start))
        self.parent_entity = entity_id(self.host_ppid, self.parent_start)
        # Set by the enrich stage: the process tree's entry and the container, when known.
        self.proc: Any = None
        self.container: Any = None
        # Whether the container had started (its first exec) when this task's first
        # event was read: runc's set-up before the container's command is not "started".
        self.container_started = False
        self.resolved = False
        self.comm = text(comm.split(b"\0", 1)[0])
        self.hostname = text(uts.split(b"\0", 1)[0])
        # Output formats keep their rendering of this context here (e.g. JSON bytes).
        self.cache: dict[str, Any] = {}


class Event:
    """One event. `args` follows the definition's argument order; an argument
    the kernel did not send is None.

    Events decoded from the same raw arguments share one `args` tuple, and
    `args_key` (those raw bytes) says so: outputs keep their rendering of the args
    by it. Code that changes an event's args gives it a new sequence and sets
    `args_key` to None."""

    __slots__ = ("timestamp", "retval", "matched", "event_id", "syscall", "cpu", "version",
                 "flags", "ctx", "definition", "args", "args_key")

    def __init__(self, timestamp: int, retval: int, matched: int, event_id: int, syscall: int,
                 cpu: int, version: int, flags: int, ctx: TaskContext, definition: EventDef,
                 args: Sequence[Any], args_key: bytes | None = None) -> None:
        self.timestamp = timestamp
        self.retval = retval
        self.matched = matched  # bitmap of the policies (of policy set `version`) it matched
        self.event_id = event_id
        self.syscall = syscall
        self.cpu = cpu
        self.version = version
        self.flags = flags
        self.ctx = ctx
        self.definition = definition
        self.args = args
        self.args_key = args_key

    @property
    def name(self) -> str:
        return self.definition.name

    def arg(self, name: str) -> Any:
        """Value of the named argument; KeyError if the event has no such argument."""
        idx = self.definition.arg_index(name)
        if idx is None:
            raise KeyError(name)
        return self.args[idx]

    def context_value(self, name: str) -> Any:
        """A context field by Tracee's scope name (processName, hostProcessId, ...);
        KeyError for a name that is not one."""
        attr = _CTX_ATTRS.get(name)
        if attr is not None:
            return getattr(self.ctx, attr)
        if name == "timestamp":
            return self.timestamp
        if name == "processorId":
            return self.cpu
        if name == "syscall":
            d = EVENTS.get(self.syscall)
            return d.name if d is not None and d.syscall else ""
        c = self.ctx.container
        if c is None:
            return _HOST_ONLY[name]
        if name == "containerStarted":
            return self.ctx.container_started
        return _CONTAINER_FIELDS[name](c)

    def __repr__(self) -> str:
        return f"<Event {self.name} pid={self.ctx.host_pid} tid={self.ctx.host_tid} ret={self.retval}>"
