"""The table as people read it, without a kernel: narrow columns, pid/host-pid in a
container, summarised arguments of the common events (option:args=all: every one),
lines cut to a terminal's width, and what a detection names about its trigger."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from pytracee.detect.builtin.containers_a import DiskMount
from pytracee.detect.builtin.containers_b import DroppedExecutable
from pytracee.detect.builtin.files_a import HiddenFileCreated, K8sCertTheft, LdPreload
from pytracee.detect.builtin.files_b import SudoersModification
from pytracee.detect.builtin.network import StdioOverSocket
from pytracee.detect.builtin.process import AntiDebugging, FilelessExecution, PtraceCodeInjection
from pytracee.detect.engine import Detection
from pytracee.enrich.containers import Container
from pytracee.enrich.proctree import Process, ProcessTree
from pytracee.enrich.runtime_api import ContainerInfo
from pytracee.errors import UsageError
from pytracee.events import definitions
from pytracee.events.event import Event, TaskContext
from pytracee.sinks import outputs
from pytracee.sinks.formats import JsonFormat, TableFormat
from pytracee.sinks.outputs import (DestinationSpec, build_streams, parse_outputs, table_width,
                                    terminal_columns)
from pytracee.sinks.table_sink import CONTAINER_HEADER, HEADER, TableSink, cut_point
from tests.unit.signature_fixtures import make_event
from tests.unit.test_signatures_recorded import box, event, execd, opened, renamed, run
from tests.unit.test_sinks import FakeStdout, ListText, names

BOOT = 1_700_000_000_000_000_000
START = 50_000_000_000


def stamp(ev: Event) -> str:
    secs, ns = divmod(ev.timestamp, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f":{ns // 1000:06d}"


def args_of(line: str, head_width: int = len(HEADER) - len("ARGS")) -> str:
    """ARGS of a line whose fixed columns are as wide as the header's."""
    assert line.endswith("\n") and line.count("\n") == 1
    return line[head_width:-1]


def one(ev: Event, **kw: Any) -> str:
    return TableFormat(**kw).render([ev]).decode()


# -- columns ----------------------------------------------------------------------------------

def test_header_columns() -> None:
    assert HEADER == ("TIME            UID   COMM            PID     TID     RET  "
                      "EVENT                ARGS")
    assert CONTAINER_HEADER == ("TIME            UID   CONTAINER    COMM            PID     TID     "
                                "RET  EVENT                ARGS")
    assert TableFormat().header() == (HEADER + "\n").encode()
    assert TableFormat(containers=True).header() == (CONTAINER_HEADER + "\n").encode()


def _cat_tree() -> tuple[TaskContext, ProcessTree]:
    ctx = TaskContext((START, START, START - 1, 1, 24546, 24546, 24532, 24546, 24546, 24532, 0, 0,
                       4026531840, 4026531836, b"cat", b"vm"), BOOT)
    tree = ProcessTree()
    tree._put(Process(ctx.process_entity, 24546, 24532, ctx.parent_entity, START, "cat",
                      "/usr/bin/cat", (), 0, 1))
    tree._put(Process(ctx.parent_entity, 24532, 1, 0, START - 1, "bash", "/usr/bin/bash", (), 0, 1))
    ctx.proc = tree.get(ctx.process_entity)
    return ctx, tree


def _on(ctx: TaskContext, name: str, retval: int = 0, **args: Any) -> Event:
    d = definitions.BY_NAME[name]
    return Event(BOOT + START + 362_960_000, retval, 1, d.id, d.id, 0, 0, 0, ctx, d,
                 [args.get(a.name) for a in d.args])


def test_host_lines_exact() -> None:
    """The README's example: cat's openat of /etc/hostname and its close."""
    ctx, tree = _cat_tree()
    fmt = TableFormat(parent_comm=lambda e: p.comm if (p := tree.get(e)) else None)
    opened_ = _on(ctx, "openat", 3, dirfd=-100, pathname="/etc/hostname", flags=0, mode=0)
    closed = _on(ctx, "close", 0, fd=3)
    s = stamp(opened_)
    assert fmt.render([opened_, closed]).decode() == (
        f"{s} 0     cat             24546   24546   3    openat               "
        "pathname: /etc/hostname, flags: O_RDONLY [exe: /usr/bin/cat, parent: bash(24532)]\n"
        f"{s} 0     cat             24546   24546   0    close                "
        "fd: 3 [exe: /usr/bin/cat, parent: bash(24532)]\n")


def test_ret_is_as_wide_as_it_needs_on_its_line_only() -> None:
    ctx, _ = _cat_tree()
    ctx.proc = None
    mmap = _on(ctx, "close", 140737488355328, fd=3)
    err = _on(ctx, "close", -9, fd=99)
    s = stamp(mmap)
    assert TableFormat().render([mmap, err]).decode() == (
        f"{s} 0     cat             24546   24546   140737488355328 close                fd: 3\n"
        f"{s} 0     cat             24546   24546   -9   close                fd: 99\n")


def _container_task(container: Container | None, pid: int = 1, host_pid: int = 24621,
                    comm: bytes = b"cat") -> TaskContext:
    ctx = TaskContext((START, START, START - 1, 7, pid, pid, 0, host_pid, host_pid, 24600, 0, 0,
                       4026532000, 4026532001, comm, b"cd0af0101118"), BOOT)
    ctx.container = container
    return ctx


def _box(name: str) -> Container:
    cid = "cd0af010111814263e0c2cca94aeab613d7626a11361fc38cd44636aaf6789a3"
    c = Container(id=cid, runtime="docker", cgroup_id=7, cgroup_path="/docker/" + cid,
                  existed=False, seen_ns=0, started=True)
    if name:
        c.info = ContainerInfo(cid, "docker", name, "local/busybox:1", "sha256:b869", 0)
    return c


def test_container_column_and_pid_slash_host_pid() -> None:
    exec_args = dict(pathname="/bin/busybox", argv=["cat", "/etc/hostname"])
    web = _on(_container_task(_box("web-1")), "sched_process_exec", **exec_args)
    unnamed = _on(_container_task(_box("")), "sched_process_exec", **exec_args)
    long_name = _on(_container_task(_box("k8s_nginx_web-7d9f_shop")), "sched_process_exec",
                    **exec_args)
    thread = _container_task(_box("web-1"), pid=12, host_pid=24633)
    thread.tid, thread.host_tid = 13, 24634
    host = _on(_container_task(None, pid=24546, host_pid=24546), "sched_process_exec", **exec_args)
    s = stamp(web)
    tail = "0    sched_process_exec   pathname: /bin/busybox, argv: cat /etc/hostname\n"
    assert TableFormat(containers=True).render([web, unnamed, long_name, host]).decode() == (
        f"{s} 0     web-1        cat             1/24621 1/24621 {tail}"
        f"{s} 0     cd0af0101118 cat             1/24621 1/24621 {tail}"
        f"{s} 0     k8s_nginx_we cat             1/24621 1/24621 {tail}"
        f"{s} 0     host         cat             24546   24546   {tail}")
    # Wider ids widen the column on that line only.
    assert one(_on(thread, "close", fd=1), containers=True) == (
        f"{s} 0     web-1        cat             12/24633 13/24634 0    close                fd: 1\n")
    # A pid namespace of its own without a container: the same pid/host-pid.
    assert one(_on(_container_task(None), "close", fd=1)) == (
        f"{s} 0     cat             1/24621 1/24621 0    close                fd: 1\n")


# -- summarised arguments -------------------------------------------------------------------

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(12)
INET = {"sa_family": "AF_INET", "sin_port": "443", "sin_addr": "93.184.216.34"}
INET6 = {"sa_family": "AF_INET6", "sin6_port": "53", "sin6_flowinfo": "0", "sin6_addr": "fd00::1",
         "sin6_scopeid": "0"}
UNIX = {"sa_family": "AF_UNIX", "sun_path": "/run/docker.sock"}


@pytest.mark.parametrize(("name", "args", "shown"), [
    ("sched_process_exec", {"cmdpath": "/bin/sh", "pathname": "/usr/bin/dash", "dev": 2049,
                            "inode": 12, "ctime": 1, "argv": ["sh", "-c", "echo 'hi there'", ""],
                            "env": ["HOME=/root"], "prev_comm": "bash", "pwd": "/"},
     "pathname: /usr/bin/dash, argv: sh -c \"echo 'hi there'\" ''"),
    ("sched_process_exec", {"pathname": "/usr/bin/awk", "argv": ["awk", "{print $1}", "a b"]},
     "pathname: /usr/bin/awk, argv: awk '{print $1}' 'a b'"),
    ("execve", {"pathname": "/usr/bin/cat", "argv": ["cat", "/etc/hostname"], "envp": ["A=1"]},
     "pathname: /usr/bin/cat, argv: cat /etc/hostname"),
    ("execveat", {"dirfd": -100, "pathname": "/bin/ls", "argv": ["ls", "-l"], "flags": 0},
     "pathname: /bin/ls, argv: ls -l"),
    ("execve", {"pathname": "/bin/true", "argv": []}, "pathname: /bin/true"),
    ("security_file_open", {"pathname": "/etc/hostname", "flags": 0o100000, "dev": 266338304,
                            "inode": 612, "ctime": 1795566180425900278,
                            "syscall_pathname": "/etc/hostname"},
     "pathname: /etc/hostname, flags: O_RDONLY|O_LARGEFILE"),
    ("openat", {"dirfd": -100, "pathname": "/etc/ld.so.cache", "flags": 0o2000000, "mode": 0},
     "pathname: /etc/ld.so.cache, flags: O_RDONLY|O_CLOEXEC"),
    ("open", {"pathname": "/tmp/log", "flags": 0o2101, "mode": 0o644},
     "pathname: /tmp/log, flags: O_WRONLY|O_CREAT|O_APPEND"),
    ("security_socket_connect", {"sockfd": 3, "type": 1, "remote_addr": INET},
     "remote_addr: 93.184.216.34:443"),
    ("security_socket_connect", {"sockfd": 3, "type": 2, "remote_addr": INET6},
     "remote_addr: [fd00::1]:53"),
    ("connect", {"sockfd": 4, "addr": UNIX, "addrlen": 110}, "addr: /run/docker.sock"),
    ("connect", {"sockfd": 4, "addr": INET, "addrlen": 16}, "addr: 93.184.216.34:443"),
    # A family without an address: as before.
    ("connect", {"sockfd": 4, "addr": {"sa_family": "AF_NETLINK"}, "addrlen": 12},
     "addr: {sa_family=AF_NETLINK}"),
    ("net_tcp_connect", {"dst": "127.0.0.1", "dst_port": 34427, "dst_dns": []},
     "dst: 127.0.0.1:34427"),
    ("net_tcp_connect", {"dst": "2606:2800:220:1::", "dst_port": 443, "dst_dns": ["example.com"]},
     "dst: [2606:2800:220:1::]:443, dst_dns: [example.com]"),
    ("magic_write", {"pathname": "/tmp/x/.hidden", "bytes": ELF, "dev": 1, "inode": 2},
     "pathname: /tmp/x/.hidden, bytes: \\x7fELF\\x02\\x01\\x01\\x00..."),
    ("magic_write", {"pathname": "/tmp/run.sh", "bytes": b"#!/bin/sh\nid\n", "dev": 1, "inode": 2},
     "pathname: /tmp/run.sh, bytes: #!/bin/sh\\x0aid\\x0a"),
    ("magic_write", {"pathname": "/tmp/w", "bytes": b"C:\\x", "dev": 1, "inode": 2},
     "pathname: /tmp/w, bytes: C:\\\\x"),
    # Recorded events carry the bytes as a list of numbers.
    ("magic_write", {"pathname": "/tmp/r", "bytes": [127, 69, 76, 70], "dev": 1, "inode": 2},
     "pathname: /tmp/r, bytes: \\x7fELF"),
    # Other events: every argument, as before.
    ("close", {"fd": 3}, "fd: 3"),
    ("ptrace", {"request": 16, "pid": 1234, "addr": 0, "data": 0},
     "request: PTRACE_ATTACH, pid: 1234, addr: 0, data: 0"),
    ("security_inode_rename", {"old_path": "/tmp/a", "new_path": "/tmp/b"},
     "old_path: /tmp/a, new_path: /tmp/b"),
])
def test_summarised_arguments(name: str, args: dict[str, Any], shown: str) -> None:
    ev = make_event(name, args, comm="cat", retval=3)
    assert one(ev) == f"{stamp(ev)} 0     cat             4242    4242    3    {name:<20} {shown}\n"


def test_summaries_escape_what_the_process_controls() -> None:
    ev = make_event("sched_process_exec", {"pathname": "/tmp/\x1b[2Jx",
                                           "argv": ["x", "a\nb", "\x1b]0;t\x07"]})
    assert args_of(one(ev)) == ("pathname: /tmp/\\x1b[2Jx, argv: x 'a\\x0ab' "
                                "'\\x1b]0;t\\x07'")
    ev = make_event("magic_write", {"pathname": "/tmp/y", "bytes": b"\x1b[2J\x9b31m", "dev": 1,
                                    "inode": 2})
    assert args_of(one(ev)) == "pathname: /tmp/y, bytes: \\x1b[2J\\x9b31m"
    assert "\x1b" not in one(ev)


def test_missing_summary_arguments_fall_back_to_what_is_there() -> None:
    ev = make_event("openat", {"dirfd": 5})  # the pathname was not read
    assert args_of(one(ev)) == "dirfd: 5"


def test_option_args_all_prints_every_argument() -> None:
    ev = make_event("openat", {"dirfd": -100, "pathname": "/etc/hostname", "flags": 0, "mode": 0})
    assert args_of(one(ev)) == "pathname: /etc/hostname, flags: O_RDONLY"
    assert args_of(one(ev, all_args=True)) == ("dirfd: AT_FDCWD, pathname: /etc/hostname, "
                                               "flags: O_RDONLY, mode: 0000")
    ex = make_event("sched_process_exec", {"cmdpath": "/bin/sh", "pathname": "/usr/bin/dash",
                                           "argv": ["sh", "-c", "id"], "prev_comm": "bash"})
    assert args_of(one(ex, all_args=True)) == ("cmdpath: /bin/sh, pathname: /usr/bin/dash, "
                                               "argv: [sh, -c, id], prev_comm: bash")
    # `pytracee analyze`'s TableSink too.
    sink = TableSink(ListText(), all_args=True)
    assert sink.line(ev) == one(ev, all_args=True)


def test_option_args_parsing() -> None:
    assert parse_outputs([]).all_args is False
    assert parse_outputs(["option:args=all"]).all_args is True
    assert parse_outputs(["option:args=summary"]).all_args is False
    for bad in ("option:args", "option:args=every", "option:args="):
        with pytest.raises(UsageError) as err:
            parse_outputs([bad])
        assert err.value.token == bad
        assert str(err.value).startswith("option:args must be args=all (every argument in the "
                                         "table) or args=summary (the default)")
    with pytest.raises(UsageError) as err:
        parse_outputs(["option:argz"])
    assert str(err.value) == ("unknown output option 'argz' (did you mean 'option:args'?) "
                              "(in 'option:argz')")


def test_build_streams_passes_args_all_to_the_table_only(tmp_path: Path) -> None:
    ev = make_event("openat", {"dirfd": -100, "pathname": "/etc/hostname", "flags": 0, "mode": 0})
    for option, shown in (([], "pathname: /etc/hostname, flags: O_RDONLY\n"),
                          (["option:args=all"], "dirfd: AT_FDCWD, pathname: /etc/hostname, "
                                                "flags: O_RDONLY, mode: 0000\n")):
        t, j = tmp_path / f"t{len(option)}.log", tmp_path / f"j{len(option)}.json"
        streams = build_streams(parse_outputs([*option, f"table:{t}", f"json:{j}"]), names)
        for s in streams:
            s.write_batch([ev])
            s.close()
        assert t.read_text().splitlines(keepends=True)[1].endswith(shown)
        # JSON is Tracee's either way: every argument.
        assert j.read_bytes() == JsonFormat(names).render([ev])


# -- cut to the terminal's width --------------------------------------------------------------

def _long_open() -> Event:
    return make_event("openat", {"dirfd": -100, "flags": 0, "mode": 0,
                                 "pathname": "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"},
                      comm="cat", retval=3)


def test_lines_are_cut_to_the_width_with_a_marker() -> None:
    ev = _long_open()
    s = stamp(ev)
    head = f"{s} 0     cat             4242    4242    3    openat               "
    assert len(head) == 80
    full = head + "pathname: /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache, flags: O_RDONLY\n"
    assert one(ev) == full  # no width: the whole line (files, pipes)
    assert one(ev, width=200) == full  # it fits
    assert one(ev, width=len(full) - 1) == full  # exactly (the newline takes no column)
    assert one(ev, width=100) == head + "pathname: /usr/lib/…\n"
    assert len(one(ev, width=100)) == 101
    # Never inside a word with a digit (x86_64): back to its start.
    assert one(ev, width=103) == head + "pathname: /usr/lib/…\n"
    assert one(ev, width=107) == head + "pathname: /usr/lib/x86_64-…\n"
    # Narrower than the fixed columns: the line is cut there, never inside a number.
    assert one(ev, width=60) == f"{s} 0     cat             4242    4242    3    …\n"
    assert one(ev, width=50) == f"{s} 0     cat             4242    …\n"
    assert one(ev, width=40) == f"{s} 0     cat             …\n"


@pytest.mark.parametrize(("width", "kept"), [
    (86, "addr:"), (87, "addr: "), (88, "addr: "), (89, "addr: "), (100, "addr: "),
    (102, "addr: "),
])
def test_a_number_or_an_address_is_never_cut(width: int, kept: str) -> None:
    ev = make_event("connect", {"sockfd": 3, "addr": INET, "addrlen": 16}, comm="curl")
    line = one(ev, width=width)
    assert args_of(line) == kept + "…"
    assert len(line) - 1 <= width
    assert one(ev, width=103).endswith(" addr: 93.184.216.34:443\n")  # it fits


def test_a_pid_is_kept_whole_or_not_at_all() -> None:
    ev = make_event("kill", {"pid": 123456, "sig": 9}, comm="kill")
    for width in range(86, 92):
        assert args_of(one(ev, width=width)) == "pid: …"
    assert args_of(one(ev, width=92)) == "pid: 123456…"


def test_cut_never_leaves_half_an_escape() -> None:
    ev = make_event("openat", {"pathname": "/tmp/ab\x1bcdef", "flags": 0}, comm="cat")
    # "/tmp/ab\x1bcdef": the cut lands inside \x1b (a word with a digit): back to its start.
    for width in range(97, 102):
        assert args_of(one(ev, width=width)) == "pathname: /tmp/…"
    ev = make_event("openat", {"pathname": "/tmp/a\\b", "flags": 0}, comm="cat")
    # "/tmp/a\\b": never the first backslash of an escaped one alone.
    assert args_of(one(ev, width=97)) == "pathname: /tmp/a…"
    assert args_of(one(ev, width=98)) == "pathname: /tmp/a…"
    assert args_of(one(ev, width=99)) == "pathname: /tmp/a\\\\…"
    # Two escaped backslashes: one is kept whole, never half of one.
    assert [cut_point("ab\\\\\\\\cd", w) for w in (4, 5, 6, 7)] == [2, 4, 4, 6]


def test_wide_characters_take_two_columns() -> None:
    ev = make_event("openat", {"pathname": "/srv/日本語/ファイル", "flags": 0}, comm="cat")
    # 80 + "pathname: /srv/" (15) + 日本 (4) = 99 columns, and the marker: 100.
    assert args_of(one(ev, width=100)) == "pathname: /srv/日本…"
    assert args_of(one(ev, width=101)) == "pathname: /srv/日本…"
    assert args_of(one(ev, width=102)) == "pathname: /srv/日本語…"


def test_detections_cut_inside_the_colour_are_reset() -> None:
    [det] = run(AntiDebugging(), event("ptrace", {"request": 0, "pid": 0, "addr": 0, "data": 0}))
    s = stamp(det)
    head = f"{s} 0     x               42      42      0    anti_debugging       "
    line = TableFormat(colour=True, width=len(head) + 10).render([det]).decode()
    assert line == head + "\x1b[34mLOW\x1b[0m \x1b[1mTRC-\x1b[0m…\n"  # not "TRC-1…"
    line = TableFormat(colour=True, width=len(head) + 2).render([det]).decode()
    assert line == head + "\x1b[34mL\x1b[0m…\n"
    line = TableFormat(colour=True, width=len(head) + 30).render([det]).decode()
    assert line == head + "\x1b[34mLOW\x1b[0m \x1b[1mTRC-102 Anti-Debugging de\x1b[0m…\n"
    line = TableFormat(colour=True, width=len(head) + 50).render([det]).decode()
    assert line == (head + "\x1b[34mLOW\x1b[0m \x1b[1mTRC-102 Anti-Debugging detected\x1b[0m, "
                    "triggered by…\n")


def test_header_is_cut_too() -> None:
    assert TableFormat(width=60).header() == b"TIME            UID   COMM            PID     TID     RET\n"
    assert TableFormat(width=57).header() == b"TIME            UID   COMM            PID     TID     RET\n"
    assert TableFormat(width=56).header() == b"TIME            UID   COMM            PID     TID\n"
    assert TableFormat(width=120).header() == (HEADER + "\n").encode()


# -- the width comes from the terminal ------------------------------------------------------------

def test_only_a_table_on_a_terminal_stdout_has_a_width() -> None:
    tty, pipe = FakeStdout(True), FakeStdout(False)
    table = DestinationSpec("t", format="table")
    assert table_width(table, tty) is terminal_columns
    assert table_width(table, pipe) is None
    for spec in (DestinationSpec("t", format="table", path="/tmp/t.log"),
                 DestinationSpec("t", format="table", path="stderr"),
                 DestinationSpec("j", format="json"),
                 DestinationSpec("w", type="webhook", format="table", url="http://h/in")):
        assert table_width(spec, tty) is None, spec


def test_terminal_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert terminal_columns() == 100
    monkeypatch.delenv("COLUMNS")
    # A terminal that does not know its size (0 columns): whole lines, not 80.
    monkeypatch.setattr(outputs.shutil, "get_terminal_size",
                        lambda fallback=(80, 24): os.terminal_size(fallback))
    assert terminal_columns() is None
    monkeypatch.setattr(outputs.shutil, "get_terminal_size",
                        lambda fallback=(80, 24): os.terminal_size((132, 50)))
    assert terminal_columns() == 132


def test_build_streams_cuts_the_terminal_table_only(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ev = _long_open()
    screen = tmp_path / "screen"
    fd = os.open(screen, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        monkeypatch.setenv("NO_COLOR", "1")  # the width does not depend on colour
        monkeypatch.setattr("sys.stdout", FakeStdout(True, fd))
        log = tmp_path / "t.log"
        cfg = parse_outputs(["destinations.screen.format=table", "destinations.file.format=table",
                             f"destinations.file.path={log}", "streams.s.destinations=screen,file"])
        [s] = build_streams(cfg, names)
        assert sorted(g.fmt.width is not None for g in s._groups) == [False, True]
        monkeypatch.setenv("COLUMNS", "100")
        s.write_batch([ev])
        monkeypatch.setenv("COLUMNS", "90")  # the window was made narrower
        s.write_batch([ev])
        s.close()
        head = f"{stamp(ev)} 0     cat             4242    4242    3    openat               "
        assert screen.read_text().splitlines() == [HEADER[:100].rstrip(), head + "pathname: /usr/lib/…",
                                                   head + "pathname:…"]
        full = head + "pathname: /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache, flags: O_RDONLY"
        assert log.read_text().splitlines() == [HEADER, full, full]
    finally:
        os.close(fd)


# -- what a detection names about its trigger -----------------------------------------------------

ELF_BYTES = b"\x7fELF" + bytes(16)


def _detections() -> list[Detection]:
    c = box()
    return [
        *run(HiddenFileCreated(), event("magic_write", {"pathname": "/tmp/x/.hidden",
                                                        "bytes": ELF_BYTES, "dev": 1, "inode": 2})),
        *run(DroppedExecutable(), event("magic_write", {"pathname": "/tmp/drop", "bytes": ELF_BYTES,
                                                        "dev": 1, "inode": 2}, container=c)),
        *run(StdioOverSocket(), event("security_socket_connect", {
            "sockfd": 0, "type": 1,
            "remote_addr": {"sa_family": "AF_INET", "sin_port": "4444", "sin_addr": "10.0.0.9"}})),
        *run(FilelessExecution(), execd("memfd:payload (deleted)")),
        *run(LdPreload(), execd("/usr/bin/ls", env=["HOME=/root", "LD_PRELOAD=/tmp/evil.so"])),
        *run(DiskMount(), event("security_sb_mount", {"dev_name": "/dev/sda1", "path": "/mnt",
                                                      "type": "ext4", "flags": 0}, container=c)),
        *run(AntiDebugging(), event("ptrace", {"request": 0, "pid": 0, "addr": 0, "data": 0})),
        *run(PtraceCodeInjection(), event("ptrace", {"request": 4, "pid": 4321, "addr": 0,
                                                     "data": 0})),
        *run(SudoersModification(), opened("/etc/sudoers", 1)),
        *run(K8sCertTheft(), renamed("/etc/kubernetes/pki/ca.key", "/tmp/ca.key")),
    ]


def test_detection_rows_name_what_triggered_them() -> None:
    dets = _detections()
    s = stamp(dets[0])
    lines = TableFormat(containers=True).render(dets).decode().splitlines()
    where = ["host", "c0ffeec0ffee", *["host"] * 3, "c0ffeec0ffee", *["host"] * 4]
    assert lines == [f"{s} 0     {w:<12} x               42      42      0    {rest}"
                     for w, rest in zip(where, [
        "hidden_file_created  MEDIUM TRC-1015 Hidden executable creation detected, triggered by "
        "magic_write (pathname: /tmp/x/.hidden), process: x(42)",
        "dropped_executable   MEDIUM TRC-1022 New executable dropped, triggered by magic_write "
        "(pathname: /tmp/drop), process: x(42), path: /tmp/drop",
        "stdio_over_socket    HIGH TRC-101 Process standard input/output over socket detected, "
        "triggered by security_socket_connect (remote_addr: 10.0.0.9:4444), process: x(42), "
        "IP address: 10.0.0.9, Port: 4444, File descriptor: 0",
        "fileless_execution   HIGH TRC-105 Fileless execution detected, triggered by "
        "sched_process_exec (pathname: memfd:payload (deleted)), process: x(42)",
        "ld_preload           MEDIUM TRC-107 LD_PRELOAD code injection detected, triggered by "
        "sched_process_exec (pathname: /usr/bin/ls, env: LD_PRELOAD=/tmp/evil.so), process: x(42), "
        "LD_PRELOAD: LD_PRELOAD=/tmp/evil.so",
        "disk_mount           HIGH TRC-1014 Container device mount detected, triggered by "
        "security_sb_mount (dev_name: /dev/sda1, path: /mnt), process: x(42)",
        "anti_debugging       LOW TRC-102 Anti-Debugging detected, triggered by ptrace "
        "(request: PTRACE_TRACEME, pid: 0), process: x(42)",
        "ptrace_code_injection HIGH TRC-103 Code injection detected using ptrace, triggered by "
        "ptrace (request: PTRACE_POKETEXT, pid: 4321), process: x(42)",
        "sudoers_modification MEDIUM TRC-1028 Sudoers file modification detected, triggered by "
        "security_file_open (pathname: /etc/sudoers), process: x(42)",
        "k8s_cert_theft       HIGH TRC-1018 K8s TLS certificate theft detected, triggered by "
        "security_inode_rename (old_path: /etc/kubernetes/pki/ca.key, new_path: /tmp/ca.key), "
        "process: x(42)",
    ])]


def test_detection_trigger_text_is_escaped_and_json_is_unchanged() -> None:
    [det] = run(HiddenFileCreated(), event("magic_write", {"pathname": "/tmp/.\x1b[2Jx",
                                                           "bytes": ELF_BYTES, "dev": 1, "inode": 2}))
    line = one(det, colour=True)
    assert "\x1b[2J" not in line
    assert "triggered by magic_write (pathname: /tmp/.\\x1b[2Jx), process: x(42)" in line
    # The JSON of a detection is Tracee's: the trigger goes in triggeredBy, nothing added.
    assert b'"args":[{"name":"triggeredBy"' in JsonFormat(names).render([det])
    assert b"(pathname:" not in JsonFormat(names).render([det])


def test_a_trigger_without_a_rule_names_its_path_and_a_chained_detection_nothing() -> None:
    [det] = run(AntiDebugging(), event("ptrace", {"request": 0, "pid": 0, "addr": 0, "data": 0}))
    # Some other event with a path (a signature file's choice): its path.
    unlinked = make_event("security_inode_unlink", {"pathname": "/var/log/auth.log", "inode": 1,
                                                    "dev": 2, "ctime": 3})
    det.triggered_by = unlinked
    assert "triggered by security_inode_unlink (pathname: /var/log/auth.log), " in one(det)
    chmod = make_event("fchmodat", {"dirfd": -100, "pathname": "/tmp/x", "mode": 0o4755})
    det.triggered_by = chmod
    assert "triggered by fchmodat (pathname: /tmp/x), " in one(det)
    det.triggered_by = make_event("getppid", {})
    assert "triggered by getppid, process: " in one(det)
    # A detection of a detection: its name only.
    [inner] = run(AntiDebugging(), event("ptrace", {"request": 0, "pid": 0, "addr": 0, "data": 0}))
    det.triggered_by = inner
    assert "triggered by anti_debugging, process: " in one(det)
