"""The Python mirror of the kernel's structs matches the compiled object's BTF."""

from __future__ import annotations

import re
import struct
import subprocess

import pytest

from pytracee.ebpf.tracer import bpf_object_path
from pytracee.events import wire
from pytracee.policy import kernel_maps


def _btf_structs() -> dict[str, tuple[int, list[tuple[str, int]]]]:
    obj = bpf_object_path()
    if not obj.exists():
        pytest.fail(f"{obj} is not built: run `make bpf`")
    raw = subprocess.run(["bpftool", "btf", "dump", "file", str(obj), "format", "raw"],
                         check=True, capture_output=True, text=True).stdout
    out: dict[str, tuple[int, list[tuple[str, int]]]] = {}
    current: list[tuple[str, int]] | None = None
    for line in raw.splitlines():
        m = re.match(r"\[\d+\] STRUCT '(\w+)' size=(\d+)", line)
        if m:
            current = []
            out[m.group(1)] = (int(m.group(2)), current)
            continue
        m = re.match(r"\s+'(\w+)' type_id=\d+ bits_offset=(\d+)", line)
        if m and current is not None:
            current.append((m.group(1), int(m.group(2)) // 8))
        elif not line.startswith("\t"):
            current = None
    return out


def _offsets(fields: tuple[tuple[str, str], ...]) -> list[tuple[str, int]]:
    out, off = [], 0
    for name, code in fields:
        out.append((name, off))
        off += struct.calcsize("<" + code)
    return out


def test_event_header_matches_btf() -> None:
    size, members = _btf_structs()["event_header"]
    assert size == wire.HEADER_SIZE
    assert members == _offsets(wire.HEADER_FIELDS)
    assert wire.TASK_START == dict(members)["start_time"]
    assert wire.EVENT_PART.size + wire.TASK_PART.size == wire.HEADER_SIZE


def test_event_fetch_matches_btf() -> None:
    size, members = _btf_structs()["event_fetch"]
    assert size == wire.EVENT_FETCH.size
    assert members == [("arg_kinds", 0), ("submit_on_enter", 6), ("flags", 7), ("derived", 8)]


def test_scope_config_matches_btf() -> None:
    size, members = _btf_structs()["scope_config"]
    assert size == kernel_maps.CONFIG_SIZE
    assert [m for m, _ in members] == [
        "has_filter", "has_eq", "uid_range", "pid_range", "new_pid", "follow", "tree",
        "container", "not_container", "container_new", "container_started",
        "start_time", "self_pid", "exec_env", "uid_min", "uid_max", "pid_min", "pid_max"]
    assert dict(members)["uid_min"] == 184
    assert _btf_structs()["scope_eq"][0] == kernel_maps.SCOPE_EQ.size
    assert _btf_structs()["scope_num_key"] == (kernel_maps.NUM_KEY.size,
                                               [("slot", 0), ("field", 2), ("value", 4)])
    assert _btf_structs()["scope_comm_key"] == (kernel_maps.COMM_KEY.size, [("slot", 0), ("comm", 4)])


def test_slim_cred_matches_btf() -> None:
    size, members = _btf_structs()["slim_cred"]
    assert size == wire.SLIM_CRED.size
    assert [m for m, _ in members] == [
        "uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid", "user_ns", "securebits",
        "cap_inheritable", "cap_permitted", "cap_effective", "cap_bounding", "cap_ambient"]
