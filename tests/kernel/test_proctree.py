"""The process tree: ancestry of real process chains, entity ids, the memory bound."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")


def events_of(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def args(ev: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in ev["args"]}


def test_bash_sh_sleep_ancestry() -> None:
    proc = start("-o", "json", "-o", "option:ancestry=4", "-e", "sched_process_exec",
                 "-s", "comm=sleep", "-E", "none")
    inner = "sleep 0.1; true"  # two commands: sh forks sleep rather than exec'ing it
    outer = f"sh -c '{inner}'; true"
    bash = subprocess.Popen(["bash", "-c", outer])
    assert bash.wait() == 0
    out, _ = stop(proc)
    [ev] = events_of(out)

    assert args(ev)["argv"] == ["sleep", "0.1"]
    assert ev["executable"] == {"path": "/usr/bin/sleep"}
    sh, bash_p, me = ev["ancestors"][:3]
    assert len(ev["ancestors"]) == 4
    assert (sh["processName"], sh["executable"]["path"], sh["argv"]) == (
        "sh", "/usr/bin/dash", ["sh", "-c", inner])
    assert sh["hostProcessId"] == ev["hostParentProcessId"]
    assert sh["processEntityId"] == ev["parentEntityId"]
    assert (bash_p["processName"], bash_p["executable"]["path"], bash_p["argv"]) == (
        "bash", "/usr/bin/bash", ["bash", "-c", outer])
    assert bash_p["hostProcessId"] == bash.pid == sh["hostParentProcessId"]
    # pytest itself was seeded from /proc at start: the same entity id as the kernel's.
    assert me["hostProcessId"] == os.getpid()
    assert me["executable"]["path"] == os.path.realpath("/proc/self/exe")


def test_entity_ids_link_parent_and_child(syscaller: Path) -> None:
    proc = start("-o", "json", "-e", "sched_process_fork,sched_process_exec", "-s", "comm=pt-ent", "-s", "follow",
                 "-E", "none")
    subprocess.run([str(syscaller), "-c", "pt-ent", "spawn", "0", "/usr/bin/true"], check=True)
    out, _ = stop(proc)
    evs = events_of(out)
    [fork] = [e for e in evs if e["eventName"] == "sched_process_fork"]
    [exe] = [e for e in evs if e["eventName"] == "sched_process_exec"]
    # The child's parent entity is the forking process's own entity.
    assert exe["parentEntityId"] == fork["processEntityId"]
    assert exe["hostParentProcessId"] == fork["hostProcessId"]
    assert exe["hostProcessId"] == args(fork)["child_pid"]
    assert exe["processEntityId"] != fork["processEntityId"]
    # A single-threaded process: thread and process are the same entity.
    assert exe["threadEntityId"] == exe["processEntityId"]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fork_storm_keeps_the_tree_bounded(syscaller: Path) -> None:
    proc = start("-o", "none", "-e", "getppid", "-s", "comm=pt-none", "-E", "none",
                 "--stores", "process.max-processes=2000", "--stores", "process.exited-ttl=60")
    time.sleep(0.5)
    before = _rss_kb(proc.pid)
    subprocess.run([str(syscaller), "-c", "pt-storm", "forks", "50000"], check=True,
                   capture_output=True)
    time.sleep(1.0)
    after = _rss_kb(proc.pid)
    _, err = stop(proc)
    tracked = int(err.split("processes tracked: ")[1].split(",")[0])
    assert tracked == 2000  # full, never beyond
    assert "lost: 0 " in err
    # 50 000 processes went through a tree of 2 000: memory stays where it was.
    print(f"pytracee RSS before {before} kB, after 50 000 forks {after} kB")
    assert after - before < 20_000


def test_executable_scope(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("x\n")
    mnt = os.stat("/proc/self/ns/mnt").st_ino
    cases = {
        "executable=/usr/bin/cat": {"cat"},
        "executable=host:/usr/bin/head": {"head"},
        f"executable={mnt}:/usr/bin/cat": {"cat"},
        "executable=1:/usr/bin/cat": set(),           # another mount namespace
        "executable!=/usr/bin/cat": {"head", "tail"},
    }
    for expr, comms in cases.items():
        proc = start("-o", "json", "-e", f"openat.data.pathname={target}", "-s", expr, "-E", "none")
        for tool in ("cat", "head", "tail"):
            subprocess.run([f"/usr/bin/{tool}", str(target)], check=True, capture_output=True)
        out, _ = stop(proc)
        got = {e["processName"] for e in events_of(out)}
        assert got == comms, expr


def test_executable_scope_needs_the_tree() -> None:
    res = subprocess.run([str(PYTRACEE), "-s", "executable=/usr/bin/cat", "--stores", "none"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr == ("pytracee: executable scopes need the process tree "
                          "(drop --stores none)\n")
