"""Signatures on files anywhere (host or container): the loader, its preload
list, ASLR settings, hidden executables and Kubernetes certificates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pytracee.detect.builtin._common import file_open, is_read, is_write, meta, renamed, select
from pytracee.detect.signature import EventSelector, Signature, SignatureContext
from pytracee.events.event import Event

PRELOAD_VARS = ("LD_PRELOAD", "LD_LIBRARY_PATH")
# containerd puts "/opt/containerd/lib:" in LD_LIBRARY_PATH of every shim and runc it
# starts (and they pass it on), so each container start raised several ld_preload
# detections from the runtime itself. That value is not reported when the program
# started is one of the runtime's own, installed in a system directory.
RUNTIME_LIBRARY_PATHS = ("/opt/containerd/lib",)
RUNTIME_PROGRAMS = ("containerd-shim-runc-v2", "containerd-shim-runc-v1", "containerd-shim",
                    "containerd", "runc", "crun", "dockerd", "docker-init", "docker-proxy")
SYSTEM_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin",
                   "/usr/libexec/docker", "/opt/containerd/bin")
PRELOAD_LIST = "/etc/ld.so.preload"
ASLR_SETTING = "/proc/sys/kernel/randomize_va_space"
# The dynamic loader: ld-linux-x86-64.so.2, ld-2.31.so, ... under /lib or /usr/lib.
LOADER_PATH = re.compile(r"^/(lib|usr/lib).*/ld.*\.so[^/]*")
ELF_MAGIC = b"\x7fELF"
K8S_PKI_DIR = "/etc/kubernetes/pki/"
# Kubernetes' own components read their certificates all the time.
K8S_PKI_READERS = ("kube-apiserver", "kubelet", "kube-controller", "etcd")


def opened_for_write(ev: Event) -> str | None:
    """The path of a security_file_open for writing, or a rename's destination."""
    if ev.name == "security_inode_rename":
        return ev.arg("new_path")
    return ev.arg("pathname") if is_write(ev.arg("flags")) else None


def allowed(params: Mapping[str, Any], default: Iterable[str]) -> frozenset[str]:
    """The `allowed_processes` parameter (process names), or the default list."""
    names = params.get("allowed_processes") if isinstance(params, Mapping) else None
    if names is None:
        return frozenset(default)
    if isinstance(names, str):
        names = [names]
    return frozenset(str(n) for n in names)


class LdPreload(Signature):
    """Parameter `allowed_library_paths`: directories that container runtime programs
    (RUNTIME_PROGRAMS in a system directory) may have in LD_LIBRARY_PATH (replaces the
    default, containerd's own library directory). LD_PRELOAD is always reported, and
    LD_LIBRARY_PATH of any other program."""

    metadata = meta("TRC-107", "LD_PRELOAD code injection detected", "ld_preload", 2, "T1574",
                    "Hijack Execution Flow", "persistence",
                    "A program was started with LD_PRELOAD or LD_LIBRARY_PATH set, or "
                    "/etc/ld.so.preload was written or replaced. Either way a library chosen "
                    "by someone else is loaded first and can hook any function of the "
                    "process, to hide an attacker or to change what programs do.")
    selected_events = (*select("sched_process_exec"),
                       file_open(suffixes=(PRELOAD_LIST,), write=True),
                       renamed("new_path", suffixes=(PRELOAD_LIST,)))
    needs_exec_env = True  # the env argument of sched_process_exec

    def __init__(self) -> None:
        super().__init__()
        self.library_paths = frozenset(RUNTIME_LIBRARY_PATHS)

    def init(self, ctx: SignatureContext) -> None:
        super().init(ctx)
        dirs = self.params.get("allowed_library_paths") if isinstance(self.params, Mapping) else None
        if dirs is not None:
            self.library_paths = frozenset([dirs] if isinstance(dirs, str) else map(str, dirs))

    def on_event(self, ev: Event) -> None:
        if ev.name == "sched_process_exec":
            for var in ev.arg("env") or ():
                name, eq, value = var.partition("=")
                if name not in PRELOAD_VARS or not eq:
                    continue
                if name == "LD_LIBRARY_PATH" and self._runtime_own(ev, value):
                    continue
                self.match(ev, **{name: var})
                return
            return
        path = opened_for_write(ev)
        if path and path.endswith(PRELOAD_LIST):
            self.match(ev)


    def _runtime_own(self, ev: Event, value: str) -> bool:
        """A container runtime's program with only the runtime's library directories."""
        d, _, program = (ev.arg("pathname") or "").rpartition("/")
        return (program in RUNTIME_PROGRAMS and d in SYSTEM_BIN_DIRS
                and all(p in self.library_paths for p in value.split(":") if p))


class AslrInspection(Signature):
    metadata = meta("TRC-109", "ASLR inspection detected", "aslr_inspection", 0, "T1068",
                    "Exploitation for Privilege Escalation", "privilege-escalation",
                    "The kernel's address space layout randomization setting "
                    "(randomize_va_space) was read. Exploits check it to know whether "
                    "addresses are predictable before they try to break memory safety.")
    selected_events = (file_open(prefixes=(ASLR_SETTING,)),)

    def on_event(self, ev: Event) -> None:
        if ev.arg("pathname") == ASLR_SETTING and is_read(ev.arg("flags")):
            self.match(ev)


class DefaultLoaderModification(Signature):
    metadata = meta("TRC-1012", "Default dynamic loader modification detected",
                    "default_loader_mod", 3, "T1574", "Hijack Execution Flow", "defense-evasion",
                    "A file that looks like the dynamic loader (ld*.so under /lib or /usr/lib) "
                    "was opened for writing or replaced by a rename. The loader runs before "
                    "every dynamically linked program, so changing it takes over all of them.")
    selected_events = (file_open(prefixes=("/lib", "/usr/lib"), write=True),
                       renamed("new_path", prefixes=("/lib", "/usr/lib")))

    def on_event(self, ev: Event) -> None:
        path = opened_for_write(ev)
        if path and LOADER_PATH.match(path):
            self.match(ev)


def is_elf(data: object) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data[:4]) == ELF_MAGIC
    if isinstance(data, list) and len(data) >= 4 and all(isinstance(b, int) for b in data[:4]):
        return bytes(data[:4]) == ELF_MAGIC
    return False


class HiddenFileCreated(Signature):
    metadata = meta("TRC-1015", "Hidden executable creation detected", "hidden_file_created", 2,
                    "T1564.001", "Hidden Files and Directories", "defense-evasion",
                    "An executable (ELF) was written to a hidden path: a file or directory "
                    "whose name starts with a dot. Attackers hide their tools this way so a "
                    "plain directory listing does not show them.")
    selected_events = (EventSelector("magic_write", field="pathname", contains=("/.",)),)

    def on_event(self, ev: Event) -> None:
        path = ev.arg("pathname") or ""
        if "/." in path and is_elf(ev.arg("bytes")):
            self.match(ev)


class K8sCertTheft(Signature):
    """Parameter `allowed_processes`: process names that may read the certificates
    (replaces the default list)."""

    metadata = meta("TRC-1018", "K8s TLS certificate theft detected", "k8s_cert_theft", 3,
                    "T1528", "Steal Application Access Token", "credential-access",
                    "A certificate or key of the Kubernetes control plane (/etc/kubernetes/pki) "
                    "was read by a process that is not a Kubernetes component, or moved out "
                    "of that directory. With them an attacker can impersonate cluster "
                    "components.")
    selected_events = (file_open(prefixes=(K8S_PKI_DIR,)),
                       renamed("old_path", prefixes=(K8S_PKI_DIR,)))

    def __init__(self) -> None:
        super().__init__()
        self.allowed = frozenset(K8S_PKI_READERS)

    def init(self, ctx: SignatureContext) -> None:
        super().init(ctx)
        self.allowed = allowed(self.params, K8S_PKI_READERS)

    def on_event(self, ev: Event) -> None:
        if ev.name == "security_inode_rename":
            path = ev.arg("old_path")
        elif ev.ctx.comm in self.allowed or not is_read(ev.arg("flags")):
            return
        else:
            path = ev.arg("pathname")
        if path and path.startswith(K8S_PKI_DIR):
            self.match(ev)


SIGNATURES = (LdPreload, AslrInspection, DefaultLoaderModification, HiddenFileCreated,
              K8sCertTheft)
