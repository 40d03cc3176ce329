"""Output formats: a batch of events -> bytes, for any destination.

    json      one JSON object per line (Tracee's legacy trace.Event schema)
    table     Tracee's columns, for people; a header once per file/stdout
    template  a Jinja2 template per event (pytracee.sinks.template)

A Format is used by one stream only, from the thread that calls the stream's
write_batch (the event reader): rendering happens when the event is delivered,
so it shows the task as it was then, not as it is when a slow destination gets it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pytracee.events.event import Event, TaskContext
from pytracee.sinks.json_sink import JsonRenderer
from pytracee.sinks.table_sink import ParentChain, TableSink


class Format(Protocol):
    name: str
    errors: int  # events that could not be rendered (skipped; the stream counts them)

    def header(self) -> bytes:
        """Written once at the start of a file or stdout (b"" for none)."""
        ...

    def render(self, events: list[Event]) -> bytes: ...


class JsonFormat:
    name = "json"

    def __init__(self, policy_names: Callable[[int], list[str]], parse_arguments: bool = False,
                 ancestry: Callable[[TaskContext], list[dict[str, Any]]] | None = None) -> None:
        self.renderer = JsonRenderer(policy_names, parse_arguments, ancestry)
        self.render = self.renderer.render_batch  # no wrapper call on the hot path
        self.errors = 0

    def header(self) -> bytes:
        return b""


class _Discard:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


class TableFormat:
    """`width`: the columns to fit each line in, or a function that says it for each
    batch (a terminal's, which may be resized; None from it: whole lines); None:
    whole lines (files, pipes). `all_args`: every argument (`option:args=all`)."""

    name = "table"

    def __init__(self, containers: bool = False, parent_comm: Any = None,
                 parent_chain: ParentChain | None = None, colour: bool = False,
                 width: int | Callable[[], int | None] | None = None,
                 all_args: bool = False) -> None:
        self.width = width
        self._width = width if callable(width) else None
        # TableSink's line rendering, without its stream (and the header it writes there).
        self._table = TableSink(_Discard(), containers=containers,  # type: ignore[arg-type]
                                parent_comm=parent_comm, parent_chain=parent_chain, colour=colour,
                                width=None if callable(width) else width, all_args=all_args)
        self.colour = colour
        self.errors = 0

    def header(self) -> bytes:
        if self._width is not None:
            self._table.width = self._width()
        return (self._table.header() + "\n").encode()

    def render(self, events: list[Event]) -> bytes:
        if self._width is not None:
            self._table.width = self._width()
        # Traced names are already escaped text; backslashreplace only guards the encoder.
        return "".join(map(self._table.line, events)).encode("utf-8", "backslashreplace")
