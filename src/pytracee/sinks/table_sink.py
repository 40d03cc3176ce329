"""Table output for people, Tracee's columns: TIME UID COMM PID TID RET EVENT ARGS,
with a CONTAINER column when containers are tracked, and the process's
executable and parent after the args when the process tree knows them.

A detection's ARGS say what was found before the finding's data:

    HIGH TRC-102 Anti-Debugging detected, triggered by ptrace,
    process: python3(1234) <- bash(1200) <- sshd(900), exe: /usr/bin/python3.11, <data>

(the process, then its ancestors nearest first, up to CHAIN_DEPTH of them,
" <- ..." when there are more). With `colour` (stdout on a terminal only) the
severity is coloured and the signature bold.

Everything a traced process controls (comm, paths, argv) is escaped, so a
hostile process cannot write terminal escape sequences to the screen; so is
what signature files say (ids, names, event names). The only escape codes in a
line are the colour codes added here, around text already escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from pytracee.detect.signature import SEVERITY_NAMES
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


CHAIN_DEPTH = 5  # ancestors shown for a detection's process

# SGR colours by severity (0-4); the worst two are bold so they catch the eye.
SEVERITY_SGR = ("36", "34", "33", "1;31", "1;97;41")  # cyan, blue, yellow, bold red, white on red
BOLD = "\x1b[1m"
RESET = "\x1b[0m"

ParentChain = Callable[[int, int], list[tuple[str, int]]]  # (entity, depth) -> [(comm, pid)]


def _severity(md: Any) -> tuple[int | None, str]:
    """(level 0-4 or None, label): a signature file may give any Severity."""
    try:
        level = int(md.severity)
    except (TypeError, ValueError):
        return None, "SEVERITY ?"
    if 0 <= level < len(SEVERITY_NAMES):
        return level, SEVERITY_NAMES[level].upper()
    return None, f"SEVERITY {level}"


class TableSink:
    def __init__(self, out: TextIO, containers: bool = False,
                 parent_comm: Any = None, parent_chain: ParentChain | None = None,
                 colour: bool = False) -> None:
        self.out = out
        self.args = ArgRenderer(parse_arguments=True)  # as Tracee: table decodes flags
        self.containers = containers
        self.parent_comm = parent_comm  # entity -> comm of a known process, or None
        self.parent_chain = parent_chain  # a detection's ancestors; None: the process alone
        self.colour = colour
        self.out.write((CONTAINER_HEADER if containers else HEADER) + "\n")

    def line(self, ev: Event) -> str:
        secs, ns = divmod(ev.timestamp, 1_000_000_000)
        stamp = time.strftime("%H:%M:%S", time.localtime(secs)) + f":{ns // 1000:06d}"
        ctx = ev.ctx
        args = ", ".join(f"{n}: {_show(v)}" for n, _, v in self.args.values(ev))
        name = ev.name
        md = getattr(ev, "metadata", None)
        if md is not None:  # a detection: its own text, which includes the process
            name = safe(name)  # a signature file's event name
            what = self._detection(ev, md)
            args = f"{what}, {args}" if args else what
            process = ""
        else:
            process = self._process(ev)
        where = ""
        if self.containers:
            c = ctx.container
            where = f"{safe(c.name or c.id[:12]) if c is not None else 'host':<16} "
        return (f"{stamp:<16} {ctx.uid:<6} {where}{safe(ctx.comm):<16} {ctx.host_pid:<7} "
                f"{ctx.host_tid:<7} {ev.retval:<16} {name:<20} {args}{process}\n")

    def _detection(self, ev: Event, md: Any) -> str:
        """'HIGH TRC-102 <name>, triggered by <event>, process: <chain>, exe: <path>'."""
        level, label = _severity(md)
        signature = f"{safe(str(md.id))} {safe(str(md.name))}"
        if self.colour:  # around escaped text only: nothing inside can end or forge them
            if level is not None:
                label = f"\x1b[{SEVERITY_SGR[level]}m{label}{RESET}"
            signature = f"{BOLD}{signature}{RESET}"
        what = f"{label} {signature}"
        base = getattr(ev, "triggered_by", None)
        if base is not None:
            what += f", triggered by {safe(base.name)}"  # a chained detection's name is a file's
        ctx = ev.ctx
        chain = [f"{safe(ctx.comm)}({ctx.host_pid})"]
        if self.parent_chain is not None:
            ancestors = self.parent_chain(ctx.process_entity, CHAIN_DEPTH + 1)  # one more: "..."
            chain.extend(f"{safe(comm)}({pid})" for comm, pid in ancestors[:CHAIN_DEPTH])
            if len(ancestors) > CHAIN_DEPTH:
                chain.append("...")
        what += f", process: {' <- '.join(chain)}"
        p = ctx.proc
        if p is not None and p.exe:
            what += f", exe: {safe(p.exe)}"
        return what

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
