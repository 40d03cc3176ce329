"""The example signatures of signatures/ (Python, Rego, YAML+CEL) on the real kernel.

Each test runs the command a user would, from the repository's root:
`pytracee --signatures-dir signatures/<kind> -e <the example's event>`, makes the
real thing happen with a real process (an exec from /tmp, PTRACE_TRACEME, an exec
from a memfd, a process named nginx that execs a shell) and checks the detection
comes exactly once, from that process, with the example's id and data.

The Rego and YAML examples are Tracee's TRC-102, TRC-105 and TRC-1016 written in
those formats, with Tracee's ids: loading them replaces the built-ins of those ids,
and pytracee says so when it starts, one warning line each; the tests expect
exactly those lines. The Python example (EX-1001) has an id of its own: no warning.

Runs are scoped to this test process's tree (`-s tree=<pid>`), so what other
processes on the machine do is not counted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, _started, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")

ROOT = Path(__file__).resolve().parents[2]
COMM = Path(sys.executable).name[:15]
TRACEME = "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)"
ATTACH_SELF = "import ctypes, os; ctypes.CDLL(None).ptrace(16, os.getpid(), 0, 0)"
MEMFD_EXEC = """
import os
fd = os.memfd_create("pt-example")
os.write(fd, open("/bin/true", "rb").read())
os.execv(f"/proc/self/fd/{fd}", ["pt-example"])
"""
NGINX_EXECS_SH = ("import ctypes, os\nctypes.CDLL(None).prctl(15, b'nginx', 0, 0, 0)\n"
                  "os.execv('/bin/sh', ['sh', '-c', 'exit 0'])")
SHELL_EXEC = "os.execv('/bin/sh', ['sh', '-c', 'exit 0'])"

REPLACES = "pytracee: WARNING pytracee.signatures: signature {} from {} replaces the built-in one"
REGO_WARNINGS = [REPLACES.format("TRC-102", "signatures/rego/anti_debugging.rego:8"),
                 REPLACES.format("TRC-105", "signatures/rego/fileless_execution.rego:8")]
YAML_WARNINGS = [REPLACES.format("TRC-102", "signatures/yaml/anti_debugging.yaml:4"),
                 REPLACES.format("TRC-105", "signatures/yaml/fileless_execution.yaml:4"),
                 REPLACES.format("TRC-1016", "signatures/yaml/illegitimate_shell.yaml:4")]


def start_examples(kind: str, events: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    """`pytracee --signatures-dir signatures/<kind> -e <events>` from the repository's
    root, attached; and the warning lines about signatures it printed first."""
    proc = subprocess.Popen(
        [str(PYTRACEE), "--signatures-dir", f"signatures/{kind}", "-e", events, "-o", "json",
         "-E", "none", "-s", f"tree={os.getpid()}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _started.append(proc)  # killed by _no_leftover_tracers if the test fails
    assert proc.stderr is not None
    before = []
    line = proc.stderr.readline().decode()
    while line.startswith("pytracee: WARNING"):
        before.append(line.rstrip("\n"))
        line = proc.stderr.readline().decode()
    assert line.startswith("pytracee: tracing"), "\n".join(before) + line
    return proc, [w for w in before if w.startswith("pytracee: WARNING pytracee.signatures:")]


def run(code: str, **kw: Any) -> int:
    """Run Python code in a new process; its pid."""
    p = subprocess.Popen([sys.executable, "-c", code], **kw)
    assert p.wait(timeout=30) == 0
    return p.pid


def detections(out: bytes) -> list[dict[str, Any]]:
    return [e for e in map(orjson.loads, out.splitlines()) if "metadata" in e]


def args(ev: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in ev["args"]}


def the_one(out: bytes, sig_id: str, event: str, pid: int) -> dict[str, Any]:
    """The only detection of the run: `sig_id`'s, named `event`, from process `pid`."""
    found = detections(out)
    assert [(d["metadata"]["Properties"]["signatureID"], d["eventName"], d["hostProcessId"])
            for d in found] == [(sig_id, event, pid)]
    return found[0]


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    """A directory under /tmp itself (whatever TMPDIR says): where droppers write."""
    d = Path(tempfile.mkdtemp(prefix="pt-example-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- signatures/python ------------------------------------------------------------------

def test_python_example_exec_from_tmp(tmp_dir: Path) -> None:
    prog = tmp_dir / "pt-dropped"
    shutil.copy("/bin/true", prog)
    proc, warnings = start_examples("python", "exec_from_tmp")
    p = subprocess.Popen(["./pt-dropped", "now"], cwd=tmp_dir)  # a relative path: resolved
    assert p.wait(timeout=30) == 0
    subprocess.run(["/bin/true"], check=True)  # a near miss: not from a temporary directory
    out, _ = stop(proc)
    assert warnings == []  # an id of its own: no built-in replaced
    det = the_one(out, "EX-1001", "exec_from_tmp", p.pid)
    assert det["processName"] == "pt-dropped"
    data = args(det)
    assert data["pathname"] == str(prog)
    assert data["argv"] == ["./pt-dropped", "now"]
    assert data["triggeredBy"]["name"] == "sched_process_exec"
    props = det["metadata"]["Properties"]
    assert (props["signatureName"], props["Severity"], props["external_id"]) == (
        "Program executed from a temporary directory", 2, "T1204.002")


# --- signatures/rego --------------------------------------------------------------------

def test_rego_example_anti_debugging() -> None:
    proc, warnings = start_examples("rego", "anti_debugging")
    pid = run(TRACEME)
    run(ATTACH_SELF)  # ptrace, but not PTRACE_TRACEME
    out, _ = stop(proc)
    assert warnings == REGO_WARNINGS
    det = the_one(out, "TRC-102", "anti_debugging", pid)
    assert det["processName"] == COMM and det["syscall"] == "ptrace"
    trig = args(det)["triggeredBy"]
    assert trig["name"] == "ptrace" and trig["args"][0] == {
        "name": "request", "type": "int64", "value": 0}


def test_rego_example_fileless_execution() -> None:
    proc, warnings = start_examples("rego", "fileless_execution")
    pid = run(MEMFD_EXEC)
    run("pass")  # an exec from disk
    out, _ = stop(proc)
    assert warnings == REGO_WARNINGS
    det = the_one(out, "TRC-105", "fileless_execution", pid)
    # The Rego file's name for it (the built-in says "Fileless execution detected").
    assert det["metadata"]["Properties"]["signatureName"] == "Fileless Execution"
    trig = args(det)["triggeredBy"]
    pathname = {a["name"]: a["value"] for a in trig["args"]}["pathname"]
    assert trig["name"] == "sched_process_exec" and pathname.startswith("memfd:pt-example")


# --- signatures/yaml --------------------------------------------------------------------

def test_yaml_example_anti_debugging() -> None:
    proc, warnings = start_examples("yaml", "anti_debugging")
    pid = run(TRACEME)
    run(ATTACH_SELF)
    out, _ = stop(proc)
    assert warnings == YAML_WARNINGS
    det = the_one(out, "TRC-102", "anti_debugging", pid)
    assert det["processName"] == COMM
    data = args(det)
    assert data["ptrace_request"] == "PTRACE_TRACEME"  # the detector's output field
    assert data["triggeredBy"]["name"] == "ptrace"


def test_yaml_example_fileless_execution() -> None:
    proc, warnings = start_examples("yaml", "fileless_execution")
    pid = run(MEMFD_EXEC)
    run("pass")
    out, _ = stop(proc)
    assert warnings == YAML_WARNINGS
    det = the_one(out, "TRC-105", "fileless_execution", pid)
    data = args(det)
    assert data["pathname"].startswith("memfd:pt-example")
    assert data["argv"] == "pt-example"


def test_yaml_example_illegitimate_shell_with_its_string_list() -> None:
    # SHELL_BINARIES (shell_binaries.yaml) names the shells: sh is one.
    proc, warnings = start_examples("yaml", "illegitimate_shell")
    pid = run(NGINX_EXECS_SH)
    run("import ctypes, os\nctypes.CDLL(None).prctl(15, b'pt-notweb', 0, 0, 0)\n" + SHELL_EXEC)
    out, _ = stop(proc)
    assert warnings == YAML_WARNINGS
    det = the_one(out, "TRC-1016", "illegitimate_shell", pid)
    assert det["processName"] == "sh"
    data = args(det)
    assert (data["shell"], data["parent_comm"], data["pathname"]) == (
        "sh", "nginx", os.path.realpath("/bin/sh"))
