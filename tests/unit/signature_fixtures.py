"""Events shared by the signature tests (Python, Rego, YAML+CEL).

Every form of a signature is fed the very same constructed events, so the
tests can check that the forms agree. Keep this API stable: other test modules
import `ptrace_event`, `exec_event`, `file_open_event` and `make_event`.
"""

from __future__ import annotations

from typing import Any

from pytracee.events import definitions
from pytracee.events.event import Event, TaskContext

BOOT = 1_700_000_000_000_000_000   # boot offset: boot ns -> wall-clock ns
PID = 4242
PPID = 4200
START = 50_000_000_000              # boot ns of the task's start


def task(comm: str = "x", pid: int = PID, ppid: int = PPID, uid: int = 0,
         cgroup_id: int = 1) -> TaskContext:
    """A host task (init namespaces, no container, no process-tree entry)."""
    # (start, leader_start, parent_start, cgroup_id, pid, tid, ppid, host_pid,
    #  host_tid, host_ppid, uid, gid, mnt_ns, pid_ns, comm, uts)
    return TaskContext((START, START, START - 1_000_000_000, cgroup_id, pid, pid, ppid, pid,
                        pid, ppid, uid, uid, 4026531840, 4026531836, comm.encode(), b"host"),
                       BOOT)


def make_event(name: str, args: dict[str, Any], *, comm: str = "x", retval: int = 0,
               ts: int = 1_000_000) -> Event:
    """An event of definition `name`; args not given are None (not sent)."""
    definition = definitions.BY_NAME[name]
    unknown = set(args) - {a.name for a in definition.args}
    assert not unknown, f"{name} has no argument(s) {sorted(unknown)}"
    values = [args.get(a.name) for a in definition.args]
    syscall = definition.id if definition.syscall else -1
    return Event(BOOT + START + ts, retval, 1, definition.id, syscall, 0, 0, 0, task(comm),
                 definition, values)


def ptrace_event(request: int) -> Event:
    """ptrace(request, pid 1234) — request 0 is PTRACE_TRACEME, 16 PTRACE_ATTACH."""
    return make_event("ptrace", {"request": request, "pid": 1234, "addr": 0, "data": 0})


def exec_event(pathname: str, comm: str = "x", prev_comm: str = "bash",
               env: list[str] | None = None) -> Event:
    """sched_process_exec of `pathname` (comm is the new program's, prev_comm the old one's)."""
    return make_event("sched_process_exec", {
        "cmdpath": pathname, "pathname": pathname, "dev": 2049, "inode": 4195,
        "ctime": 1_690_000_000_000_000_000, "inode_mode": 0o100755,
        "argv": [comm], "prev_comm": prev_comm, "env": env if env is not None else [],
        "invoked_from_kernel": False, "pwd": "/",
    }, comm=comm)


def file_open_event(pathname: str, flags: int, comm: str = "x") -> Event:
    """security_file_open of `pathname` with open(2) flags (raw int)."""
    return make_event("security_file_open", {
        "pathname": pathname, "flags": flags, "dev": 2049, "inode": 4196, "ctime": 0,
        "syscall_pathname": pathname,
    }, comm=comm)
