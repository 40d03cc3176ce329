"""Raw values -> output values: integer conversion, sockaddr maps, parse-arguments."""

from __future__ import annotations

import fcntl
import mmap
import os
import signal
import socket
import struct
from pathlib import Path

import pytest

from pytracee.events import argvalues
from pytracee.events.argvalues import (
    arg_parser,
    decode_sockaddr,
    event_converters,
    int_converter,
)
from pytracee.events.definitions import lookup

TSV = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "tracee-events.tsv"


def parse(event: str, arg: str, value: int, **kw: bool) -> str | None:
    p = arg_parser(event, arg, **kw)
    assert p is not None, f"{event}.{arg} is not decoded"
    return p(value)


# --- integers ---------------------------------------------------------------------------

def test_int_converters() -> None:
    assert int_converter("int32")(0xFFFFFFFF) == -1
    assert int_converter("int32")(0xFFFF_FFFF_FFFF_FF9C) == -100  # sign-extended register
    assert int_converter("int32")(0x1_0000_0005) == 5  # garbage above bit 31 ignored
    assert int_converter("uint32")(0x1_FFFF_FFFF) == 0xFFFF_FFFF
    assert int_converter("int64")(2**64 - 1) == -1
    assert int_converter("int64")(2**63 - 1) == 2**63 - 1
    assert int_converter("uint64")(2**64 - 1) == 2**64 - 1
    assert int_converter("uint16")(0x1_0001) == 1
    assert int_converter("uint8")(0x1FF) == 0xFF
    assert int_converter("bool")(0) is False and int_converter("bool")(2) is True
    assert int_converter("time.Time")(123456789) == 123456789


def test_pointer_is_hex_string() -> None:
    ptr = int_converter("trace.Pointer")
    assert ptr(0) == "0x0"
    assert ptr(0x7FFD1234) == "0x7ffd1234"
    assert ptr(2**64 - 1) == "0xffffffffffffffff"


def test_non_integer_type_is_rejected() -> None:
    for t in ("string", "[]string", "SockAddr", "float64"):
        with pytest.raises(ValueError):
            int_converter(t)


def test_event_converters() -> None:
    convs = event_converters(lookup("openat"))
    assert [c(0xFFFFFF9C) if c else None for c in convs] == [-100, None, -100, 0xFF9C]
    assert event_converters(lookup("openat")) is convs  # built once


# --- sockaddr ---------------------------------------------------------------------------

def _sin(addr: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(addr) + bytes(8)


def test_sockaddr_inet() -> None:
    assert decode_sockaddr(_sin("127.0.0.1", 8080)) == {
        "sa_family": "AF_INET", "sin_port": "8080", "sin_addr": "127.0.0.1",
    }


def test_sockaddr_inet6() -> None:
    raw = struct.pack("<H", socket.AF_INET6) + struct.pack("!HI", 443, 5)
    raw += socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("<I", 2)
    assert decode_sockaddr(raw) == {
        "sa_family": "AF_INET6", "sin6_port": "443", "sin6_flowinfo": "5",
        "sin6_addr": "2001:db8::1", "sin6_scopeid": "2",
    }
    mapped = raw[:8] + socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.1") + raw[24:]
    assert decode_sockaddr(mapped)["sin6_addr"] == "10.0.0.1"  # as Go prints it


def test_sockaddr_unix() -> None:
    path = struct.pack("<H", socket.AF_UNIX) + b"/run/app.sock".ljust(108, b"\0")
    assert decode_sockaddr(path) == {"sa_family": "AF_UNIX", "sun_path": "/run/app.sock"}
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0dbus-1234"
    assert decode_sockaddr(abstract) == {"sa_family": "AF_UNIX", "sun_path": "@dbus-1234"}
    unnamed = struct.pack("<H", socket.AF_UNIX)
    assert decode_sockaddr(unnamed) == {"sa_family": "AF_UNIX", "sun_path": ""}


def test_sockaddr_other_families() -> None:
    assert decode_sockaddr(struct.pack("<H", 16) + bytes(10)) == {"sa_family": "AF_NETLINK"}
    assert decode_sockaddr(struct.pack("<H", 200)) == {"sa_family": "200"}
    assert decode_sockaddr(b"") == {}
    assert decode_sockaddr(_sin("1.2.3.4", 80)[:6]) == {"sa_family": "AF_INET"}  # truncated


# --- parse-arguments: Tracee's decoders -------------------------------------------------

def test_open_flags() -> None:
    assert parse("openat", "flags", 0o2101) == "O_WRONLY|O_CREAT|O_APPEND"
    assert parse("openat", "flags", 0) == "O_RDONLY"
    assert parse("openat", "flags", os.O_RDONLY | os.O_CLOEXEC) == "O_RDONLY|O_CLOEXEC"
    assert parse("open", "flags", os.O_RDWR | os.O_CREAT | os.O_TRUNC) == "O_RDWR|O_CREAT|O_TRUNC"
    assert parse("openat", "flags", os.O_SYNC) == "O_RDONLY|O_DSYNC|O_SYNC"  # as Tracee
    assert parse("security_file_open", "flags", 0o100000) == "O_RDONLY|O_LARGEFILE"
    # the converted (negative) int32 works as well as the raw register
    assert parse("openat", "flags", -1 & ~3 | 1).startswith("O_WRONLY|O_CREAT")


def test_open_flag_values_match_the_c_library() -> None:
    for bit, name in argvalues._OPEN_FLAGS:
        libc = "O_ASYNC" if name == "FASYNC" else name
        if name in ("O_LARGEFILE", "O_TMPFILE"):  # glibc: 0 on 64-bit / includes O_DIRECTORY
            continue
        assert getattr(os, libc) == bit, name


def test_inode_mode() -> None:
    assert parse("chmod", "mode", 0o755) == "S_IRWXU|S_IRGRP|S_IXGRP|S_IROTH|S_IXOTH"
    assert parse("mknodat", "mode", 0o100644) == "S_IFREG|S_IRUSR|S_IWUSR|S_IRGRP|S_IROTH"
    assert parse("fchmodat", "mode", 0o4777) == "S_IRWXU|S_IRWXG|S_IRWXO"
    assert parse("sched_process_exec", "stdin_type", 0o020620) == "S_IFCHR|S_IRUSR|S_IWUSR|S_IWGRP"
    assert parse("fchmod", "mode", 0) == ""


def test_open_mode_is_an_octal_extra() -> None:
    assert parse("openat", "mode", 0o644) == "0644"
    assert parse("creat", "mode", 0o4755) == "04755"
    assert parse("open", "mode", 0) == "0000"
    assert arg_parser("openat", "mode", tracee_only=True) is None


def test_access_mode() -> None:
    assert parse("access", "mode", 0) == "F_OK"
    assert parse("faccessat", "mode", os.R_OK | os.W_OK) == "W_OK|R_OK"
    assert parse("access", "mode", os.X_OK) == "X_OK"
    assert parse("access", "mode", 8) == "8"


def test_prot() -> None:
    assert parse("mmap", "prot", mmap.PROT_READ | mmap.PROT_WRITE) == "PROT_READ|PROT_WRITE"
    assert parse("mprotect", "prot", 0) == "PROT_NONE"
    assert parse("mprotect", "prot", 7) == "PROT_READ|PROT_WRITE|PROT_EXEC"


def test_socket() -> None:
    assert parse("socket", "domain", socket.AF_INET) == "AF_INET"
    assert parse("socket", "domain", socket.AF_INET6) == "AF_INET6"
    assert parse("socket", "domain", 99) == "99"
    assert parse("socket", "type", socket.SOCK_STREAM | socket.SOCK_CLOEXEC) == "SOCK_STREAM|SOCK_CLOEXEC"
    assert parse("socket", "type", socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) == "SOCK_DGRAM|SOCK_NONBLOCK"
    for fam in ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_VSOCK", "AF_ALG"):
        assert argvalues._AF_NAMES[getattr(socket, fam)] == fam


def test_ptrace_request() -> None:
    names = {v: parse("ptrace", "request", v) for v in (0, 1, 4, 5, 16, 0x4206)}
    assert names == {
        0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 4: "PTRACE_POKETEXT",
        5: "PTRACE_POKEDATA", 16: "PTRACE_ATTACH", 0x4206: "PTRACE_SEIZE",
    }
    assert parse("ptrace", "request", 12345) == "12345"


def test_clone_flags() -> None:
    fork = 0x01000000 | 0x00200000 | signal.SIGCHLD  # glibc fork()
    assert parse("clone", "flags", fork) == "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
    thread = 0x3D0F00  # pthread_create
    assert parse("clone", "flags", thread) == (
        "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|"
        "CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"
    )
    assert parse("clone", "flags", signal.SIGCHLD) == "SIGCHLD"
    assert parse("clone", "flags", 0) == ""


def test_enums() -> None:
    assert parse("prctl", "option", 15) == "PR_SET_NAME"
    assert parse("prctl", "option", 0x59616D61) == "PR_SET_PTRACER"
    assert parse("cap_capable", "cap", 21) == "CAP_SYS_ADMIN"
    assert parse("cap_capable", "cap", 40) == "CAP_CHECKPOINT_RESTORE"
    assert parse("bpf", "cmd", 5) == "BPF_PROG_LOAD"
    assert parse("bpf", "cmd", 999) == "999"
    assert parse("sys_enter", "syscall", 59) == "execve"
    assert parse("sys_exit", "syscall", 9999) == "9999"


def test_dirfd() -> None:
    assert parse("openat", "dirfd", 0xFFFF_FFFF_FFFF_FF9C) == "AT_FDCWD"
    assert parse("openat", "dirfd", -100) == "AT_FDCWD"
    assert parse("openat", "dirfd", 3) is None  # unchanged: stays an int
    assert parse("execveat", "dirfd", 0xFFFFFF9C, tracee_only=True) == "AT_FDCWD"
    assert parse("renameat2", "olddirfd", -100) == "AT_FDCWD"
    assert arg_parser("renameat2", "olddirfd", tracee_only=True) is None


def test_at_flags() -> None:
    assert parse("fchmodat", "flags", 0x100) == "AT_SYMLINK_NOFOLLOW"
    assert parse("fchmodat", "flags", 0) == ""
    assert parse("execveat", "flags", 0x1100) == "AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH"
    assert parse("faccessat", "flags", 0x200) == "AT_EACCESS"
    assert parse("newfstatat", "flags", 0x1000) == "AT_EMPTY_PATH"
    assert parse("unlinkat", "flags", 0x200) == "AT_REMOVEDIR"
    assert parse("linkat", "flags", 0x400) == "AT_SYMLINK_FOLLOW"
    assert parse("fchownat", "flags", 0) == "0"
    assert parse("statx", "flags", 0x100 | 0x10000) == "AT_SYMLINK_NOFOLLOW|0x10000"


# --- parse-arguments: pytracee extras ---------------------------------------------------

def test_mmap_flags() -> None:
    assert parse("mmap", "flags", mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert parse("mmap", "flags", mmap.MAP_SHARED | 0x10) == "MAP_SHARED|MAP_FIXED"
    huge = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40000 | (21 << 26)
    assert parse("mmap", "flags", huge) == "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB"
    assert parse("mmap", "flags", 0x2 | 0x8000000) == "MAP_PRIVATE|0x8000000"
    assert arg_parser("mmap", "flags", tracee_only=True) is None
    for bit, name in argvalues._MAP_FLAGS:
        if hasattr(mmap, name):
            assert getattr(mmap, name) == bit, name


def test_signals() -> None:
    assert parse("kill", "sig", signal.SIGKILL) == "SIGKILL"
    assert parse("tgkill", "sig", signal.SIGTERM) == "SIGTERM"
    assert parse("kill", "sig", 0) == "0"
    assert parse("rt_sigaction", "signum", 34) == "SIGRTMIN+2"
    assert arg_parser("kill", "sig", tracee_only=True) is None
    for n in range(1, 32):
        assert argvalues._signal_name(n) == signal.Signals(n).name


def test_whence_fcntl_setns() -> None:
    assert parse("lseek", "whence", os.SEEK_END) == "SEEK_END"
    assert parse("lseek", "whence", os.SEEK_HOLE) == "SEEK_HOLE"
    assert parse("fcntl", "cmd", fcntl.F_SETFL) == "F_SETFL"
    assert parse("fcntl", "cmd", fcntl.F_DUPFD_CLOEXEC) == "F_DUPFD_CLOEXEC"
    for value, name in argvalues._FCNTL_CMDS.items():
        if hasattr(fcntl, name):
            assert getattr(fcntl, name) == value, name
    assert parse("setns", "nstype", 0x40000000) == "CLONE_NEWNET"
    assert parse("unshare", "flags", 0x20000000 | 0x00020000) == "CLONE_NEWNS|CLONE_NEWPID"


def test_not_decoded() -> None:
    assert arg_parser("read", "fd") is None
    assert arg_parser("capset", "hdrp") is None  # pointers: nothing to decode
    assert arg_parser("openat", "pathname") is None


def test_rules_name_real_arguments() -> None:
    """Every decoder targets an argument that exists (catches typos in the rules)."""
    tracee_args: dict[str, set[str]] = {}
    if TSV.exists():
        for line in TSV.read_text().splitlines()[2:]:
            name, _, _, fields, _ = line.split("\t")
            tracee_args[name] = {f.rpartition(" ")[2] for f in fields.split("; ") if f}
    for event, arg in argvalues._BY_EVENT_ARG:
        ev = lookup(event)
        if ev is not None:
            assert ev.arg_index(arg) is not None, f"{event}.{arg}"
        elif tracee_args:
            assert arg in tracee_args.get(event, ()), f"{event}.{arg}"


def test_parse_arguments_text_reads_back_to_the_number() -> None:
    from pytracee.events.argvalues import _BY_EVENT_ARG, unparse

    cases = {("security_file_open", "flags", "O_WRONLY|O_CREAT|O_TRUNC|O_LARGEFILE|O_CLOEXEC"):
                 1 | 0o100 | 0o1000 | 0o100000 | 0o2000000,
             ("openat", "flags", "O_RDONLY"): 0, ("ptrace", "request", "PTRACE_TRACEME"): 0,
             ("ptrace", "request", "PTRACE_POKETEXT"): 4, ("ptrace", "request", "PTRACE_SEIZE"): 0x4206,
             ("mprotect", "prot", "PROT_READ|PROT_EXEC"): 5, ("openat", "dirfd", "AT_FDCWD"): -100,
             ("socket", "type", "SOCK_STREAM|SOCK_CLOEXEC"): 0o2000001,
             ("clone", "flags", "CLONE_VM|SIGCHLD"): 0x100 | 17, ("fcntl", "cmd", "F_DUPFD_CLOEXEC"): 1030}
    for (ev, arg, text), value in cases.items():
        assert unparse(ev, arg, text) == value, (ev, arg, text)
    # Every decoder, on numbers it renders: the text reads back to a number that renders
    # the same (the number itself unless the decoder drops unknown bits).
    samples = [0, 1, 2, 3, 5, 7, 17, 64, 65, 0o101, 0o2000001, 0o100101, 0x4206, 0x100 | 17, 1030]
    for (ev, arg), (parse, _) in _BY_EVENT_ARG.items():
        for v in samples:
            text = parse(v)
            if not text:
                continue
            back = unparse(ev, arg, text)
            assert back is not None and parse(back) == text, (ev, arg, v, text, back)
    assert unparse("openat", "flags", "O_NOSUCHFLAG") is None
    assert unparse("getpid", "nothing", "x") is None
