"""Command-line parsing that needs no kernel: outputs, buffers, `list events`."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from pytracee.cli import OutputConfig, _ring_bytes, main, parse_outputs
from pytracee.ebpf.tracer import default_ring_bytes
from pytracee.errors import UsageError
from pytracee.events.definitions import EVENTS


@pytest.mark.parametrize(("values", "expected"), [
    # (format, path) of each destination; the full syntax is in test_sinks.py
    ([], [("table", None)]),
    (["json"], [("json", None)]),
    (["json:/tmp/x.json"], [("json", "/tmp/x.json")]),
    (["table", "option:parse-arguments"], [("table", None)]),
    (["none", "option:exec-env"], []),
    (["json", "table:/tmp/t"], [("json", None), ("table", "/tmp/t")]),
])
def test_outputs(values: list[str], expected: list[tuple[str, str | None]]) -> None:
    cfg = parse_outputs(values)
    assert isinstance(cfg, OutputConfig)
    assert [(d.fmt, d.path) for d in cfg.destinations.values()] == expected


@pytest.mark.parametrize(("value", "token"), [
    ("xml", "xml"), ("option:nope", "option:nope"), ("none:/x", "none:/x"), ("gotemplate=", "gotemplate="),
])
def test_bad_outputs(value: str, token: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_outputs([value])
    assert err.value.token == token


def test_ring_size() -> None:
    assert _ring_bytes([]) == default_ring_bytes()  # the host's share (tests/unit/test_ring_size.py)
    assert _ring_bytes(["kernel.events=16384"]) == 64 << 20
    for bad in ("kernel.events=3", "kernel.events=x", "kernel.events=0", "pipeline=10", "kernel.events"):
        with pytest.raises(UsageError):
            _ring_bytes([bad])


def test_list_events_json_lists_every_public_event() -> None:
    res = CliRunner().invoke(main, ["list", "events", "--json"])
    assert res.exit_code == 0
    rows = [orjson.loads(line) for line in res.output.splitlines()]
    assert len(rows) == sum(1 for d in EVENTS.values() if not d.internal)
    openat = next(r for r in rows if r["name"] == "openat")
    assert openat == {"id": 257, "name": "openat", "sets": ["syscalls", "fs", "fs_file_ops"],
                      "args": [{"name": "dirfd", "type": "int32"}, {"name": "pathname", "type": "string"},
                               {"name": "flags", "type": "int32"}, {"name": "mode", "type": "uint16"}]}


def test_list_events_filters_and_bad_pattern() -> None:
    res = CliRunner().invoke(main, ["list", "events", "sched_process_*"])
    assert res.exit_code == 0
    assert [line.split()[1] for line in res.output.splitlines()] == [
        "sched_process_fork", "sched_process_exec", "sched_process_exit"]
    res = CliRunner().invoke(main, ["list", "events", "nosuchevent"])
    assert res.exit_code == 2


def test_list_events_knows_every_set_and_signature_that_events_accepts() -> None:
    from pytracee.cli import Registry, default_event_ids, load_signatures
    from pytracee.events.definitions import all_sets, events_in_set
    from pytracee.policy.filters import parse_events

    sigs = load_signatures(())  # what `pytracee` loads before it parses -e
    sets = sorted(s for s in all_sets() if events_in_set(s))
    assert {"signatures", "default", "fs", "net", "containers"} <= set(sets)
    for s in sets:
        selected = parse_events([f"tag={s}"], Registry(), default_event_ids()).event_ids
        res = CliRunner().invoke(main, ["list", "events", f"tag={s}"])
        assert res.exit_code == 0, (s, res.output)
        assert {int(line.split()[0]) for line in res.output.splitlines()} == set(selected), s
    res = CliRunner().invoke(main, ["list", "events", "tag=default"])
    listed = {line.split()[1] for line in res.output.splitlines()}
    assert {s.metadata.event_name for s in sigs} <= listed
    assert {"sched_process_exec", "security_socket_connect", "anti_debugging"} <= listed
    res = CliRunner().invoke(main, ["list", "events", "anti_debugging"])
    assert res.exit_code == 0 and res.output.split()[1] == "anti_debugging"
    # A set no -e accepts is refused alike.
    res = CliRunner().invoke(main, ["list", "events", "tag=nosuchset"])
    assert res.exit_code == 2 and "unknown event set 'nosuchset'" in res.output
