"""Decoding records exactly as the kernel lays them out (bpf/common/event.h)."""

from __future__ import annotations

import socket
import struct

from pytracee.events import wire
from pytracee.events.decoder import TRUNCATED_MARK, Decoder
from pytracee.events.definitions import EVENTS, lookup


def header(event_id: int, argnum: int, *, retval: int = 0, comm: bytes = b"cat",
           flags: int = 0) -> bytes:
    return wire.HEADER.pack(1_000, retval, 1, event_id, event_id, 1, 0, argnum, flags,
                            500, 400, 300, 77, 10, 11, 1, 1010, 1011, 1, 0, 0, 4026531840, 4026531836,
                            comm, b"host-" + b"x" * 59)


def int_arg(idx: int, v: int) -> bytes:
    return struct.pack("<BBQ", idx, wire.ARG_INT, v & (2**64 - 1))


def str_arg(idx: int, s: bytes) -> bytes:
    return struct.pack("<BBH", idx, wire.ARG_STR, len(s)) + s


def test_openat_record() -> None:
    rec = header(257, 4, retval=3) + int_arg(0, -100) + str_arg(1, b"/etc/passwd") \
        + int_arg(2, 0o2000000) + int_arg(3, 0)
    ev = Decoder(EVENTS, boot_offset=5).decode(memoryview(rec))
    assert ev is not None
    assert ev.name == "openat"
    assert ev.args == (-100, "/etc/passwd", 0o2000000, 0)
    assert ev.retval == 3
    assert ev.timestamp == 1_005
    assert ev.ctx.start_time == 505
    assert (ev.ctx.pid, ev.ctx.tid, ev.ctx.host_pid, ev.ctx.host_tid) == (10, 11, 1010, 1011)
    assert ev.ctx.comm == "cat"
    assert ev.ctx.hostname == "host-" + "x" * 59  # all 64 bytes of the UTS name


def test_task_context_is_shared_between_events_of_one_task() -> None:
    d = Decoder(EVENTS, 0)
    a = d.decode(memoryview(header(110, 0)))
    b = d.decode(memoryview(header(110, 0)))
    c = d.decode(memoryview(header(110, 0, comm=b"other")))
    assert a is not None and b is not None and c is not None
    assert a.ctx is b.ctx
    assert c.ctx is not a.ctx


def test_string_array_with_truncation_mark() -> None:
    body = struct.pack("<BBBB", 1, wire.ARG_STR_ARR, 2, 1)
    for s in (b"ls", b"-la"):
        body += struct.pack("<H", len(s)) + s
    rec = header(59, 2) + str_arg(0, b"/bin/ls") + body
    ev = Decoder(EVENTS, 0).decode(memoryview(rec))
    assert ev is not None
    assert ev.arg("argv") == ["ls", "-la", TRUNCATED_MARK]
    assert ev.arg("envp") is None


def test_sockaddr_and_int_pair() -> None:
    sa = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 8080) + socket.inet_aton("127.0.0.1") + bytes(8)
    rec = header(42, 3) + int_arg(0, 5) + struct.pack("<BBH", 1, wire.ARG_SOCKADDR, len(sa)) + sa \
        + int_arg(2, 16)
    ev = Decoder(EVENTS, 0).decode(memoryview(rec))
    assert ev is not None and ev.name == "connect"
    assert ev.arg("addr") == {"sa_family": "AF_INET", "sin_port": "8080", "sin_addr": "127.0.0.1"}
    pipe = lookup("pipe2")
    assert pipe is not None
    rec = header(pipe.id, 2) + struct.pack("<BBH", 0, wire.ARG_INT_PAIR, 8) + struct.pack("<ii", 3, 4) \
        + int_arg(1, 0)
    ev = Decoder(EVENTS, 0).decode(memoryview(rec))
    assert ev is not None and ev.arg("pipefd") == [3, 4]


def test_exec_argv_blob_and_non_utf8() -> None:
    blob = b"/bin/sh\0-c\0caf\xe9\0"
    rec = header(715, 2) + str_arg(0, b"/bin/sh") + struct.pack("<BBHB", 10, wire.ARG_STR_BLOB, len(blob), 0) + blob
    ev = Decoder(EVENTS, 0).decode(memoryview(rec))
    assert ev is not None
    assert ev.arg("argv") == ["/bin/sh", "-c", "caf\\xe9"]
    assert ev.arg("cmdpath") == "/bin/sh"


def test_bad_records_are_counted_not_raised() -> None:
    d = Decoder(EVENTS, 0)
    assert d.decode(memoryview(b"\0" * 10)) is None
    assert d.malformed == 1
    assert d.decode(memoryview(header(999, 0))) is None
    assert d.unknown_events == 1
    cut = header(257, 4) + int_arg(0, 1) + struct.pack("<BBH", 1, wire.ARG_STR, 50) + b"short"
    ev = d.decode(memoryview(cut))  # the string claims 50 bytes; only 5 arrived
    assert ev is not None and ev.args[0] == 1
    assert d.malformed == 2
    bad_kind = header(257, 1) + struct.pack("<BB", 0, 77)
    assert d.decode(memoryview(bad_kind)) is not None
    assert d.malformed == 3


def test_context_values_by_tracee_scope_names() -> None:
    from pytracee.policy.filters import CONTEXT_FIELDS

    ev = Decoder(EVENTS, 0).decode(memoryview(header(257, 0, retval=3)))
    assert ev is not None
    values = {name: ev.context_value(name) for name in CONTEXT_FIELDS}  # every name answers
    assert values["processName"] == "cat"
    assert values["hostProcessId"] == 1010
    assert values["threadId"] == 11
    assert values["syscall"] == "openat"
    assert values["container"] is False
    import pytest
    with pytest.raises(KeyError):
        ev.context_value("nosuch")


def _open_record(path: bytes, *, pid: int = 10) -> bytes:
    rec = header(257, 2, retval=3) + int_arg(0, -100) + str_arg(1, path)
    return rec[:wire.TASK_START] + rec[wire.TASK_START:].replace(
        struct.pack("<I", 10), struct.pack("<I", pid), 1)


def test_events_with_the_same_raw_args_share_their_decoded_args() -> None:
    dec = Decoder(EVENTS, boot_offset=0)
    a, b, c = dec.decode_batch([memoryview(_open_record(b"/etc/hosts")),
                                memoryview(_open_record(b"/etc/hosts", pid=99)),
                                memoryview(_open_record(b"/etc/passwd"))])
    assert a.args == b.args == (-100, "/etc/hosts", None, None)
    assert a.args is b.args and a.args_key == b.args_key is not None
    assert a.ctx is not b.ctx and a.ctx.pid == 10 and b.ctx.pid == 99
    assert c.args == (-100, "/etc/passwd", None, None) and c.args_key != a.args_key


def test_args_that_never_repeat_stop_being_cached_and_still_decode() -> None:
    dec = Decoder(EVENTS, boot_offset=0)
    names = [f"/tmp/f{i}".encode() for i in range(1500)]
    events = dec.decode_batch([memoryview(_open_record(n)) for n in names])
    assert [ev.args[1] for ev in events] == [n.decode() for n in names]
    assert dec._args[257] is None  # 1024 entries, no hit: given up on
    assert events[-1].args_key is None and events[0].args_key is not None
    again = dec.decode(memoryview(_open_record(b"/tmp/f1")))
    assert again is not None and again.args == (-100, "/tmp/f1", None, None)


def test_a_malformed_record_is_not_cached() -> None:
    dec = Decoder(EVENTS, boot_offset=0)
    bad = header(257, 2) + int_arg(0, -100) + struct.pack("<BBH", 1, wire.ARG_STR, 50) + b"short"
    first, second = dec.decode_batch([memoryview(bad), memoryview(bad)])
    assert first.args[0] == -100 and first.args_key is None and second.args_key is None
    assert dec.malformed == 2


def test_large_args_are_decoded_every_time_not_kept() -> None:
    dec = Decoder(EVENTS, boot_offset=0)
    long_path = b"/" + b"x" * 600
    a, b = dec.decode_batch([memoryview(_open_record(long_path))] * 2)
    assert a.args == b.args == (-100, long_path.decode(), None, None)
    assert a.args_key is None and b.args_key is None and a.args is not b.args
