"""Events as Tracee's legacy JSON documents: what Rego and CEL signatures see."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from pytracee.events.event import Event
from pytracee.sinks.json_sink import JsonRenderer
from pytracee.sinks.render import ArgRenderer

_RENDERER = JsonRenderer(lambda version: [])
_ARGS = ArgRenderer(parse_arguments=False)


def event_dict(ev: Event) -> dict[str, Any]:
    """The legacy `trace.Event` document of one event (as `-o json` prints it)."""
    doc: dict[str, Any] = orjson.loads(_RENDERER.render_batch([ev]))
    return doc


def _json_value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()  # as the JSON output encodes []byte
    return v


def _args(ev: Event) -> list[dict[str, Any]]:
    return [{"name": n, "type": t, "value": _json_value(v)} for n, t, v in _ARGS.values(ev)]


# Top-level fields that can be built without rendering the whole document.
_CHEAP: dict[str, Callable[[Event], Any]] = {
    "eventName": lambda ev: ev.name,
    "eventId": lambda ev: str(ev.event_id),
    "args": _args,
    "argsNum": lambda ev: sum(v is not None for v in ev.args),
    "returnValue": lambda ev: ev.retval,
    "timestamp": lambda ev: ev.timestamp,
    "processName": lambda ev: ev.ctx.comm,
    "processId": lambda ev: ev.ctx.pid,
    "threadId": lambda ev: ev.ctx.tid,
    "hostProcessId": lambda ev: ev.ctx.host_pid,
    "hostThreadId": lambda ev: ev.ctx.host_tid,
    "userId": lambda ev: ev.ctx.uid,
    "containerId": lambda ev: ev.ctx.container.id if ev.ctx.container is not None else "",
}


def event_fields(ev: Event, keys: frozenset[str] | None,
                 arg_names: frozenset[str] | None = None) -> dict[str, Any]:
    """The document's fields named in `keys` (all of them when None), with only the
    args in `arg_names` (all when None). Common fields are built straight from the
    event; anything else renders the whole document."""
    if keys is not None and keys <= _CHEAP.keys():
        doc = {k: _CHEAP[k](ev) for k in keys if k != "args"}
        if "args" in keys:
            doc["args"] = [{"name": a.name, "type": a.type, "value": _json_value(v)}
                           for a, v in zip(ev.definition.args, ev.args)
                           if v is not None and (arg_names is None or a.name in arg_names)]
        return doc
    else:
        doc = event_dict(ev)
        if keys is not None:
            doc = {k: doc[k] for k in keys if k in doc}
    if arg_names is not None and "args" in doc:
        doc["args"] = [a for a in doc["args"] if a["name"] in arg_names]
    return doc
