"""Detections end to end: the engine in the live pipeline, user signatures,
signature config, `list signatures` and `analyze` on a recording."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")

COMM = Path(sys.executable).name[:15]  # what the kernel calls the interpreter we run
TRACEME = "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)"
ATTACH_SELF = "import ctypes, os; ctypes.CDLL(None).ptrace(16, os.getpid(), 0, 0)"

USER_SIG = '''
from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata


class TmpMarker(Signature):
    metadata = SignatureMetadata("USR-1", "Marker file opened", "marker_opened",
                                 properties={"Severity": 2, "external_id": "T0000"})
    selected_events = (EventSelector("security_file_open"),)

    def on_event(self, ev):
        path = ev.arg("pathname") or ""
        allowed = self.params.get("allowed_comms", [])
        if path.endswith("/pt-marker") and ev.ctx.comm not in allowed:
            self.match(ev, path=path, ancestors=len(self.ctx.stores.ancestry(ev)))
'''


def lines(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in out.splitlines()]


def test_signature_selects_its_events_without_printing_them() -> None:
    proc = start("-o", "json", "-e", "anti_debugging", "-E", "none")
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    subprocess.run([sys.executable, "-c", ATTACH_SELF], check=True)  # ptrace, not TRACEME
    out, err = stop(proc)
    evs = lines(out)
    assert [e["eventName"] for e in evs] == ["anti_debugging"]  # the ptrace events stay inside
    det = evs[0]
    assert det["metadata"]["Properties"]["signatureID"] == "TRC-102"
    assert det["metadata"]["Properties"]["Severity"] == 1
    trig = det["args"][-1]
    assert trig["name"] == "triggeredBy" and trig["value"]["name"] == "ptrace"
    assert trig["value"]["args"][0] == {"name": "request", "type": "int64", "value": 0}
    assert det["syscall"] == "ptrace" and det["processName"] == COMM
    assert "detections: 1" in err


def test_both_the_signature_and_its_event_when_both_are_asked() -> None:
    proc = start("-o", "json", "-e", "anti_debugging,ptrace", "-s", f"comm={COMM}", "-E", "none")
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    out, _ = stop(proc)
    assert [e["eventName"] for e in lines(out)] == ["ptrace", "anti_debugging"]


def test_user_python_signature_with_params_and_ancestry(tmp_path: Path) -> None:
    sigdir = tmp_path / "sigs"
    sigdir.mkdir()
    (sigdir / "marker.py").write_text(USER_SIG)
    marker = tmp_path / "pt-marker"
    marker.write_text("x")
    cfg = tmp_path / "sigcfg.yaml"
    cfg.write_text("USR-1:\n  allowed_comms: [head]\n")
    proc = start("-o", "json", "-e", "marker_opened", "--signatures-dir", str(sigdir),
                 "--signatures-config", str(cfg), "-E", "none")
    subprocess.run(["cat", str(marker)], check=True, capture_output=True)
    subprocess.run(["head", str(marker)], check=True, capture_output=True)  # allowed: silent
    out, _ = stop(proc)
    [det] = lines(out)
    assert det["eventName"] == "marker_opened" and det["processName"] == "cat"
    data = {a["name"]: a["value"] for a in det["args"]}
    assert data["path"] == str(marker)
    assert data["ancestors"] >= 2  # cat <- pytest <- ... from the process tree
    assert det["metadata"]["Properties"]["signatureID"] == "USR-1"


def test_bad_signature_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("from pytracee.detect.signature import Signature\n\ndef x(:\n")
    res = subprocess.run([str(PYTRACEE), "--signatures-dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr == f"pytracee: {tmp_path}/bad.py:3: Python syntax error: invalid syntax\n"
    res = subprocess.run([str(PYTRACEE), "list", "signatures", "--signatures-dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "bad.py:3" in res.stderr


def test_list_signatures() -> None:
    res = subprocess.run([str(PYTRACEE), "list", "signatures", "--json"], capture_output=True,
                         text=True, check=True)
    sigs = {s["id"]: s for s in map(orjson.loads, res.stdout.splitlines())}
    assert sigs["TRC-105"] == {"id": "TRC-105", "name": "Fileless execution detected",
                               "event": "fileless_execution", "severity": "high",
                               "mitre": "T1620", "events": ["sched_process_exec"],
                               "kernel_can_trigger": True}
    assert sigs["TRC-101"]["events"] == ["security_socket_connect", "socket_dup"]


def test_analyze_a_recording_finds_what_live_found(tmp_path: Path) -> None:
    rec = tmp_path / "rec.json"
    proc = start("-o", f"json:{rec}", "-e", "ptrace,sched_process_exec", "-s", f"comm={COMM}",
                 "-E", "none")
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    subprocess.run([sys.executable, "-c", ATTACH_SELF], check=True)
    stop(proc)
    recorded = rec.read_bytes().splitlines()
    assert len(recorded) >= 3
    res = subprocess.run([str(PYTRACEE), "analyze", str(rec)], capture_output=True, check=True)
    [det] = lines(res.stdout)
    assert det["eventName"] == "anti_debugging"
    assert det["metadata"]["Properties"]["signatureID"] == "TRC-102"
    assert res.stderr.decode() == f"pytracee: events analyzed: {len(recorded)}, detections: 1\n"
    # stdin works too, and one signature can be chosen
    res = subprocess.run([str(PYTRACEE), "analyze", "-e", "fileless_execution", "-"],
                         input=rec.read_bytes(), capture_output=True, check=True)
    assert res.stdout == b""
    # A broken line: file and line named, exit 2.
    rec.write_bytes(rec.read_bytes() + b"{not json\n")
    res = subprocess.run([str(PYTRACEE), "analyze", str(rec)], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith(f"pytracee: {rec}:{len(recorded) + 1}: not JSON")


def test_filters_apply_to_detections() -> None:
    proc = start("-o", "json", "-e", "anti_debugging", "-e",
                 "anti_debugging.scope.processName=nobody", "-E", "none")
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    out, err = stop(proc)
    assert out == b""
    assert "filtered in user space: 1," in err and "detections: 1" in err


def test_a_bad_rego_file_is_named_and_the_others_still_list(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package x\n\ntracee_match if {\n  input.eventName ==\n}\n")
    good = Path(__file__).resolve().parents[2] / "signatures" / "rego" / "anti_debugging.rego"
    (tmp_path / "good.rego").write_text(good.read_text())
    res = subprocess.run([str(PYTRACEE), "list", "signatures", "--signatures-dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr == f"pytracee: {tmp_path}/bad.rego:5: expecting expression\n"
    listed = [line.split()[0] for line in res.stdout.splitlines()]
    assert "TRC-102" in listed and len(listed) == 31  # the Rego TRC-102 replaces the built-in
    res = subprocess.run([str(PYTRACEE), "--signatures-dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr == f"pytracee: {tmp_path}/bad.rego:5: expecting expression\n"


def test_a_reload_that_selects_a_signature_starts_it(tmp_path: Path) -> None:
    import signal
    import time

    pol = tmp_path / "pol"
    pol.mkdir()
    policy = "type: policy\nname: {name}\nscope: [comm={comm}]\nrules:\n  - event: {event}\n"
    (pol / "p.yaml").write_text(policy.format(name="plain", comm=COMM, event="getppid"))
    out = tmp_path / "out.json"
    proc = start("-p", str(pol), "-o", f"json:{out}", "-E", "none")
    subprocess.run([sys.executable, "-c", TRACEME], check=True)  # not selected yet
    (pol / "p.yaml").write_text(policy.format(name="detect", comm=COMM, event="anti_debugging"))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not (out.exists() and b'"policy_reload"' in out.read_bytes()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run([sys.executable, "-c", TRACEME], check=True)
    _, err = stop(proc)
    evs = [e for e in lines(out.read_bytes()) if e["eventName"] != "policy_reload"]
    assert [(e["eventName"], e["matchedPolicies"]) for e in evs] == [("anti_debugging", ["detect"])]
    assert "detections: 1" in err


def test_a_signature_selected_by_a_reload_gets_the_exec_environment(tmp_path: Path) -> None:
    import signal
    import time

    pol = tmp_path / "pol"
    pol.mkdir()
    policy = "type: policy\nname: {name}\nscope: [comm=true]\nrules:\n  - event: {event}\n"
    (pol / "p.yaml").write_text(policy.format(name="plain", event="getppid"))
    out = tmp_path / "out.json"
    proc = start("-p", str(pol), "-o", f"json:{out}", "-E", "none")
    (pol / "p.yaml").write_text(policy.format(name="preload", event="ld_preload"))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not (out.exists() and b'"policy_reload"' in out.read_bytes()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run(["env", "LD_PRELOAD=/nonexistent/pt-hook.so", "/bin/true"], check=True,
                   capture_output=True)
    stop(proc)
    evs = [e for e in lines(out.read_bytes()) if e["eventName"] == "ld_preload"]
    assert len(evs) == 1
    data = {a["name"]: a["value"] for a in evs[0]["args"]}
    assert data["LD_PRELOAD"] == "LD_PRELOAD=/nonexistent/pt-hook.so"
