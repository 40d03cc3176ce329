"""The event table: ids, args, fetch kinds and sets against Tracee's facts and the kernel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytracee.events import argkinds
from pytracee.events.argkinds import ARG_INT, ARG_INT_PAIR, ARG_SOCKADDR, ARG_STR, ARG_STR_ARR
from pytracee.events.definitions import (
    BY_NAME,
    SIGNATURE_EVENTS_START,
    EVENTS,
    all_sets,
    dependencies,
    events_in_set,
    lookup,
)
from pytracee.events.syscalls_x86_64 import FROM_TRACEPOINT, SYSCALLS

REPO = Path(__file__).resolve().parents[2]
EVENT_H = REPO / "bpf" / "common" / "event.h"
UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
TSV = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "tracee-events.tsv"


def _tracee_rows() -> dict[str, dict[str, str]]:
    if not TSV.exists():
        pytest.skip(f"{TSV} not present")
    lines = [ln for ln in TSV.read_text().splitlines() if ln and not ln.startswith("#")]
    header = lines[0].split("\t")
    return {ln.split("\t")[0]: dict(zip(header, ln.split("\t"))) for ln in lines[1:]}


def _fields(row: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for f in (x for x in row["fields"].split("; ") if x):
        typ, _, name = f.rpartition(" ")
        out.append((typ, name))
    return out


def _syscalls() -> list:
    return [ev for ev in EVENTS.values() if ev.syscall]


# --- specific events --------------------------------------------------------------------

def test_openat() -> None:
    ev = lookup("openat")
    assert ev is not None and ev.id == 257 and ev.syscall
    assert [(a.type, a.name) for a in ev.args] == [
        ("int32", "dirfd"), ("string", "pathname"), ("int32", "flags"), ("uint16", "mode"),
    ]
    assert ev.kernel_kinds == (0, 1, 0, 0)
    assert ev.arg_index("flags") == 2
    assert ev.arg_index("returnValue") is None
    assert not ev.submit_on_enter
    assert EVENTS[257] is ev is BY_NAME["openat"]


def test_execve_submits_on_enter() -> None:
    ev = lookup("execve")
    assert ev.id == 59
    assert [a.name for a in ev.args] == ["pathname", "argv", "envp"]
    assert ev.kernel_kinds == (ARG_STR, ARG_STR_ARR, ARG_STR_ARR) == (1, 2, 2)
    on_enter = {e.name for e in EVENTS.values() if e.submit_on_enter}
    assert on_enter == {"execve", "execveat", "exit", "exit_group", "rt_sigreturn"}


def test_getppid_has_no_args() -> None:
    ev = lookup("getppid")
    assert ev.id == 110 and ev.args == () and ev.kernel_kinds == ()


def test_sockaddr_and_pair_kinds() -> None:
    connect = lookup("connect")
    assert connect.id == 42
    assert connect.kernel_kinds[connect.arg_index("addr")] == ARG_SOCKADDR
    for name in ("pipe", "pipe2", "socketpair"):
        ev = lookup(name)
        arg = "sv" if name == "socketpair" else "pipefd"
        assert ev.args[ev.arg_index(arg)].type == "[2]int"
        assert ev.kernel_kinds[ev.arg_index(arg)] == ARG_INT_PAIR
    assert lookup("pipe2").id == 293


def test_pointer_and_timespec_args_are_raw_registers() -> None:
    write = lookup("write")
    assert write.args[1].type == "trace.Pointer" and write.kernel_kinds[1] == ARG_INT
    # Tracee's float64 (a timespec read through the pointer) ships as the raw pointer.
    nanosleep = lookup("nanosleep")
    assert [(a.type, a.name) for a in nanosleep.args] == [
        ("trace.Pointer", "req"), ("trace.Pointer", "rem"),
    ]
    assert not any(a.type == "float64" for ev in _syscalls() for a in ev.args)


def test_renamed_syscalls_use_tracee_names() -> None:
    assert lookup("sysctl").id == 156 and lookup("_sysctl") is lookup("sysctl")
    assert lookup("afs").id == 183
    assert lookup("afs_syscall") is None  # Tracee's name for the 32-bit-only one
    assert "_sysctl" not in BY_NAME
    assert lookup("no_such_event") is None


def test_syscalls_from_tracepoint_formats() -> None:
    assert FROM_TRACEPOINT == {"futex_waitv", "set_mempolicy_home_node"}
    ev = lookup("futex_waitv")
    assert ev.id == 449 and ev.sets == ("syscalls",)
    assert [(a.type, a.name) for a in ev.args] == [
        ("trace.Pointer", "waiters"), ("uint32", "nr_futexes"), ("uint32", "flags"),
        ("trace.Pointer", "timeout"), ("int32", "clockid"),
    ]
    assert [a.type for a in lookup("set_mempolicy_home_node").args] == ["uint64"] * 4


def test_sched_process_exec_args() -> None:
    ev = lookup("sched_process_exec")
    assert ev.id == 715 and not ev.syscall and ev.kernel_kinds == ()
    assert [a.name for a in ev.args] == [
        "cmdpath", "pathname", "dev", "inode", "ctime", "inode_mode", "interpreter_pathname",
        "interpreter_dev", "interpreter_inode", "interpreter_ctime", "argv", "interp",
        "stdin_type", "stdin_path", "invoked_from_kernel", "prev_comm", "env", "pwd",
        "sha256",  # user space fills it (-o option:exec-hash); the kernel never sends it
    ]
    assert ev.args[ev.arg_index("argv")].type == "[]string"
    assert ev.args[ev.arg_index("invoked_from_kernel")].type == "bool"
    assert ev.sets == ("default", "proc")


def test_kernel_event_ids() -> None:
    assert {n: lookup(n).id for n in (
        "sys_enter", "sys_exit", "sched_process_fork", "sched_process_exec",
        "sched_process_exit",
    )} == {
        "sys_enter": 712, "sys_exit": 713, "sched_process_fork": 714,
        "sched_process_exec": 715, "sched_process_exit": 716,
    }
    assert [(a.type, a.name) for a in lookup("sys_enter").args] == [("int32", "syscall")]
    assert [a.name for a in lookup("sched_process_exit").args] == [
        "exit_code", "signal_code", "process_group_exit",
    ]
    assert len(lookup("sched_process_fork").args) == 20
    # The internal events: what --capture write reads (bpf/common/capture.h), and the
    # packets network events are derived from (bpf/common/net.h, Tracee's base id 700).
    assert sorted((ev.id, ev.name) for ev in EVENTS.values() if ev.internal) == [
        (700, "net_packet_base"), (701, "net_packet_dns_base"), (702, "net_packet_http_base"),
        (703, "net_packet_flow_base"), (704, "net_packet_icmp_base"), (1001, "capture_file_write")]


# --- table-wide invariants --------------------------------------------------------------

def test_syscall_table_shape() -> None:
    nrs = [row[0] for row in SYSCALLS]
    assert nrs == sorted(nrs) and len(set(nrs)) == len(nrs)
    for ev in _syscalls():
        assert ev.id == EVENTS[ev.id].id
        assert len(ev.kernel_kinds) == len(ev.args) <= 6
        assert "syscalls" in ev.sets
        assert all(a.name != "returnValue" for a in ev.args)


def test_number_of_syscalls_equals_unistd() -> None:
    if not UNISTD.exists():
        pytest.skip(f"{UNISTD} not present")
    nr_lines = re.findall(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$", UNISTD.read_text(), re.M)
    assert len(_syscalls()) == len(nr_lines) == len(SYSCALLS)
    by_nr = {ev.id: ev.name for ev in _syscalls()}
    renamed = {"_sysctl": "sysctl", "afs_syscall": "afs"}
    for name, nr in nr_lines:
        assert by_nr[int(nr)] == renamed.get(name, name)


def test_every_tracee_native_syscall_is_defined_as_tracee_says() -> None:
    rows = _tracee_rows()
    native = {
        n: r for n, r in rows.items()
        if r["kind"] == "syscall" and "syscalls" in r["sets"].split(",")
        and "32bit_unique" not in r["sets"].split(",")
    }
    # §2.4 counts 361 native syscalls; one of them, chmod_common, is a kprobe event
    # filed as kind=syscall with no sets, and is no syscall number.
    assert len(native) == 360
    for name, row in native.items():
        ev = lookup(name)
        assert ev is not None and ev.syscall, name
        assert ev.sets == tuple(row["sets"].split(",")), name
        want = [(t if t != "float64" else "trace.Pointer", n)
                for t, n in _fields(row) if n != "returnValue"]
        assert [(a.type, a.name) for a in ev.args] == want, name
    # 32-bit-only syscalls have no x86_64 number and stay out.
    for name, row in rows.items():
        if "32bit_unique" in row["sets"].split(","):
            assert lookup(name) is None, name


def test_kernel_events_match_tracee() -> None:
    rows = _tracee_rows()
    for name in ("sys_enter", "sys_exit", "sched_process_fork", "sched_process_exec",
                 "sched_process_exit"):
        ev = lookup(name)
        args = [(a.type, a.name) for a in ev.args]
        if name == "sched_process_exec":  # Tracee v0.24 appends it with option:exec-hash
            assert args.pop() == ("string", "sha256")
        assert args == _fields(rows[name]), name
        assert ev.sets == tuple(s for s in rows[name]["sets"].split(",") if s), name


def test_sets() -> None:
    fs = {ev.name for ev in events_in_set("fs")}
    assert "openat" in fs and "getppid" not in fs
    assert {ev.name for ev in events_in_set("syscalls")} == {ev.name for ev in _syscalls()}
    assert events_in_set("no_such_set") == []
    ids = [ev.id for ev in events_in_set("proc")]
    assert ids == sorted(ids)
    assert {"syscalls", "fs", "fs_file_ops", "proc", "net", "default", "32bit_unique"} - all_sets() == {
        "32bit_unique"
    }


def test_default_set_follows_tracee() -> None:
    # tracee-compat.md §2.4, restricted to the events this table has: its core events
    # (the signatures' events, also in the set, are checked below).
    assert {ev.name for ev in events_in_set("default") if ev.id < SIGNATURE_EVENTS_START} == {
        "creat", "chmod", "fchmod", "chown", "fchown", "lchown", "ptrace",
        "setuid", "setgid", "setpgid", "setreuid", "setregid", "setresuid", "setresgid",
        "setfsuid", "setfsgid", "init_module", "fchownat", "fchmodat", "setns",
        "process_vm_readv", "process_vm_writev", "finit_module", "memfd_create",
        "move_mount", "sched_process_exec",
        "security_socket_connect", "security_socket_accept", "security_socket_bind",
        "security_sb_mount", "security_sb_umount", "security_inode_unlink",
        "container_create", "container_remove",
        "net_packet_icmp", "net_packet_icmpv6", "net_packet_dns_request",
        "net_packet_dns_response", "net_packet_http_request", "net_packet_http_response",
        "net_tcp_connect",
    }


def test_every_signature_is_in_the_default_set() -> None:
    from pytracee.detect.engine import register
    from pytracee.detect.loader import builtin_signatures

    sigs = builtin_signatures()
    register(sigs)
    default = {ev.name for ev in events_in_set("default")}
    names = {s.metadata.event_name for s in sigs}
    assert len(names) == 31
    assert names <= default
    assert {ev.name for ev in events_in_set("signatures")} <= default


def test_network_event_ids_follow_tracee() -> None:
    # tracee-compat.md §2.3: 2000 net_packet_ipv4 ... 2013 net_flow_tcp_end, 2015 net_tcp_connect.
    names = ["net_packet_ipv4", "net_packet_ipv6", "net_packet_tcp", "net_packet_udp",
             "net_packet_icmp", "net_packet_icmpv6", "net_packet_dns", "net_packet_dns_request",
             "net_packet_dns_response", "net_packet_http", "net_packet_http_request",
             "net_packet_http_response", "net_flow_tcp_begin", "net_flow_tcp_end"]
    assert [lookup(n).id for n in names] == list(range(2000, 2014))
    assert lookup("net_tcp_connect").id == 2015
    # DNS events need only DNS packets (701), HTTP ones only HTTP packets (702), flows
    # only TCP SYN/FIN/RST (703); flows and connects name their ends from the DNS
    # cache, so DNS packets come too.
    assert {n: dependencies(lookup(n).id) for n in names} == {
        n: {701} if "dns" in n else {702} if "http" in n else {703, 701} if "flow" in n
        else {704} if "icmp" in n else {700} for n in names}
    assert dependencies(2015) == {lookup("security_socket_connect").id, 701}


# --- agreement with the BPF header -----------------------------------------------------

def _event_h() -> str:
    if not EVENT_H.exists():
        pytest.skip(f"{EVENT_H} not present")
    return EVENT_H.read_text()


def test_arg_kinds_equal_event_h() -> None:
    enum = re.search(r"enum arg_kind\s*{(.*?)}", _event_h(), re.S).group(1)
    header = {name: int(val) for name, val in re.findall(r"(ARG_\w+)\s*=\s*(\d+)", enum)}
    assert header == {name: getattr(argkinds, name) for name in header}
    assert set(header) == set(argkinds.KIND_NAMES.values())


def test_event_ids_fit_event_h() -> None:
    text = _event_h()
    max_id = int(re.search(r"#define MAX_EVENT_ID (\d+)", text).group(1))
    assert max(e for e in EVENTS if e < 2000) < max_id  # 2000+ are made in user space
    for name, val in re.findall(r"#define EVENT_(\w+) (\d+)", text):
        assert lookup(name.lower()).id == int(val)


def test_generated_module_is_up_to_date() -> None:
    from tests.conftest import fail_or_skip

    if not (UNISTD.exists() and TSV.exists()):
        fail_or_skip("the syscall generator's inputs", f"{UNISTD} or {TSV} missing")
    tracefs = Path("/sys/kernel/tracing")
    mounted = False
    if not (tracefs / "events" / "syscalls").is_dir():  # a fresh machine here has none
        if os.geteuid() != 0:
            fail_or_skip("tracefs", "not mounted, and mounting it needs root")
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(tracefs)], check=True)
        mounted = True
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import gen_syscalls

        assert gen_syscalls.main(["--check"]) == 0
    finally:
        sys.path.pop(0)
        if mounted:  # the host as it was
            subprocess.run(["umount", str(tracefs)], check=True)
