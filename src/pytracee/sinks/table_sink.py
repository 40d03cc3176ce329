"""Table output for people, Tracee's columns: TIME UID COMM PID TID RET EVENT ARGS,
with a CONTAINER column when containers are tracked, and the process's
executable and parent after the args when the process tree knows them.

Everything a traced process controls (comm, paths, argv) is escaped, so a
hostile process cannot write terminal escape sequences to the screen.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from pytracee.events.event import Event
from pytracee.sinks.render import ArgRenderer

# C0 controls, DEL and C1 controls become \xNN; backslash is doubled so the
# escape cannot be forged by a name that contains a literal "\x1b".
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES[ord("\\")] = "\\\\"


def safe(s: str) -> str:
    return s.translate(_ESCAPES)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return safe(v)
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + " ".join(f"{k}={_show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (bytes, bytearray)):
        return safe(bytes(v).hex())
    return str(v)


HEADER = f"{'TIME':<16} {'UID':<6} {'COMM':<16} {'PID':<7} {'TID':<7} {'RET':<16} {'EVENT':<20} ARGS"
CONTAINER_HEADER = (f"{'TIME':<16} {'UID':<6} {'CONTAINER':<16} {'COMM':<16} {'PID':<7} "
                    f"{'TID':<7} {'RET':<16} {'EVENT':<20} ARGS")


class TableSink:
    def __init__(self, out: TextIO, containers: bool = False,
                 parent_comm: Any = None) -> None:
        self.out = out
        self.args = ArgRenderer(parse_arguments=True)  # as Tracee: table decodes flags
        self.containers = containers
        self.parent_comm = parent_comm  # entity -> comm of a known process, or None
        self.out.write((CONTAINER_HEADER if containers else HEADER) + "\n")

    def line(self, ev: Event) -> str:
        secs, ns = divmod(ev.timestamp, 1_000_000_000)
        stamp = time.strftime("%H:%M:%S", time.localtime(secs)) + f":{ns // 1000:06d}"
        ctx = ev.ctx
        args = ", ".join(f"{n}: {_show(v)}" for n, _, v in self.args.values(ev))
        md = getattr(ev, "metadata", None)
        if md is not None:  # a detection: which signature, how bad, caused by what
            base = getattr(ev, "triggered_by", None)
            what = f"{md.id} {safe(md.name)} (severity {md.severity})"
            what += f", triggered by {base.name}" if base is not None else ""
            args = f"{what}{', ' + args if args else ''}"
        where = ""
        if self.containers:
            c = ctx.container
            where = f"{safe(c.name or c.id[:12]) if c is not None else 'host':<16} "
        return (f"{stamp:<16} {ctx.uid:<6} {where}{safe(ctx.comm):<16} {ctx.host_pid:<7} "
                f"{ctx.host_tid:<7} {ev.retval:<16} {ev.name:<20} {args}{self._process(ev)}\n")

    def _process(self, ev: Event) -> str:
        """' [exe: ..., parent: comm(pid)]' when the process tree knows them."""
        p = ev.ctx.proc
        if p is None or not p.exe:
            return ""
        parent = self.parent_comm(p.parent_entity) if self.parent_comm is not None else None
        shown = f", parent: {safe(parent)}({p.ppid})" if parent else ""
        return f" [exe: {safe(p.exe)}{shown}]"

    def write_batch(self, events: list[Event]) -> None:
        self.out.write("".join(map(self.line, events)))

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


class NoneSink:
    """`--output none`: count, print nothing."""

    def write_batch(self, events: list[Event]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
