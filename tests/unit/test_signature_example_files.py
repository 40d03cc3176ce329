"""The examples in signatures/: they load as a user loads them, where each is defined,
how their ids relate to the built-ins', every one has a live test, and the Python
example's logic (on constructed events, through the engine and its prefilter)."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytracee.cli import load_signatures
from pytracee.detect.engine import Detection, Engine
from pytracee.detect.loader import builtin_signatures, load_signature_dirs
from pytracee.detect.signature import Signature, where_defined
from tests.unit.signature_fixtures import exec_event

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "signatures"
LIVE_TESTS = ROOT / "tests" / "kernel" / "test_signature_examples.py"
PYTRACEE = ROOT / ".venv" / "bin" / "pytracee"
KINDS = ("python", "rego", "yaml")


def examples(kind: str) -> list[Signature]:
    sigs, errors = load_signature_dirs([str(EXAMPLES / kind)])
    assert errors == []
    return sigs


def line_of(path: Path, text: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def test_each_kind_loads_with_where_each_is_defined(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pytracee.signatures"):
        found = {kind: sorted((s.metadata.id, s.metadata.event_name, where_defined(s))
                              for s in examples(kind)) for kind in KINDS}
    assert caplog.records == []  # loading alone says nothing; replacing is said at start
    py = EXAMPLES / "python" / "exec_from_tmp.py"
    rego, yml = EXAMPLES / "rego", EXAMPLES / "yaml"
    py_line = line_of(py, 'id="EX-1001"')
    assert found == {
        "python": [("EX-1001", "exec_from_tmp", f"{py}:{py_line}")],
        "rego": [("TRC-102", "anti_debugging", f"{rego}/anti_debugging.rego:8"),
                 ("TRC-105", "fileless_execution", f"{rego}/fileless_execution.rego:8")],
        "yaml": [("TRC-1016", "illegitimate_shell", f"{yml}/illegitimate_shell.yaml:4"),
                 ("TRC-102", "anti_debugging", f"{yml}/anti_debugging.yaml:4"),
                 ("TRC-105", "fileless_execution", f"{yml}/fileless_execution.yaml:4")]}


def test_the_whole_directory_loads_kind_by_kind() -> None:
    """`--signatures-dir signatures` finds all three kinds (subdirectories), and the
    Rego and YAML forms of TRC-102 clash: one kind at a time, as the README says."""
    sigs, errors = load_signature_dirs([str(EXAMPLES)])
    assert errors == []
    assert sorted(s.metadata.id for s in sigs) == [
        "EX-1001", "TRC-1016", "TRC-102", "TRC-102", "TRC-105", "TRC-105"]


def test_rego_and_yaml_examples_reimplement_builtins_with_their_ids() -> None:
    """They are Tracee's detections in Tracee's formats: same id, same event, so loading
    them replaces the built-ins (with a warning). The Python one is a new detection."""
    builtin = {s.metadata.id: s.metadata.event_name for s in builtin_signatures()}
    for kind in ("rego", "yaml"):
        for s in examples(kind):
            assert builtin.get(s.metadata.id) == s.metadata.event_name, (kind, s.metadata.id)
    for s in examples("python"):
        assert s.metadata.id not in builtin
        assert s.metadata.event_name not in builtin.values()


def test_loading_the_rego_examples_warns_once_per_replaced_builtin(
        caplog: pytest.LogCaptureFixture) -> None:
    rego = EXAMPLES / "rego"
    with caplog.at_level(logging.WARNING, logger="pytracee.signatures"):
        sigs = load_signatures([str(rego)])
    assert [r.getMessage() for r in caplog.records] == [
        f"signature TRC-102 from {rego}/anti_debugging.rego:8 replaces the built-in one",
        f"signature TRC-105 from {rego}/fileless_execution.rego:8 replaces the built-in one"]
    assert len(sigs) == len(builtin_signatures())


def test_every_example_has_a_live_test() -> None:
    """tests/kernel/test_signature_examples.py runs each example's event with its kind's
    directory and expects its id: an example added without a live test fails here."""
    text = LIVE_TESTS.read_text()
    for kind in KINDS:
        for s in examples(kind):
            md = s.metadata
            assert f'start_examples("{kind}", "{md.event_name}")' in text, (kind, md.id)
            assert re.search(rf'the_one\(out, "{md.id}", "{md.event_name}"', text), (kind, md.id)


def test_the_python_example_is_listed() -> None:
    res = subprocess.run([str(PYTRACEE), "list", "signatures", "--signatures-dir",
                          "signatures/python"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines()[-1].split() == [
        "EX-1001", "exec_from_tmp", "medium", "T1204.002", "sched_process_exec"]


# --- the Python example's logic ---------------------------------------------------------

def run_example(paths: list[str], params: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """Execs of `paths` through the engine (its prefilter included): (comm, data) found."""
    [sig] = examples("python")
    engine = Engine([sig], {"EX-1001": params} if params is not None else None)
    out = engine.process([exec_event(p, comm=Path(p).name[:15]) for p in paths])
    return [(e.ctx.comm, e.data) for e in out if isinstance(e, Detection)]


def test_python_example_reports_execs_from_temporary_directories() -> None:
    found = run_example(["/tmp/x", "/usr/bin/true", "/var/tmp/build/y", "/tmpfoo/z",
                         "/home/u/tmp/w", "/dev/shm/v"])
    assert found == [("x", {"pathname": "/tmp/x", "argv": ["x"]}),
                     ("y", {"pathname": "/var/tmp/build/y", "argv": ["y"]})]


def test_python_example_allowed_prefixes_parameter() -> None:
    found = run_example(["/tmp/my-build/a", "/tmp/b"], {"allowed_prefixes": ["/tmp/my-build/"]})
    assert found == [("b", {"pathname": "/tmp/b", "argv": ["b"]})]
