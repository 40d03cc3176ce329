"""container_create, container_remove and existing_container (Tracee's args)."""

from __future__ import annotations

import time

from pytracee.enrich.containers import Container
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext


def container_args(c: Container) -> list[object]:
    info = c.info
    return [c.runtime, c.id, c.ctime, c.image, c.image_digest, c.name,
            info.pod_name if info else "", info.pod_namespace if info else "",
            info.pod_uid if info else "", info.pod_sandbox if info else False]


def container_event(eid: int, ctx: TaskContext, timestamp: int, matched: int, version: int,
                    c: Container) -> Event:
    """The event for container `c`; create/existing args are filled again when the
    runtime's data arrives (fill_container_args)."""
    args: list[object] = [c.runtime, c.id] if eid == d.CONTAINER_REMOVE else container_args(c)
    return Event(timestamp, 0, matched, eid, -1, 0, version, 0, ctx, d.EVENTS[eid], args)


def fill_container_args(ev: Event, c: Container) -> None:
    if ev.event_id != d.CONTAINER_REMOVE:
        ev.args = container_args(c)


def existing_events(containers: list[Container], ctx: TaskContext, matched: int,
                    version: int) -> list[Event]:
    """existing_container for each container found running at start."""
    now = time.time_ns()
    return [container_event(d.EXISTING_CONTAINER, ctx, now, matched, version, c)
            for c in containers]
