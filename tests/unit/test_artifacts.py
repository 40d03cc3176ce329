"""--capture / --artifacts parsing, and the capture stage on constructed events."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from pytracee.capture import DEFAULT_DIR, Capture, CaptureOptions, parse_capture
from pytracee.capture.writer import kernel_dev
from pytracee.cli import policy_runtime
from pytracee.config import load_config
from pytracee.errors import UsageError
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext
from pytracee.policy import path_filters

BOOT = 1_700_000_000_000_000_000
MEM_PROT_ALERT = d.BY_NAME["mem_prot_alert"].id


# --- option parsing ---------------------------------------------------------------------

def test_defaults_capture_nothing() -> None:
    opts = parse_capture()
    assert opts == CaptureOptions() and not opts.enabled and opts.dir == DEFAULT_DIR == "/tmp/pytracee/out"


def test_legacy_options() -> None:
    opts = parse_capture(["exec", "mem", "write=/tmp/*", "artifact:write=/var/log*", "dir:/srv/out",
                          "clear-dir"])
    assert opts == CaptureOptions(exec=True, write=True, write_prefixes=["/tmp/", "/var/log"],
                                  mem=True, dir="/srv/out", clear_dir=True)
    assert parse_capture(["write"]) == CaptureOptions(write=True)
    assert parse_capture(["exec,mem"]) == CaptureOptions(exec=True, mem=True)


def test_artifacts_options() -> None:
    opts = parse_capture(artifacts=["executable", "file-write.filters=path=/tmp/*", "memory-regions",
                                    "dir.path=/srv/a", "dir.clear"])
    assert opts == CaptureOptions(exec=True, write=True, write_prefixes=["/tmp/"], mem=True,
                                  dir="/srv/a", clear_dir=True)
    assert parse_capture(artifacts=["file-write"]) == CaptureOptions(write=True)


@pytest.mark.parametrize(("capture", "artifacts", "token"), [
    (["nope"], [], "nope"),
    (["read"], [], "read"),                        # Tracee has it, pytracee does not
    (["write=/tmp"], [], "write=/tmp"),            # a prefix ends in '*'
    (["write=*"], [], "write=*"),
    (["write=tmp/*"], [], "write=tmp/*"),          # absolute
    (["write=/a*b*"], [], "write=/a*b*"),
    (["write=/" + "x" * 250 + "*"], [], "write=/" + "x" * 250 + "*"),
    (["write=/a*", "write=/b*", "write=/c*", "write=/d*"], [], "write=/d*"),
    (["dir:"], [], "dir:"),
    (["exec,"], [], "exec,"),
    (["dir:/", "clear-dir"], [], "/"),
    ([], ["kernel-modules"], "kernel-modules"),
    (["pcap:nope"], [], "pcap:nope"),
    (["pcap-snaplen:5kb"], [], "pcap-snaplen:5kb"),
    ([], ["network.pcap.options=filtered"], "network.pcap.options=filtered"),
    ([], ["file-write.filters=type=pipe"], "file-write.filters=type=pipe"),
    ([], ["bogus"], "bogus"),
    ([], ["dir.path="], "dir.path="),
])
def test_bad_values_name_the_token(capture: list[str], artifacts: list[str], token: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_capture(capture, artifacts)
    assert err.value.token == token
    assert "\n" not in str(err.value)


def test_config_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("capture: [exec, 'dir:/x']\nartifacts: memory-regions\n")
    assert load_config(str(cfg)) == {"capture": ["exec", "dir:/x"], "artifacts": ["memory-regions"]}


# --- the stage on constructed events ------------------------------------------------------

def _ctx(pid: int, comm: bytes = b"prog") -> TaskContext:
    return TaskContext((10, 10, 5, 1, pid, pid, 1, pid, pid, 1, 0, 0, 4026531840, 4026531836,
                        comm, b"host"), BOOT)


def _event(eid: int, ctx: TaskContext, args: dict[str, object], matched: int, ts: int = 1) -> Event:
    definition = d.EVENTS[eid]
    return Event(BOOT + ts, 0, matched, eid, -1, 0, 0, 0, ctx, definition,
                 [args.get(a.name) for a in definition.args])


def _identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"pathname": str(path), "dev": kernel_dev(st.st_dev), "inode": st.st_ino,
            "ctime": st.st_ctime_ns}


def test_capture_inputs_go_to_the_kernel_for_every_policy_and_stop_before_outputs(
        tmp_path: Path) -> None:
    rt = policy_runtime(0, [], ["openat"], ["comm=prog"])
    cap = Capture(parse_capture(["exec", "mem", "write=/tmp/*", f"dir:{tmp_path / 'out'}"]))
    try:
        cap.prepare(rt)
        assert rt.event_bits == {257: 1}
        assert {e: rt.kernel_bits[e] for e in (715, MEM_PROT_ALERT, 1001)} == {
            715: 1, MEM_PROT_ALERT: 1, 1001: 1}
        assert rt.capture_only == {715: 1, MEM_PROT_ALERT: 1, 1001: 1}
        idx = path_filters.PATH_EVENTS[1001]
        assert rt.path_filters.has[idx] == 1 and rt.path_filters.prefix == {(idx, b"/tmp/"): 1}
        # An exec of a file that no longer exists: nothing to copy (counted), and the
        # event, sent only for capture, does not go on.
        ev = _event(715, _ctx(999_999_999), {"pathname": "/nonexistent", "dev": 1, "inode": 2,
                                             "ctime": 3}, matched=1)
        assert cap.process([ev], {0: rt}) == []
        assert cap.counts.exec_no_source == 1
    finally:
        cap.close()


def test_selected_events_keep_their_policies(tmp_path: Path) -> None:
    rt = policy_runtime(0, [], ["sched_process_exec"], [])
    cap = Capture(parse_capture([f"dir:{tmp_path / 'out'}", "exec"]))
    try:
        cap.prepare(rt)
        assert rt.capture_only == {715: 0}
        ev = _event(715, _ctx(999_999_999), {"pathname": "/nonexistent", "dev": 1, "inode": 2,
                                             "ctime": 3}, matched=1)
        assert cap.process([ev], {0: rt}) == [ev] and ev.matched == 1
    finally:
        cap.close()


def test_exec_copied_once_with_its_hash_and_modes(tmp_path: Path) -> None:
    binary = tmp_path / "pt-prog"
    binary.write_bytes(b"\x7fELF" + os.urandom(5000))
    out = tmp_path / "out"
    rt = policy_runtime(0, [], ["sched_process_exec"], [])
    cap = Capture(parse_capture(["exec", f"dir:{out}"]), exec_hash="")
    ident = _identity(binary)
    # The process is gone (no such pid): the path is used, as its dev, inode and ctime match.
    evs = [_event(715, _ctx(999_999_999), ident, matched=1, ts=t) for t in (1, 2)]
    cap.on_decoded(evs)
    assert cap.process(evs, {0: rt}) == evs
    cap.close()
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    assert [e.arg("sha256") for e in evs] == [digest, digest]
    name = f"exec.{BOOT + 1}.pt-prog"
    assert sorted(os.listdir(out)) == ["captures.jsonl", "host"]
    assert os.listdir(out / "host") == [name]
    assert (out / "host" / name).read_bytes() == binary.read_bytes()
    assert stat.S_IMODE((out / "host" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "captures.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((out / "host").stat().st_mode) == 0o700
    lines = [orjson.loads(x) for x in (out / "captures.jsonl").read_bytes().splitlines()]
    assert lines == [{"kind": "exec", "path": f"host/{name}", "sha256": digest,
                      "size": binary.stat().st_size, **ident, "pid": 999_999_999, "comm": "prog",
                      "timestamp": BOOT + 1}]
    assert (cap.counts.hash_computed, cap.counts.hash_cached) == (1, 1)


def test_exec_of_a_changed_file_is_not_taken_for_it(tmp_path: Path) -> None:
    binary = tmp_path / "pt-prog"
    binary.write_bytes(b"one")
    ident = _identity(binary)
    ident["ctime"] -= 1  # not the file that was executed
    rt = policy_runtime(0, [], ["sched_process_exec"], [])
    cap = Capture(parse_capture(["exec", f"dir:{tmp_path / 'out'}"]))
    ev = _event(715, _ctx(999_999_999), ident, matched=1)
    cap.process([ev], {0: rt})
    cap.close()
    assert cap.counts.exec_no_source == 1 and os.listdir(tmp_path / "out") == ["captures.jsonl"]


def test_write_chunks_land_at_their_offsets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rt = policy_runtime(0, [], ["openat"], [])
    cap = Capture(parse_capture(["write=/data/*", f"dir:{out}"]))
    cap.prepare(rt)
    c = _ctx(4242, b"writer")
    common = {"dev": 7, "inode": 9, "pathname": "/data/f"}
    evs = [
        _event(1001, c, {**common, "offset": 0, "bytes": b"head"}, matched=1, ts=1),
        _event(1001, c, {**common, "offset": 10, "bytes": b"tail"}, matched=1, ts=2),
        _event(1001, c, {**common, "offset": 14, "truncated": 100}, matched=1, ts=3),
        _event(1001, c, {**common, "pathname": "/other/f", "inode": 10, "offset": 0,
                         "bytes": b"no"}, matched=1, ts=4),  # outside the prefix
    ]
    assert cap.process(evs, {0: rt}) == []
    cap.close()
    assert os.listdir(out / "host") == ["write.dev-7.inode-9"]
    assert (out / "host" / "write.dev-7.inode-9").read_bytes() == b"head\0\0\0\0\0\0tail"
    lines = [orjson.loads(x) for x in (out / "captures.jsonl").read_bytes().splitlines()]
    assert lines == [{"kind": "write", "path": "host/write.dev-7.inode-9", "pathname": "/data/f",
                      "dev": 7, "inode": 9, "pid": 4242, "comm": "writer", "timestamp": BOOT + 1}]
    assert cap.counts.write_truncated_bytes == 100
    assert "write 1 files (8 B; truncated 100 B, unreadable 0, failed 0)" in cap.summary()


def test_mem_dump_from_proc_mem(tmp_path: Path) -> None:
    """Our own memory stands in for the traced process's."""
    import ctypes

    data = ctypes.create_string_buffer(b"PT-MEM" * 100)
    addr = ctypes.addressof(data)
    out = tmp_path / "out"
    rt = policy_runtime(0, [], ["openat"], [])
    cap = Capture(parse_capture(["mem", f"dir:{out}"]))
    cap.prepare(rt)
    c = _ctx(os.getpid(), b"self")
    ev = _event(MEM_PROT_ALERT, c, {"alert": 4, "addr": hex(addr), "len": 600, "prot": 5,
                                    "prev_prot": 7, "pathname": ""}, matched=1)
    skipped = _event(MEM_PROT_ALERT, c, {"alert": 3, "addr": hex(addr), "len": 600, "prot": 7,
                                         "prev_prot": 5, "pathname": ""}, matched=1, ts=2)
    cap.on_decoded([ev, skipped])
    assert cap.process([ev, skipped], {0: rt}) == []
    cap.close()
    name = f"bin.pid-{os.getpid()}.ts-{BOOT + 1}"
    assert os.listdir(out / "host") == [name]
    assert (out / "host" / name).read_bytes() == b"PT-MEM" * 100


def test_output_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UsageError) as err:
        Capture(parse_capture(["exec", f"dir:{shared}"]))
    assert err.value.token == str(shared) and "others can write to it" in str(err.value)


def test_clear_dir_empties_the_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "host").mkdir(parents=True, mode=0o700)
    out.chmod(0o700)
    (out / "host" / "old").write_bytes(b"x")
    (out / "captures.jsonl").write_bytes(b"{}\n")
    Capture(parse_capture(["exec", f"dir:{out}", "clear-dir"])).close()
    assert os.listdir(out) == ["captures.jsonl"] and (out / "captures.jsonl").read_bytes() == b""


def test_network_capture_options_in_both_spellings() -> None:
    legacy = parse_capture(["network", "pcap:process,command", "pcap-snaplen:2kb"])
    new = parse_capture([], ["network.pcap.split=process", "network.pcap.split=command",
                             "network.pcap.snaplen=2kb"])
    for o in (legacy, new):
        assert (o.network, o.pcap_split, o.pcap_snaplen, o.enabled) == (
            True, ("process", "command"), 2048, True)
    assert parse_capture(["network"]).pcap_split == ("single",)
    assert parse_capture(["pcap-snaplen:headers"]).pcap_snaplen == 0
    assert parse_capture(["pcap-snaplen:max"]).pcap_snaplen is None
    assert parse_capture(["pcap-snaplen:default"]).pcap_snaplen == 96
