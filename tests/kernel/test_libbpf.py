"""The libbpf binding and both ring buffer readers, on the running kernel.

The test program (bpf/ringbuf_test.bpf.c) emits one {seq, tgid} record per
getppid() of the pid put in its .rodata, so every count below is exact.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytracee.ebpf.libbpf import BpfError, BpfObject, LibbpfRingBuffer, Map, MapType, num_possible_cpus
from pytracee.ebpf.ringbuf import RingReader

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_bpf")]

SRC = Path(__file__).parent / "bpf" / "ringbuf_test.bpf.c"
N = 5000
RECORD = struct.Struct("<QI4x")  # struct record {u64 seq; u32 tgid; u32 pad}
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
HIT_GETPPID, HIT_DROPPED, HIT_UPROBE, HIT_EGRESS = range(4)


def _build(tmp: Path, out: str, *defines: str) -> Path:
    vmlinux = tmp / "vmlinux.h"
    if not vmlinux.exists():
        with vmlinux.open("w") as f:
            subprocess.run(
                ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f, check=True
            )
    obj = tmp / out
    subprocess.run(
        ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", *defines, f"-I{tmp}", "-c", str(SRC),
         "-o", str(obj)],
        check=True,
    )
    return obj


@pytest.fixture(scope="module")
def objs(require_bpf: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    for tool in ("clang", "bpftool"):
        assert shutil.which(tool), f"{tool} is needed to build the test BPF program"
    tmp = tmp_path_factory.mktemp("bpf")
    return {
        "good": _build(tmp, "ringbuf_test.bpf.o"),
        "discard": _build(tmp, "discard.bpf.o", "-DDISCARD_ODD"),
        "broken": _build(tmp, "broken.bpf.o", "-DBROKEN"),
        "recurse": _build(tmp, "recurse.bpf.o", "-DRECURSE"),
    }


@pytest.fixture
def obj(objs: dict[str, Path]) -> Iterator[BpfObject]:
    """Opened (not loaded), configured to trace this process."""
    o = BpfObject.open(objs["good"])
    o.set_global(".rodata", "cfg_target_pid", U32.pack(os.getpid()))
    yield o
    o.close()


@pytest.fixture
def traced(obj: BpfObject) -> BpfObject:
    """Loaded, sys_enter attached: every getppid() of ours makes one record."""
    obj.load()
    obj.program("on_sys_enter").attach_raw_tracepoint("sys_enter")
    return obj


def _hits(o: BpfObject, slot: int) -> int:
    return sum(U64.unpack(v)[0] for v in o.map("hits").lookup_percpu(U32.pack(slot)))


def _getppid_storm(n: int) -> None:
    getppid = os.getppid
    for _ in range(n):
        getppid()


def _check_records(records: list[tuple[int, int]], n: int) -> None:
    assert len(records) == n
    assert [seq for seq, _ in records] == list(range(n))
    assert {tgid for _, tgid in records} == {os.getpid()}


# ---------------------------------------------------------------- ring buffer readers


def test_ring_reader_gets_every_record_in_order(traced: BpfObject) -> None:
    events = traced.map("events")
    assert events.type == MapType.RINGBUF
    with RingReader(events.fd, events.max_entries) as ring:
        assert ring.wait(0) is False
        _getppid_storm(N)
        assert ring.wait(1000) is True
        records: list[tuple[int, int]] = []
        unpack = RECORD.unpack_from
        assert ring.drain(lambda view: records.append(unpack(view))) == N
        assert ring.drain() == 0
        assert ring.wait(0) is False
        assert ring.consumer_pos == ring.producer_pos == N * (RECORD.size + 8)
    _check_records(records, N)
    assert _hits(traced, HIT_GETPPID) == N
    assert _hits(traced, HIT_DROPPED) == 0


def test_ring_reader_checks_the_map(traced: BpfObject) -> None:
    events = traced.map("events")
    with RingReader(events.fd) as ring:  # size read from the fd
        assert ring.size == events.max_entries == 1 << 20
    with pytest.raises(ValueError, match=r"ring size 4096 given, but the map's max_entries is 1048576"):
        RingReader(events.fd, 4096)
    with pytest.raises(ValueError, match="not a ring buffer"):
        RingReader(traced.map("scratch").fd)


def test_ring_reader_limit_and_batch_copies(traced: BpfObject) -> None:
    events = traced.map("events")
    with RingReader(events.fd, events.max_entries) as ring:
        _getppid_storm(10)
        first = ring.drain_batch(4)
        rest = ring.drain_batch(100)
    assert [len(r) for r in first + rest] == [RECORD.size] * 10
    _check_records([RECORD.unpack(r) for r in first + rest], 10)


def test_ring_reader_drain_limit(traced: BpfObject) -> None:
    events = traced.map("events")
    seqs: list[int] = []
    with RingReader(events.fd, events.max_entries) as ring:
        _getppid_storm(10)
        assert ring.drain(lambda view: seqs.append(RECORD.unpack_from(view)[0]), limit=3) == 3
        assert seqs == [0, 1, 2]
        assert ring.drain(limit=0) == 0
        assert ring.drain(lambda view: seqs.append(RECORD.unpack_from(view)[0])) == 7
    assert seqs == list(range(10))


def test_ring_reader_skips_discarded_records(objs: dict[str, Path]) -> None:
    with BpfObject.open(objs["discard"]) as o:
        o.set_global(".rodata", "cfg_target_pid", U32.pack(os.getpid()))
        o.load()
        o.program("on_sys_enter").attach_raw_tracepoint("sys_enter")
        events = o.map("events")
        seqs: list[int] = []
        with RingReader(events.fd, events.max_entries) as ring:
            _getppid_storm(1000)
            assert ring.pending_bytes() == 1000 * (RECORD.size + 8)  # discarded ones still take room
            assert ring.drain(lambda view: seqs.append(RECORD.unpack_from(view)[0]), limit=5) == 5
            assert ring.drain(lambda view: seqs.append(RECORD.unpack_from(view)[0])) == 495
            assert ring.pending_bytes() == 0
            _getppid_storm(10)
            assert [RECORD.unpack(r)[0] for r in ring.drain_batch(3)] == [1000, 1002, 1004]
            assert [RECORD.unpack(r)[0] for r in ring.drain_batch(10)] == [1006, 1008]
    assert seqs == list(range(0, 1000, 2))


def test_ring_reader_wraps_around_a_small_ring(obj: BpfObject) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    obj.map("events").set_max_entries(page)  # 170 records per lap
    obj.load()
    obj.program("on_sys_enter").attach_raw_tracepoint("sys_enter")
    events = obj.map("events")
    assert events.max_entries == page
    records: list[tuple[int, int]] = []
    unpack = RECORD.unpack_from
    with RingReader(events.fd, page) as ring:
        for _ in range(50):  # 50 x 100 records: the ring wraps ~30 times
            _getppid_storm(100)
            assert ring.drain(lambda view: records.append(unpack(view))) == 100
    _check_records(records, N)


def test_ring_reader_callback_error_skips_only_that_record(traced: BpfObject) -> None:
    events = traced.map("events")
    seen: list[int] = []

    def handle(view: memoryview) -> None:
        seq = RECORD.unpack_from(view)[0]
        if seq == 2:
            raise RuntimeError("bad record")
        seen.append(seq)

    with RingReader(events.fd, events.max_entries) as ring:
        _getppid_storm(5)
        with pytest.raises(RuntimeError, match="bad record"):
            ring.drain(handle)
        assert seen == [0, 1, 3, 4]  # the rest of the batch was still handled
        assert ring.drain(handle) == 0
    assert seen == [0, 1, 3, 4]


def test_libbpf_ring_buffer_gets_every_record_in_order(traced: BpfObject) -> None:
    records: list[tuple[int, int]] = []
    with LibbpfRingBuffer(traced.map("events").fd, lambda data: records.append(RECORD.unpack(data))) as rb:
        assert rb.fileno() >= 0
        _getppid_storm(N)
        got = rb.poll(1000)
        got += rb.consume()
    assert got == N
    _check_records(records, N)
    assert _hits(traced, HIT_GETPPID) == N


def test_libbpf_ring_buffer_reraises_callback_error(traced: BpfObject) -> None:
    def handle(data: bytes) -> None:
        raise ValueError("from callback")

    with LibbpfRingBuffer(traced.map("events").fd, handle) as rb:
        os.getppid()
        with pytest.raises(ValueError, match="from callback"):
            rb.consume()


# ---------------------------------------------------------------- maps


def test_percpu_lookup_has_one_value_per_possible_cpu(traced: BpfObject) -> None:
    _getppid_storm(N)
    values = traced.map("hits").lookup_percpu(U32.pack(HIT_GETPPID))
    assert len(values) == num_possible_cpus() >= 1
    assert all(len(v) == 8 for v in values)
    assert sum(U64.unpack(v)[0] for v in values) == N
    with pytest.raises(BpfError, match="per-CPU map: use lookup_percpu"):
        traced.map("hits").lookup(U32.pack(0))
    with pytest.raises(BpfError, match="not a per-CPU map"):
        traced.map("scratch").lookup_percpu(U32.pack(0))


def test_program_info_counts_runs_the_kernel_skipped(objs: dict[str, Path]) -> None:
    """recursion_misses: on_printk makes itself run again on every getppid() of ours;
    the kernel skips each nested run and counts it, and info() reads that count."""
    with BpfObject.open(objs["recurse"]) as o:
        o.set_global(".rodata", "cfg_target_pid", U32.pack(os.getpid()))
        o.load()
        printk = o.program("on_printk")
        printk.attach_raw_tracepoint("bpf_trace_printk")
        o.program("on_sys_enter").attach_raw_tracepoint("sys_enter")
        before = printk.info()
        _getppid_storm(1000)
        after = printk.info()
        shown = json.loads(subprocess.run(["bpftool", "prog", "show", "id", str(after.id), "-j"],
                                          capture_output=True, text=True, check=True).stdout)
        assert _hits(o, HIT_GETPPID) == 1000
    assert after.name == shown["name"] == "on_printk"
    assert after.id == before.id == shown["id"]
    assert after.recursion_misses - before.recursion_misses == 1000
    assert shown.get("recursion_misses", 0) == after.recursion_misses


def test_hash_map_round_trip(obj: BpfObject) -> None:
    obj.load()
    m: Map = obj.map("scratch")
    assert (m.type, m.key_size, m.value_size, m.max_entries) == (MapType.HASH, 4, 8, 64)
    assert m.lookup(U32.pack(7)) is None
    assert list(m.keys()) == []
    for k in (7, 8, 9):
        m.update(U32.pack(k), U64.pack(k * 100))
    assert m.lookup(U32.pack(8)) == U64.pack(800)
    assert sorted(U32.unpack(k)[0] for k in m.keys()) == [7, 8, 9]
    m.update(U32.pack(8), U64.pack(1), flags=2)  # BPF_EXIST: replace
    assert m.lookup(U32.pack(8)) == U64.pack(1)
    with pytest.raises(BpfError) as e:
        m.update(U32.pack(8), U64.pack(2), flags=1)  # BPF_NOEXIST on a present key
    assert e.value.errno == errno.EEXIST
    assert str(e.value) == "update map scratch: File exists"
    assert m.delete(U32.pack(8)) is True
    assert m.delete(U32.pack(8)) is False
    assert sorted(U32.unpack(k)[0] for k in m.keys()) == [7, 9]


def test_map_rejects_wrong_sizes_instead_of_reading_past_the_buffer(obj: BpfObject) -> None:
    obj.load()
    m = obj.map("scratch")
    with pytest.raises(BpfError, match="key is 2 bytes, map wants 4"):
        m.lookup(b"\0\0")
    with pytest.raises(BpfError, match="value is 4 bytes, map wants 8"):
        m.update(U32.pack(1), U32.pack(1))
    per_cpu = obj.map("hits")
    with pytest.raises(BpfError, match=f"map wants {8 * num_possible_cpus()}"):
        per_cpu.update(U32.pack(0), U64.pack(1))
    per_cpu.update(U32.pack(0), U64.pack(5) * num_possible_cpus())
    assert _hits(obj, 0) == 5 * num_possible_cpus()


def test_set_max_entries_before_load_is_honoured(obj: BpfObject) -> None:
    events, scratch = obj.map("events"), obj.map("scratch")
    events.set_max_entries(1 << 16)
    scratch.set_max_entries(1000)
    obj.load()
    assert events.max_entries == 1 << 16
    assert obj.map("scratch") is scratch and scratch.max_entries == 1000
    for k in range(1000):  # the kernel map really has room for 1000
        scratch.update(U32.pack(k), U64.pack(k))
    with pytest.raises(BpfError) as e:
        scratch.update(U32.pack(1000), U64.pack(0))
    assert e.value.errno == errno.E2BIG
    with pytest.raises(BpfError, match="set max_entries of map scratch to 5: Device or resource busy"):
        scratch.set_max_entries(5)


def test_set_global_validates_symbol_size_and_timing(obj: BpfObject) -> None:
    assert obj.globals(".rodata") == {"cfg_target_pid": (0, 4), "cfg_skb_len": (4, 4)}
    with pytest.raises(BpfError, match=r"set \.rodata cfg_nope: unknown symbol \(known: cfg_skb_len, cfg_target_pid\)"):
        obj.set_global(".rodata", "cfg_nope", U32.pack(1))
    with pytest.raises(BpfError, match="value is 8 bytes, cfg_target_pid is 4"):
        obj.set_global(".rodata", "cfg_target_pid", U64.pack(1))
    obj.set_rodata({"cfg_skb_len": U32.pack(77)})
    obj.load()
    rodata = obj.map(".rodata").lookup(U32.pack(0))
    assert rodata == U32.pack(os.getpid()) + U32.pack(77)
    with pytest.raises(BpfError, match="object already loaded"):
        obj.set_global(".rodata", "cfg_target_pid", U32.pack(1))


# ---------------------------------------------------------------- attach


def test_attach_by_section_name(obj: BpfObject) -> None:
    obj.load()
    link = obj.program("on_sys_enter").attach()
    os.getppid()
    assert _hits(obj, HIT_GETPPID) == 1
    link.destroy()
    link.destroy()
    os.getppid()
    assert _hits(obj, HIT_GETPPID) == 1


def _libc_path() -> str:
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "/libc.so" in path or "/libc-" in path:
                return path
    pytest.fail("libc not found in /proc/self/maps")


@pytest.mark.parametrize("retprobe", [False, True])
def test_uprobe_on_libc_function(obj: BpfObject, retprobe: bool) -> None:
    obj.load()
    link = obj.program("on_uprobe").attach_uprobe(_libc_path(), func_name="getppid", pid=os.getpid(), retprobe=retprobe)
    assert link.description.startswith("uretprobe " if retprobe else "uprobe ")
    _getppid_storm(100)
    assert _hits(obj, HIT_UPROBE) == 100


def test_cgroup_skb_egress(obj: BpfObject) -> None:
    root = Path("/sys/fs/cgroup/unified")
    if not root.is_dir():
        root = Path("/sys/fs/cgroup")  # pure cgroup v2 host
    payload = b"x" * 1234
    obj.set_global(".rodata", "cfg_skb_len", U32.pack(20 + 8 + len(payload)))  # IPv4 + UDP + data
    obj.load()
    obj.program("on_egress").attach_cgroup(str(root))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        for _ in range(3):
            tx.sendto(payload, rx.getsockname())
            assert rx.recv(2048) == payload  # the program let it through
    assert _hits(obj, HIT_EGRESS) == 3


def test_errors_name_the_operation_and_the_object(obj: BpfObject) -> None:
    with pytest.raises(BpfError) as e:
        obj.program("nope")
    assert e.value.errno == errno.ENOENT
    assert str(e.value) == (
        "find program 'nope' in ringbuf_test: no such program (programs: on_sys_enter, on_uprobe, on_egress)"
    )
    with pytest.raises(BpfError, match=r"find map 'nope' in ringbuf_test: no such map \(maps: .*events"):
        obj.map("nope")
    obj.load()
    prog = obj.program("on_sys_enter")
    with pytest.raises(BpfError) as e:
        prog.attach_raw_tracepoint("no_such_tp")
    assert str(e.value) == "attach raw_tracepoint no_such_tp (program on_sys_enter): No such file or directory"
    with pytest.raises(BpfError) as e:
        prog.attach_tracepoint("syscalls", "sys_enter_no_such")
    assert str(e.value) == (
        "attach tracepoint syscalls:sys_enter_no_such (program on_sys_enter): No such file or directory"
    )
    with pytest.raises(BpfError) as e:
        obj.program("on_egress").attach_cgroup("/no/such/cgroup")
    assert str(e.value) == "attach cgroup /no/such/cgroup (program on_egress): No such file or directory"
    assert obj.links == []
    with pytest.raises(BpfError, match="open BPF object /no/such.o: No such file or directory"):
        BpfObject.open("/no/such.o")


# ---------------------------------------------------------------- lifetime


def test_close_detaches_and_is_idempotent(obj: BpfObject) -> None:
    obj.load()
    link = obj.program("on_sys_enter").attach_raw_tracepoint("sys_enter")
    events = obj.map("events")
    ring = RingReader(events.fd, events.max_entries)  # its own fd keeps the map alive
    try:
        os.getppid()
        assert ring.drain() == 1
        obj.close()
        obj.close()
        assert not link.active and obj.links == []
        link.destroy()
        _getppid_storm(10)
        assert ring.pending_bytes() == 0  # detached: nothing more arrives
        with pytest.raises(BpfError, match="object is closed"):
            obj.map("events").lookup(b"")
    finally:
        ring.close()
        ring.close()


def test_close_from_a_signal_handler(obj: BpfObject) -> None:
    obj.load()
    links = [obj.program("on_sys_enter").attach_raw_tracepoint("sys_enter"), obj.program("on_sys_enter").attach()]
    previous = signal.signal(signal.SIGUSR1, lambda *_: obj.close())
    try:
        signal.raise_signal(signal.SIGUSR1)  # the handler runs before raise_signal returns
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert [link.active for link in links] == [False, False]
    assert "closed" in repr(obj)
    obj.close()


def test_context_manager_closes(objs: dict[str, Path]) -> None:
    with BpfObject.open(objs["good"]) as o:
        o.load()
        o.program("on_sys_enter").attach()
    assert "closed" in repr(o) and o.links == []


# ---------------------------------------------------------------- logging


def test_verifier_log_reaches_python_logging(objs: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pytracee.libbpf")
    with BpfObject.open(objs["broken"]) as o:
        with pytest.raises(BpfError) as e:
            o.load()
    assert e.value.errno == errno.EACCES
    assert str(e.value) == "load BPF object broken: Permission denied"
    libbpf_records = [r for r in caplog.records if r.name == "pytracee.libbpf"]
    warnings = "\n".join(r.getMessage() for r in libbpf_records if r.levelno == logging.WARNING)
    assert "-- BEGIN PROG LOAD LOG --" in warnings
    assert "R0 invalid mem access 'map_value_or_null'" in warnings
    assert any(r.levelno == logging.DEBUG for r in libbpf_records)  # LIBBPF_DEBUG mapped too


def test_autoload_off_skips_the_broken_program(objs: dict[str, Path]) -> None:
    with BpfObject.open(objs["broken"]) as o:
        broken = o.program("broken_prog")
        assert broken.autoload is True
        broken.set_autoload(False)
        o.load()
        assert [p.name for p in o.programs()] == ["on_sys_enter", "on_uprobe", "on_egress", "broken_prog"]
        assert broken.fd < 0 and o.program("on_sys_enter").fd >= 0
