"""Events as Tracee's legacy JSON documents: what Rego and CEL signatures see."""

from __future__ import annotations

from typing import Any

import orjson

from pytracee.events.event import Event
from pytracee.sinks.json_sink import JsonRenderer

_RENDERER = JsonRenderer(lambda version: [])


def event_dict(ev: Event) -> dict[str, Any]:
    """The legacy `trace.Event` document of one event (as `-o json` prints it)."""
    doc: dict[str, Any] = orjson.loads(_RENDERER.render_batch([ev]))
    return doc
