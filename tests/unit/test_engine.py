"""The signature engine on constructed events: dispatch, origin, chaining,
isolation, parameters, and the policy bits of detections."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from pytracee.detect.engine import CHAIN_DEPTH, Detection, Engine, active, register
from pytracee.detect.loader import builtin_signatures, load_params
from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata
from pytracee.enrich.containers import Container
from pytracee.errors import UsageError
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext

BOOT = 1_700_000_000_000_000_000


def ctx(pid: int = 10, comm: bytes = b"x") -> TaskContext:
    return TaskContext((1, 1, 1, 1, pid, pid, 1, pid, pid, 1, 0, 0, 1, 1, comm, b"h"), BOOT)


def event(name: str, c: TaskContext | None = None, matched: int = 1, **args: Any) -> Event:
    definition = d.BY_NAME[name]
    return Event(BOOT, 0, matched, definition.id, -1, 0, 0, 0, c or ctx(), definition,
                 [args.get(a.name) for a in definition.args])


def sig(sig_id: str, event_name: str, selects: tuple[EventSelector, ...], fn: Any,
        **attrs: Any) -> Signature:
    cls = type(f"Sig{sig_id.replace('-', '')}", (Signature,), {
        "metadata": SignatureMetadata(sig_id, f"test {sig_id}", event_name),
        "selected_events": selects, "on_event": fn, **attrs})
    return cls()  # type: ignore[no-any-return]


def test_dispatch_only_selected_events_and_origin() -> None:
    seen: list[tuple[str, str]] = []

    def on(self: Signature, ev: Event) -> None:
        seen.append((self.metadata.id, ev.name))
        self.match(ev, path=ev.arg("pathname"))

    s_any = sig("T-1", "t_any", (EventSelector("sched_process_exec"),), on)
    s_ctr = sig("T-2", "t_ctr", (EventSelector("sched_process_exec", "container"),), on)
    s_host = sig("T-3", "t_host", (EventSelector("sched_process_exec", "host"),), on)
    engine = Engine([s_any, s_ctr, s_host])
    in_ctr = ctx(20)
    in_ctr.container = Container("c" * 64, "docker", 5, "/docker/x", False, 0)
    out = engine.process([event("sched_process_exec", pathname="/bin/a"),
                          event("openat", pathname="/etc/x"),
                          event("sched_process_exec", in_ctr, pathname="/bin/b")])
    assert seen == [("T-1", "sched_process_exec"), ("T-3", "sched_process_exec"),
                    ("T-1", "sched_process_exec"), ("T-2", "sched_process_exec")]
    names = [e.name for e in out]
    assert names == ["sched_process_exec", "t_any", "t_host", "openat", "sched_process_exec",
                     "t_any", "t_ctr"]
    det = out[1]
    assert isinstance(det, Detection)
    assert det.args == ["/bin/a"] and det.definition.args[0].name == "path"
    assert det.triggered_by is out[0] and det.ctx is out[0].ctx
    assert det.event_id >= d.SIGNATURE_EVENTS_START


def test_chaining_and_its_depth_limit() -> None:
    def first(self: Signature, ev: Event) -> None:
        self.match(ev, level=1)

    def relay(self: Signature, ev: Event) -> None:
        self.match(ev, level=ev.arg("level") + 1)

    sigs = [sig("C-0", "chain_0", (EventSelector("sched_process_exec"),), first)]
    for i in range(1, 8):
        sigs.append(sig(f"C-{i}", f"chain_{i}", (EventSelector(f"chain_{i - 1}"),), relay))
    engine = Engine(sigs)
    out = engine.process([event("sched_process_exec", pathname="/x")])
    levels = [e.arg("level") for e in out[1:]]
    assert levels == list(range(1, CHAIN_DEPTH + 1))  # cut at depth 5
    assert engine.counts.chain_depth_exceeded == 1
    # Selecting the last link pulls in the whole chain (and the kernel event it starts from).
    assert [s.metadata.id for s in active(sigs, {d.BY_NAME["chain_3"].id})] == [
        "C-0", "C-1", "C-2", "C-3"]
    assert d.BY_NAME["sched_process_exec"].id in d.dependencies(d.BY_NAME["chain_3"].id)


def test_a_crashing_signature_is_isolated_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def boom(self: Signature, ev: Event) -> None:
        raise RuntimeError("bad signature")

    def ok(self: Signature, ev: Event) -> None:
        self.match(ev)

    engine = Engine([sig("X-1", "x_bad", (EventSelector("ptrace"),), boom),
                     sig("X-2", "x_ok", (EventSelector("ptrace"),), ok)])
    with caplog.at_level(logging.WARNING):
        out = engine.process([event("ptrace", request=0) for _ in range(3)])
    assert [e.name for e in out].count("x_ok") == 3
    assert engine.counts.by_signature["X-1"].errors == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "X-1" in msgs[0] and "bad signature" in msgs[0]


def test_a_slow_signature_is_counted() -> None:
    def slow(self: Signature, ev: Event) -> None:
        time.sleep(0.01)

    from pytracee.detect.engine import TIME_EVERY

    engine = Engine([sig("S-1", "s_slow", (EventSelector("ptrace"),), slow)])
    engine.process([event("ptrace", request=0) for _ in range(TIME_EVERY)])  # one call is timed
    assert engine.counts.by_signature["S-1"].slow == 1


def test_prefilters_call_signatures_only_for_matching_arguments() -> None:
    calls: list[tuple[str, str]] = []

    def on(self: Signature, ev: Event) -> None:
        calls.append((self.metadata.id, ev.arg("pathname")))

    etc = sig("F-1", "f_etc", (EventSelector("security_file_open", field="pathname",
                                             prefixes=("/etc/",), suffixes=(".conf",)),), on)
    mem = sig("F-2", "f_mem", (EventSelector("security_file_open", field="pathname",
                                             suffixes=("/mem",), write_only=True),), on)
    sock = sig("F-3", "f_sock", (EventSelector("security_file_open", field="pathname",
                                               contains=("docker.sock",)),), on)
    engine = Engine([etc, mem, sock])
    opens = [("/etc/passwd", 0), ("/usr/lib/libc.so.6", 0), ("/proc/1/mem", 0),
             ("/proc/1/mem", 1), ("/run/docker.sock.x", 2), ("/opt/a.conf", 0)]
    engine.process([event("security_file_open", pathname=p, flags=f) for p, f in opens])
    assert calls == [("F-1", "/etc/passwd"), ("F-2", "/proc/1/mem"),
                     ("F-3", "/run/docker.sock.x"), ("F-1", "/opt/a.conf")]


def test_detections_go_to_the_policies_that_selected_the_signature() -> None:
    def on(self: Signature, ev: Event) -> None:
        self.match(ev)

    s = sig("P-1", "p_sig", (EventSelector("ptrace"),), on)
    engine = Engine([s])
    sig_id = d.BY_NAME["p_sig"].id
    bits = {d.BY_NAME["ptrace"].id: 0b01, sig_id: 0b10}
    out = engine.process([event("ptrace", matched=0b11, request=0),
                          event("ptrace", matched=0b01, request=0)], lambda v: bits)
    assert [(e.name, e.matched) for e in out] == [("ptrace", 0b11), ("p_sig", 0b10), ("ptrace", 0b01)]


def test_allow_list_parameters_from_the_config_file(tmp_path: Any) -> None:
    def on(self: Signature, ev: Event) -> None:
        if ev.ctx.comm not in self.params.get("allowed_processes", []):
            self.match(ev)

    cfg = tmp_path / "sigs.yaml"
    cfg.write_text("A-1:\n  allowed_processes: [kube-proxy]\n")
    engine = Engine([sig("A-1", "a_sig", (EventSelector("ptrace"),), on)], load_params(str(cfg)))
    out = engine.process([event("ptrace", ctx(1, b"kube-proxy"), request=0),
                          event("ptrace", ctx(2, b"evil"), request=0)])
    assert [(e.name, e.ctx.comm) for e in out if e.name == "a_sig"] == [("a_sig", "evil")]
    cfg.write_text("A-1: [x]\n")
    with pytest.raises(UsageError):
        load_params(str(cfg))


def test_unknown_selected_event_and_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event 'no_such_event'"):
        register([sig("U-1", "u_sig", (EventSelector("no_such_event"),), lambda s, e: None)])
    a = sig("D-1", "d_a", (EventSelector("ptrace"),), lambda s, e: None)
    b = sig("D-1", "d_b", (EventSelector("ptrace"),), lambda s, e: None)
    with pytest.raises(ValueError, match="two signatures with id D-1"):
        register([a, b])


def test_builtins_have_tracee_ids_and_known_events() -> None:
    sigs = builtin_signatures()
    register(sigs)
    ids = [s.metadata.id for s in sigs]
    assert len(ids) == len(set(ids))
    for s in sigs:
        md = s.metadata
        assert md.id.startswith("TRC-") and 0 <= md.severity <= 4
        assert md.properties["external_id"]
        assert all(d.lookup(e.name) is not None for e in s.selected_events)


def test_threat_selectors_pick_signatures_by_severity_and_mitre(tmp_path: Any) -> None:
    from pytracee.policy.compile import compile_policies
    from pytracee.policy.files import load_policies
    from pytracee.policy.filters import threat_events

    register(builtin_signatures())
    names = lambda expr: {d.EVENTS[e].name for e in threat_events(expr)}  # noqa: E731
    high = names("threat.severity>=high")
    assert {"fileless_execution", "ptrace_code_injection", "stdio_over_socket"} <= high
    assert "anti_debugging" not in high and "dynamic_code_loading" not in high
    assert names("threat.severity=low") >= {"anti_debugging"}
    assert names("threat.mitre.technique=T1055") >= {"ptrace_code_injection"}
    assert "anti_debugging" not in names("threat.mitre.technique=T1055")
    assert names('threat.mitre.tactic="Defense Evasion"') >= {
        "anti_debugging", "dynamic_code_loading", "fileless_execution", "ptrace_code_injection"}
    policy = tmp_path / "p.yaml"
    policy.write_text("type: policy\nname: high\nscope: [global]\nrules:\n"
                      "  - event: threat.severity>=high\n")
    [p] = compile_policies(load_policies([str(policy)])).policies
    assert {d.EVENTS[e].name for e in p.selection.event_ids} == high
