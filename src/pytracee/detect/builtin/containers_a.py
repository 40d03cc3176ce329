"""Signatures on what happens inside containers: the classic escapes (cgroup
release agents, core_pattern, mounting the host's disks) and Kubernetes
credentials and API access from a pod."""

from __future__ import annotations

import os
import re

from pytracee.detect.builtin._common import (
    file_open,
    is_read,
    is_write,
    meta,
    renamed,
    select,
    started_container,
)
from pytracee.detect.builtin.files_a import allowed, opened_for_write
from pytracee.detect.signature import Signature, SignatureContext
from pytracee.events.event import Event

NOTIFY_ON_RELEASE = "notify_on_release"
RELEASE_AGENT = "release_agent"
CORE_PATTERN = "/proc/sys/kernel/core_pattern"
SA_TOKEN = re.compile(r"secrets/kubernetes\.io/serviceaccount/.*token$")
# Cluster components that read their service account token as a matter of course.
SA_TOKEN_READERS = ("flanneld", "kube-proxy", "etcd", "kube-apiserver", "coredns",
                    "kube-controller", "kubectl")
K8S_HOST_VAR = "KUBERNETES_SERVICE_HOST="
_INET = ("AF_INET", "AF_INET6")

_ESCAPE = ("T1611", "Escape to Host", "privilege-escalation")


class CgroupNotifyOnRelease(Signature):
    metadata = meta("TRC-106", "Cgroups notify_on_release file modification",
                    "cgroup_notify_on_release", 3, *_ESCAPE,
                    "A process in a container opened a cgroup notify_on_release file for "
                    "writing. Switching it on makes the kernel run the cgroup's release agent, "
                    "a program on the host, when the cgroup empties: a known container escape.")
    selected_events = (file_open(suffixes=("/" + NOTIFY_ON_RELEASE,), write=True, origin="container"),)

    def on_event(self, ev: Event) -> None:
        if (started_container(ev) and is_write(ev.arg("flags"))
                and os.path.basename(ev.arg("pathname") or "") == NOTIFY_ON_RELEASE):
            self.match(ev)


class K8sServiceAccountToken(Signature):
    """Parameter `allowed_processes`: process names that may read the token
    (replaces the default list), to silence known readers without editing code."""

    metadata = meta("TRC-108", "K8s service account token file read",
                    "k8s_service_account_token", 0, "T1212",
                    "Exploitation for Credential Access", "credential-access",
                    "A process in a container read the Kubernetes service account token. "
                    "The token authenticates the pod to the API server: an attacker who has "
                    "it can query the cluster, take secrets or start more workloads.",
                    Kubernetes_Technique="Container service account")
    selected_events = (file_open(contains=("secrets/kubernetes.io/serviceaccount/",), origin="container"),)

    def __init__(self) -> None:
        super().__init__()
        self.allowed = frozenset(SA_TOKEN_READERS)

    def init(self, ctx: SignatureContext) -> None:
        super().init(ctx)
        self.allowed = allowed(self.params, SA_TOKEN_READERS)

    def on_event(self, ev: Event) -> None:
        if ev.ctx.comm in self.allowed or not is_read(ev.arg("flags")):
            return
        if SA_TOKEN.search(ev.arg("pathname") or ""):
            self.match(ev)


class CgroupReleaseAgent(Signature):
    metadata = meta("TRC-1010", "Cgroups release agent file modification",
                    "cgroup_release_agent", 3, *_ESCAPE,
                    "A process in a container wrote or replaced a cgroup release_agent file. "
                    "The release agent is run by the kernel on the host, as root, so setting "
                    "it from a container is a way out of the container.")
    selected_events = (file_open(suffixes=("/" + RELEASE_AGENT,), write=True, origin="container"),
                       renamed("new_path", suffixes=("/" + RELEASE_AGENT,), origin="container"))

    def on_event(self, ev: Event) -> None:
        path = opened_for_write(ev)
        if path and os.path.basename(path) == RELEASE_AGENT:
            self.match(ev)


class CorePatternModification(Signature):
    metadata = meta("TRC-1011", "Core dumps configuration file modification detected",
                    "core_pattern_modification", 3, *_ESCAPE,
                    "A process in a container opened /proc/sys/kernel/core_pattern for "
                    "writing. A core_pattern starting with '|' makes the kernel run a program "
                    "on the host whenever a process crashes: a container escape.")
    selected_events = (file_open(suffixes=(CORE_PATTERN,), write=True, origin="container"),)

    def on_event(self, ev: Event) -> None:
        if is_write(ev.arg("flags")) and (ev.arg("pathname") or "").endswith(CORE_PATTERN):
            self.match(ev)


def api_server_ip(env: list[str] | None) -> str:
    for var in env or ():
        if K8S_HOST_VAR in var:
            return var.partition("=")[2].strip()
    return ""


class K8sApiConnection(Signature):
    """Stateful: the API server's address comes from KUBERNETES_SERVICE_HOST in the
    environment of a program started in the container; later connections from the
    same container to that address are reported."""

    # Tracee gives no technique id, only "Discovery: Cloud Service Discovery": T1526.
    metadata = meta("TRC-1013", "Kubernetes API server connection detected",
                    "k8s_api_connection", 1, "T1526", "Cloud Service Discovery", "discovery",
                    "A process in a container connected to the Kubernetes API server (the "
                    "address Kubernetes gives the pod in KUBERNETES_SERVICE_HOST). Attackers "
                    "in a pod talk to the API server to explore the cluster, take "
                    "credentials or run more containers.")
    selected_events = select("sched_process_exec", "security_socket_connect", origin="container")
    needs_exec_env = True  # the env argument of sched_process_exec

    def __init__(self) -> None:
        super().__init__()
        self.api_ip: dict[str, str] = {}  # container id -> API server address

    def on_event(self, ev: Event) -> None:
        container = ev.ctx.container
        cid = getattr(container, "id", "") if container is not None else ""
        if not cid:
            return
        if ev.name == "sched_process_exec":
            ip = api_server_ip(ev.arg("env"))
            if ip:
                self.api_ip[cid] = ip
            return
        ip = self.api_ip.get(cid)
        addr = ev.arg("remote_addr")
        if ip is None or not isinstance(addr, dict) or addr.get("sa_family") not in _INET:
            return
        if (addr.get("sin_addr") or addr.get("sin6_addr")) == ip:
            self.match(ev, ip=ip)


class DiskMount(Signature):
    metadata = meta("TRC-1014", "Container device mount detected", "disk_mount", 3, *_ESCAPE,
                    "A process in a container mounted a device (a /dev path). Mounting the "
                    "host's disk from a privileged container gives access to the host's "
                    "files: a container escape.")
    selected_events = select("security_sb_mount", origin="container")

    def on_event(self, ev: Event) -> None:
        if started_container(ev) and (ev.arg("dev_name") or "").startswith("/dev/"):
            self.match(ev)


SIGNATURES = (CgroupNotifyOnRelease, K8sServiceAccountToken, CgroupReleaseAgent,
              CorePatternModification, K8sApiConnection, DiskMount)
