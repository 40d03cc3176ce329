"""TRC-1019..TRC-1031 on constructed events: what this kernel cannot produce.

- TRC-1020 proc_fops_hooking and TRC-1030 syscall_hooking consume hook-check
  events (hooked_proc_fops, hooked_syscall) that need kernel modules and syscall
  table checks this kernel build lacks. Their event definitions are built here
  and the signature is called directly, not through the engine.
- TRC-1021 proc_kcore_read and TRC-1031 system_request_key_mod: this kernel has
  no /proc/kcore (CONFIG_PROC_KCORE off) and no SysRq files (CONFIG_MAGIC_SYSRQ
  off); tests/kernel/test_signatures_b.py triggers them on stand-in files, and
  here they get the real paths.
Plus the metadata of all thirteen against tracee-compat §4.1.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from pytracee.detect.builtin import all_signatures
from pytracee.detect.builtin.containers_b import ProcKcoreRead, SystemRequestKeyModification
from pytracee.detect.builtin.kernel_b import ProcFopsHooking, SyscallHooking
from pytracee.detect.signature import Finding, Signature, SignatureContext
from pytracee.events import definitions
from pytracee.events.definitions import ArgDef, EventDef
from pytracee.events.event import Event, TaskContext

HOOKED_PROC_FOPS = EventDef(2111, "hooked_proc_fops", (),
                            (ArgDef("hooked_fops_pointers", "[]trace.HookedSymbolData"),))
HOOKED_SYSCALL = EventDef(2020, "hooked_syscall", (),
                          tuple(ArgDef(n, "string") for n in ("syscall", "address", "function", "owner")))


def task(comm: str = "x", container: Any = None) -> TaskContext:
    # (start, leader_start, parent_start, cgroup_id, pid, tid, ppid, host_pid,
    #  host_tid, host_ppid, uid, gid, mnt_ns, pid_ns, comm, uts)
    ctx = TaskContext((5, 5, 4, 1, 77, 77, 1, 4077, 4077, 4001, 0, 0, 4026531840, 4026531836,
                       comm.encode(), b"host"), 1_700_000_000_000_000_000)
    ctx.container = container
    ctx.container_started = container is not None and container.started
    return ctx


def event(definition: EventDef, args: dict[str, Any], container: Any = None) -> Event:
    assert set(args) <= {a.name for a in definition.args}
    return Event(1_000, 0, 1, definition.id, -1, 0, 0, 0, task(container=container), definition,
                 [args.get(a.name) for a in definition.args])


def file_open(path: str, flags: int, container: Any = None) -> Event:
    return event(definitions.BY_NAME["security_file_open"],
                 {"pathname": path, "flags": flags, "syscall_pathname": path}, container)


def started(is_started: bool = True) -> SimpleNamespace:
    return SimpleNamespace(id="c0ffee" * 10 + "abcd", name="web", image="local/busybox:1",
                           started=is_started)


def findings(sig: Signature, *events: Event) -> list[Finding]:
    out: list[Finding] = []
    sig.init(SignatureContext(out.append, {}))
    for ev in events:
        sig.on_event(ev)
    return out


# --- TRC-1020 proc_fops_hooking ---------------------------------------------------------

def test_proc_fops_hooking_reports_the_hooked_pointers() -> None:
    hooked = [{"SymbolName": "iterate_shared", "ModuleOwner": "hidden"},
              {"SymbolName": "read", "ModuleOwner": "diamorphine"}]
    got = findings(ProcFopsHooking(), event(HOOKED_PROC_FOPS, {"hooked_fops_pointers": hooked}))
    assert len(got) == 1
    assert got[0].data == {"Hooked proc file operations": hooked}
    assert got[0].signature.id == "TRC-1020" and got[0].event.name == "hooked_proc_fops"


@pytest.mark.parametrize("value", [[], None])
def test_proc_fops_hooking_quiet_when_nothing_is_hooked(value: Any) -> None:
    assert findings(ProcFopsHooking(),
                    event(HOOKED_PROC_FOPS, {"hooked_fops_pointers": value})) == []


# --- TRC-1030 syscall_hooking -----------------------------------------------------------

def test_syscall_hooking_fires_on_each_hooked_syscall() -> None:
    evs = [event(HOOKED_SYSCALL, {"syscall": name, "address": addr, "function": fn,
                                  "owner": "rootkit"})
           for name, addr, fn in (("kill", "ffffffffc0a01000", "hooked_kill"),
                                  ("getdents64", "ffffffffc0a01080", "hooked_getdents64"))]
    got = findings(SyscallHooking(), *evs)
    assert [f.event.arg("syscall") for f in got] == ["kill", "getdents64"]
    assert all(f.signature.id == "TRC-1030" and f.data == {} for f in got)


def test_hook_signatures_are_marked_as_not_produced_here() -> None:
    assert ProcFopsHooking.kernel_can_trigger is False
    assert SyscallHooking.kernel_can_trigger is False
    assert [s.name for s in ProcFopsHooking.selected_events] == ["hooked_proc_fops"]
    assert [s.name for s in SyscallHooking.selected_events] == ["hooked_syscall"]


# --- TRC-1021 proc_kcore_read -----------------------------------------------------------

@pytest.mark.parametrize("path,flags,container,fires", [
    ("/proc/kcore", os.O_RDONLY, started(), True),
    ("/proc/kcore", os.O_RDWR, started(), True),
    ("/host/proc/kcore", os.O_RDONLY, started(), True),     # the host's /proc mounted in
    ("/proc/kcore", os.O_WRONLY, started(), False),        # not a read
    ("/proc/kcore.bak", os.O_RDONLY, started(), False),
    ("/proc/kallsyms", os.O_RDONLY, started(), False),
    ("/proc/kcore", os.O_RDONLY, started(False), False),   # the runtime setting it up
    ("/proc/kcore", os.O_RDONLY, None, False),             # the host
])
def test_proc_kcore_read(path: str, flags: int, container: Any, fires: bool) -> None:
    got = findings(ProcKcoreRead(), file_open(path, flags, container))
    assert len(got) == (1 if fires else 0)
    assert all(f.signature.id == "TRC-1021" for f in got)


# --- TRC-1031 system_request_key_mod ----------------------------------------------------

@pytest.mark.parametrize("path,flags,container,fires", [
    ("/proc/sysrq-trigger", os.O_WRONLY, started(), True),
    ("/proc/sys/kernel/sysrq", os.O_WRONLY | os.O_TRUNC, started(), True),
    ("/proc/sys/kernel/sysrq", os.O_RDWR, started(), True),
    ("/proc/sys/kernel/sysrq", os.O_RDONLY, started(), False),  # reading the setting
    ("/proc/sys/kernel/sysrq_x", os.O_WRONLY, started(), False),
    ("/proc/sysrq-trigger", os.O_WRONLY, started(False), False),
    ("/proc/sysrq-trigger", os.O_WRONLY, None, False),
])
def test_system_request_key_mod(path: str, flags: int, container: Any, fires: bool) -> None:
    got = findings(SystemRequestKeyModification(), file_open(path, flags, container))
    assert len(got) == (1 if fires else 0)
    assert all(f.signature.id == "TRC-1031" for f in got)


# --- metadata: tracee-compat §4.1 -------------------------------------------------------

TABLE = [  # id, event name, severity, MITRE technique, selected events
    ("TRC-1019", "docker_abuse", 2, "T1068", {"security_file_open", "security_socket_connect"}),
    ("TRC-1020", "proc_fops_hooking", 3, "T1014", {"hooked_proc_fops"}),
    ("TRC-1021", "proc_kcore_read", 2, "T1611", {"security_file_open"}),
    ("TRC-1022", "dropped_executable", 2, "T1036", {"magic_write"}),
    ("TRC-1023", "proc_mem_access", 3, "T1003.007", {"security_file_open"}),
    ("TRC-1024", "proc_mem_code_injection", 3, "T1055.009", {"security_file_open"}),
    ("TRC-1025", "process_vm_write_inject", 3, "T1055", {"process_vm_writev"}),
    ("TRC-1026", "rcd_modification", 2, "T1037.004",
     {"security_file_open", "security_inode_rename", "sched_process_exec"}),
    ("TRC-1027", "scheduled_task_mod", 2, "T1053.003",
     {"security_file_open", "security_inode_rename", "sched_process_exec"}),
    ("TRC-1028", "sudoers_modification", 2, "T1548.003",
     {"security_file_open", "security_inode_rename"}),
    ("TRC-1029", "sched_debug_recon", 1, "T1613", {"security_file_open"}),
    ("TRC-1030", "syscall_hooking", 3, "T1014", {"hooked_syscall"}),
    ("TRC-1031", "system_request_key_mod", 3, "T1611", {"security_file_open"}),
]
CONTAINER_ONLY = {"TRC-1019", "TRC-1021", "TRC-1022", "TRC-1029", "TRC-1031"}


@pytest.mark.parametrize("sig_id,event_name,severity,technique,selects", TABLE)
def test_metadata_as_in_the_table(sig_id: str, event_name: str, severity: int, technique: str,
                                  selects: set[str]) -> None:
    sig = {s.metadata.id: s for s in all_signatures()}[sig_id]
    md = sig.metadata
    assert (md.event_name, md.severity, md.properties["external_id"]) == (event_name, severity,
                                                                          technique)
    assert md.description and md.properties["Category"] and md.properties["Technique"]
    assert {s.name for s in sig.selected_events} == selects
    origin = "container" if sig_id in CONTAINER_ONLY else "*"
    assert {s.origin for s in sig.selected_events} == {origin}
