"""Signatures on reaching into another process's memory: /proc/PID/mem, process_vm_writev."""

from __future__ import annotations

import re

from pytracee.detect.builtin._common import file_open, is_read, is_write, meta, select
from pytracee.detect.signature import Signature
from pytracee.events.event import Event

# /proc/1234/mem, /proc/self/mem, /proc/1234/task/1235/mem; also under a mounted
# host /proc (e.g. /host/proc/1234/mem).
PROC_MEM = re.compile(r"(?:^|/)proc/(?:\d+|self|thread-self)(?:/task/\d+)?/mem$")


def proc_mem_open(ev: Event) -> tuple[str, int] | None:
    """(pathname, flags) of a security_file_open of a process's mem file, else None."""
    path = ev.arg("pathname")
    if not path or PROC_MEM.search(path) is None:
        return None
    return path, ev.arg("flags")


class ProcMemAccess(Signature):
    metadata = meta("TRC-1023", "Process memory access detected", "proc_mem_access", 3,
                    "T1003.007", "Proc Filesystem", "credential-access",
                    "A process opened another process's memory (/proc/<pid>/mem) for reading. "
                    "Credential stealers read process memory for passwords, keys and tokens.")
    selected_events = (file_open(suffixes=("/mem",)),)

    def on_event(self, ev: Event) -> None:
        opened = proc_mem_open(ev)
        if opened is not None and is_read(opened[1]):
            self.match(ev)


class ProcMemCodeInjection(Signature):
    metadata = meta("TRC-1024", "Code injection detected through /proc/<pid>/mem file",
                    "proc_mem_code_injection", 3, "T1055.009", "Proc Memory", "defense-evasion",
                    "A process opened a process's memory (/proc/<pid>/mem) for writing: it can "
                    "overwrite that process's code or data and make it run injected code.")
    selected_events = (file_open(suffixes=("/mem",), write=True),)

    def on_event(self, ev: Event) -> None:
        opened = proc_mem_open(ev)
        if opened is not None and is_write(opened[1]):
            self.match(ev)


class ProcessVmWriteInject(Signature):
    metadata = meta("TRC-1025", "Code injection detected using process_vm_writev syscall",
                    "process_vm_write_inject", 3, "T1055", "Process Injection", "defense-evasion",
                    "A process wrote into another process's address space with "
                    "process_vm_writev, a way to inject code or data into a running program.")
    selected_events = select("process_vm_writev")

    def on_event(self, ev: Event) -> None:
        target = ev.arg("pid")
        # The syscall's pid is in the caller's pid namespace, as ctx.pid is.
        if target is not None and target != ev.ctx.pid:
            self.match(ev)


SIGNATURES = (ProcMemAccess, ProcMemCodeInjection, ProcessVmWriteInject)
