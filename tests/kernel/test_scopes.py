"""Scope filters evaluated in the kernel: namespaces, trees, threads, exec env."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.kernel.harness import Session, of, run


def test_mntns_not_equal_and_namespaced_pids(syscaller: Path) -> None:
    host_mntns = os.stat("/proc/self/ns/mnt").st_ino
    with Session(["getppid"], [f"mntns!={host_mntns}", "comm=pt-ns"]) as s:
        run("unshare", "--mount", "--pid", "--fork", syscaller, "-c", "pt-ns", "getppid", "2")
        run(syscaller, "-c", "pt-ns", "getppid", "3")  # host mount namespace: out of scope
        events = s.drain()
    assert len(events) == 2
    for ev in events:
        assert ev.ctx.mnt_ns != host_mntns
        assert ev.ctx.pid_ns != os.stat("/proc/self/ns/pid").st_ino
        assert (ev.ctx.pid, ev.ctx.tid) == (1, 1)  # first process of the new pid namespace
        assert ev.ctx.host_pid != 1


def test_pidns_equal(syscaller: Path) -> None:
    host_pidns = os.stat("/proc/self/ns/pid").st_ino
    with Session(["getppid"], [f"pidns={host_pidns}", "comm=pt-pidns"]) as s:
        run("unshare", "--pid", "--fork", syscaller, "-c", "pt-pidns", "getppid", "2")
        run(syscaller, "-c", "pt-pidns", "getppid", "3")
        events = s.drain()
    assert len(events) == 3
    assert {e.ctx.pid_ns for e in events} == {host_pidns}


def test_tree_follows_existing_process_and_its_new_children(syscaller: Path) -> None:
    root = subprocess.Popen(["sh", "-c", f"read x; {syscaller} -c pt-child getppid 2; "
                                         f"exec {syscaller} -c pt-root getppid 3"],
                            stdin=subprocess.PIPE, text=True)
    try:
        with Session(["getppid"], [f"tree={root.pid}"]) as s:
            run(syscaller, "-c", "pt-outside", "getppid", "4")
            root.communicate("go\n", timeout=30)
            events = s.drain()
    finally:
        root.kill()
    by_comm: dict[str, int] = {}
    for e in events:
        by_comm[e.ctx.comm] = by_comm.get(e.ctx.comm, 0) + 1
    assert by_comm == {"pt-child": 2, "pt-root": 3}
    assert {e.ctx.host_pid for e in events if e.ctx.comm == "pt-root"} == {root.pid}


def test_exec_env_only_when_asked(syscaller: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PT_SECRET": "42"}
    for exec_env in (False, True):
        with Session(["sched_process_exec"], ["comm=pt-env", "follow"], exec_env=exec_env) as s:
            subprocess.run([str(syscaller), "-c", "pt-env", "spawn", "0", str(syscaller), "exit", "0"],
                           env=env, check=True, capture_output=True)
            events = s.drain()
        execs = of(events, "sched_process_exec")
        assert len(execs) == 1
        assert execs[0].arg("env") == (["PATH=/usr/bin:/bin", "PT_SECRET=42"] if exec_env else None)
