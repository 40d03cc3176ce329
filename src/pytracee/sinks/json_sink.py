"""JSON lines in Tracee's legacy `trace.Event` schema.

The task part of each line is rendered once per task context and reused:
most events come from tasks that sent one before.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson

from pytracee.events.definitions import EVENTS, SIGNATURE_EVENTS_START
from pytracee.events.event import Event, TaskContext
from pytracee.sinks.render import ArgRenderer, syscall_name

_ARGS_JSON_MAX = 1024  # rendered args kept per event (as the decoder keeps their values)


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(obj).decode()  # Go's encoding of []byte
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _stamp(ctx: TaskContext) -> int:
    """Changes whenever the enrich stage learns more of the task (exec, container data)."""
    p, c = ctx.proc, ctx.container
    return (p.rev + 1 if p is not None else 0) + (c.rev + 1 if c is not None else 0)


def _task_fragment(ctx: TaskContext) -> bytes:
    p, c = ctx.proc, ctx.container
    info = c.info if c is not None else None
    body = orjson.dumps({
        "threadStartTime": ctx.start_time,
        "processId": ctx.pid,
        "threadId": ctx.tid,
        "parentProcessId": ctx.ppid,
        "hostProcessId": ctx.host_pid,
        "hostThreadId": ctx.host_tid,
        "hostParentProcessId": ctx.host_ppid,
        "userId": ctx.uid,
        "mountNamespace": ctx.mnt_ns,
        "pidNamespace": ctx.pid_ns,
        "processName": ctx.comm,
        "executable": {"path": p.exe if p is not None else ""},
        "hostName": ctx.hostname,
        "cgroupId": ctx.cgroup_id,
        "containerId": c.id if c is not None else "",
        "container": {"id": c.id, "name": c.name, "image": c.image,
                      "imageDigest": c.image_digest} if c is not None else {},
        "kubernetes": {"podName": info.pod_name, "podNamespace": info.pod_namespace,
                       "podUID": info.pod_uid, "podSandbox": info.pod_sandbox}
        if info is not None and info.pod_name else {},
        "contextFlags": {"containerStarted": bool(c is not None and ctx.container_started),
                         "isCompat": False},
        "threadEntityId": ctx.thread_entity,
        "processEntityId": ctx.process_entity,
        "parentEntityId": ctx.parent_entity,
    })
    return body[1:-1]


class JsonRenderer:
    def __init__(self, policy_names: Callable[[int], list[str]], parse_arguments: bool = False,
                 ancestry: Callable[[TaskContext], list[dict[str, Any]]] | None = None) -> None:
        self.policy_names = policy_names  # policy set version -> names by bit
        self.args = ArgRenderer(parse_arguments)
        self.ancestry = ancestry  # option:ancestry: the process's ancestors, nearest first
        self._parts: dict[tuple[int, int, int, int], bytes] = {}
        # event id -> the decoder's raw args (Event.args_key) -> (args JSON, count)
        self._args_json: dict[int, dict[bytes, tuple[bytes, int]]] = {}

    def _event_part(self, ev: Event) -> bytes:
        """eventId .. matchedPolicies: fixed for an (event, syscall, policies) triple."""
        key = (ev.event_id, ev.syscall, ev.matched, ev.version)
        out = self._parts.get(key)
        if out is None:
            names = [n for i, n in enumerate(self.policy_names(ev.version)) if ev.matched >> i & 1]
            out = orjson.dumps({"eventId": str(ev.event_id), "eventName": ev.name,
                                "syscall": syscall_name(ev.syscall, EVENTS),
                                "matchedPolicies": names})[1:-1]
            self._parts[key] = out
        return out

    def render_batch(self, events: list[Event]) -> bytes:
        """Lines for a batch, joined. The loop is the output's hot path: the task and
        event parts come from caches, only the per-event numbers are formatted."""
        parts = self._parts
        values = self.args.values
        args_json_of = self._args_json
        lines = []
        append = lines.append
        ancestry = self.ancestry
        for ev in events:
            ctx = ev.ctx
            # Inline _stamp(): this loop is the output's hot path.
            p, c = ctx.proc, ctx.container
            stamp = (p.rev + 1 if p is not None else 0) + (c.rev + 1 if c is not None else 0)
            kept = ctx.cache.get("json")
            if kept is not None and kept[0] == stamp:
                frag = kept[1]
            else:
                frag = _task_fragment(ctx)
                ctx.cache["json"] = (stamp, frag)
            if ancestry is not None:
                frag += b',"ancestors":' + orjson.dumps(ancestry(ctx))
            part = parts.get((ev.event_id, ev.syscall, ev.matched, ev.version)) or self._event_part(ev)
            akey = ev.args_key
            if akey is not None:  # args shared with earlier events: rendered once
                known = args_json_of.get(ev.event_id)
                if known is None:
                    known = args_json_of[ev.event_id] = {}
                hit = known.get(akey)
                if hit is None:
                    if len(known) >= _ARGS_JSON_MAX:
                        known.clear()
                    hit = known[akey] = self._args(ev, values)
                args_json, nargs = hit
            elif ev.args:
                args_json, nargs = self._args(ev, values)
            else:
                args_json, nargs = b"[]", 0
            if ev.event_id >= SIGNATURE_EVENTS_START:
                args_json = self._detection_args(ev, args_json)
            append(b'{"timestamp":%d,"processorId":%d,%b,%b,"argsNum":%d,"returnValue":%d,"args":%b}\n' % (
                ev.timestamp, ev.cpu, frag, part, nargs, ev.retval, args_json))
        return b"".join(lines)


    @staticmethod
    def _args(ev: Event, values: Callable[[Event], list[tuple[str, str, Any]]]) -> tuple[bytes, int]:
        args = values(ev)
        return (orjson.dumps([{"name": n, "type": t, "value": v} for n, t, v in args],
                             default=_default), len(args))

    def _detection_args(self, ev: Event, args_json: bytes) -> bytes:
        """A detection: its args plus `triggeredBy` (the event that caused it), then
        Tracee's `metadata` object after the args."""
        base = getattr(ev, "triggered_by", None)
        md = getattr(ev, "metadata", None)
        if base is None or md is None:
            return args_json
        trigger = {"name": "triggeredBy", "type": "unknown", "value": {
            "id": base.event_id, "name": base.name, "returnValue": base.retval,
            "args": [{"name": n, "type": t, "value": v} for n, t, v in self.args.values(base)]}}
        props = {**md.properties, "signatureID": md.id, "signatureName": md.name}
        args = orjson.loads(args_json) + [trigger]
        return orjson.dumps(args, default=_default) + b',"metadata":' + orjson.dumps(
            {"Version": md.version, "Description": md.description, "Tags": list(md.tags),
             "Properties": props}, default=_default)


class JsonSink:
    """One JSON object per line to a binary stream."""

    def __init__(self, out: BinaryIO, policy_names: Callable[[int], list[str]],
                 parse_arguments: bool = False,
                 ancestry: Callable[[TaskContext], list[dict[str, Any]]] | None = None) -> None:
        self.out = out
        self.renderer = JsonRenderer(policy_names, parse_arguments, ancestry)

    def write_batch(self, events: list[Event]) -> None:
        self.out.write(self.renderer.render_batch(events))

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
