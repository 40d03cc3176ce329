"""What every output format needs from an event: display values of its args."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytracee.events.argvalues import arg_parser
from pytracee.events.definitions import SIGNATURE_EVENTS_START, EventDef
from pytracee.events.event import Event


class ArgRenderer:
    """Arg values as shown to users: raw, or with flags decoded to names
    (Tracee's `parse-arguments`). Parsers are looked up once per event."""

    def __init__(self, parse_arguments: bool) -> None:
        self.parse_arguments = parse_arguments
        self._parsers: dict[int, list[Callable[[int], Any] | None]] = {}

    def _for(self, d: EventDef) -> list[Callable[[int], Any] | None]:
        p = self._parsers.get(d.id)
        if p is None:
            p = [arg_parser(d.name, a.name) if self.parse_arguments else None for a in d.args]
            self._parsers[d.id] = p
        return p

    def values(self, ev: Event) -> list[tuple[str, str, Any]]:
        """(name, type, value) for each argument the event carries."""
        d = ev.definition
        if d.id >= SIGNATURE_EVENTS_START:  # a detection: its args are its finding's data
            return [(a.name, a.type, v) for a, v in zip(d.args, ev.args)]
        out = []
        for a, v, parse in zip(d.args, ev.args, self._for(d)):
            if v is None:
                continue
            if parse is not None and isinstance(v, int) and not isinstance(v, bool):
                shown = parse(v)
                if shown is not None:
                    v = shown
            out.append((a.name, a.type, v))
        return out


def syscall_name(nr: int, definitions: dict[int, EventDef]) -> str:
    d = definitions.get(nr) if nr >= 0 else None
    return d.name if d is not None and d.syscall else ""
