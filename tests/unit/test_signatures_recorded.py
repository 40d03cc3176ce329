"""TRC-106..TRC-1018 on constructed events, through the engine.

TRC-1017 (kernel_module_loading) is tested only here: its event, module_load,
cannot happen on this kernel (built without module support). The others are
triggered for real in tests/kernel/test_signatures_a.py; here they get the
cases a real trigger cannot reach cheaply (default allow-lists, container
state, the API server address cache, raw value shapes).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytracee.detect.builtin.containers_a import (
    CgroupNotifyOnRelease,
    CgroupReleaseAgent,
    CorePatternModification,
    DiskMount,
    K8sApiConnection,
    K8sServiceAccountToken,
)
from pytracee.detect.builtin.files_a import (
    AslrInspection,
    DefaultLoaderModification,
    HiddenFileCreated,
    K8sCertTheft,
    LdPreload,
)
from pytracee.detect.builtin.kernel_a import KernelModuleLoading
from pytracee.detect.builtin.shells import IllegitimateShell
from pytracee.detect.engine import Detection, Engine
from pytracee.detect.signature import Signature
from pytracee.enrich.containers import Container
from pytracee.events import definitions
from pytracee.events.event import Event, TaskContext

BOOT = 1_700_000_000_000_000_000
START = 50_000_000_000
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT = 0, 1, 2, 0o100


def task(comm: str, container: Container | None) -> TaskContext:
    c = TaskContext((START, START, START - 1, 1, 42, 42, 1, 42, 42, 1, 0, 0, 4026531840,
                     4026531836, comm.encode(), b"host"), BOOT)
    c.container = container
    c.container_started = container is not None and container.started
    return c


def box(cid: str = "c0ffee" * 10 + "abcd", started: bool = True) -> Container:
    return Container(id=cid, runtime="docker", cgroup_id=7, cgroup_path="/docker/" + cid,
                     existed=False, seen_ns=0, started=started)


def event(name: str, args: dict[str, Any], comm: str = "x",
          container: Container | None = None) -> Event:
    d = definitions.BY_NAME[name]
    unknown = set(args) - {a.name for a in d.args}
    assert not unknown, unknown
    return Event(BOOT + START + 1000, 0, 1, d.id, d.id if d.syscall else -1, 0, 0, 0,
                 task(comm, container), d, [args.get(a.name) for a in d.args])


def opened(path: str, flags: int, comm: str = "x", container: Container | None = None) -> Event:
    return event("security_file_open", {"pathname": path, "flags": flags, "dev": 1, "inode": 2,
                                        "ctime": 0, "syscall_pathname": path}, comm, container)


def renamed(old: str, new: str, container: Container | None = None) -> Event:
    return event("security_inode_rename", {"old_path": old, "new_path": new},
                 container=container)


def execd(path: str, comm: str = "x", prev_comm: str = "bash", env: list[str] | None = None,
          container: Container | None = None) -> Event:
    return event("sched_process_exec", {"pathname": path, "cmdpath": path, "argv": [comm],
                                        "prev_comm": prev_comm, "env": env}, comm, container)


def run(sig: Signature, *events: Event, params: dict[str, Any] | None = None) -> list[Detection]:
    """Feed the events through an engine with only `sig`; its detections."""
    engine = Engine([sig], {sig.metadata.id: params} if params else None)
    out = engine.process(list(events))
    return [e for e in out if isinstance(e, Detection)]


# --- TRC-1017: only here --------------------------------------------------------------

def test_trc1017_kernel_module_loading_on_a_recorded_module_load() -> None:
    load = event("module_load", {"name": "rootkit", "version": "", "src_version": "ABC123",
                                 "pathname": "/tmp/rootkit.ko", "dev": 2049, "inode": 77,
                                 "ctime": 0}, comm="insmod")
    [det] = run(KernelModuleLoading(), load)
    assert det.name == "kernel_module_loading" and det.triggered_by is load
    assert det.metadata.id == "TRC-1017" and det.metadata.severity == 2
    assert det.metadata.properties["external_id"] == "T1547.006"
    assert det.data == {}
    assert KernelModuleLoading.kernel_can_trigger is False
    # Anything else it is given is not a module load.
    assert run(KernelModuleLoading(), execd("/usr/sbin/insmod", "insmod")) == []


# --- metadata: the table's ids, names, severities, techniques ----------------------------

@pytest.mark.parametrize("cls, sig_id, event_name, severity, technique", [
    (CgroupNotifyOnRelease, "TRC-106", "cgroup_notify_on_release", 3, "T1611"),
    (LdPreload, "TRC-107", "ld_preload", 2, "T1574"),
    (K8sServiceAccountToken, "TRC-108", "k8s_service_account_token", 0, "T1212"),
    (AslrInspection, "TRC-109", "aslr_inspection", 0, "T1068"),
    (CgroupReleaseAgent, "TRC-1010", "cgroup_release_agent", 3, "T1611"),
    (CorePatternModification, "TRC-1011", "core_pattern_modification", 3, "T1611"),
    (DefaultLoaderModification, "TRC-1012", "default_loader_mod", 3, "T1574"),
    (K8sApiConnection, "TRC-1013", "k8s_api_connection", 1, "T1526"),
    (DiskMount, "TRC-1014", "disk_mount", 3, "T1611"),
    (HiddenFileCreated, "TRC-1015", "hidden_file_created", 2, "T1564.001"),
    (IllegitimateShell, "TRC-1016", "illegitimate_shell", 2, "T1190"),
    (KernelModuleLoading, "TRC-1017", "kernel_module_loading", 2, "T1547.006"),
    (K8sCertTheft, "TRC-1018", "k8s_cert_theft", 3, "T1528"),
])
def test_metadata(cls: type[Signature], sig_id: str, event_name: str, severity: int,
                  technique: str) -> None:
    md = cls.metadata
    assert (md.id, md.event_name, md.severity) == (sig_id, event_name, severity)
    assert md.properties["external_id"] == technique
    assert md.description and md.name


# --- the others: cases beyond the real triggers --------------------------------------------

def test_container_only_signatures_ignore_the_host_and_unstarted_containers() -> None:
    host = opened("/sys/fs/cgroup/memory/notify_on_release", O_WRONLY)
    early = opened("/sys/fs/cgroup/memory/notify_on_release", O_WRONLY,
                   container=box(started=False))
    real = opened("/sys/fs/cgroup/memory/notify_on_release", O_RDWR, container=box())
    assert [d.triggered_by for d in run(CgroupNotifyOnRelease(), host, early, real)] == [real]
    mount = {"dev_name": "/dev/sda1", "path": "/mnt", "type": "ext4", "flags": 0}
    events = [event("security_sb_mount", mount),
              event("security_sb_mount", mount, container=box(started=False)),
              event("security_sb_mount", mount, container=box())]
    assert [d.triggered_by for d in run(DiskMount(), *events)] == [events[2]]
    # Release agent and core_pattern: any container (started or not), never the host.
    agent = [opened("/sys/fs/cgroup/rdma/release_agent", O_WRONLY),
             renamed("/x", "/sys/fs/cgroup/rdma/release_agent", container=box(started=False)),
             opened("/sys/fs/cgroup/rdma/release_agent", O_RDONLY, container=box())]
    assert [d.triggered_by for d in run(CgroupReleaseAgent(), *agent)] == [agent[1]]
    core = [opened("/proc/sys/kernel/core_pattern", O_WRONLY),
            opened("/proc/sys/kernel/core_pattern", O_RDWR, container=box(started=False))]
    assert [d.triggered_by for d in run(CorePatternModification(), *core)] == [core[1]]


def test_trc108_default_allow_list_and_the_parameter() -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    reads = [opened(token, O_RDONLY, comm, box()) for comm in
             ("flanneld", "kube-proxy", "etcd", "kube-apiserver", "coredns", "kube-controller",
              "kubectl", "curl")]
    assert [d.triggered_by.ctx.comm for d in run(K8sServiceAccountToken(), *reads)] == ["curl"]
    # The parameter replaces the list (a single name may be given as a string).
    got = run(K8sServiceAccountToken(), *reads, params={"allowed_processes": ["curl"]})
    assert len(got) == 7
    assert run(K8sServiceAccountToken(), *reads[-1:], params={"allowed_processes": "curl"}) == []
    # Projected tokens live under ..data/ directories; a write is not a read.
    projected = "/var/run/secrets/kubernetes.io/serviceaccount/..2024_01_01/token"
    assert len(run(K8sServiceAccountToken(), opened(projected, O_RDONLY, "sh", box()))) == 1
    assert run(K8sServiceAccountToken(), opened(token, O_WRONLY, "sh", box())) == []
    assert run(K8sServiceAccountToken(), opened(token + ".bak", O_RDONLY, "sh", box())) == []


def test_trc1018_allow_list_renames_and_writes() -> None:
    cert = "/etc/kubernetes/pki/apiserver.key"
    events = [opened(cert, O_RDONLY, "kubelet"), opened(cert, O_RDONLY, "cat"),
              opened(cert, O_WRONLY, "cat"), renamed(cert, "/tmp/k"),
              renamed("/tmp/k", cert), opened("/etc/kubernetes/admin.conf", O_RDONLY, "cat")]
    got = [d.triggered_by for d in run(K8sCertTheft(), *events)]
    assert got == [events[1], events[3]]
    got = [d.triggered_by for d in run(K8sCertTheft(), *events,
                                       params={"allowed_processes": ["cat"]})]
    assert got == [events[0], events[3]]  # renames are reported whoever makes them


def test_trc107_environment_and_paths() -> None:
    hits = [execd("/bin/x", env=["A=1", "LD_PRELOAD=/tmp/hook.so", "LD_LIBRARY_PATH=/tmp"]),
            execd("/bin/x", env=["LD_LIBRARY_PATH="])]
    misses = [execd("/bin/x", env=["MY_LD_PRELOAD=/a.so", "LD_PRELOAD"]), execd("/bin/x", env=None)]
    got = run(LdPreload(), *hits, *misses)
    assert [d.data for d in got] == [{"LD_PRELOAD": "LD_PRELOAD=/tmp/hook.so"},
                                     {"LD_LIBRARY_PATH": "LD_LIBRARY_PATH="}]
    assert LdPreload.needs_exec_env and K8sApiConnection.needs_exec_env
    files = [opened("/etc/ld.so.preload", O_RDWR), opened("/etc/ld.so.preload", O_RDONLY),
             renamed("/etc/ld.so.preload", "/tmp/x"), renamed("/tmp/x", "/etc/ld.so.preload"),
             opened("/var/lib/docker/overlay2/abc/merged/etc/ld.so.preload", O_WRONLY)]
    got = [d.triggered_by for d in run(LdPreload(), *files)]
    assert got == [files[0], files[3], files[4]]


def test_trc1012_loader_pattern() -> None:
    paths = {"/lib64/ld-linux-x86-64.so.2": True,  # "^/lib" then anything: /lib64 too
             "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": True,
             "/usr/lib/x86_64-linux-gnu/ld-2.31.so": True,
             "/usr/lib/ld.so": True,
             "/usr/lib/x86_64-linux-gnu/libc.so.6": False,
             "/opt/lib/ld-linux.so.2": False}
    events = [opened(p, O_WRONLY | O_CREAT) for p in paths]
    got = {d.triggered_by.arg("pathname") for d in run(DefaultLoaderModification(), *events)}
    assert got == {p for p, hit in paths.items() if hit}
    assert run(DefaultLoaderModification(),
               opened("/usr/lib/ld.so", O_RDONLY), renamed("/usr/lib/ld.so", "/tmp/ld.so")) == []


def test_trc1013_address_cache_per_container() -> None:
    a, b = box("a" * 64), box("b" * 64)

    def connect(ip: str, c: Container | None, family: str = "AF_INET") -> Event:
        key = "sin_addr" if family == "AF_INET" else "sin6_addr"
        return event("security_socket_connect", {"sockfd": 3, "type": 1, "remote_addr": {
            "sa_family": family, key: ip, "sin_port": 443}}, container=c)

    events = [connect("10.96.0.1", a),  # before the address is known
              execd("/bin/sh", env=["KUBERNETES_SERVICE_HOST=10.96.0.1"], container=a),
              connect("10.96.0.1", a), connect("10.96.0.2", a),
              connect("10.96.0.1", b), connect("10.96.0.1", None),
              execd("/bin/sh", env=["KUBERNETES_SERVICE_HOST=fd00::1 "], container=b),
              connect("fd00::1", b, "AF_INET6"),
              event("security_socket_connect", {"sockfd": 3, "type": 1, "remote_addr": {
                  "sa_family": "AF_UNIX", "sun_path": "10.96.0.1"}}, container=a)]
    got = run(K8sApiConnection(), *events)
    assert [d.triggered_by for d in got] == [events[2], events[7]]
    assert [d.data for d in got] == [{"ip": "10.96.0.1"}, {"ip": "fd00::1"}]


def test_trc1015_and_trc1016_values() -> None:
    def write(path: str, data: Any) -> Event:
        return event("magic_write", {"pathname": path, "bytes": data, "dev": 1, "inode": 2})

    elf = b"\x7fELF\x02\x01\x01"
    events = [write("/tmp/.x/a", elf), write("/tmp/.b", list(elf)), write("/tmp/b", elf),
              write("/tmp/.c", b"\x7fEL"), write("/tmp/.d", b"#!/bin/sh")]
    assert [d.triggered_by for d in run(HiddenFileCreated(), *events)] == events[:2]

    execs = [execd("/bin/bash", "bash", "apache2"), execd("/bin/sh", "sh", "httpd-foregroun"),
             execd("/bin/bash", "bash", "bash"), execd("/usr/bin/python3", "python3", "nginx")]
    assert [d.triggered_by for d in run(IllegitimateShell(), *execs)] == execs[:2]


def test_trc107_leaves_the_container_runtimes_own_library_path_alone() -> None:
    runtime = "LD_LIBRARY_PATH=/opt/containerd/lib:"
    quiet = [execd("/usr/bin/containerd-shim-runc-v2", "containerd-shim", env=[runtime]),
             execd("/usr/sbin/runc", "runc", env=["PATH=/bin", runtime]),
             execd("/usr/sbin/dockerd", "exe", env=[runtime])]
    assert run(LdPreload(), *quiet) == []
    loud = [execd("/tmp/runc", "runc", env=[runtime]),                       # not installed
            execd("/usr/bin/ls", "ls", env=[runtime]),                        # not a runtime
            execd("/usr/sbin/runc", "runc", env=["LD_LIBRARY_PATH=/tmp/x:/opt/containerd/lib"]),
            execd("/usr/sbin/runc", "runc", env=["LD_PRELOAD=/opt/containerd/lib/x.so"])]
    found = run(LdPreload(), *loud)
    assert [(d.triggered_by.arg("pathname"), d.data) for d in found] == [
        ("/tmp/runc", {"LD_LIBRARY_PATH": runtime}), ("/usr/bin/ls", {"LD_LIBRARY_PATH": runtime}),
        ("/usr/sbin/runc", {"LD_LIBRARY_PATH": "LD_LIBRARY_PATH=/tmp/x:/opt/containerd/lib"}),
        ("/usr/sbin/runc", {"LD_PRELOAD": "LD_PRELOAD=/opt/containerd/lib/x.so"})]
    # The parameter replaces the allowed directories.
    found = run(LdPreload(), *quiet, params={"allowed_library_paths": ["/usr/lib/other"]})
    assert len(found) == 3
