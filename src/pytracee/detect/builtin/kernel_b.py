"""Signatures on a compromised kernel: hooked syscall table entries and /proc
file operations, as reported by Tracee's hook-check events.

This kernel build cannot produce those events (no kernel modules, no syscall
table checks): the signatures run on recorded events."""

from __future__ import annotations

from pytracee.detect.builtin._common import meta, select
from pytracee.detect.signature import Signature
from pytracee.events.event import Event


class ProcFopsHooking(Signature):
    metadata = meta("TRC-1020", "File operations hooking on proc filesystem detected",
                    "proc_fops_hooking", 3, "T1014", "Rootkit", "defense-evasion",
                    "The file operations of /proc point outside the kernel's own code. Rootkits "
                    "replace them to hide processes and files from ps, top and ls; a hidden "
                    "module as the owner makes it worse.")
    selected_events = select("hooked_proc_fops")
    kernel_can_trigger = False

    def on_event(self, ev: Event) -> None:
        hooked = ev.arg("hooked_fops_pointers")
        if hooked:
            self.match(ev, **{"Hooked proc file operations": list(hooked)})


class SyscallHooking(Signature):
    metadata = meta("TRC-1030", "Syscall table hooking detected", "syscall_hooking", 3, "T1014",
                    "Rootkit", "defense-evasion",
                    "A syscall table entry points outside the kernel's own handler. Rootkits "
                    "hook syscalls to hide themselves and to intercept or alter what programs "
                    "ask of the kernel.")
    selected_events = select("hooked_syscall")
    kernel_can_trigger = False

    def on_event(self, ev: Event) -> None:
        self.match(ev)  # every hooked_syscall event is one hooked entry


SIGNATURES = (ProcFopsHooking, SyscallHooking)
