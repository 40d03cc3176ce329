"""Rego signatures (pytracee.detect.rego) on the shared signature fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytracee.detect.rego import HELPERS_REGO, RegoError, RegoSignature, load_rego_signatures
from pytracee.detect.signature import EventSelector, Finding, SignatureContext, SignatureMetadata
from pytracee.events.event import Event
from tests.unit.signature_fixtures import exec_event, file_open_event, make_event, ptrace_event

EXAMPLES = Path(__file__).resolve().parents[2] / "signatures" / "rego"
# regopy (rego-cpp) is a test dependency: the two engines must agree on every example.
ENGINES = ["regorus", "regopy"]


def load(paths: list[Path], engine: str = "regorus") -> tuple[dict[str, RegoSignature], list[Any]]:
    sigs, errors = load_rego_signatures(paths, engine=engine)
    return {s.metadata.id: s for s in sigs}, errors


def findings(sig: RegoSignature, *events: Event) -> list[Finding]:
    out: list[Finding] = []
    sig.init(SignatureContext(out.append, {}))
    for ev in events:
        sig.on_event(ev)
    return out


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def signature(package: str, match: str, *, sig_id: str = "T-1", event: str = "ptrace",
              header: str = "import rego.v1\n") -> str:
    """A v1 signature file: metadoc, one selected event, and `match` as its rules."""
    return (f'package {package}\n{header}\n'
            f'__rego_metadoc__ := {{"id": "{sig_id}", "name": "test", "eventName": "t_{sig_id}"}}\n'
            f'tracee_selected_events contains {{"source": "tracee", "name": "{event}", "origin": "*"}}\n'
            f'{match}\n')


# -- the example signatures ----------------------------------------------------------


def test_examples_load_with_exact_metadata_and_selected_events() -> None:
    sigs, errors = load([EXAMPLES])
    assert errors == []
    assert sorted(sigs) == ["TRC-102", "TRC-105"]
    assert sigs["TRC-102"].metadata == SignatureMetadata(
        id="TRC-102", name="Anti-Debugging detected", event_name="anti_debugging", version="1",
        description="A process used anti-debugging techniques to block a debugger (ptrace "
                    "PTRACE_TRACEME). Malware uses it to hide from analysts.",
        tags=("linux", "container"),
        properties={"Severity": 1, "Category": "defense-evasion", "Technique": "Debugger Evasion",
                    "external_id": "T1622", "MITRE ATT&CK": "defense-evasion: Debugger Evasion"})
    assert sigs["TRC-105"].metadata == SignatureMetadata(
        id="TRC-105", name="Fileless Execution", event_name="fileless_execution", version="1",
        description="A binary was executed from memory (memfd) or shared memory rather than "
                    "from a file on disk, which hides it from file-based scanning.",
        tags=("linux", "container"),
        properties={"Severity": 3, "Category": "defense-evasion",
                    "Technique": "Reflective Code Loading", "external_id": "T1620",
                    "MITRE ATT&CK": "defense-evasion: Reflective Code Loading"})
    assert sigs["TRC-102"].metadata.severity == 1 and sigs["TRC-105"].metadata.severity == 3
    assert sigs["TRC-102"].selected_events == (EventSelector("ptrace", "*", "tracee"),)
    assert sigs["TRC-105"].selected_events == (EventSelector("sched_process_exec", "*", "tracee"),)


@pytest.mark.parametrize("engine", ENGINES)
def test_anti_debugging(engine: str) -> None:
    sig = load([EXAMPLES / "anti_debugging.rego"], engine)[0]["TRC-102"]
    traceme = ptrace_event(0)
    found = findings(sig, traceme)
    assert len(found) == 1
    assert found[0].data == {} and found[0].event is traceme and found[0].signature is sig.metadata
    assert findings(sig, ptrace_event(16)) == []  # PTRACE_ATTACH
    # With parse-arguments on, the request is its name.
    decoded = make_event("ptrace", {"request": "PTRACE_TRACEME", "pid": 0})
    assert len(findings(sig, decoded)) == 1
    assert findings(sig, make_event("ptrace", {"request": "PTRACE_ATTACH", "pid": 0})) == []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("pathname", "expected"), [
    ("memfd:x", 1), ("/dev/shm/payload", 1), ("/run/shm/payload", 1),
    ("/usr/bin/ls", 0), ("/tmp/memfd:x", 0), ("/dev/shmx", 0),
])
def test_fileless_execution(engine: str, pathname: str, expected: int) -> None:
    sig = load([EXAMPLES / "fileless_execution.rego"], engine)[0]["TRC-105"]
    found = findings(sig, exec_event(pathname))
    assert len(found) == expected
    assert all(f.data == {} for f in found)


# -- loading and errors --------------------------------------------------------------


def test_syntax_error_names_file_and_line_and_the_rest_load(tmp_path: Path) -> None:
    good = write(tmp_path, "good.rego", signature("good", "tracee_match := true"))
    bad = write(tmp_path, "bad.rego", signature("bad", "tracee_match if {\n  x := \n}"))
    sigs, errors = load([tmp_path])
    assert list(sigs) == ["T-1"] and sigs["T-1"].path == good
    assert len(errors) == 1
    err = errors[0]
    assert err.where == f"{bad}:7"   # `x :=` has no value
    assert "\n" not in err.message and err.message
    assert str(err).startswith(f"{bad}:7: ")


def test_v0_syntax_error_is_reported_as_v0(tmp_path: Path) -> None:
    # A Tracee-era (v0) file with an error: the v0 parser's complaint, not v1's
    # "`if` keyword is required" for its first rule.
    bad = write(tmp_path, "bad.rego", 'package old\n\nm { input.x == 1 }\n\nn[x] {\n  x := [1\n}\n')
    _, errors = load([bad])
    assert len(errors) == 1 and errors[0].where == f"{bad}:5"  # where v0's parser gave up
    assert "keyword is required" not in errors[0].message


def test_file_without_metadoc_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "nometa.rego", "# a comment\npackage nometa\nimport rego.v1\n"
                                          "tracee_match := true\n")
    sigs, errors = load([path])
    assert sigs == {}
    assert len(errors) == 1 and errors[0].where == f"{path}:2"
    assert "__rego_metadoc__" in errors[0].message


@pytest.mark.parametrize(("body", "line", "words"), [
    ("tracee_match if { nope(input.x) }", 6, "nope"),                 # unknown function
    ("tracee_match if { x == y }", 6, "unsafe"),                      # unbound variables
    ("tracee_match := 1\ntracee_match := 2", 7, "conflict"),          # two values
])
def test_compile_errors_are_found_at_load(tmp_path: Path, body: str, line: int,
                                          words: str) -> None:
    path = write(tmp_path, "c.rego", signature("c", body))
    sigs, errors = load([path])
    assert sigs == {} and len(errors) == 1
    assert errors[0].where == f"{path}:{line}" and words in errors[0].message


@pytest.mark.parametrize(("metadoc", "message"), [
    ('{"id": "X", "name": "n"}', "no eventName"),
    ('{"name": "n", "eventName": "e"}', "no id"),
    ('"just a string"', "expected an object"),
])
def test_bad_metadoc(tmp_path: Path, metadoc: str, message: str) -> None:
    path = write(tmp_path, "m.rego", f"package m\nimport rego.v1\n\n__rego_metadoc__ := {metadoc}\n"
                                     "tracee_selected_events contains {\"name\": \"ptrace\"}\n"
                                     "tracee_match := true\n")
    _, errors = load([path])
    assert len(errors) == 1 and errors[0].where == f"{path}:4" and message in errors[0].message


def test_missing_selected_events_or_match_is_an_error(tmp_path: Path) -> None:
    meta = 'package {}\nimport rego.v1\n__rego_metadoc__ := {{"id": "X", "name": "n", "eventName": "e"}}\n'
    no_sel = write(tmp_path, "s.rego", meta.format("s") + "tracee_match := true\n")
    no_match = write(tmp_path, "m.rego", meta.format("m") +
                     'tracee_selected_events contains {"name": "ptrace"}\n')
    sigs, errors = load([no_match, no_sel])
    assert sigs == {}
    assert [(e.where, e.message) for e in errors] == [
        (f"{no_match}:1", "no tracee_match rule"),
        (f"{no_sel}:1", "tracee_selected_events is missing or empty: the signature would see "
                      "no event")]


def test_selected_events_defaults_and_origin(tmp_path: Path) -> None:
    path = write(tmp_path, "s.rego", 'package s\nimport rego.v1\n__rego_metadoc__ := '
                                     '{"id": "X", "name": "n", "eventName": "e"}\n'
                                     'tracee_selected_events contains {"name": "openat"}\n'
                                     'tracee_selected_events contains {"name": "execve", '
                                     '"origin": "container", "source": "tracee"}\n'
                                     'tracee_match := true\n')
    sigs, errors = load([path])
    assert errors == []
    assert set(sigs["X"].selected_events) == {EventSelector("openat", "*", "tracee"),
                                              EventSelector("execve", "container", "tracee")}


def test_duplicate_package_and_missing_path(tmp_path: Path) -> None:
    a = write(tmp_path, "a.rego", signature("same", "tracee_match := true", sig_id="A"))
    b = write(tmp_path, "b.rego", signature("same", "tracee_match := true", sig_id="B"))
    sigs, errors = load([a, b, tmp_path / "nowhere"])
    assert list(sigs) == ["A"]
    assert [e.where for e in errors] == [str(tmp_path / "nowhere"), f"{b}:1"]
    assert "already" in errors[1].message


def test_only_rego_files_and_directories_recursively(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "package x\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "s.rego", signature("sub", "tracee_match := true", sig_id="S"))
    sigs, errors = load([tmp_path, tmp_path / "sub" / "s.rego"])  # listed twice: loaded once
    assert list(sigs) == ["S"] and errors == []


def test_library_packages(tmp_path: Path) -> None:
    # A file of package tracee.helpers is skipped (built in); a *.lib.* package is a
    # library the signatures can use; neither is a signature nor an error.
    write(tmp_path, "helpers.rego", "package tracee.helpers\n\nbroken {")
    write(tmp_path, "lib.rego", 'package mycorp.lib.paths\nimport rego.v1\n'
                                'is_tmp(p) if startswith(p, "/tmp/")\n')
    write(tmp_path, "sig.rego", signature(
        "uses_lib", 'tracee_match if data.mycorp.lib.paths.is_tmp('
                    'data.tracee.helpers.get_tracee_argument("pathname"))',
        event="sched_process_exec"))
    sigs, errors = load([tmp_path])
    assert errors == [] and list(sigs) == ["T-1"]
    assert len(findings(sigs["T-1"], exec_event("/tmp/a"))) == 1
    assert findings(sigs["T-1"], exec_event("/usr/bin/a")) == []


# -- Rego syntaxes, results and evaluation errors ------------------------------------


def test_tracee_v0_syntax(tmp_path: Path) -> None:
    # The syntax of Tracee's own Rego signatures (OPA before 1.0).
    path = write(tmp_path, "old.rego", '''package tracee.OLD_1

__rego_metadoc__ := {"id": "OLD-1", "version": "0.1.0", "name": "old", "eventName": "old"}

eventSelectors := [{"source": "tracee", "name": "ptrace"}]

tracee_selected_events[eventSelector] {
\teventSelector := eventSelectors[_]
}

tracee_match = res {
\tinput.eventName == "ptrace"
\targ := input.args[_]
\targ.name == "request"
\targ.value == 0
\tres := {"request": arg.value, "comm": input.processName}
}
''')
    sigs, errors = load([path])
    assert errors == []
    sig = sigs["OLD-1"]
    assert sig.metadata.version == "0.1.0"
    assert sig.selected_events == (EventSelector("ptrace", "*", "tracee"),)
    found = findings(sig, ptrace_event(0), ptrace_event(16))
    assert [f.data for f in found] == [{"request": 0, "comm": "x"}]


def test_v1_without_import_is_not_misread_as_v0(tmp_path: Path) -> None:
    # Parsed as v0, `tracee_match if { false }` would make tracee_match true.
    path = write(tmp_path, "v1.rego", signature("v1", "tracee_match if { false }", header=""))
    sigs, errors = load([path])
    assert errors == []
    assert findings(sigs["T-1"], ptrace_event(0)) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_match_object_becomes_finding_data(tmp_path: Path, engine: str) -> None:
    path = write(tmp_path, "o.rego", signature("o", '''tracee_match := {
  "path": data.tracee.helpers.get_tracee_argument("pathname"),
  "comm": input.processName,
  "prev": data.tracee.helpers.get_tracee_argument("prev_comm"),
  "argv": data.tracee.helpers.get_tracee_argument("argv"),
} if input.eventName == "sched_process_exec"''', event="sched_process_exec"))
    sigs, errors = load([path], engine)
    assert errors == []
    found = findings(sigs["T-1"], exec_event("/bin/sh", comm="sh", prev_comm="nginx"))
    assert [f.data for f in found] == [{"path": "/bin/sh", "comm": "sh", "prev": "nginx",
                                        "argv": ["sh"]}]


def test_evaluation_errors_raise(tmp_path: Path) -> None:
    typed = write(tmp_path, "t.rego", signature(
        "t", 'tracee_match if startswith(data.tracee.helpers.get_tracee_argument("request"), "P")',
        sig_id="T"))
    wrong = write(tmp_path, "w.rego", signature("w", 'tracee_match := "yes"', sig_id="W"))
    sigs, errors = load([typed, wrong])
    assert errors == []
    with pytest.raises(RegoError) as exc:
        findings(sigs["T"], ptrace_event(0))   # startswith on a number
    assert exc.value.where == f"{typed}:6"
    with pytest.raises(RegoError, match="expected a bool or an object"):
        findings(sigs["W"], ptrace_event(0))


# -- helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("flags", "write_", "read"), [
    (0, False, True), (1, True, False), (2, True, True),
    (0o101, True, False),             # O_WRONLY|O_CREAT
    (0o1102, True, True),             # O_RDWR|O_TRUNC|O_CREAT
    (0o2000000, False, True),         # O_RDONLY|O_CLOEXEC
    ("O_RDONLY", False, True), ("O_WRONLY|O_CREAT", True, False),
    ("O_RDWR|O_TRUNC", True, True), ("O_RDONLY|O_CLOEXEC", False, True),
    ("o_wronly | o_append", True, False),
    ("O_CLOEXEC", False, True),       # no access mode: O_RDONLY is 0
])
def test_file_flag_helpers(tmp_path: Path, engine: str, flags: int | str, write_: bool,
                           read: bool) -> None:
    path = write(tmp_path, "f.rego", signature("f", '''
flags := data.tracee.helpers.get_tracee_argument("flags")
default is_write := false
is_write if data.tracee.helpers.is_file_write(flags)
default is_read := false
is_read if data.tracee.helpers.is_file_read(flags)
tracee_match := {"write": is_write, "read": is_read}''', event="security_file_open"))
    sigs, errors = load([path], engine)
    assert errors == []
    found = findings(sigs["T-1"], file_open_event("/etc/passwd", flags))  # type: ignore[arg-type]
    assert [f.data for f in found] == [{"write": write_, "read": read}]


def test_get_tracee_argument_of_a_missing_argument_is_undefined(tmp_path: Path) -> None:
    path = write(tmp_path, "g.rego", signature(
        "g", 'tracee_match if not data.tracee.helpers.get_tracee_argument("nope")'))
    sigs, _ = load([path])
    assert len(findings(sigs["T-1"], ptrace_event(0))) == 1
    assert "package tracee.helpers" in HELPERS_REGO


# -- the shared input ------------------------------------------------------------------


def test_one_conversion_per_event_and_only_the_fields_read(tmp_path: Path) -> None:
    a = write(tmp_path, "a.rego", signature("a", "tracee_match := true", sig_id="A"))
    b = write(tmp_path, "b.rego", signature(
        "b", 'tracee_match := {"comm": input.processName, "pid": input["hostProcessId"]}',
        sig_id="B"))
    sigs, errors = load([a, b, EXAMPLES])
    assert errors == []
    shared = sigs["A"]._shared
    assert all(s._shared is shared for s in sigs.values())
    assert shared.keys == frozenset({"eventName", "args", "processName", "hostProcessId"})
    docs: list[dict[str, Any]] = []
    real = shared.backend.set_input

    def counting(doc: dict[str, Any]) -> None:
        docs.append(doc)
        real(doc)

    shared.backend.set_input = counting  # type: ignore[method-assign]
    out: list[Finding] = []
    for s in sigs.values():
        s.init(SignatureContext(out.append, {}))
    ev = ptrace_event(0)
    for sid in ("A", "B", "TRC-102"):
        sigs[sid].on_event(ev)
    assert len(docs) == 1 and set(docs[0]) == shared.keys
    assert [f.signature.id for f in out] == ["A", "B", "TRC-102"]
    assert out[1].data == {"comm": "x", "pid": 4242}
    sigs["TRC-102"].on_event(ptrace_event(16))  # another event: converted again
    assert len(docs) == 2


def test_reading_all_of_input_converts_all_of_it(tmp_path: Path) -> None:
    path = write(tmp_path, "all.rego", signature(
        "all", 'tracee_match := {"n": count(object.keys(input))}'))
    sigs, _ = load([path])
    assert sigs["T-1"]._shared.keys is None
    found = findings(sigs["T-1"], ptrace_event(0))
    assert found[0].data["n"] > 20


def test_only_the_args_rules_name_are_sent_to_the_engine() -> None:
    from pytracee.detect.legacy import event_fields
    from pytracee.detect.rego import _argument_names

    lit = 'x if { data.tracee.helpers.get_tracee_argument("pathname") == "a" }'
    assert _argument_names([lit]) == frozenset({"pathname"})
    assert _argument_names([lit, 'y if { n := "p"; data.tracee.helpers.get_tracee_argument(n) }']) is None
    assert _argument_names(['z if { some a in input.args; a.name == "p" }']) is None
    assert _argument_names(['w if { input["args"] }']) is None
    ev = exec_event("/usr/bin/ls")
    doc = event_fields(ev, frozenset({"eventName", "args"}), frozenset({"pathname"}))
    assert doc == {"eventName": "sched_process_exec",
                   "args": [{"name": "pathname", "type": "string", "value": "/usr/bin/ls"}]}
