"""Signatures on what a container's processes do to reach the host: the Docker
socket, host memory and scheduler files, the SysRq switches, dropped binaries.

Like Tracee's, they watch started containers only (origin "container" and past
the container's first exec), so what the runtime does while setting one up is
not reported."""

from __future__ import annotations

from pytracee.detect.builtin._common import (
    file_open,
    is_read,
    is_write,
    meta,
    select,
    started_container,
)
from pytracee.detect.signature import Signature
from pytracee.events.event import Event

ELF_MAGIC = b"\x7fELF"
MEMORY_PREFIXES = ("memfd:", "/dev/shm/", "/run/shm/")


def _file_open(ev: Event) -> tuple[str, int]:
    return ev.arg("pathname") or "", ev.arg("flags")


class DockerAbuse(Signature):
    metadata = meta("TRC-1019", "Docker socket abuse detected", "docker_abuse", 2, "T1068",
                    "Exploitation for Privilege Escalation", "privilege-escalation",
                    "A process in a container opened the Docker socket (docker.sock) for writing "
                    "or connected to it. Whoever talks to the Docker API can start privileged "
                    "containers and so take over the host.")
    selected_events = (file_open(suffixes=("docker.sock",), write=True, origin="container"),
                       *select("security_socket_connect", origin="container"))

    def on_event(self, ev: Event) -> None:
        if not started_container(ev):
            return
        if ev.name == "security_file_open":
            path, flags = _file_open(ev)
            if not is_write(flags):
                return
        else:
            addr = ev.arg("remote_addr")
            if not isinstance(addr, dict) or addr.get("sa_family") != "AF_UNIX":
                return
            path = addr.get("sun_path") or ""
        if path.endswith("docker.sock"):
            self.match(ev)


class ProcKcoreRead(Signature):
    metadata = meta("TRC-1021", "Kcore memory file read", "proc_kcore_read", 2, "T1611",
                    "Escape to Host", "privilege-escalation",
                    "A process in a container opened /proc/kcore, the host's physical memory as "
                    "a core file, for reading. Its contents (keys, other workloads' data) help "
                    "an attacker escape to the host.")
    selected_events = (file_open(suffixes=("/proc/kcore",), origin="container"),)

    def on_event(self, ev: Event) -> None:
        path, flags = _file_open(ev)
        # A suffix: also a host /proc mounted into the container (/host/proc/kcore).
        if path.endswith("/proc/kcore") and is_read(flags) and started_container(ev):
            self.match(ev)


class DroppedExecutable(Signature):
    metadata = meta("TRC-1022", "New executable dropped", "dropped_executable", 2, "T1036",
                    "Masquerading", "defense-evasion",
                    "An ELF executable was written to a file in a running container. Images "
                    "ship every binary they need, so a binary created at run time is likely "
                    "brought in by an intruder.")
    selected_events = select("magic_write", origin="container")

    def on_event(self, ev: Event) -> None:
        data = ev.arg("bytes") or b""
        path = ev.arg("pathname") or ""
        if (bytes(data[:4]) == ELF_MAGIC and not path.startswith(MEMORY_PREFIXES)
                and started_container(ev)):
            self.match(ev, path=path)


class SchedDebugRecon(Signature):
    metadata = meta("TRC-1029", "sched_debug CPU file was read", "sched_debug_recon", 1, "T1613",
                    "Container and Resource Discovery", "discovery",
                    "A process in a container read the scheduler's debug file, which lists the "
                    "host's CPUs and every task on them: reconnaissance of the host from inside "
                    "a container.")
    PATHS = frozenset({"/proc/sched_debug", "/sys/kernel/debug/sched/debug"})
    selected_events = (file_open(prefixes=tuple(sorted(PATHS)), origin="container"),)

    def on_event(self, ev: Event) -> None:
        path, flags = _file_open(ev)
        if path in self.PATHS and is_read(flags) and started_container(ev):
            self.match(ev)


class SystemRequestKeyModification(Signature):
    metadata = meta("TRC-1031", "System request key configuration modification",
                    "system_request_key_mod", 3, "T1611", "Escape to Host",
                    "privilege-escalation",
                    "A process in a container opened the SysRq switch (/proc/sys/kernel/sysrq) or "
                    "trigger (/proc/sysrq-trigger) for writing. SysRq commands act on the whole "
                    "host: reboot it, kill every task, or dump task lists and registers to the "
                    "kernel log.")
    PATHS = frozenset({"/proc/sys/kernel/sysrq", "/proc/sysrq-trigger"})
    selected_events = (file_open(prefixes=tuple(sorted(PATHS)), write=True, origin="container"),)

    def on_event(self, ev: Event) -> None:
        path, flags = _file_open(ev)
        if path in self.PATHS and is_write(flags) and started_container(ev):
            self.match(ev)


SIGNATURES = (DockerAbuse, ProcKcoreRead, DroppedExecutable, SchedDebugRecon,
              SystemRequestKeyModification)
