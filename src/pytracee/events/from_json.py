"""Recorded events back into Events: Tracee's legacy JSON (what `-o json` writes)
for `pytracee analyze`, so signatures run on a recording as they do live."""

from __future__ import annotations

import base64
from typing import Any

from pytracee.enrich.containers import READY, Container
from pytracee.enrich.proctree import Process
from pytracee.enrich.runtime_api import ContainerInfo
from pytracee.events import definitions
from pytracee.events.argvalues import unparse
from pytracee.events.event import Event, TaskContext


class BadEvent(ValueError):
    """A JSON document that is not an event we know (message says why)."""


_BYTES_TYPES = ("[]byte", "bytes")


def _int(doc: dict[str, Any], key: str) -> int:
    v = doc.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadEvent(f"'{key}' must be an integer")
    return v


def _context(doc: dict[str, Any]) -> TaskContext:
    start = _int(doc, "threadStartTime")
    ctx = TaskContext((start, start, 0, _int(doc, "cgroupId"), _int(doc, "processId"),
                       _int(doc, "threadId"), _int(doc, "parentProcessId"),
                       _int(doc, "hostProcessId"), _int(doc, "hostThreadId"),
                       _int(doc, "hostParentProcessId"), _int(doc, "userId"), 0,
                       _int(doc, "mountNamespace"), _int(doc, "pidNamespace"),
                       str(doc.get("processName", "")).encode(),
                       str(doc.get("hostName", "")).encode()), 0)
    # Keep the recording's entity ids rather than hashing epoch times again.
    for key, attr in (("threadEntityId", "thread_entity"), ("processEntityId", "process_entity"),
                      ("parentEntityId", "parent_entity")):
        if isinstance(doc.get(key), int):
            setattr(ctx, attr, doc[key])
    exe = (doc.get("executable") or {}).get("path", "") if isinstance(doc.get("executable"), dict) else ""
    if exe:
        ctx.proc = Process(ctx.process_entity, ctx.host_pid, ctx.host_ppid, ctx.parent_entity,
                           start, ctx.comm, exe, (), ctx.uid, ctx.cgroup_id)
    cid = doc.get("containerId") or ""
    if cid:
        c = doc.get("container") if isinstance(doc.get("container"), dict) else {}
        k = doc.get("kubernetes") if isinstance(doc.get("kubernetes"), dict) else {}
        flags = doc.get("contextFlags") if isinstance(doc.get("contextFlags"), dict) else {}
        cont = Container(str(cid), "", ctx.cgroup_id, "", False, 0, status=READY,
                         started=bool(flags.get("containerStarted", False)))
        cont.info = ContainerInfo(str(cid), "", str(c.get("name", "")), str(c.get("image", "")),
                                  str(c.get("imageDigest", "")), 0, {},
                                  str(k.get("podName", "")), str(k.get("podNamespace", "")),
                                  str(k.get("podUID", "")), bool(k.get("podSandbox", False)))
        ctx.container = cont
        ctx.container_started = cont.started
    ctx.resolved = True
    return ctx


def event_from_json(doc: Any) -> Event:
    if not isinstance(doc, dict):
        raise BadEvent("an event is a JSON object")
    name = doc.get("eventName")
    d = definitions.lookup(name) if isinstance(name, str) else None
    if d is None:
        raise BadEvent(f"unknown event {name!r}")
    args: list[Any] = [None] * len(d.args)
    raw_args = doc.get("args", [])
    if not isinstance(raw_args, list):
        raise BadEvent("'args' must be a list")
    for a in raw_args:
        if not isinstance(a, dict) or "name" not in a:
            raise BadEvent("each arg is an object with a name and a value")
        idx = d.arg_index(a["name"])
        if idx is None:
            continue  # a field of a newer Tracee: not ours to interpret
        value = a.get("value")
        if d.args[idx].type in _BYTES_TYPES and isinstance(value, str):
            value = base64.b64decode(value)
        elif isinstance(value, str) and d.args[idx].type in definitions.INT_TYPES:
            # Recorded with option:parse-arguments: signatures compare the numbers.
            raw = unparse(d.name, d.args[idx].name, value)
            if raw is not None:
                value = raw
        args[idx] = value
    syscall = doc.get("syscall") or ""
    sc = definitions.lookup(syscall) if syscall else None
    return Event(_int(doc, "timestamp"), _int(doc, "returnValue"), 1, d.id,
                 sc.id if sc is not None and sc.syscall else -1, _int(doc, "processorId"), 0, 0,
                 _context(doc), d, args)
