"""Where rendered events go: a file (or stdout), a webhook, a Fluent Forward peer.

A Destination gets one rendered batch at a time from its stream's worker
thread (never from the event reader): `send` may block or fail (raise OSError,
counted by the stream), `flush` is called when the stream is idle, `close` once.
"""

from __future__ import annotations

from typing import Protocol

from pytracee.events.event import Event


class Destination(Protocol):
    name: str  # for counters and logs, e.g. "webhook:https://siem/ingest"

    def send(self, payload: bytes, events: list[Event]) -> None:
        """Deliver one batch: `payload` is the batch rendered in the stream's format
        (JSON lines, table lines, template output); `events` are the same events
        (a destination that frames per event, like Fluent Forward, uses these).
        Raise OSError (or a subclass) when the batch could not be delivered."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
