"""Tracee policy files on the real kernel: several policies at once, matchedPolicies,
both file formats, and reloads without a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.kernel.harness import Session, run
from tests.kernel.cli_proc import PYTRACEE, _started

K8S = """apiVersion: tracee.aquasec.com/v1beta1
kind: Policy
metadata:
  name: {name}
  annotations:
    description: {name} policy
spec:
  scope: [{scope}]
  rules:
    - event: getppid
"""
PLAIN = """type: policy
name: {name}
description: {name} policy
scope: [{scope}]
rules:
  - event: getppid
"""
TWO = [("by-comm", "comm=pt-pol-a"), ("by-uid", "uid=1000, follow")]


def _write(d: Path, form: str, pols: list[tuple[str, str]]) -> Path:
    d.mkdir()
    for i, (name, scope) in enumerate(pols):
        (d / f"{i}-{name}.yaml").write_text(form.format(name=name, scope=scope))
    return d


def _workload(syscaller: Path) -> None:
    as_1000 = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
    run(syscaller, "-c", "pt-pol-a", "getppid", "1")                           # by-comm
    run(*as_1000, syscaller, "-c", "pt-pol-a", "getppid", "2")                 # both
    run(*as_1000, syscaller, "-c", "pt-pol-b", "getppid", "3")                 # by-uid
    run(*as_1000, syscaller, "-c", "pt-pol-b", "spawn", "0", syscaller, "-c", "pt-pol-c",
        "getppid", "4")                                                        # by-uid (descendant)
    run(syscaller, "-c", "pt-pol-b", "getppid", "5")                           # neither


def _matches(events: list, names: list[str]) -> Counter[tuple[str, int, tuple[str, ...]]]:
    return Counter((e.ctx.comm, e.ctx.uid, tuple(n for i, n in enumerate(names) if e.matched >> i & 1))
                   for e in events if e.ctx.comm.startswith("pt-pol"))


@pytest.mark.parametrize("form", [K8S, PLAIN], ids=["kubernetes", "plain"])
def test_each_event_carries_exactly_the_policies_it_matched(syscaller: Path, tmp_path: Path,
                                                             form: str) -> None:
    pol = _write(tmp_path / "pol", form, TWO)
    with Session(policies=[pol]) as s:
        _workload(syscaller)
        events = s.drain()
        names = s.pipeline.runtime.names
    assert names == ["by-comm", "by-uid"]
    assert _matches(events, names) == Counter({
        ("pt-pol-a", 0, ("by-comm",)): 1,
        ("pt-pol-a", 1000, ("by-comm", "by-uid")): 2,
        ("pt-pol-b", 1000, ("by-uid",)): 3,
        ("pt-pol-c", 1000, ("by-uid",)): 4,
    })


def test_kubernetes_and_plain_forms_give_identical_output(syscaller: Path, tmp_path: Path) -> None:
    results = []
    for form, d in ((K8S, "k8s"), (PLAIN, "plain")):
        with Session(policies=[_write(tmp_path / d, form, TWO)]) as s:
            _workload(syscaller)
            results.append(_matches(s.drain(), s.pipeline.runtime.names))
    assert results[0] == results[1]
    assert sum(results[0].values()) == 10


def _put(path: Path, text: str) -> None:
    """Replace a file in one step, as an editor or a config manager would: the
    watcher never sees it half written."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _policy_set(d: Path, toggle: str) -> None:
    """Set a: [always, toggle-a], both selecting the workload. Set b: [toggle-b, always],
    where toggle-b selects nothing: a different bit layout, so an event read with
    the wrong set's names would show up as ["toggle-a"] or ["toggle-b", ...]."""
    for f in d.glob("*.yaml"):
        f.unlink()
    if toggle == "toggle-a":
        _put(d / "0-always.yaml", PLAIN.format(name="always", scope="comm=pt-reload"))
        _put(d / "1-toggle.yaml", PLAIN.format(name="toggle-a", scope="comm=pt-reload"))
    else:
        _put(d / "0-toggle.yaml", PLAIN.format(name="toggle-b", scope="comm=pt-nobody"))
        _put(d / "1-always.yaml", PLAIN.format(name="always", scope="comm=pt-reload"))


def _start_with_policies(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """pytracee attached and running the set {always, toggle-a} from a fresh policy
    directory, JSON to a file: (process, policy dir, output file)."""
    pol = tmp_path / "pol"
    pol.mkdir()
    _policy_set(pol, "toggle-a")
    out = tmp_path / "events.json"
    proc = subprocess.Popen([str(PYTRACEE), "-p", str(pol), "-o", f"json:{out}"],
                            stderr=subprocess.PIPE)
    _started.append(proc)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith(b"pytracee: tracing")
    return proc, pol, out


def test_sighup_reloads_under_load_without_loss_or_mixing(syscaller: Path, tmp_path: Path) -> None:
    proc, pol, out = _start_with_policies(tmp_path)
    calls = 3_000_000
    storm = subprocess.Popen([str(syscaller), "-c", "pt-reload", "getppid", str(calls)])
    for i in range(20):
        time.sleep(0.1)
        _policy_set(pol, "toggle-b" if i % 2 == 0 else "toggle-a")
        proc.send_signal(signal.SIGHUP)
    storm.wait(timeout=60)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = err.decode().strip().splitlines()[-1]
    lost = int(summary.split("lost: ")[1].split()[0])

    matched: Counter[tuple[str, ...]] = Counter()
    reloads = []
    for line in out.read_bytes().splitlines():
        ev = orjson.loads(line)
        if ev["eventName"] == "policy_reload":
            reloads.append({a["name"]: a["value"] for a in ev["args"]})
        elif ev["processName"] == "pt-reload":
            matched[tuple(ev["matchedPolicies"])] += 1
    # every call is delivered or counted lost, whatever set was active
    assert sum(matched.values()) + lost == calls
    # each event decided under exactly one set and named with that set's names
    assert set(matched) == {("always", "toggle-a"), ("always",)}
    assert len(reloads) >= 1 and all(r["success"] for r in reloads)
    assert reloads[-1]["policies"] in (["always", "toggle-a"], ["toggle-b", "always"])


def test_broken_reload_keeps_the_running_policies(syscaller: Path, tmp_path: Path) -> None:
    proc, pol, out = _start_with_policies(tmp_path)
    _put(pol / "1-toggle.yaml", "type: policy\nname: broken\nscope: [comm=x]\nrules:\n  - event: nosuchevent\n")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    run(syscaller, "-c", "pt-reload", "getppid", "7")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    errors = [ln for ln in err.decode().splitlines() if "reload refused" in ln]
    assert len(errors) == 1
    assert f"{pol}/1-toggle.yaml:5" in errors[0] and "nosuchevent" in errors[0]
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    reload = [e for e in events if e["eventName"] == "policy_reload"]
    assert len(reload) == 1
    args = {a["name"]: a["value"] for a in reload[0]["args"]}
    assert args["success"] is False and "nosuchevent" in args["error"]
    assert args["policies"] == ["always", "toggle-a"]
    mine = [e for e in events if e["processName"] == "pt-reload"]
    assert len(mine) == 7
    assert {tuple(e["matchedPolicies"]) for e in mine} == {("always", "toggle-a")}


def test_changed_policy_file_reloads_without_a_signal(syscaller: Path, tmp_path: Path) -> None:
    proc, pol, out = _start_with_policies(tmp_path)
    _policy_set(pol, "toggle-b")
    deadline = time.monotonic() + 10
    while b"policy_reload" not in (out.read_bytes() if out.exists() else b""):
        assert time.monotonic() < deadline, "no reload within 10 s of the change"
        time.sleep(0.1)
    run(syscaller, "-c", "pt-reload", "getppid", "2")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    reloads = [{a["name"]: a["value"] for a in e["args"]} for e in events if e["eventName"] == "policy_reload"]
    assert reloads == [{"success": True, "version": 1, "policies": ["toggle-b", "always"], "error": ""}]
    mine = [tuple(e["matchedPolicies"]) for e in events if e["processName"] == "pt-reload"]
    assert mine == [("always",)] * 2


def test_reload_moves_tree_scope_to_another_tree(syscaller: Path, tmp_path: Path) -> None:
    """Follow state belongs to a policy set: after tree=X -> tree=Y, X is no longer traced."""
    roots = [subprocess.Popen(["sh", "-c", f"while read c; do {syscaller} -c pt-tree-$c getppid 2; done"],
                              stdin=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        pol = tmp_path / "pol"
        pol.mkdir()
        text = "type: policy\nname: tree\nscope: [tree={pid}]\nrules:\n  - event: getppid\n"
        _put(pol / "tree.yaml", text.format(pid=roots[0].pid))
        with Session(policies=[pol]) as s:
            for r, tag in zip(roots, ("x1", "y1")):
                r.stdin.write(tag + "\n")
                r.stdin.flush()
            time.sleep(0.5)
            _put(pol / "tree.yaml", text.format(pid=roots[1].pid))
            from pytracee.cli import policy_runtime
            s.pipeline.reload(policy_runtime(1, [str(pol)], (), ()))
            for r, tag in zip(roots, ("x2", "y2")):
                r.stdin.write(tag + "\n")
                r.stdin.flush()
            time.sleep(0.5)
            events = s.drain()
    finally:
        for r in roots:
            r.kill()
    comms = Counter(e.ctx.comm for e in events if e.ctx.comm.startswith("pt-tree"))
    assert comms == Counter({"pt-tree-x1": 2, "pt-tree-y2": 2})


READ_POLICY = """type: policy
name: {name}
scope: [comm=pt-block]
rules:
  - event: {event}
"""


def _reloads_seen(out: Path) -> int:
    if not out.exists():
        return 0
    return sum(b'"policy_reload"' in line for line in out.read_bytes().splitlines())


def _reload(proc: subprocess.Popen[bytes], pol: Path, out: Path, name: str, event: str,
            expect: int) -> None:
    for f in pol.glob("*.yaml"):
        f.unlink()
    _put(pol / "p.yaml", READ_POLICY.format(name=name, event=event))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while _reloads_seen(out) < expect:
        assert time.monotonic() < deadline, "reload not applied"
        time.sleep(0.05)


def test_a_call_blocked_across_two_reloads_is_reported_once(tmp_path: Path) -> None:
    """A read entered under policy set 0 returns after two reloads (set 2 reuses set 0's
    kernel slot): it is reported once, under set 0's policies, and not replayed later."""
    pol = tmp_path / "pol"
    pol.mkdir()
    _put(pol / "p.yaml", READ_POLICY.format(name="p-read", event="read"))
    out = tmp_path / "events.json"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([str(PYTRACEE), "-p", str(pol), "-o", f"json:{out}", "-E", "none",
                             "--stores", "none"], stderr=subprocess.PIPE)
    _started.append(proc)
    assert proc.stderr is not None and proc.stderr.readline().startswith(b"pytracee: tracing")
    blocker = subprocess.Popen([sys.executable, "-c", f"""
import ctypes, os, signal
signal.signal(signal.SIGUSR1, lambda *_: None)
ctypes.CDLL(None).prctl(15, b"pt-block", 0, 0, 0)
fd = os.open({str(fifo)!r}, os.O_RDONLY)
print(len(os.read(fd, 100)), flush=True)   # blocked across two reloads
print(len(os.read(fd, 100)), flush=True)   # while no policy selects read
signal.pause()
print(len(os.read(fd, 100)), flush=True)   # after read is selected again
"""], stdout=subprocess.PIPE)
    assert blocker.stdout is not None
    w = os.open(fifo, os.O_WRONLY)
    try:
        time.sleep(0.5)  # the blocker is in its first read
        _reload(proc, pol, out, "p-other", "getppid", 1)
        _reload(proc, pol, out, "p-other2", "getppid", 2)
        os.write(w, b"abc")
        assert blocker.stdout.readline() == b"3\n"
        os.write(w, b"defg")
        assert blocker.stdout.readline() == b"4\n"
        _reload(proc, pol, out, "p-read-again", "read", 3)
        time.sleep(0.2)
        blocker.send_signal(signal.SIGUSR1)
        time.sleep(0.3)  # in its third read
        os.write(w, b"hi")
        assert blocker.stdout.readline() == b"2\n"
    finally:
        os.close(w)
        blocker.wait(timeout=10)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    reads = [orjson.loads(x) for x in out.read_bytes().splitlines()
             if b'"eventName":"read"' in x and b'"pt-block"' in x]
    assert [(e["matchedPolicies"], e["returnValue"]) for e in reads] == [
        (["p-read"], 3), (["p-read-again"], 2)]


def test_what_list_policies_accepts_the_runner_runs(tmp_path: Path) -> None:
    """Rules that select a signature, by its event and by its threat: `list policies`
    accepts them (it loads the signatures as the runner does) and `-p` detects with them."""
    from tests.kernel.cli_proc import start, stop

    pol = tmp_path / "pol"
    pol.mkdir()
    rule = "type: policy\nname: {name}\nscope: [comm=pt-fh-dbg]\nrules:\n  - event: {event}\n"
    (pol / "0-event.yaml").write_text(rule.format(name="by-event", event="anti_debugging"))
    (pol / "1-threat.yaml").write_text(rule.format(name="by-threat",
                                                   event="threat.mitre.technique=T1622"))
    listed = subprocess.run([str(PYTRACEE), "list", "policies", str(pol)], capture_output=True,
                            text=True, timeout=60)
    assert (listed.returncode, listed.stderr) == (0, "")
    assert listed.stdout == "".join(
        f"policy {i}: {name}  ({pol}/{f}:1)\n  scope: comm=pt-fh-dbg\n  events (1):\n"
        f"    anti_debugging\n" + ("\n" if i == 0 else "")
        for i, (name, f) in enumerate((("by-event", "0-event.yaml"),
                                       ("by-threat", "1-threat.yaml"))))
    out = tmp_path / "out.json"
    proc = start("-p", str(pol), "-o", f"json:{out}", "-E", "none")
    subprocess.run([sys.executable, "-c", "import ctypes; libc = ctypes.CDLL(None); "
                    "libc.prctl(15, b'pt-fh-dbg', 0, 0, 0); libc.ptrace(0, 0, 0, 0)"], check=True)
    _, err = stop(proc)
    evs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(e["eventName"], e["processName"], e["matchedPolicies"]) for e in evs] == [
        ("anti_debugging", "pt-fh-dbg", ["by-event", "by-threat"])]
    assert "detections: 1" in err
