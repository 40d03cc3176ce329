"""Process tree, enrich stage and enrichment options, on constructed events."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytracee.enrich.containers import PENDING, READY, Container, ContainerManager
from pytracee.enrich.enricher import Enricher
from pytracee.enrich.options import parse_enrich_options
from pytracee.enrich.proctree import ProcessTree
from pytracee.enrich.runtime_api import ContainerInfo
from pytracee.errors import UsageError
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext, entity_id

BOOT = 1_700_000_000_000_000_000


def ctx(pid: int, start: int, ppid: int = 1, pstart: int = 5, comm: bytes = b"x",
        cgroup: int = 1) -> TaskContext:
    return TaskContext((start, start, pstart, cgroup, pid, pid, ppid, pid, pid, ppid, 0, 0,
                        4026531840, 4026531836, comm, b"host"), BOOT)


def event(eid: int, c: TaskContext, args: dict[str, object], matched: int = 1,
          ts: int = 1_000) -> Event:
    definition = d.EVENTS[eid]
    values = [args.get(a.name) for a in definition.args]
    return Event(BOOT + ts, 0, matched, eid, -1, 0, 0, 0, c, definition, values)


def fork(parent: TaskContext, child_pid: int, child_start: int, matched: int = 0) -> Event:
    return event(d.SCHED_PROCESS_FORK, parent, {
        "child_pid": child_pid, "child_tid": child_pid, "start_time": child_start,
        "parent_process_pid": parent.host_pid, "parent_process_start_time": parent.leader_start,
    }, matched)


def test_entity_ids_round_start_times_to_clock_ticks() -> None:
    # /proc has start times in 10 ms ticks: the kernel's ns must hash the same.
    assert entity_id(42, 1_234_567_890) == entity_id(42, 1_230_000_000)
    assert entity_id(42, 1_234_567_890) != entity_id(42, 1_240_000_000)
    assert entity_id(42, 1_234_567_890) != entity_id(43, 1_234_567_890)


def test_fork_exec_exit_and_ancestry() -> None:
    tree = ProcessTree(capacity=100, exited_ttl_s=1)
    init = ctx(1, 10_000_000, ppid=0, pstart=0, comm=b"init")
    tree.on_exec(event(d.SCHED_PROCESS_EXEC, init, {}), "/sbin/init", ["init"])
    tree.on_fork(fork(init, 100, 50_000_000))
    child = ctx(100, 50_000_000, ppid=1, pstart=10_000_000, comm=b"bash")
    p = tree.on_exec(event(d.SCHED_PROCESS_EXEC, child, {}), "/usr/bin/bash", ["bash", "-c", "x"])
    tree.on_fork(fork(child, 200, 60_000_000))
    grandchild = ctx(200, 60_000_000, ppid=100, pstart=50_000_000, comm=b"bash")
    g = tree.get(grandchild.process_entity)
    assert g is not None and (g.exe, g.argv) == ("/usr/bin/bash", ("bash", "-c", "x"))  # inherited
    assert [a.pid for a in tree.ancestry(grandchild.process_entity, 5)] == [100, 1]
    assert [a.pid for a in tree.ancestry(grandchild.process_entity, 1)] == [100]
    assert p.rev == 1  # the exec changed what fork had recorded

    tree.on_exit(event(d.SCHED_PROCESS_EXIT, grandchild, {"process_group_exit": True}, ts=70_000_000))
    assert tree.get(grandchild.process_entity).exited_ns == 70_000_000  # type: ignore[union-attr]
    assert tree.expire(now_boot_ns=70_000_000 + 500_000_000) == 0  # kept briefly
    assert tree.expire(now_boot_ns=70_000_000 + 1_500_000_000) == 1
    assert tree.get(grandchild.process_entity) is None
    assert len(tree) == 2


def test_bound_evicts_exited_before_live() -> None:
    tree = ProcessTree(capacity=3)
    parent = ctx(1, 10_000_000)
    tree.on_exec(event(d.SCHED_PROCESS_EXEC, parent, {}), "/p", ["p"])
    for pid in (10, 11):
        tree.on_fork(fork(parent, pid, pid * 10_000_000))
    gone = ctx(10, 100_000_000)
    tree.on_exit(event(d.SCHED_PROCESS_EXIT, gone, {"process_group_exit": True}))
    tree.on_fork(fork(parent, 12, 120_000_000))  # full: the exited one makes room
    assert len(tree) == 3 and tree.get(gone.process_entity) is None and tree.evicted == 0
    tree.on_fork(fork(parent, 13, 130_000_000))  # full, none exited: the least recent live one
    assert len(tree) == 3 and tree.evicted == 1
    assert tree.get(parent.process_entity) is None


def test_fork_storm_stays_within_capacity() -> None:
    tree = ProcessTree(capacity=500)
    parent = ctx(1, 10_000_000)
    for pid in range(2, 20_002):
        tree.on_fork(fork(parent, pid, pid * 10_000_000))
    assert len(tree) == 500


def test_threads_are_not_processes() -> None:
    tree = ProcessTree()
    parent = ctx(1, 10_000_000)
    ev = fork(parent, 5, 50_000_000)
    ev.args[d.EVENTS[d.SCHED_PROCESS_FORK].arg_index("child_tid")] = 6  # type: ignore[index]
    tree.on_fork(ev)
    assert len(tree) == 0


def test_seed_from_proc_knows_this_process() -> None:
    tree = ProcessTree(capacity=100_000)
    assert tree.seed() >= 1
    stat = Path("/proc/self/stat").read_text()
    start = int(stat.rsplit(")", 1)[1].split()[19]) * 10_000_000
    me = tree.get(entity_id(os.getpid(), start))
    assert me is not None
    assert me.exe == os.path.realpath("/proc/self/exe")
    assert me.ppid == os.getppid()
    assert me.argv == tuple(Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1][:32])
    parent = tree.get(me.parent_entity)
    assert parent is not None and parent.pid == os.getppid()


# -- the enrich stage -----------------------------------------------------------------

class NoRuntime:
    runtime = "docker"
    socket_path = "/nonexistent"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def inspect(self, container_id: str) -> ContainerInfo:
        self.asked.append(container_id)
        return ContainerInfo(container_id, "docker", "web", "img:1", "sha256:ab", 7)

    def ping(self) -> bool:
        return True


CID = "a" * 64


def mkdir(c: TaskContext, cgroup_id: int, path: str, matched: int) -> Event:
    return event(d.CGROUP_MKDIR, c, {"cgroup_id": cgroup_id, "cgroup_path": path,
                                     "hierarchy_id": 0}, matched)


def test_signals_no_policy_selected_stop_in_the_enrich_stage() -> None:
    tree = ProcessTree()
    enricher = Enricher(tree, None, lambda v: {d.SCHED_PROCESS_FORK: 0b10})
    parent = ctx(1, 10_000_000)
    out = enricher.process([fork(parent, 7, 70_000_000, matched=0),
                            fork(parent, 8, 80_000_000, matched=0b10)])
    assert [e.arg("child_pid") for e in out] == [8]
    assert len(tree) == 2 and enricher.signals_dropped == 1


def test_container_create_waits_for_runtime_data_in_order() -> None:
    client = NoRuntime()
    manager = ContainerManager({"docker": client}, None)
    bits = {d.CONTAINER_CREATE: 0b1}  # cgroup_mkdir itself selected by no policy
    enricher = Enricher(None, manager, lambda v: bits, max_wait_s=5)
    runc = ctx(50, 10_000_000, comm=b"runc")
    inside = ctx(60, 20_000_000, cgroup=999)
    later = event(d.SCHED_PROCESS_EXEC, inside, {"pathname": "/bin/sh"})
    out = enricher.process([mkdir(runc, 999, f"/docker/{CID}", matched=0b1), later])
    assert out == []  # the lookup has not run: the create and what follows wait
    assert enricher.held == 2
    manager._lookup(manager.get(999))  # type: ignore[arg-type]  # what the worker does
    out = enricher.release()
    assert [e.name for e in out] == ["container_create", "sched_process_exec"]
    create = out[0]
    assert dict(zip([a.name for a in create.definition.args], create.args)) == {
        "runtime": "docker", "container_id": CID, "ctime": 7, "container_image": "img:1",
        "container_image_digest": "sha256:ab", "container_name": "web", "pod_name": "",
        "pod_namespace": "", "pod_uid": "", "pod_sandbox": False}
    assert out[1].ctx.container.name == "web"
    assert client.asked == [CID]


def test_held_events_go_out_after_the_wait_without_data() -> None:
    manager = ContainerManager({"docker": NoRuntime()}, None)
    enricher = Enricher(None, manager, lambda v: {d.CONTAINER_CREATE: 1}, max_wait_s=0.05)
    out = enricher.process([mkdir(ctx(50, 10_000_000), 5, f"/docker/{CID}", matched=1)])
    assert out == []
    time.sleep(0.06)
    [create] = enricher.release()
    assert create.arg("container_id") == CID and create.arg("container_name") == ""
    assert manager.counts.late == 1


def test_non_container_cgroups_and_dependency_bits() -> None:
    manager = ContainerManager({}, None)
    # Policy 0 selected cgroup_mkdir, policy 1 only container_create.
    enricher = Enricher(None, manager, lambda v: {d.CGROUP_MKDIR: 0b01, d.CONTAINER_CREATE: 0b10})
    runc = ctx(50, 10_000_000)
    out = enricher.process([mkdir(runc, 5, "/system.slice/cron.service", matched=0b11),
                            mkdir(runc, 6, "/user.slice", matched=0b10)])
    assert [(e.name, e.matched) for e in out] == [("cgroup_mkdir", 0b01)]
    assert manager.get(5) is None and manager.get(6) is None


def test_rmdir_marks_the_container_gone() -> None:
    manager = ContainerManager({}, None)  # no client: ids only, nothing to wait for
    enricher = Enricher(None, manager, lambda v: {d.CONTAINER_REMOVE: 1, d.CONTAINER_CREATE: 1})
    runc = ctx(50, 10_000_000)
    enricher.process([mkdir(runc, 5, f"/docker/{CID}", matched=1)])
    c = manager.get(5)
    assert c is not None and c.status == READY and manager.counts.unsupported == 1
    out = enricher.process([event(d.CGROUP_RMDIR, runc, {"cgroup_id": 5, "cgroup_path": "/x",
                                                        "hierarchy_id": 0}, matched=1)])
    assert [(e.name, e.args) for e in out] == [("container_remove", ["docker", CID])]
    assert c.removed and manager.get(5) is None


def test_container_state_reaches_the_kernel_hook() -> None:
    states: list[tuple[int, int | None]] = []
    manager = ContainerManager({}, None, on_state=lambda cg, st: states.append((cg, st)))
    manager.on_mkdir(5, f"/docker/{CID}")
    manager.on_mkdir(6, "/not/a/container")
    manager.on_rmdir(5)
    assert states == [(5, 2), (5, None)]


def test_container_pending_until_looked_up() -> None:
    c = Container(CID, "docker", 5, "/docker/x", False, 0)
    assert c.status == PENDING and c.ctime == 0 and c.name == ""


def test_enrich_options() -> None:
    o = parse_enrich_options(["process.max-processes=500", "process.exited-ttl=2.5"],
                             ["container.docker.socket=/run/d.sock", "container.wait=100"])
    assert (o.proctree, o.max_processes, o.exited_ttl_s) == (True, 500, 2.5)
    assert (o.containers, o.sockets["docker"], o.wait_s) == (True, "/run/d.sock", 0.1)
    o = parse_enrich_options(["none"], ["none"])
    assert not o.proctree and not o.containers
    for stores, enrichment, token in (
            (["process.max-processes=0"], [], "process.max-processes=0"),
            (["process.max-processes=x"], [], "process.max-processes=x"),
            (["proc"], [], "proc"),
            ([], ["container.containerd.socket=/x"], "container.containerd.socket=/x"),
            ([], ["dns"], "dns")):
        with pytest.raises(UsageError) as exc:
            parse_enrich_options(stores, enrichment)
        assert exc.value.token == token


def test_seed_kernel_marks_only_containers_and_registers_nothing() -> None:
    states: list[tuple[int, int | None]] = []
    manager = ContainerManager({}, "/sys/fs/cgroup/unified", lambda cg, st: states.append((cg, st)))
    cid = "ab" * 32
    manager.seed_kernel({"/": 1, "/system.slice": 2, f"/docker/{cid}": 3,
                         f"/system.slice/docker-{cid}.scope": 4})
    from pytracee.enrich.containers import EXISTED
    assert states == [(3, EXISTED), (4, EXISTED)]
    assert manager.pending == set() and manager.on_rmdir(3) is None  # scan() records them
