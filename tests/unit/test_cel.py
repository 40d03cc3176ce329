"""YAML+CEL detectors: loading (metadata, requirements, errors with file:line),
the CEL environment, evaluation rules and the examples in signatures/yaml."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytracee.detect.cel import CelSignature, load_yaml_detectors
from pytracee.detect.engine import Detection, Engine
from pytracee.detect.signature import EventSelector, Finding, SignatureContext
from pytracee.enrich.containers import Container
from pytracee.enrich.runtime_api import ContainerInfo
from pytracee.errors import UsageError
from pytracee.events.event import Event
from tests.unit.signature_fixtures import (
    BOOT,
    PID,
    PPID,
    START,
    exec_event,
    file_open_event,
    make_event,
    ptrace_event,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "signatures" / "yaml"


def examples() -> dict[str, CelSignature]:
    sigs, errors = load_yaml_detectors([str(EXAMPLES)])
    assert errors == []
    return {s.metadata.event_name: s for s in sigs}


def run(sig: CelSignature, *events: Event) -> list[Finding]:
    found: list[Finding] = []
    sig.init(SignatureContext(found.append, {}))
    for ev in events:
        sig.on_event(ev)
    return found


def detector(body: str, *, lists: dict[str, list[str]] | None = None,
             events: str = "- name: sched_process_exec", known: Any = None) -> CelSignature:
    """A detector around `body` (conditions/output, indented at top level)."""
    text = textwrap.dedent("""\
        type: detector
        id: TST-1
        produced_event:
          name: tst_event
        requirements:
          events:
        {events}
        """).format(events=textwrap.indent(events, "    ")) + textwrap.dedent(body)
    return CelSignature.from_yaml(text, "t.yaml", lists, known)


def write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(textwrap.dedent(text))
    return p


# ---------------------------------------------------------------------------
# The examples
# ---------------------------------------------------------------------------

def test_example_metadata_exact() -> None:
    sigs = examples()
    assert set(sigs) == {"anti_debugging", "fileless_execution", "illegitimate_shell"}
    md = sigs["anti_debugging"].metadata
    assert (md.id, md.name, md.event_name, md.version, md.tags) == (
        "TRC-102", "Anti-Debugging detected", "anti_debugging", "1.0.0", ("linux", "container"))
    assert md.description.startswith("A process used anti-debugging techniques")
    assert dict(md.properties) == {
        "Severity": 1, "external_id": "T1622", "Technique": "Debugger Evasion",
        "Category": "defense-evasion", "MITRE ATT&CK": "Defense Evasion: Debugger Evasion"}
    assert md.severity == 1
    md = sigs["fileless_execution"].metadata
    assert (md.id, md.event_name, md.severity) == ("TRC-105", "fileless_execution", 3)
    assert dict(md.properties) == {
        "Severity": 3, "external_id": "T1620", "Technique": "Reflective Code Loading",
        "Category": "defense-evasion",
        "MITRE ATT&CK": "Defense Evasion: Reflective Code Loading"}
    md = sigs["illegitimate_shell"].metadata
    assert (md.id, md.severity, md.properties["external_id"]) == ("TRC-1016", 2, "T1190")


def test_example_selected_events() -> None:
    sigs = examples()
    assert sigs["anti_debugging"].selected_events == (EventSelector("ptrace", "*"),)
    assert sigs["fileless_execution"].selected_events == (EventSelector("sched_process_exec", "*"),)
    assert sigs["illegitimate_shell"].selected_events == (EventSelector("sched_process_exec", "*"),)


def test_anti_debugging_fires_on_ptrace_traceme_only() -> None:
    sig = examples()["anti_debugging"]
    assert len(run(sig, ptrace_event(0))) == 1
    assert run(sig, ptrace_event(16)) == []
    # Decoded arguments (the request's name) match too.
    decoded = make_event("ptrace", {"request": "PTRACE_TRACEME", "pid": 0})
    found = run(sig, decoded)
    assert len(found) == 1 and found[0].data == {"ptrace_request": "PTRACE_TRACEME"}
    assert sig.eval_errors == 0


def test_fileless_execution() -> None:
    sig = examples()["fileless_execution"]
    found = run(sig, exec_event("memfd:x"), exec_event("/usr/bin/ls"),
                exec_event("/dev/shm/a"), exec_event("/run/shm/b"), exec_event("/tmp/memfd:x"))
    assert [f.data["pathname"] for f in found] == ["memfd:x", "/dev/shm/a", "/run/shm/b"]
    assert found[0].data == {"pathname": "memfd:x", "argv": "x"}
    assert found[0].signature is sig.metadata
    assert found[0].event.name == "sched_process_exec"


def test_illegitimate_shell_uses_the_shared_list() -> None:
    sig = examples()["illegitimate_shell"]
    hit = exec_event("/bin/sh", comm="sh", prev_comm="nginx")
    found = run(sig, hit, exec_event("/bin/sh", comm="sh", prev_comm="bash"),
                exec_event("/bin/ls", comm="ls", prev_comm="nginx"))
    assert len(found) == 1 and found[0].event is hit
    assert found[0].data == {"shell": "sh", "parent_comm": "nginx", "pathname": "/bin/sh"}


def test_examples_in_the_engine_become_detections() -> None:
    engine = Engine(list(examples().values()))
    out = engine.process([ptrace_event(0), exec_event("memfd:x"), exec_event("/bin/ls")])
    dets = [e for e in out if isinstance(e, Detection)]
    assert [(d.name, d.data) for d in dets] == [
        ("anti_debugging", {"ptrace_request": "PTRACE_TRACEME"}),
        ("fileless_execution", {"pathname": "memfd:x", "argv": "x"})]


# ---------------------------------------------------------------------------
# Load errors: file:line, one line, the other files still load
# ---------------------------------------------------------------------------

def test_cel_syntax_error_names_the_condition_line_and_others_load(tmp_path: Path) -> None:
    for p in EXAMPLES.glob("*.yaml"):
        shutil.copy(p, tmp_path)
    bad = write(tmp_path, "bad.yaml", """\
        type: detector
        id: TST-9
        produced_event:
          name: tst_bad
        requirements:
          events:
            - name: openat
        conditions:
          - getEventData("flags") == 0
          - getEventData("pathname").startsWith("/etc" ||
        """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert sorted(s.metadata.id for s in sigs) == ["TRC-1016", "TRC-102", "TRC-105"]
    assert len(errors) == 1
    err = errors[0]
    assert err.where == f"{bad}:10"
    assert "condition 2" in err.message and "\n" not in str(err)


def test_literal_block_error_points_at_the_line_inside_it() -> None:
    with pytest.raises(UsageError) as ei:
        detector("""\
            conditions:
              - |
                getEventData("pathname") != "" &&
                getEventData("pathname").startsWith(
            """)
    assert ei.value.where == "t.yaml:11"


def test_unknown_string_list_is_a_load_error(tmp_path: Path) -> None:
    write(tmp_path, "lists.yaml", """\
        type: string_list
        name: SHELLS
        values: [sh, bash]
        """)
    p = write(tmp_path, "d.yaml", """\
        type: detector
        id: TST-2
        produced_event: {name: tst_two}
        requirements:
          events:
            - name: sched_process_exec
        conditions:
          - workload.process.name in SHELLS
          - workload.process.name in SHELL_BINARIES
        """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert sigs == []
    assert [e.where for e in errors] == [f"{p}:9"]
    assert "unknown string list 'SHELL_BINARIES'" in errors[0].message
    assert "SHELLS" in errors[0].message  # the lists it could have meant


def test_string_lists_are_per_directory(tmp_path: Path) -> None:
    write(tmp_path / "a", "lists.yaml", "type: string_list\nname: ONLY_A\nvalues: [x]\n")
    write(tmp_path / "b", "d.yaml", """\
        type: detector
        id: TST-3
        produced_event: {name: tst_three}
        requirements:
          events: [{name: sched_process_exec}]
        conditions: [workload.process.name in ONLY_A]
        """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert sigs == [] and "unknown string list 'ONLY_A'" in errors[0].message


_HEAD = ("type: detector\nid: X\nproduced_event: {name: x_ev}\nrequirements:\n"
         "  events: [{name: openat}]\n")  # 5 lines


@pytest.mark.parametrize(("text", "line", "words"), [
    (_HEAD + "condition: [true]\n", 6,
     "unknown key 'condition' (did you mean 'conditions'?)"),
    (_HEAD.replace("openat", "opnat"), 5, "unknown event 'opnat' (did you mean 'openat'?)"),
    (_HEAD + "threat: {severity: severe}\n", 6, "unknown severity 'severe'"),
    (_HEAD.replace("{name: x_ev}", "{name: execve}"), 3, "already the name of a kernel event"),
    (_HEAD.replace("[{name: openat}]", "\n    - name: openat\n      data_filters: [nosuch=1]"),
     7, "no data field 'nosuch'"),
    (_HEAD + "conditions:\n  - workload.process.pidd == 1\n", 7,
     "'workload.process' has no field 'pidd' (did you mean 'workload.process.pid'?)"),
    (_HEAD + "conditions:\n  - process.getAncestry(1).size() > 0\n", 7,
     "datastore function process.getAncestry() is not supported"),
    (_HEAD + "conditions:\n  - getEventData(\"flags\")\n  - 1 + 1\n", 8,
     "condition 2 must be a boolean expression; this one gives int"),
    (_HEAD.replace("{name: x_ev}", "{name: x_ev, fields: [{name: a, type: string}]}")
     + "output:\n  fields:\n    - {name: b, expression: '1'}\n", 8,
     "output field 'b' is not declared"),
    (_HEAD + "output:\n  fields:\n    - name: a\n      expression: getEventData(\n", 9,
     "output field 'a'"),
    (_HEAD.replace("openat}]", "openat}"), 6, "invalid YAML"),  # PyYAML: at the stream end
    ("type: rule\n", 1, "unknown document type 'rule'"),
    ("type: string_list\nname: shells\nvalues: [sh]\n", 2, "must be UPPER_SNAKE_CASE"),
])
def test_load_errors(tmp_path: Path, text: str, line: int, words: str) -> None:
    p = write(tmp_path, "x.yaml", text)
    write(tmp_path, "ok.yaml", """\
        type: detector
        id: OK-1
        produced_event: {name: ok_event}
        requirements:
          events: [{name: openat}]
        """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert [s.metadata.id for s in sigs] == ["OK-1"]
    assert len(errors) == 1, errors
    assert errors[0].where == f"{p}:{line}", str(errors[0])
    assert words in errors[0].message, errors[0].message
    assert "\n" not in str(errors[0])


def test_duplicate_ids_and_missing_paths(tmp_path: Path) -> None:
    body = "type: detector\nid: DUP\nproduced_event: {{name: {}}}\nrequirements:\n" \
           "  events: [{{name: openat}}]\n"
    write(tmp_path, "a.yaml", body.format("dup_a"))
    b = write(tmp_path, "b.yaml", body.format("dup_b"))
    sigs, errors = load_yaml_detectors([str(tmp_path), str(tmp_path / "nope")])
    assert [s.metadata.event_name for s in sigs] == ["dup_a"]
    assert [e.where for e in errors] == [str(tmp_path / "nope"), f"{b}:1"]
    assert "already used" in errors[1].message


# ---------------------------------------------------------------------------
# Evaluation rules
# ---------------------------------------------------------------------------

def test_eval_error_is_false_but_counted(caplog: pytest.LogCaptureFixture) -> None:
    sig = detector("""\
        conditions:
          - getEventData("request").startsWith("PTRACE")
        """, events="- name: ptrace")
    assert run(sig, ptrace_event(0), ptrace_event(1)) == []
    assert sig.eval_errors == 2
    assert sig.last_error is not None and "No matching overloads" in sig.last_error
    assert len([r for r in caplog.records if "TST-1" in r.getMessage()]) == 1  # logged once


def test_output_fields_optional_and_required() -> None:
    sig = detector("""\
        output:
          fields:
            - name: path
              expression: getEventData("pathname")
            - name: broken_optional
              expression: getEventData("pathname") + 1
              optional: true
        """)
    found = run(sig, exec_event("/bin/x"))
    assert found[0].data == {"path": "/bin/x"}
    assert (sig.field_errors, sig.dropped_findings) == (1, 0)

    sig = detector("""\
        output:
          fields:
            - name: broken
              expression: getEventData("pathname").size() / 0
        """)
    assert run(sig, exec_event("/bin/x")) == []
    assert (sig.field_errors, sig.dropped_findings) == (1, 1)


def test_no_conditions_fires_on_every_event() -> None:
    sig = detector("")
    assert len(run(sig, exec_event("/a"), exec_event("/b"))) == 2


def test_get_data_and_has_data() -> None:
    sig = detector("""\
        conditions:
          - hasData("pathname") && !hasData("nosuch") && !hasData("interpreter_pathname")
          - getEventData("nosuch") == null
          - getData("dev") == 2049 && getEventData("argv") == ["sh", "-c"]
          - getEventData("invoked_from_kernel") == false
        """)
    ev = make_event("sched_process_exec", {"pathname": "/bin/sh", "dev": 2049,
                                           "argv": ["sh", "-c"], "invoked_from_kernel": False})
    assert len(run(sig, ev)) == 1 and sig.eval_errors == 0


def test_string_helpers_and_cel_library() -> None:
    sig = detector("""\
        output:
          fields:
            - {name: split, expression: 'split(getEventData("pathname"), "/")'}
            - {name: join, expression: 'join(["a", "b"], ",")'}
            - {name: trim, expression: 'trim("  x ")'}
            - {name: replace, expression: 'replace("a-b-c", "-", "+")'}
            - {name: upper, expression: 'upper("sh")'}
            - {name: lower, expression: 'lower("SH")'}
            - {name: basename, expression: 'basename(getEventData("pathname"))'}
            - {name: dirname, expression: 'dirname(getEventData("pathname"))'}
            - {name: base_root, expression: 'basename("/")'}
            - {name: dir_rel, expression: 'dirname("file")'}
            - {name: member_split, expression: '"a,b".split(",")'}
            - {name: matches, expression: 'getEventData("pathname").matches("^/usr/.*/ls$")'}
            - {name: exists, expression: 'getEventData("argv").exists(a, a.startsWith("-"))'}
            - {name: bind, expression: 'cel.bind(p, getEventData("pathname"), p.size())'}
        """)
    ev = make_event("sched_process_exec", {"pathname": "/usr/bin/ls", "argv": ["ls", "-l"]})
    assert run(sig, ev)[0].data == {
        "split": ["", "usr", "bin", "ls"], "join": "a,b", "trim": "x", "replace": "a+b+c",
        "upper": "SH", "lower": "sh", "basename": "ls", "dirname": "/usr/bin",
        "base_root": "/", "dir_rel": ".", "member_split": ["a", "b"], "matches": True,
        "exists": True, "bind": 11}
    assert sig.field_errors == 0


def test_workload_and_timestamp() -> None:
    sig = detector(f"""\
        conditions:
          - workload.process.pid == {PID} && workload.process.host_pid == {PID}
          - workload.process.ppid == {PPID} && workload.process.name == "sh"
          - workload.process.thread.name == "sh" && workload.process.real_user.id == 0
          - workload.process.executable.path == ""
          - timestamp > timestamp("2023-01-01T00:00:00Z")
        output:
          fields:
            - name: container
              expression: workload.container.id
            - name: image
              expression: workload.container.image.name
            - name: pod
              expression: workload.kubernetes.pod.name + "/" + workload.k8s.namespace.name
            - name: started
              expression: workload.container.started
            - name: seconds
              expression: int(timestamp)
        """)
    host = exec_event("/bin/sh", comm="sh")
    found = run(sig, host)
    assert sig.eval_errors == 0 and len(found) == 1
    assert found[0].data == {"container": "", "image": "", "pod": "/", "started": False,
                             "seconds": host.timestamp // 1_000_000_000}

    ctr = exec_event("/bin/sh", comm="sh")
    c = Container("c" * 64, "containerd", 7, "/kubepods/x", False, 0, started=True)
    c.info = ContainerInfo("c" * 64, "containerd", "web", "nginx:1", "sha256:ab", 0,
                           pod_name="web-0", pod_namespace="prod")
    ctr.ctx.container = c
    ctr.ctx.container_started = c.started
    found = run(sig, ctr)
    assert found[0].data == {"container": "c" * 64, "image": "nginx:1", "pod": "web-0/prod",
                             "started": True, "seconds": (BOOT + START + 1_000_000) // 10**9}


def test_data_filters_select_events_before_cel() -> None:
    sig = detector("", events="""\
        - name: security_file_open
          data_filters:
            - pathname=/etc/*
            - pathname=*.conf
            - pathname!=/etc/shadow
        """)
    found = run(sig, file_open_event("/etc/passwd", 0), file_open_event("/tmp/x", 0),
                file_open_event("/opt/a.conf", 0), file_open_event("/etc/shadow", 0))
    assert [f.data for f in found] == [{}, {}]
    assert [f.event.arg("pathname") for f in found] == ["/etc/passwd", "/opt/a.conf"]
    assert sig.filtered_out == 2


def test_data_and_scope_filters_on_ints_and_context() -> None:
    sig = detector("", events="""\
        - name: ptrace
          data_filters: [request=0]
          scope_filters: [comm=x]
        """)
    assert len(run(sig, ptrace_event(0), ptrace_event(16))) == 1
    sig = detector("", events="""\
        - name: ptrace
          scope_filters: [comm=other]
        """)
    assert run(sig, ptrace_event(0)) == []


def test_chained_detector_on_another_detectors_event(tmp_path: Path) -> None:
    for p in EXAMPLES.glob("*.yaml"):
        shutil.copy(p, tmp_path)
    write(tmp_path, "chain.yaml", """\
        type: detector
        id: TST-CHAIN
        produced_event: {name: memfd_exec_chain}
        requirements:
          events:
            - name: fileless_execution
              data_filters: [pathname=memfd:*]
        conditions:
          - getEventData("pathname").endsWith("x")
        output:
          fields:
            - {name: from, expression: getEventData("pathname")}
        """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert errors == []
    engine = Engine(sigs)
    out = engine.process([exec_event("memfd:x"), exec_event("memfd:y"), exec_event("/dev/shm/x")])
    dets = [(e.name, e.data) for e in out if isinstance(e, Detection)]
    assert dets == [("fileless_execution", {"pathname": "memfd:x", "argv": "x"}),
                    ("memfd_exec_chain", {"from": "memfd:x"}),
                    ("fileless_execution", {"pathname": "memfd:y", "argv": "x"}),
                    ("fileless_execution", {"pathname": "/dev/shm/x", "argv": "x"})]


def test_unknown_required_event_unless_produced_or_extra() -> None:
    with pytest.raises(UsageError, match="unknown event 'other_detection'"):
        detector("", events="- name: other_detection", known=set())
    sig = detector("", events="- name: other_detection", known={"other_detection"})
    assert sig.selected_events == (EventSelector("other_detection"),)
    sigs, errors = load_yaml_detectors([str(EXAMPLES)], extra_events={"x"})
    assert len(sigs) == 3 and errors == []


def test_orphaned_chain_is_dropped_with_an_error(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", """\
        type: detector
        id: TST-BASE
        produced_event: {name: tst_base}
        requirements:
          events: [{name: sched_process_exec}]
        conditions: [getEventData("pathname").startsWith(]
        """)
    child = write(tmp_path, "child.yaml", """\
        type: detector
        id: TST-CHILD
        produced_event: {name: tst_child}
        requirements:
          events:
            - name: tst_base
        """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert sigs == []
    assert [e.where for e in errors] == [f"{tmp_path / 'base.yaml'}:6", f"{child}:6"]
    assert "whose detector did not load" in errors[1].message


def test_architectures(tmp_path: Path) -> None:
    import platform
    here = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for name, arch in (("mine", here), ("other", "s390x")):
        write(tmp_path, f"{name}.yaml", f"""\
            type: detector
            id: TST-{name}
            produced_event: {{name: tst_{name}}}
            requirements:
              architectures: [{arch}]
              events: [{{name: openat}}]
            """)
    sigs, errors = load_yaml_detectors([str(tmp_path)])
    assert [s.metadata.id for s in sigs] == ["TST-mine"] and errors == []


# ---------------------------------------------------------------------------
# The fast form (no CEL variables bound per event) and its fallbacks
# ---------------------------------------------------------------------------

def test_examples_bind_no_variables() -> None:
    # Their workload paths, lists and timestamps all have a fast form.
    assert [s._needs_data for s in examples().values()] == [False, False, False]


def test_fallbacks_to_bound_variables_agree() -> None:
    lists = {"SHELLS": ["sh", 'we"ird']}
    sig = detector("""\
        conditions:
          - has(workload.container.id) && workload.process.size() > 0
          - workload.process.name in SHELLS && SHELLS.size() == 2
          - '"workload.process.name SHELLS timestamp" != ""'  # text, not references
          - timestamp == timestamp && workload.process.real_user.id == 0
        output:
          fields:
            - {name: proc_name, expression: workload.process.name}
            - {name: thread, expression: workload.process.thread}
            - {name: lists, expression: 'SHELLS + ["x"]'}
        """, lists=lists)
    assert sig._wants_workload and not sig._wants_timestamp and sig._lists == {}
    found = run(sig, exec_event("/bin/sh", comm="sh"), exec_event("/bin/ls", comm="ls"))
    assert sig.eval_errors == 0 and len(found) == 1
    assert found[0].data["proc_name"] == "sh"
    assert found[0].data["thread"]["name"] == "sh"
    assert found[0].data["lists"] == ["sh", 'we"ird', "x"]
