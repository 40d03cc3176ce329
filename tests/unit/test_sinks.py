"""Outputs without a kernel: --output parsing (both syntaxes), file rotation, the
template format, stream filters, block vs drop buffers with a slow destination,
and detections in the table (colour on a terminal only)."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pytracee.detect.engine import Detection
from pytracee.detect.signature import Finding, SignatureMetadata
from pytracee.enrich.options import EnrichOptions
from pytracee.enrich.proctree import Process, ProcessTree
from pytracee.enrich.setup import Enrichment
from pytracee.errors import UsageError
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext, entity_id
from pytracee.sinks.destinations.file import FileDestination
from pytracee.sinks.formats import JsonFormat, TableFormat
from pytracee.sinks.outputs import (DestinationSpec, StreamSpec, build_streams, parse_outputs,
                                    parse_size, use_colour)
from pytracee.sinks.stream import Stream, delivery_summary
from pytracee.sinks.table_sink import TableSink
from pytracee.sinks.template import TemplateFormat
from tests.unit.signature_fixtures import BOOT as SIG_BOOT
from tests.unit.signature_fixtures import START, task

BOOT = 1_700_000_000_000_000_000


def ctx(pid: int = 10, comm: bytes = b"x") -> TaskContext:
    return TaskContext((1, 1, 1, 1, pid, pid, 1, pid, pid, 1, 0, 0, 1, 1, comm, b"h"), BOOT)


def event(name: str, retval: int = 0, matched: int = 1, pid: int = 10, **args: Any) -> Event:
    definition = d.BY_NAME[name]
    return Event(BOOT + retval, retval, matched, definition.id, definition.id, 0, 0, 0, ctx(pid),
                 definition, [args.get(a.name) for a in definition.args])


def names(_version: int) -> list[str]:
    return ["p0", "p1", "p2"]


class ListDest:
    """Keeps what it is sent; `delay` makes each send slow."""

    def __init__(self, name: str = "list", delay: float = 0.0, fail: type[BaseException] | None = None,
                 local: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.fail = fail
        self.local = local
        self.payloads: list[bytes] = []
        self.events: list[Event] = []
        self.flushes = 0
        self.closed = False

    def send(self, payload: bytes, events: list[Event]) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail("refused")
        self.payloads.append(payload)
        self.events.extend(events)

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


# -- parsing --------------------------------------------------------------------------------


def _shape(values: list[str]) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    cfg = parse_outputs(values)
    return ({n: (s.type, s.fmt, s.template, s.path, s.url, s.rotate) for n, s in cfg.destinations.items()},
            {n: (s.destinations, s.events, s.policies, s.mode, s.size) for n, s in cfg.streams.items()})


def test_default_is_a_table_on_stdout() -> None:
    assert _shape([]) == ({"table": ("file", "table", None, None, None, None)},
                          {"table": (["table"], [], [], "block", 1024)})
    assert _shape(["option:parse-arguments"])[0] == {"table": ("file", "table", None, None, None, None)}


@pytest.mark.parametrize(("values", "dests"), [
    (["json"], {"json": ("file", "json", None, None, None, None)}),
    (["json:/tmp/x.json"], {"json": ("file", "json", None, "/tmp/x.json", None, None)}),
    (["table:/tmp/t", "json"], {"table": ("file", "table", None, "/tmp/t", None, None),
                                "json": ("file", "json", None, None, None, None)}),
    (["table-verbose:/tmp/t"], {"table": ("file", "table", None, "/tmp/t", None, None)}),
    (["json:/tmp/a,/tmp/b"], {"json": ("file", "json", None, "/tmp/a", None, None),
                              "json-2": ("file", "json", None, "/tmp/b", None, None)}),
    (["gotemplate=/t.j2"], {"template": ("file", "template", "/t.j2", None, None, None)}),
    (["gotemplate=/t.j2:/out/log"], {"template": ("file", "template", "/t.j2", "/out/log", None, None)}),
    (["template:/t.j2:/out/log"], {"template": ("file", "template", "/t.j2", "/out/log", None, None)}),
    (["webhook:http://127.0.0.1:9/in?timeout=3s"],
     {"webhook": ("webhook", "json", None, None, "http://127.0.0.1:9/in?timeout=3s", None)}),
    # Tracee's legacy webhook options about the format move out of the URL.
    (["webhook:http://h/in?gotemplate=/t.j2&timeout=3s&contentType=text/plain"],
     {"webhook": ("webhook", "template", "/t.j2", None, "http://h/in?timeout=3s", None)}),
    (["forward:tcp://127.0.0.1:24224?tag=x"],
     {"forward": ("forward", "json", None, None, "tcp://127.0.0.1:24224?tag=x", None)}),
    (["none"], {}),
])
def test_legacy_outputs(values: list[str], dests: dict[str, tuple[Any, ...]]) -> None:
    got, streams = _shape(values)
    assert got == dests
    # Each legacy output is a stream of its own, named like its destination.
    assert streams == {n: ([n], [], [], "block", 1024) for n in dests}


def test_legacy_options() -> None:
    cfg = parse_outputs(["json", "option:parse-arguments", "option:exec-env", "option:ancestry=3",
                         "option:exec-hash=dev-inode", "option:stack-addresses", "option:sort-events"])
    assert (cfg.parse_arguments, cfg.exec_env, cfg.ancestry, cfg.exec_hash, cfg.stack_addresses,
            cfg.sort_events) == (True, True, 3, "dev-inode", True, True)
    assert len(cfg.warnings) == 2
    assert "stack addresses are not collected" in cfg.warnings[0]
    cfg = parse_outputs(["option:ancestry", "option:exec-hash", "sort-events"])
    assert (cfg.ancestry, cfg.exec_hash, cfg.sort_events) == (5, "", True)
    assert parse_outputs(["none", "option:exec-env"]).none


def test_destinations_and_streams() -> None:
    dests, streams = _shape([
        "destinations.audit.type=file", "destinations.audit.format=json",
        "destinations.audit.path=/var/log/pt/audit.json", "destinations.audit.rotate=10MB",
        "destinations.hook.type=webhook", "destinations.hook.url=https://siem/in",
        "destinations.hook.format=gotemplate=/etc/pt/siem.j2",
        "destinations.screen.format=table",  # type file and path stdout by default
        "destinations.fwd.type=forward", "destinations.fwd.url=tcp://fluent:24224?tag=t",
        "streams.sec.destinations=audit,hook", "streams.sec.filters.events=execve,openat",
        "streams.sec.filters.policies=p1", "streams.sec.buffer.mode=drop",
        "streams.sec.buffer.size=4096",
    ])
    assert dests == {
        "audit": ("file", "json", None, "/var/log/pt/audit.json", None, 10 << 20),
        "hook": ("webhook", "template", "/etc/pt/siem.j2", None, "https://siem/in", None),
        "screen": ("file", "table", None, None, None, None),
        "fwd": ("forward", "json", None, None, "tcp://fluent:24224?tag=t", None),
    }
    assert streams == {
        "sec": (["audit", "hook"], ["execve", "openat"], ["p1"], "drop", 4096),
        # Destinations no stream names get a filter-less stream of their own.
        "screen": (["screen"], [], [], "block", 1024),
        "fwd": (["fwd"], [], [], "block", 1024),
    }
    cfg = parse_outputs(["destinations.a.path=/tmp/a", "destinations.a.rotate.keep=2"])
    assert cfg.destinations["a"].keep == 2


def test_legacy_names_avoid_user_names() -> None:
    dests, streams = _shape(["destinations.json.format=json", "json:/tmp/x"])
    assert set(dests) == {"json", "json-2"}
    assert dests["json-2"][3] == "/tmp/x"
    assert set(streams) == {"json", "json-2"}


def test_sizes() -> None:
    assert [parse_size(s, s) for s in ("100", "100B", "2KB", "2kb", "3MB", "1GB", "4K", "5MiB")] == [
        100, 100, 2048, 2048, 3 << 20, 1 << 30, 4096, 5 << 20]
    for bad in ("0MB", "ten", "10TB", "-1", "1.5MB", "iB"):
        with pytest.raises(UsageError):
            parse_size(bad, bad)


@pytest.mark.parametrize(("values", "token", "message"), [
    (["xml"], "xml", "unknown output 'xml'"),
    (["option:nope"], "option:nope", "unknown output option 'nope'"),
    (["option:parse-arguments=1"], "option:parse-arguments=1", "takes no value"),
    (["option:ancestry=0"], "option:ancestry=0", "from 1 to 64"),
    (["option:exec-hash=sha1"], "option:exec-hash=sha1", "exec-hash mode must be one of"),
    (["none:/x"], "none:/x", "takes no path"),
    (["none", "json"], "json", "cannot be combined"),
    (["json:"], "json:", "needs a path"),
    (["gotemplate="], "gotemplate=", "needs the template file"),
    (["template:"], "template:", "needs the template file"),
    (["webhook:"], "webhook:", "needs a URL"),
    (["webhook:http://h/?gotemplate="], "webhook:http://h/?gotemplate=", "needs a template file"),
    (["json", "table"], "table", "two outputs write to stdout"),
    (["json:/tmp/x", "table:/tmp/x"], "table:/tmp/x", "two outputs write to /tmp/x"),
    (["destinations.a"], "destinations.a", "expected destinations.<name>.<key>=<value>"),
    (["destinations.a.path"], "destinations.a.path", "expected destinations.<name>.<key>=<value>"),
    (["destinations.a.colour=red"], "destinations.a.colour=red", "unknown destination key 'colour'"),
    (["destinations.a b.path=/x"], "destinations.a b.path=/x", "bad destination name 'a b'"),
    (["destinations.a.path="], "destinations.a.path=", "needs a value"),
    (["destinations.a.type=s3"], "destinations.a.type=s3", "type must be one of file, webhook, forward"),
    (["destinations.a.format=xml"], "destinations.a.format=xml", "format must be json, table or template"),
    (["destinations.a.format=template"], "destinations.a.format=template", "format must be"),
    (["destinations.a.rotate=10XB"], "destinations.a.rotate=10XB", "bad size '10XB'"),
    (["destinations.a.rotate.keep=x"], "destinations.a.rotate.keep=x", "rotate.keep must be"),
    (["destinations.a.path=/x", "destinations.a.path=/y"], "destinations.a.path=/y", "given twice"),
    (["destinations.a.rotate=1MB"], "destinations.a.rotate=1MB", "rotate= needs a path"),
    (["destinations.a.url=http://x"], "destinations.a.url=http://x", "a file takes path=, not url="),
    (["destinations.a.type=webhook"], "destinations.a.type=webhook", "a webhook needs url="),
    (["destinations.a.type=forward", "destinations.a.url=tcp://x", "destinations.a.path=/x"],
     "destinations.a.type=forward", "takes url=, not path="),
    (["streams.s.buffer.mode=fast"], "streams.s.buffer.mode=fast", "buffer mode must be block or drop"),
    (["streams.s.buffer.size=0"], "streams.s.buffer.size=0", "buffer size must be a number"),
    (["streams.s.buffer.size=x"], "streams.s.buffer.size=x", "buffer size must be a number"),
    (["streams.s.filters.events=openat"], "streams.s.filters.events=openat", "stream s has no destinations"),
    (["streams.s.destinations=nosuch"], "nosuch", "stream s: no destination named 'nosuch'"),
    (["destinations.a.format=json", "streams.s.destinations=a", "streams.t.destinations=a"], "a",
     "destination a is in two streams (s and t)"),
])
def test_bad_outputs(values: list[str], token: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_outputs(values)
    assert err.value.token == token
    assert message in err.value.message
    assert "\n" not in str(err.value)


# -- building --------------------------------------------------------------------------------


def test_build_streams_opens_files_and_checks_filters(tmp_path: Path) -> None:
    out = tmp_path / "logs" / "events.json"
    cfg = parse_outputs([f"destinations.a.path={out}", "destinations.a.format=json",
                         "streams.s.destinations=a", "streams.s.filters.events=getppid",
                         "streams.s.filters.policies=p1"])
    [s] = build_streams(cfg, names, known_policies=["p0", "p1"])
    assert s.name == "s" and s.mode == "block" and not s.threaded  # local file, block: no thread
    s.write_batch([event("getppid", matched=0b010), event("getpid", matched=0b010),
                   event("getppid", matched=0b001)])
    s.close()
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["eventName"], x["matchedPolicies"]) for x in lines] == [("getppid", ["p1"])]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700

    for extra, token in (("streams.s.filters.events=nosuch", "nosuch"),
                         ("streams.s.filters.policies=p9", "p9")):
        cfg = parse_outputs([f"destinations.a.path={out}", "streams.s.destinations=a", extra])
        with pytest.raises(UsageError) as err:
            build_streams(cfg, names, known_policies=["p0", "p1"])
        assert err.value.token == token


def test_build_streams_reports_unwritable_path_and_closes_what_it_opened(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    ok = tmp_path / "ok.json"
    cfg = parse_outputs([f"json:{ok}", f"table:{tmp_path}/file/sub/x"])
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(UsageError) as err:
        build_streams(cfg, names)
    assert str(err.value) == f"cannot open output {tmp_path}/file/sub/x: Not a directory"
    assert len(os.listdir("/proc/self/fd")) == fds
    with pytest.raises(UsageError) as err:
        build_streams(parse_outputs([f"json:{tmp_path}"]), names)
    assert err.value.message.endswith("Is a directory")


def test_build_streams_webhook_and_forward_urls_are_checked() -> None:
    with pytest.raises(UsageError) as err:
        build_streams(parse_outputs(["webhook:ftp://h/x"]), names)
    assert err.value.token == "webhook:ftp://h/x"
    assert "http:// or https://" in err.value.message
    with pytest.raises(UsageError) as err:
        build_streams(parse_outputs(["forward:tcp://h:24224?colour=red"]), names)
    assert "unknown option 'colour'" in err.value.message
    [s] = build_streams(parse_outputs(["webhook:http://127.0.0.1:9/in?timeout=2s"]), names)
    assert s.threaded and s.destinations[0].name == "webhook:http://127.0.0.1:9/in"
    s.close()


# -- the file destination --------------------------------------------------------------------


def test_rotation_keeps_whole_lines_and_n_files(tmp_path: Path) -> None:
    path = tmp_path / "out" / "ev.log"
    dest = FileDestination(str(path), rotate_bytes=100, keep=2)
    line = b"x" * 29 + b"\n"  # 30 bytes: 3 lines fit in 100
    for i in range(4):
        dest.send(line * 2, [])  # 60 bytes per batch
    dest.send(b"y" * 150 + b"\n", [])  # longer than the limit: a file of its own
    dest.send(line, [])
    dest.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["ev.log", "ev.log.1", "ev.log.2"]  # keep=2: older ones are gone
    assert path.read_bytes() == line
    assert (path.parent / "ev.log.1").read_bytes() == b"y" * 150 + b"\n"
    assert (path.parent / "ev.log.2").read_bytes() == line * 2  # 240 bytes: 90 | 90 | 60
    assert dest.rotations == 4
    for p in path.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    # Reopened: appends, and rotates counting what the file already holds.
    dest = FileDestination(str(path), rotate_bytes=100, keep=2)
    assert dest.size == 30
    dest.send(line * 3, [])  # 2 lines fill the old file to 90 bytes, the third starts a new one
    dest.close()
    assert path.read_bytes() == line
    assert (path.parent / "ev.log.1").read_bytes() == line * 3


def test_rotation_keep_zero_and_existing_mode(tmp_path: Path) -> None:
    path = tmp_path / "ev.log"
    path.write_bytes(b"")
    path.chmod(0o640)  # an existing file keeps the mode its owner gave it
    dest = FileDestination(str(path), rotate_bytes=10, keep=0)
    dest.send(b"12345678\n" * 3, [])
    dest.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.log"]
    assert path.read_bytes() == b"12345678\n"


def test_file_buffers_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "x"
    dest = FileDestination(str(path))
    dest.send(b"a\n", [])
    assert path.read_bytes() == b""
    dest.flush()
    assert path.read_bytes() == b"a\n"
    dest.send(b"b\n", [])
    big = b"c" * (1 << 16) + b"\n"  # larger than the buffer: written at once, after what was buffered
    dest.send(big, [])
    assert path.read_bytes() == b"a\nb\n" + big
    dest.close()


# -- formats ----------------------------------------------------------------------------------


def _template(tmp_path: Path, text: str) -> TemplateFormat:
    p = tmp_path / "t.j2"
    p.write_text(text)
    return TemplateFormat(str(p), JsonFormat(names).renderer)


def test_template_renders_each_event_with_its_json_document(tmp_path: Path) -> None:
    fmt = _template(tmp_path, "{{ eventName }} pid={{ hostProcessId }} ret={{ returnValue }} "
                              "{{ event.processName }} {{ matchedPolicies | join('+') }} "
                              "{{ args | map(attribute='name') | join(',') }}{{ nosuch.deeper }}\n")
    out = fmt.render([event("getppid", retval=7, matched=0b011, pid=42),
                      event("close", retval=-9, matched=0b100, fd=3)])
    assert out == (b"getppid pid=42 ret=7 x p0+p1 \n"
                   b"close pid=10 ret=-9 x p2 fd\n")
    assert fmt.errors == 0


def test_template_render_error_skips_the_event_and_counts(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    fmt = _template(tmp_path, "{{ 100 // returnValue }}\n")
    with caplog.at_level(logging.WARNING):
        out = fmt.render([event("getppid", retval=5), event("getppid", retval=0),
                          event("getppid", retval=0), event("getppid", retval=20)])
    assert out == b"20\n5\n"
    assert fmt.errors == 2
    assert len([r for r in caplog.records if "failed on a getppid event" in r.getMessage()]) == 1


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.j2"
    p.write_text("line one\n{{ eventName }}\n{% for a in args %}\n")
    with pytest.raises(UsageError) as err:
        TemplateFormat(str(p))
    assert err.value.where == f"{p}:3"
    assert str(err.value).startswith(f"{p}:3: template syntax error: ")
    with pytest.raises(UsageError) as err:
        TemplateFormat(str(tmp_path / "missing.j2"))
    assert str(err.value) == f"{tmp_path}/missing.j2: template file not found"
    # The same error through the output configuration.
    with pytest.raises(UsageError) as err:
        build_streams(parse_outputs([f"gotemplate={p}:{tmp_path}/out"]), names)
    assert err.value.where == f"{p}:3"


def test_table_header_once_per_destination(tmp_path: Path) -> None:
    a, b = ListDest("a", local=True), ListDest("b", local=True)
    b.wants_header = True  # type: ignore[attr-defined]
    fmt = TableFormat()
    s = Stream("s", [(a, fmt), (b, fmt)])
    s.write_batch([event("getppid", retval=3)])
    s.write_batch([event("getpid", retval=4)])
    s.close()
    assert len(a.payloads) == 2 and len(b.payloads) == 3
    assert b.payloads[0].split() == [b"TIME", b"UID", b"COMM", b"PID", b"TID", b"RET", b"EVENT", b"ARGS"]
    assert a.payloads == b.payloads[1:]
    assert a.payloads[0].split()[1:6] == [b"0", b"x", b"10", b"10", b"3"]


# -- streams ----------------------------------------------------------------------------------


def test_stream_filters_by_event_and_policy() -> None:
    dest = ListDest(local=True)
    s = Stream("s", [(dest, JsonFormat(names))], event_ids=[d.BY_NAME["getppid"].id],
               policies=["p2"], policy_names=names)
    evs = [event("getppid", matched=0b100), event("getppid", matched=0b011),
           event("getpid", matched=0b100), event("getppid", matched=0b111)]
    s.write_batch(evs)
    assert dest.events == [evs[0], evs[3]]
    assert (s.queued, s.delivered, s.dropped, s.errors, s.depth) == (2, 2, 0, 0, 0)
    # No filters: everything.
    every = ListDest(local=True)
    s = Stream("all", [(every, JsonFormat(names))], event_ids=[], policies=[], policy_names=names)
    s.write_batch(evs)
    assert every.events == evs


def test_two_destinations_with_two_formats_share_one_buffer(tmp_path: Path) -> None:
    j, t = ListDest("j"), ListDest("t")
    s = Stream("s", [(j, JsonFormat(names)), (t, TableFormat())], mode="drop")
    s.write_batch([event("getppid")])
    s.close()
    assert orjson.loads(j.payloads[0])["eventName"] == "getppid"
    assert b" getppid " in t.payloads[0]
    assert (s.delivered, j.closed, t.closed) == (1, True, True)


def _offer(s: Stream, batches: int, per: int) -> tuple[list[Event], float]:
    offered = []
    slowest = 0.0
    for _ in range(batches):
        batch = [event("getppid", retval=len(offered) + i) for i in range(per)]
        offered.extend(batch)
        t0 = time.monotonic()
        s.write_batch(batch)
        slowest = max(slowest, time.monotonic() - t0)
    return offered, slowest


def test_drop_mode_never_waits_and_counts_every_drop() -> None:
    slow = ListDest("slow", delay=0.2)
    s = Stream("slow", [(slow, JsonFormat(names))], size=20, mode="drop")
    offered, slowest = _offer(s, batches=200, per=7)
    assert slowest < 0.15  # never waited for the destination (one send takes 0.2 s)
    assert s.dropped > 0
    s.close()
    assert s.delivered + s.dropped == len(offered)
    assert s.delivered == len(slow.events) == s.queued
    assert s.depth == 0 and s.errors == 0
    # What was delivered is in order, every payload line matching its event.
    rets = [e.retval for e in slow.events]
    assert rets == sorted(rets)
    lines = b"".join(slow.payloads).splitlines()
    assert [orjson.loads(x)["returnValue"] for x in lines] == rets


def test_block_mode_waits_and_drops_nothing() -> None:
    slow = ListDest("slow", delay=0.02)
    s = Stream("slow", [(slow, JsonFormat(names))], size=10, mode="block")
    assert s.threaded  # not a local destination
    offered, slowest = _offer(s, batches=12, per=4)
    assert slowest >= 0.01  # the buffer was full: write_batch waited
    s.close()
    assert (s.dropped, s.errors, s.depth) == (0, 0, 0)
    assert slow.events == offered
    assert s.delivered == s.queued == len(offered)


def test_batch_larger_than_the_buffer() -> None:
    dest = ListDest("d")
    s = Stream("s", [(dest, JsonFormat(names))], size=4, mode="block")
    evs = [event("getppid", retval=i) for i in range(10)]
    s.write_batch(evs)
    s.close()
    assert dest.events == evs
    dest = ListDest("d", delay=0.05)
    s = Stream("s", [(dest, JsonFormat(names))], size=4, mode="drop")
    s.write_batch(evs)
    s.close()
    assert dest.events == evs[:4] and s.dropped == 6


def test_a_slow_stream_does_not_hold_up_another() -> None:
    slow, fast = ListDest("slow", delay=0.5), ListDest("fast", local=True)
    s_slow = Stream("slow", [(slow, JsonFormat(names))], size=5, mode="drop")
    s_fast = Stream("fast", [(fast, JsonFormat(names))])
    t0 = time.monotonic()
    total = 0
    for _ in range(50):
        batch = [event("getppid") for _ in range(3)]
        total += len(batch)
        for s in (s_slow, s_fast):
            s.write_batch(batch)
    assert time.monotonic() - t0 < 0.4  # less than one send to the slow destination
    assert len(fast.events) == total
    s_slow.close()
    s_fast.close()
    assert s_slow.delivered + s_slow.dropped == total
    assert delivery_summary([s_slow, s_fast]) == (
        f", stream slow (slow): delivered {s_slow.delivered}, dropped {s_slow.dropped}, "
        "failed 0, pending 0")


def test_failing_destination_is_counted_logged_once_and_others_still_get_events(
        caplog: pytest.LogCaptureFixture) -> None:
    bad, good = ListDest("bad", fail=OSError), ListDest("good")
    fmt = JsonFormat(names)
    s = Stream("s", [(bad, fmt), (good, fmt)], mode="drop")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            s.write_batch([event("getppid"), event("getppid")])
            s.flush()
        s.close()
    assert len(good.events) == 6
    assert (s.delivered, s.errors, s.dest_errors) == (0, 6, {"bad": 6, "good": 0})
    assert [r.getMessage() for r in caplog.records] == [
        "output bad failed (counted, keeps trying): refused"]
    assert delivery_summary([s]) == (", stream s (bad): delivered 0, dropped 0, failed 6, pending 0"
                                     ", stream s (good): delivered 6, dropped 0, failed 0, pending 0")


def test_broken_pipe_ends_an_inline_stream_at_once() -> None:
    dest = ListDest("stdout", fail=BrokenPipeError, local=True)
    s = Stream("s", [(dest, JsonFormat(names))])
    assert not s.threaded
    with pytest.raises(BrokenPipeError):
        s.write_batch([event("getppid")])
    with pytest.raises(BrokenPipeError):
        s.flush()
    assert s.errors == 1


def test_broken_pipe_in_a_worker_reaches_the_pipeline_on_the_next_call(
        caplog: pytest.LogCaptureFixture) -> None:
    dead, alive = ListDest("fifo", fail=BrokenPipeError), ListDest("other")
    fmt = JsonFormat(names)
    s = Stream("two", [(dead, fmt), (alive, fmt)], mode="drop")
    with caplog.at_level(logging.WARNING):
        s.write_batch([event("getppid")])
        _wait(lambda: s.depth == 0)
        s.write_batch([event("getppid")])  # one destination left: the stream goes on
        _wait(lambda: s.depth == 0)
    assert len(alive.events) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "output fifo closed by its reader; it gets no more events"]
    s.close()

    only = Stream("one", [(ListDest("fifo", fail=BrokenPipeError), fmt)], mode="drop")
    only.write_batch([event("getppid")])
    _wait(lambda: only.depth == 0)
    with pytest.raises(BrokenPipeError):
        only.flush()
    with pytest.raises(BrokenPipeError):
        only.write_batch([event("getppid")])
    only.close()


def test_close_gives_up_on_a_hung_destination_and_counts_what_was_left() -> None:
    release = threading.Event()

    class Hung(ListDest):
        def send(self, payload: bytes, events: list[Event]) -> None:
            release.wait(5)
            super().send(payload, events)

    dest = Hung("hung")
    s = Stream("s", [(dest, JsonFormat(names))], size=100, mode="drop")
    s.CLOSE_WAIT_S = 0.2
    s.write_batch([event("getppid")])
    _wait(lambda: s.queued == 1)
    time.sleep(0.05)  # the worker took the first batch and hangs in send
    s.write_batch([event("getppid"), event("getppid")])
    t0 = time.monotonic()
    s.close()
    assert time.monotonic() - t0 < 1
    assert s.dropped == 2  # still buffered when close() gave up
    release.set()


def test_flush_reaches_destinations_when_idle() -> None:
    dest = ListDest("d")
    s = Stream("s", [(dest, JsonFormat(names))], mode="drop")
    s.write_batch([event("getppid")])
    s.flush()
    _wait(lambda: dest.flushes >= 1)
    s.close()
    assert dest.closed


def test_counters_while_buffered() -> None:
    release = threading.Event()

    class Gate(ListDest):
        def send(self, payload: bytes, events: list[Event]) -> None:
            release.wait(5)
            super().send(payload, events)

    s = Stream("s", [(Gate("g"), JsonFormat(names))], size=8, mode="drop")
    s.write_batch([event("getppid") for _ in range(5)])
    s.write_batch([event("getppid") for _ in range(5)])
    assert (s.queued, s.dropped, s.depth) == (8, 2, 8)
    assert s.stats() == {"name": "s", "mode": "drop", "size": 8, "queued": 8, "delivered": 0,
                         "dropped": 2, "errors": 0, "depth": 8, "destinations": {"g": 0}}
    release.set()
    s.close()
    assert (s.delivered, s.depth) == (8, 0)


def test_spec_defaults() -> None:
    assert DestinationSpec("x").fmt == "table"
    assert DestinationSpec("x", type="webhook").fmt == "json"
    assert StreamSpec("s").size == 1024


def _wait(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_webhook_destination_through_a_stream(tmp_path: Path) -> None:
    """The legacy webhook syntax end to end: JSON events as one array per POST; with a
    gotemplate in the URL, the template's output as it is."""
    import http.server

    bodies: list[tuple[str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        tmpl = tmp_path / "t.j2"
        tmpl.write_text("{{ eventName }}:{{ returnValue }};")
        s1, s2 = build_streams(parse_outputs([
            f"webhook:http://127.0.0.1:{port}/json",
            f"webhook:http://127.0.0.1:{port}/tmpl?gotemplate={tmpl}&timeout=2s"]), names)
        for s in (s1, s2):
            s.write_batch([event("getppid", retval=1), event("getppid", retval=2)])
            s.close()
            assert (s.delivered, s.errors) == (2, 0)
    finally:
        server.shutdown()
        server.server_close()
    assert bodies[0][0] == "/json"
    assert [e["returnValue"] for e in orjson.loads(bodies[0][1])] == [1, 2]
    assert bodies[1] == ("/tmpl", b"getppid:1;getppid:2;")


def test_a_batch_a_format_fails_on_is_counted_and_the_backlog_still_sent(
        caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    class Gate(ListDest):
        def send(self, payload: bytes, events: list[Event]) -> None:
            release.wait(5)
            super().send(payload, events)

    class Picky(JsonFormat):
        def __init__(self) -> None:
            super().__init__(names)
            self.render = self._render  # type: ignore[method-assign]

        def _render(self, events: list[Event]) -> bytes:
            if any(e.retval < 0 for e in events):
                raise ValueError("negative")
            return self.renderer.render_batch(events)

    dest = Gate("g")
    s = Stream("s", [(dest, Picky())], mode="drop")
    with caplog.at_level(logging.WARNING):
        s.write_batch([event("getppid", retval=1)])
        _wait(lambda: s.queued == 1)
        time.sleep(0.05)  # the worker holds the first batch in send
        s.write_batch([event("getppid", retval=2), event("getppid", retval=3)])
        s.write_batch([event("getppid", retval=-1)])  # the format fails on this batch
        s.write_batch([event("getppid", retval=4)])
        release.set()
        s.close()
    # The three batches behind the first went out as one send, without the failed one.
    assert [orjson.loads(p)["returnValue"] for p in b"".join(dest.payloads).splitlines()] == [1, 2, 3, 4]
    assert len(dest.payloads) == 2
    assert (s.queued, s.delivered, s.errors, s.render_errors) == (5, 4, 1, 1)
    assert [r.getMessage() for r in caplog.records] == [
        "output format json failed on 1 events (counted, further failures not logged): negative"]


def test_json_args_are_rendered_once_per_raw_args_and_again_when_replaced() -> None:
    from pytracee.sinks.json_sink import JsonRenderer

    r = JsonRenderer(names)
    a = event("security_file_open", pathname="/etc/hosts", flags=0)
    b = event("security_file_open", pid=11, pathname="/etc/hosts", flags=0)
    a.args_key = b.args_key = b"raw-1"  # as the decoder marks events with the same raw args
    b.args = a.args = tuple(a.args)
    first, second = [orjson.loads(line) for line in r.render_batch([a, b]).splitlines()]
    assert first["args"] == second["args"] == [{"name": "pathname", "type": "string",
                                                "value": "/etc/hosts"},
                                               {"name": "flags", "type": "int32", "value": 0}]
    assert (first["processId"], second["processId"]) == (10, 11)
    assert list(r._args_json[a.event_id]) == [b"raw-1"]
    # Changed args come without the key (Event): rendered from the new values.
    b.args, b.args_key = (("/etc/passwd",) + tuple(b.args[1:])), None
    (line,) = r.render_batch([b]).splitlines()
    assert orjson.loads(line)["args"][0]["value"] == "/etc/passwd"


# -- detections in the table -------------------------------------------------------------------

_DETECTION_DEF = d.EventDef(6999, "anti_debugging", ("signatures", "default"), ())


def _stamp(ev: Event) -> str:
    secs, ns = divmod(ev.timestamp, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f":{ns // 1000:06d}"


def _detection(comm: str = "python3", exe: str = "/usr/bin/python3.11", severity: Any = 3,
               sig_name: str = "Anti-Debugging detected",
               ancestors: tuple[tuple[str, int], ...] = (("bash", 1200), ("sshd", 900)),
               ) -> tuple[Detection, ProcessTree]:
    """A TRC-102 detection of ptrace(PTRACE_TRACEME) by `comm` (pid 1234), with the
    process and its `ancestors` (nearest first) in a process tree."""
    c = task(comm, 1234, ancestors[0][1] if ancestors else 1)
    ptrace = d.BY_NAME["ptrace"]
    base = Event(SIG_BOOT + START + 1_000_000, 0, 1, ptrace.id, ptrace.id, 0, 0, 0, c, ptrace,
                 [0, 1234, 0, 0])
    md = SignatureMetadata("TRC-102", sig_name, "anti_debugging", properties={"Severity": severity})
    det = Detection(Finding({"ptrace_request": "PTRACE_TRACEME"}, base, md), _DETECTION_DEF, 1)
    tree = ProcessTree()
    entity = c.parent_entity
    tree._put(Process(c.process_entity, 1234, c.host_ppid, entity, START, comm, exe, (), 0, 1))
    for i, (pcomm, pid) in enumerate(ancestors):
        ppid = ancestors[i + 1][1] if i + 1 < len(ancestors) else 0  # the last one's is unknown
        parent = entity_id(ppid, i + 1) if ppid else 0
        tree._put(Process(entity, pid, ppid, parent, i, pcomm, f"/bin/{pcomm}", (), 0, 1))
        entity = parent
    c.proc = tree.get(c.process_entity)
    return det, tree


def _chain(tree: ProcessTree) -> Any:
    return lambda entity, depth: [(p.comm, p.pid) for p in tree.ancestry(entity, depth)]


def _table(tree: ProcessTree, colour: bool) -> TableFormat:
    return TableFormat(parent_comm=lambda e: p.comm if (p := tree.get(e)) else None,
                       parent_chain=_chain(tree), colour=colour)


_COLUMNS = "0     python3         1234    1234    0    anti_debugging       "
_PLAIN = ("HIGH TRC-102 Anti-Debugging detected, triggered by ptrace "
          "(request: PTRACE_TRACEME, pid: 1234), "
          "process: python3(1234) <- bash(1200) <- sshd(900), exe: /usr/bin/python3.11, "
          "ptrace_request: PTRACE_TRACEME\n")
_COLOURED = ("\x1b[1;31mHIGH\x1b[0m \x1b[1mTRC-102 Anti-Debugging detected\x1b[0m, triggered by "
             "ptrace (request: PTRACE_TRACEME, pid: 1234), "
             "process: python3(1234) <- bash(1200) <- sshd(900), exe: /usr/bin/python3.11, "
             "ptrace_request: PTRACE_TRACEME\n")


def test_detection_line_plain_and_coloured() -> None:
    det, tree = _detection()
    prefix = f"{_stamp(det)} {_COLUMNS}"
    assert _table(tree, colour=False).render([det]).decode() == prefix + _PLAIN
    assert _table(tree, colour=True).render([det]).decode() == prefix + _COLOURED
    # The triggering event (not a detection) is as before, colour or not.
    base_line = (f"{_stamp(det)} 0     python3         1234    1234    0    "
                 "ptrace               request: PTRACE_TRACEME, pid: 1234, addr: 0, data: 0 "
                 "[exe: /usr/bin/python3.11, parent: bash(1200)]\n")
    for colour in (False, True):
        assert _table(tree, colour).render([det.triggered_by]).decode() == base_line
    # The header is the same, and the columns line up with it.
    assert _table(tree, True).header() == _table(tree, False).header()
    assert _table(tree, True).header().decode().index("ARGS") == len(prefix)


@pytest.mark.parametrize(("severity", "label", "coloured"), [
    (0, "INFO", "\x1b[36mINFO\x1b[0m"), (1, "LOW", "\x1b[34mLOW\x1b[0m"),
    (2, "MEDIUM", "\x1b[33mMEDIUM\x1b[0m"), (3, "HIGH", "\x1b[1;31mHIGH\x1b[0m"),
    (4, "CRITICAL", "\x1b[1;97;41mCRITICAL\x1b[0m"),
    # A signature file's odd value: shown, without colour.
    (7, "SEVERITY 7", "SEVERITY 7"), ("severe", "SEVERITY ?", "SEVERITY ?"),
])
def test_detection_severity_labels(severity: Any, label: str, coloured: str) -> None:
    det, tree = _detection(severity=severity)
    prefix = f"{_stamp(det)} {_COLUMNS}"

    def args(colour: bool) -> str:
        line = _table(tree, colour).render([det]).decode()
        assert line.startswith(prefix)
        return line[len(prefix):]

    assert args(True).startswith(f"{coloured} \x1b[1mTRC-102 Anti-Debugging detected\x1b[0m, ")
    assert args(False).startswith(f"{label} TRC-102 Anti-Debugging detected, ")


def test_detection_line_escapes_hostile_names_inside_colour() -> None:
    hostile = "\x1b[2J\n"
    det, tree = _detection(comm=f"ev{hostile}il", exe=f"/tmp/{hostile}x",
                           sig_name=f"Bad{hostile}sig", ancestors=((f"sh{hostile}", 1200),))
    line = _table(tree, colour=True).render([det]).decode()
    assert line.count("\n") == 1 and line.endswith("\n")
    # The only escape codes are ours: severity and bold, each reset.
    assert line.count("\x1b") == 4
    assert "\x1b[2J" not in line
    esc = "\\x1b[2J\\x0a"
    assert f" ev{esc}il " in line  # the COMM column
    assert (f"\x1b[1;31mHIGH\x1b[0m \x1b[1mTRC-102 Bad{esc}sig\x1b[0m, triggered by ptrace "
            "(request: PTRACE_TRACEME, pid: 1234), ") in line
    assert f"process: ev{esc}il(1234) <- sh{esc}(1200), exe: /tmp/{esc}x, " in line


def test_detection_chain_depth_and_without_the_tree() -> None:
    seven = tuple((f"p{i}", 1000 - i) for i in range(7))
    det, tree = _detection(ancestors=seven)
    line = _table(tree, colour=False).render([det]).decode()
    assert ("process: python3(1234) <- p0(1000) <- p1(999) <- p2(998) <- p3(997) <- p4(996) "
            "<- ..., exe:") in line
    # No process tree: the process alone, and no exe.
    det.ctx.proc = None
    line = TableFormat(colour=False).render([det]).decode()
    assert line.endswith(", triggered by ptrace (request: PTRACE_TRACEME, pid: 1234), "
                         "process: python3(1234), "
                         "ptrace_request: PTRACE_TRACEME\n")
    # `pytracee analyze`'s TableSink: no chain, no colour.
    sink = TableSink(ListText())
    assert sink.line(det) == line


class ListText:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def test_enrichment_parent_chain() -> None:
    det, tree = _detection()
    on = Enrichment(EnrichOptions(containers=False), None, 0)  # type: ignore[arg-type]
    on.tree = tree
    assert on.parent_chain(det.ctx.process_entity, 5) == [("bash", 1200), ("sshd", 900)]
    assert on.parent_chain(det.ctx.process_entity, 1) == [("bash", 1200)]
    assert on.parent_chain(12345, 5) == []
    off = Enrichment(EnrichOptions(proctree=False, containers=False), None, 0)  # type: ignore[arg-type]
    assert off.tree is None and off.parent_chain(det.ctx.process_entity, 5) == []


class FakeStdout:
    def __init__(self, tty: bool, fd: int = -1) -> None:
        self.tty = tty
        self.fd = fd

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        return self.fd

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def test_colour_only_for_a_table_on_a_terminal_stdout_without_no_color() -> None:
    tty, pipe = FakeStdout(True), FakeStdout(False)
    table = DestinationSpec("t", format="table")
    assert use_colour(table, tty, {}) is True
    assert use_colour(table, tty, {"NO_COLOR": ""}) is True  # no-color.org: empty is unset
    assert use_colour(table, tty, {"NO_COLOR": "1"}) is False
    assert use_colour(table, tty, {"NO_COLOR": "0"}) is False  # any non-empty value
    assert use_colour(table, pipe, {}) is False
    for path in ("stdout", "-", "/dev/stdout"):
        assert use_colour(DestinationSpec("t", format="table", path=path), tty, {}) is True
    for spec in (DestinationSpec("t", format="table", path="/tmp/t.log"),
                 DestinationSpec("t", format="table", path="stderr"),
                 DestinationSpec("j", format="json"),  # json on stdout
                 DestinationSpec("g", format="template", template="/t.j2"),
                 DestinationSpec("w", type="webhook", format="table", url="http://h/in"),
                 DestinationSpec("f", type="forward", format="table", url="tcp://h:24224")):
        assert use_colour(spec, tty, {}) is False, spec

    class Closed:
        def isatty(self) -> bool:
            raise ValueError("I/O operation on closed file")

    assert use_colour(table, Closed(), {}) is False


def test_colour_reads_sys_stdout_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    table = DestinationSpec("t", format="table")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr("sys.stdout", FakeStdout(True))
    assert use_colour(table) is True
    monkeypatch.setenv("NO_COLOR", "yes")
    assert use_colour(table) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr("sys.stdout", FakeStdout(False))
    assert use_colour(table) is False


def test_build_streams_colours_the_terminal_table_only(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    det, tree = _detection()
    screen = tmp_path / "screen"
    fd = os.open(screen, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setattr("sys.stdout", FakeStdout(True, fd))
        log = tmp_path / "t.log"
        cfg = parse_outputs(["destinations.screen.format=table", "destinations.file.format=table",
                             f"destinations.file.path={log}",
                             "streams.s.destinations=screen,file"])
        [s] = build_streams(cfg, names, parent_chain=_chain(tree))
        # One stream, two table formats: the terminal's and the file's.
        assert sorted(g.fmt.colour for g in s._groups) == [False, True]
        s.write_batch([det])
        s.close()
        prefix = f"{_stamp(det)} {_COLUMNS}"
        assert screen.read_text().splitlines(keepends=True)[1] == prefix + _COLOURED
        assert log.read_text().splitlines(keepends=True)[1] == prefix + _PLAIN
        # Not a terminal, or NO_COLOR: the same table, plain.
        for tty, no_color in ((False, ""), (True, "1")):
            monkeypatch.setenv("NO_COLOR", no_color)
            monkeypatch.setattr("sys.stdout", FakeStdout(tty, fd))
            [s] = build_streams(parse_outputs([]), names)
            assert [g.fmt.colour for g in s._groups] == [False]
            s.close()
    finally:
        os.close(fd)
