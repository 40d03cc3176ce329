"""Table output for people, Tracee's columns: TIME UID COMM PID TID RET EVENT ARGS,
with a CONTAINER column when containers are tracked, and the process's
executable and parent after the args when the process tree knows them.

The columns are narrower than Tracee's: TIME 15, UID 5, CONTAINER 12 (the
container's name, or its id, cut to 12; `host` for a host process), COMM 15,
PID and TID 7 (`pid/host-pid` for a task whose pid differs on the host, as in a
container: `1/24621`), RET 4, EVENT 20. A longer value widens its column on its
line only.

ARGS are summarised for the common events (SUMMARIES): an exec's path and
command line, an open's path and flags, a connect's address (ip:port), a
magic_write's path and first bytes. `all_args` (`-o option:args=all`) prints every
argument, as Tracee does. Other events print every argument.

A detection's ARGS say what was found, what triggered it, before the finding's data:

    HIGH TRC-102 Anti-Debugging detected, triggered by ptrace (request: PTRACE_TRACEME,
    pid: 0), process: python3(1234) <- bash(1200) <- sshd(900), exe: /usr/bin/python3.11, <data>

(the triggering event's telling arguments (TRIGGERS), then the process and its
ancestors nearest first, up to CHAIN_DEPTH of them, " <- ..." when there are
more). With `colour` (stdout on a terminal only) the severity is coloured and the
signature bold.

With a `width` (a terminal's columns) every line is cut to that width, ending in
CUT ("…"): one event is one line on the screen. The cut never ends inside a
number or a word with a digit in it (a pid, a port, an escape), so no number is
ever shown shortened; it steps back to the start of that word instead.

Everything a traced process controls (comm, paths, argv) is escaped, so a
hostile process cannot write terminal escape sequences to the screen; so is
what signature files say (ids, names, event names). The only escape codes in a
line are the colour codes added here, around text already escaped.
"""

from __future__ import annotations

import re
import shlex
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from pytracee.detect.signature import SEVERITY_NAMES
from pytracee.events.definitions import SIGNATURE_EVENTS_START
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


# Column widths (values longer than these widen their column on their line).
TIME_W, UID_W, CONTAINER_W, COMM_W, PID_W, RET_W, EVENT_W = 15, 5, 12, 15, 7, 4, 20

HEADER = (f"{'TIME':<{TIME_W}} {'UID':<{UID_W}} {'COMM':<{COMM_W}} {'PID':<{PID_W}} "
          f"{'TID':<{PID_W}} {'RET':<{RET_W}} {'EVENT':<{EVENT_W}} ARGS")
CONTAINER_HEADER = (f"{'TIME':<{TIME_W}} {'UID':<{UID_W}} {'CONTAINER':<{CONTAINER_W}} "
                    f"{'COMM':<{COMM_W}} {'PID':<{PID_W}} {'TID':<{PID_W}} {'RET':<{RET_W}} "
                    f"{'EVENT':<{EVENT_W}} ARGS")

CUT = "…"  # ends a line cut to the terminal's width

CHAIN_DEPTH = 5  # ancestors shown for a detection's process

# SGR colours by severity (0-4); the worst two are bold so they catch the eye.
SEVERITY_SGR = ("36", "34", "33", "1;31", "1;97;41")  # cyan, blue, yellow, bold red, white on red
BOLD_SGR = "1"
BOLD = f"\x1b[{BOLD_SGR}m"
RESET = "\x1b[0m"

ParentChain = Callable[[int, int], list[tuple[str, int]]]  # (entity, depth) -> [(comm, pid)]
Shown = list[tuple[str, str]]  # (argument name, text already escaped)
Summary = Callable[[Mapping[str, Any]], Shown]
Span = tuple[int, int, str]  # [start, end) of ARGS text in SGR colour


# -- argument values as the table shows them ------------------------------------------------

def _address(v: Any) -> str:
    """A socket address as ip:port ([ip6]:port), a unix socket's path; else as it is."""
    if isinstance(v, Mapping):
        family = v.get("sa_family")
        if family == "AF_INET" and "sin_addr" in v:
            return f"{_show(v['sin_addr'])}:{_show(v.get('sin_port', ''))}"
        if family == "AF_INET6" and "sin6_addr" in v:
            return f"[{_show(v['sin6_addr'])}]:{_show(v.get('sin6_port', ''))}"
        if family == "AF_UNIX" and "sun_path" in v:
            return _show(v["sun_path"])
    return _show(v)


_PLAIN_WORD = re.compile(r"[\w@%+=:,./-]+", re.ASCII)


def _quote(word: str) -> str:
    """A word as a shell reads it back: as it is when plain, else in single quotes, or
    in double quotes when it has single quotes and nothing a shell expands there."""
    if _PLAIN_WORD.fullmatch(word):
        return word
    if "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


def _command_line(v: Any) -> str:
    """argv joined as a shell would read it: words with spaces or quotes are quoted."""
    if isinstance(v, (list, tuple)):
        return safe(" ".join(_quote(str(a)) for a in v))
    return _show(v)


# A byte as text: printable ASCII as itself, the rest as safe() writes it (\xNN, \\).
_BYTE = tuple(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else "\\\\" if b == 0x5C
              else f"\\x{b:02x}" for b in range(256))
BYTES_SHOWN, BYTES_TEXT = 16, 24  # at most this many bytes, this long once written


def _byte_prefix(v: Any) -> str:
    """The first bytes, printable ones as text: '\\x7fELF\\x02\\x01\\x01\\x00...'."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        data = bytes(v)
    elif isinstance(v, list) and all(isinstance(b, int) and 0 <= b < 256 for b in v):
        data = bytes(v)  # from a recording
    else:
        return _show(v)
    out = ""
    n = 0
    for b in data[:BYTES_SHOWN]:
        if len(out) + len(_BYTE[b]) > BYTES_TEXT:
            break
        out += _BYTE[b]
        n += 1
    return out + ("..." if n < len(data) else "")


_FORMATS: dict[str, Callable[[Any], str]] = {
    "argv": _command_line, "remote_addr": _address, "addr": _address, "bytes": _byte_prefix,
}


def _given(v: Any) -> bool:
    return v is not None and v != "" and v != []


def _pick(*names: str) -> Summary:
    def summary(values: Mapping[str, Any]) -> Shown:
        return [(n, _FORMATS.get(n, _show)(values[n])) for n in names if _given(values.get(n))]
    return summary


def _tcp_connect(values: Mapping[str, Any]) -> Shown:
    dst, port = values.get("dst"), values.get("dst_port")
    if not _given(dst):
        return []
    host = _show(dst)
    if ":" in host:  # IPv6
        host = f"[{host}]"
    out = [("dst", host + (f":{port}" if port is not None else ""))]
    if _given(values.get("dst_dns")):
        out.append(("dst_dns", _show(values["dst_dns"])))
    return out


_PRELOAD_VARS = ("LD_PRELOAD", "LD_LIBRARY_PATH")


def _exec_trigger(values: Mapping[str, Any]) -> Shown:
    """The program, and the loader variables of its environment (ld_preload's finding)."""
    out = _pick("pathname")(values)
    env = values.get("env")
    if isinstance(env, (list, tuple)):
        preload = [e for e in env if isinstance(e, str) and e.partition("=")[0] in _PRELOAD_VARS]
        if preload:
            out.append(("env", _command_line(preload)))
    return out


_OPEN = _pick("pathname", "flags")
_EXEC = _pick("pathname", "argv")

# The table's ARGS of the common events (other events: every argument).
SUMMARIES: dict[str, Summary] = {
    "sched_process_exec": _EXEC, "execve": _EXEC, "execveat": _EXEC,
    "security_file_open": _OPEN, "open": _OPEN, "openat": _OPEN,
    "security_socket_connect": _pick("remote_addr"), "connect": _pick("addr"),
    "net_tcp_connect": _tcp_connect,
    "magic_write": _pick("pathname", "bytes"),
}

_PATH = _pick("pathname")
# What a detection names of the event that triggered it, by that event.
TRIGGERS: dict[str, Summary] = {
    "magic_write": _PATH, "security_file_open": _PATH, "open": _PATH, "openat": _PATH,
    "openat2": _PATH, "security_inode_unlink": _PATH, "execve": _PATH, "execveat": _PATH,
    "sched_process_exec": _exec_trigger,
    "security_inode_rename": _pick("old_path", "new_path"),
    "rename": _pick("oldpath", "newpath"), "renameat": _pick("oldpath", "newpath"),
    "renameat2": _pick("oldpath", "newpath"),
    "security_socket_connect": _pick("remote_addr"), "socket_dup": _pick("remote_addr"),
    "connect": _pick("addr"), "net_tcp_connect": _tcp_connect,
    "security_sb_mount": _pick("dev_name", "path"), "mount": _pick("source", "target"),
    "ptrace": _pick("request", "pid"), "process_vm_writev": _pick("pid"),
    "mem_prot_alert": _pick("alert", "pathname"), "module_load": _pick("name", "pathname"),
    "hooked_syscall": _pick("syscall", "owner"),
}
_TELLING = _pick("pathname", "path", "new_path", "dev_name", "name")  # any other trigger


def _joined(shown: Shown) -> str:
    return ", ".join(f"{n}: {t}" for n, t in shown)


# -- fitting a line to a width ---------------------------------------------------------------

def columns(s: str) -> int:
    """Terminal columns `s` takes: wide (East Asian) characters 2, combining ones 0."""
    if s.isascii():
        return len(s)
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


# What the cut does not split when it has a digit in it: numbers, addresses
# (10.0.0.1:443), times, versions, escapes (\x1b).
_WORD = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.:\\")


def cut_point(text: str, width: int) -> int:
    """How much of `text` to keep so that it and CUT fit in `width` columns: never
    inside a word with a digit in it (a number, an address, an \\xNN escape) nor
    after half of an escaped backslash."""
    room = width - columns(CUT)
    if text.isascii():
        keep = max(room, 0)
    else:
        keep, used = 0, 0
        for c in text:
            used += columns(c)
            if used > room:
                break
            keep += 1
    if 0 < keep < len(text) and text[keep] in _WORD and text[keep - 1] in _WORD:
        start = keep
        while start > 0 and text[start - 1] in _WORD:
            start -= 1
        end = keep
        while end < len(text) and text[end] in _WORD:
            end += 1
        if any(c.isdigit() for c in text[start:end]):
            keep = start
    slashes = 0
    while slashes < keep and text[keep - 1 - slashes] == "\\":
        slashes += 1
    return keep - slashes % 2


def _paint(text: str, offset: int, spans: Sequence[Span]) -> str:
    """Colour [start, end) of the ARGS (at `offset` in text), as far as text goes."""
    for start, end, sgr in reversed(spans):
        s, e = offset + start, min(offset + end, len(text))
        if s < e:
            text = f"{text[:s]}\x1b[{sgr}m{text[s:e]}{RESET}{text[e:]}"
    return text


def _severity(md: Any) -> tuple[int | None, str]:
    """(level 0-4 or None, label): a signature file may give any Severity."""
    try:
        level = int(md.severity)
    except (TypeError, ValueError):
        return None, "SEVERITY ?"
    if 0 <= level < len(SEVERITY_NAMES):
        return level, SEVERITY_NAMES[level].upper()
    return None, f"SEVERITY {level}"


def _ids(ns: int, host: int) -> str:
    """'pid/host-pid' for a task whose pid differs on the host (a container's), else the pid."""
    return f"{ns}/{host}" if ns and ns != host else str(host)


class TableSink:
    def __init__(self, out: TextIO, containers: bool = False,
                 parent_comm: Any = None, parent_chain: ParentChain | None = None,
                 colour: bool = False, width: int | None = None, all_args: bool = False) -> None:
        self.out = out
        self.args = ArgRenderer(parse_arguments=True)  # as Tracee: table decodes flags
        self.containers = containers
        self.parent_comm = parent_comm  # entity -> comm of a known process, or None
        self.parent_chain = parent_chain  # a detection's ancestors; None: the process alone
        self.colour = colour
        self.width = width  # columns to fit each line in (a terminal's); None: whole lines
        self.all_args = all_args  # every argument, not the summary of the common events
        self.out.write(self.header() + "\n")

    def header(self) -> str:
        head = CONTAINER_HEADER if self.containers else HEADER
        if self.width and columns(head) > self.width:  # whole column names only
            cut = head[:self.width]
            head = (cut if head[self.width] == " " else cut.rpartition(" ")[0]).rstrip()
        return head

    def line(self, ev: Event) -> str:
        secs, ns = divmod(ev.timestamp, 1_000_000_000)
        stamp = time.strftime("%H:%M:%S", time.localtime(secs)) + f":{ns // 1000:06d}"
        ctx = ev.ctx
        name = ev.name
        md = getattr(ev, "metadata", None)
        spans: Sequence[Span] = ()
        if md is not None:  # a detection: its own text, which includes the process
            name = safe(name)  # a signature file's event name
            what, spans = self._detection(ev, md)
            data = _joined([(n, _show(v)) for n, _, v in self.args.values(ev)])
            args = f"{what}, {data}" if data else what
        else:
            args = self._args(ev) + self._process(ev)
        where = ""
        if self.containers:
            c = ctx.container
            shown = safe((c.name or c.id)[:CONTAINER_W]) if c is not None else "host"
            where = f"{shown:<{CONTAINER_W}} "
        head = (f"{stamp:<{TIME_W}} {ctx.uid:<{UID_W}} {where}{safe(ctx.comm):<{COMM_W}} "
                f"{_ids(ctx.pid, ctx.host_pid):<{PID_W}} {_ids(ctx.tid, ctx.host_tid):<{PID_W}} "
                f"{ev.retval:<{RET_W}} {name:<{EVENT_W}} ")
        text = head + args
        if self.width and columns(text) > self.width:
            return _paint(text[:cut_point(text, self.width)], len(head), spans) + CUT + "\n"
        return (_paint(text, len(head), spans) if spans else text) + "\n"

    def _args(self, ev: Event) -> str:
        values = self.args.values(ev)
        summary = None if self.all_args else SUMMARIES.get(ev.name)
        if summary is not None:
            shown = summary({n: v for n, _, v in values})
            if shown:
                return _joined(shown)
        return _joined([(n, _show(v)) for n, _, v in values])

    def _trigger(self, base: Event) -> str:
        """The triggering event's telling arguments: 'pathname: /tmp/.x'."""
        if base.definition.id >= SIGNATURE_EVENTS_START:  # a detection's detection
            return ""
        values = {n: v for n, _, v in self.args.values(base)}
        return _joined(TRIGGERS.get(base.name, _TELLING)(values))

    def _detection(self, ev: Event, md: Any) -> tuple[str, list[Span]]:
        """'HIGH TRC-102 <name>, triggered by <event> (<args>), process: <chain>, exe: <path>',
        and where its colours go."""
        level, label = _severity(md)
        signature = f"{safe(str(md.id))} {safe(str(md.name))}"
        spans: list[Span] = []
        if self.colour:  # around escaped text only: nothing inside can end or forge them
            if level is not None:
                spans.append((0, len(label), SEVERITY_SGR[level]))
            spans.append((len(label) + 1, len(label) + 1 + len(signature), BOLD_SGR))
        what = f"{label} {signature}"
        base = getattr(ev, "triggered_by", None)
        if base is not None:
            what += f", triggered by {safe(base.name)}"  # a chained detection's name is a file's
            detail = self._trigger(base)
            if detail:
                what += f" ({detail})"
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
        return what, spans

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
