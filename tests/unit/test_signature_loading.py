"""`--signatures-dir`: what is searched (subdirectories too), what is said when nothing
is found, where a signature is defined, and the messages that use it: an id two files
define (an error naming both), a user signature that replaces a built-in (a warning)."""

from __future__ import annotations

import logging
import subprocess
import textwrap
from pathlib import Path

import pytest

import pytracee.detect.builtin.process as builtin_process
from pytracee.cli import load_signatures
from pytracee.detect.engine import register
from pytracee.detect.loader import builtin_signatures, load_signature_dirs
from pytracee.detect.signature import (EventSelector, Signature, SignatureMetadata,
                                       SignatureSetError, where_defined)
from pytracee.errors import UsageError

PYTRACEE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pytracee"
LOGGER = "pytracee.signatures"


def py_sig(sig_id: str, event_name: str, selects: str = "ptrace") -> str:
    """A Python signature file whose id is on line 6."""
    return textwrap.dedent(f'''\
        from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata


        class Sig(Signature):
            metadata = SignatureMetadata(
                id="{sig_id}", name="test", event_name="{event_name}")
            selected_events = (EventSelector("{selects}"),)

            def on_event(self, ev):
                pass
        ''')


def rego_sig(sig_id: str, event_name: str) -> str:
    """A Rego signature file whose id is on line 6."""
    return textwrap.dedent(f'''\
        package user.{event_name}

        import rego.v1

        __rego_metadoc__ := {{
        \t"id": "{sig_id}",
        \t"name": "test",
        \t"eventName": "{event_name}",
        }}

        tracee_selected_events contains {{"name": "ptrace"}}

        tracee_match if {{
        \tinput.eventName == "ptrace"
        }}
        ''')


def yaml_sig(sig_id: str, event_name: str) -> str:
    """A YAML detector whose id is on line 3."""
    return (f"# a detector\ntype: detector\nid: {sig_id}\nproduced_event:\n  name: {event_name}\n"
            "requirements:\n  events:\n    - name: ptrace\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PYTRACEE), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


# --- what is searched -------------------------------------------------------------------

def test_subdirectories_are_searched_and_other_files_ignored(tmp_path: Path) -> None:
    write(tmp_path / "top.py", py_sig("USR-T1", "usr_top"))
    write(tmp_path / "rego" / "one.rego", rego_sig("USR-T2", "usr_rego"))
    write(tmp_path / "yaml" / "deeper" / "two.yml", yaml_sig("USR-T3", "usr_yaml"))
    write(tmp_path / "rego" / "README.md", "# not a signature\n")
    write(tmp_path / "notes.txt", "neither\n")
    # Hidden directories and files, and __pycache__, are not searched: these would fail.
    write(tmp_path / ".git" / "hook.py", "raise SystemExit(1)\n")
    write(tmp_path / "__pycache__" / "old.py", "raise SystemExit(1)\n")
    write(tmp_path / "sub" / ".#editor-lock.py", "raise SystemExit(1)\n")
    sigs, errors = load_signature_dirs([str(tmp_path)])
    assert errors == []
    assert sorted((s.metadata.id, where_defined(s)) for s in sigs) == [
        ("USR-T1", f"{tmp_path}/top.py:6"),
        ("USR-T2", f"{tmp_path}/rego/one.rego:6"),
        ("USR-T3", f"{tmp_path}/yaml/deeper/two.yml:3")]


def test_files_of_one_name_in_two_directories_are_two_modules(tmp_path: Path) -> None:
    write(tmp_path / "a" / "sig.py", py_sig("USR-S1", "usr_s1"))
    write(tmp_path / "b" / "sig.py", py_sig("USR-S2", "usr_s2"))
    sigs, errors = load_signature_dirs([str(tmp_path)])
    assert errors == []
    assert [(s.metadata.id, where_defined(s)) for s in sigs] == [
        ("USR-S1", f"{tmp_path}/a/sig.py:6"), ("USR-S2", f"{tmp_path}/b/sig.py:6")]
    assert type(sigs[0]).__module__ != type(sigs[1]).__module__


def test_a_file_given_twice_loads_once(tmp_path: Path) -> None:
    f = write(tmp_path / "one.py", py_sig("USR-O1", "usr_o1"))
    sigs, errors = load_signature_dirs([str(tmp_path), str(f)])
    assert errors == [] and [s.metadata.id for s in sigs] == ["USR-O1"]


def test_paths_are_named_as_given_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             ) -> None:
    write(tmp_path / "my-sigs" / "x.py", py_sig("USR-N1", "usr_n1"))
    monkeypatch.chdir(tmp_path)
    sigs, errors = load_signature_dirs(["./my-sigs/"])
    assert errors == [] and [where_defined(s) for s in sigs] == ["my-sigs/x.py:6"]


def test_a_directory_without_signature_files_is_a_warning(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "README.md", "# my signatures\n")
    write(tmp_path / "drafts" / "idea.txt", "later\n")
    write(tmp_path / ".hidden" / "x.py", py_sig("USR-H1", "usr_h1"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sigs, errors = load_signature_dirs([str(tmp_path)])
    assert (sigs, errors) == ([], [])
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (LOGGER, "WARNING", f"--signatures-dir {tmp_path}: no signature file in it or its "
                            "subdirectories (looked for *.py, *.rego, *.yaml/*.yml)")]


def test_a_file_of_another_kind_is_a_warning(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    notes = write(tmp_path / "sigs.txt", "TRC-102\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert load_signature_dirs([str(notes)]) == ([], [])
    assert [r.getMessage() for r in caplog.records] == [
        f"--signatures-dir {notes}: not a signature file (expected *.py, *.rego, "
        "*.yaml/*.yml): ignored"]


def test_a_signature_dir_with_files_says_nothing(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "deep" / "er" / "x.py", py_sig("USR-Q1", "usr_q1"))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        sigs, _ = load_signature_dirs([str(tmp_path)])
    assert [s.metadata.id for s in sigs] == ["USR-Q1"] and caplog.records == []


def test_the_empty_directory_warning_on_the_command_line(tmp_path: Path) -> None:
    res = run("list", "signatures", "--signatures-dir", str(tmp_path))
    assert res.returncode == 0
    assert res.stderr == (f"pytracee: WARNING {LOGGER}: --signatures-dir {tmp_path}: no "
                          "signature file in it or its subdirectories (looked for *.py, "
                          "*.rego, *.yaml/*.yml)\n")
    assert len(res.stdout.splitlines()) == len(builtin_signatures())


# --- where a signature is defined -------------------------------------------------------

def test_builtins_are_located_at_their_id() -> None:
    src = Path(builtin_process.__file__)
    line = next(i for i, text in enumerate(src.read_text().splitlines(), 1) if '"TRC-102"' in text)
    [sig] = [s for s in builtin_signatures() if s.metadata.id == "TRC-102"]
    assert where_defined(sig) == f"{src}:{line}"


def test_a_class_whose_id_is_not_written_in_it_is_located_at_the_class(tmp_path: Path) -> None:
    text = py_sig("USR-C1", "usr_c1").replace('id="USR-C1"', "id=ID")
    write(tmp_path / "c.py", 'ID = "USR-C1"\n' + text)
    [sig], errors = load_signature_dirs([str(tmp_path)])
    assert errors == [] and where_defined(sig) == f"{tmp_path}/c.py:5"  # `class Sig` line


def test_a_class_without_source_has_no_location() -> None:
    cls = type("Made", (Signature,), {"metadata": SignatureMetadata("M-1", "m", "m_sig")})
    assert where_defined(cls()) is None


# --- an id defined twice -----------------------------------------------------------------

@pytest.mark.parametrize("first, second, sig_id, line", [
    (("a.py", "py", "x_a"), ("sub/b.rego", "rego", "x_b"), "TRC-X", 6),
    (("a.py", "py", "d2_a"), ("c.yaml", "yaml", "d2_c"), "USR-D2", 3),   # the yaml id's line
    # Each replaces the built-in; together they clash with each other.
    (("a.py", "py", "anti_debugging"), ("b.rego", "rego", "anti_debugging"), "TRC-102", 6),
])
def test_an_id_in_two_files_names_both(tmp_path: Path, first: tuple[str, str, str],
                                       second: tuple[str, str, str], sig_id: str,
                                       line: int) -> None:
    make = {"py": py_sig, "rego": rego_sig, "yaml": yaml_sig}
    a = write(tmp_path / first[0], make[first[1]](sig_id, first[2]))
    b = write(tmp_path / second[0], make[second[1]](sig_id, second[2]))
    with pytest.raises(UsageError) as ei:
        load_signatures([str(tmp_path)])
    assert str(ei.value) == f"{b}:{line}: signature id {sig_id} is also defined at {a}:6"


def test_two_builtin_instances_name_the_module_and_line() -> None:
    src = Path(builtin_process.__file__)
    [sig] = [s for s in builtin_signatures() if s.metadata.id == "TRC-102"]
    with pytest.raises(SignatureSetError) as ei:
        register([sig, type(sig)()])
    where = where_defined(sig)
    assert where is not None and where.startswith(f"{src}:")
    assert str(ei.value.usage) == f"{where}: signature id TRC-102 is also defined at {where}"
    assert str(ei.value) == f"two signatures with id TRC-102 ({where}, {where})"


def test_duplicate_classes_without_source_are_named_by_class() -> None:
    md = SignatureMetadata("M-2", "m", "m2_sig")
    a = type("MadeA", (Signature,), {"metadata": md, "selected_events": ()})()
    b = type("MadeB", (Signature,), {"metadata": md, "selected_events": ()})()
    with pytest.raises(SignatureSetError) as ei:
        register([a, b])
    assert str(ei.value.usage) == (
        f"signature id M-2 is also defined by {__name__}.MadeA")
    assert str(ei.value) == "two signatures with id M-2 (MadeB, MadeA)"


def test_an_unknown_selected_event_names_the_file(tmp_path: Path) -> None:
    a = write(tmp_path / "a.py", py_sig("USR-E1", "usr_e1", selects="ptrac"))
    with pytest.raises(UsageError) as ei:
        load_signatures([str(tmp_path)])
    assert str(ei.value) == f"{a}:6: signature USR-E1 selects unknown event 'ptrac'"


def test_an_id_defined_twice_on_the_command_line(tmp_path: Path) -> None:
    write(tmp_path / "my-sigs" / "a.py", py_sig("TRC-X", "x_a"))
    write(tmp_path / "my-sigs" / "b.rego", rego_sig("TRC-X", "x_b"))
    line = "pytracee: my-sigs/b.rego:6: signature id TRC-X is also defined at my-sigs/a.py:6\n"
    for cmd in (["analyze", "--signatures-dir", "./my-sigs", "/dev/null"],
                ["list", "signatures", "--signatures-dir", "./my-sigs"],
                ["--signatures-dir", "./my-sigs"]):
        res = run(*cmd, cwd=tmp_path)
        assert (res.returncode, res.stderr) == (2, line), cmd


# --- a user signature that replaces a built-in --------------------------------------------

def test_replacing_a_builtin_is_one_warning(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    x = write(tmp_path / "x.py", py_sig("TRC-102", "anti_debugging"))
    write(tmp_path / "mine.py", py_sig("USR-R1", "usr_r1"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sigs = load_signatures([str(tmp_path)])
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (LOGGER, "WARNING", f"signature TRC-102 from {x}:6 replaces the built-in one")]
    [trc102] = [s for s in sigs if s.metadata.id == "TRC-102"]
    assert where_defined(trc102) == f"{x}:6"
    assert len(sigs) == len(builtin_signatures()) + 1  # USR-R1 added, TRC-102 replaced


def test_replacing_a_builtin_on_the_command_line(tmp_path: Path) -> None:
    write(tmp_path / "my-sigs" / "x.py", "\n" + py_sig("TRC-105", "fileless_execution"))
    res = run("analyze", "--signatures-dir", "./my-sigs", "/dev/null", cwd=tmp_path)
    assert res.returncode == 0
    assert res.stderr == (
        f"pytracee: WARNING {LOGGER}: signature TRC-105 from my-sigs/x.py:7 replaces the "
        "built-in one\n"
        "pytracee: events analyzed: 0, detections: 0\n")


def test_no_warning_without_replacement(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        load_signatures(())
    assert caplog.records == []


def test_a_user_signature_does_not_need_a_file() -> None:
    """Signatures built in code (tests, embedding) register as before."""
    sig = type("Inline", (Signature,), {"metadata": SignatureMetadata("I-1", "i", "inline_sig"),
                                        "selected_events": (EventSelector("ptrace"),)})()
    register([sig])
