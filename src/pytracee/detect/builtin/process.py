"""Signatures on process behaviour: debugging, injection, fileless code."""

from __future__ import annotations

from pytracee.detect.builtin._common import meta, select
from pytracee.detect.signature import Signature
from pytracee.events.event import Event

PTRACE_TRACEME = 0
PTRACE_POKETEXT = 4
PTRACE_POKEDATA = 5
ALERT_MPROTECT_W_REMOVED = 4  # mem_prot_alert: write removed from an executable region (W -> X)
FILELESS_PREFIXES = ("memfd:", "/dev/shm/", "/run/shm/")


class AntiDebugging(Signature):
    metadata = meta("TRC-102", "Anti-Debugging detected", "anti_debugging", 1, "T1622",
                    "Debugger Evasion", "defense-evasion",
                    "A process used anti-debugging techniques to block a debugger (ptrace "
                    "PTRACE_TRACEME). Malware uses it to hide from analysts.")
    selected_events = select("ptrace")

    def on_event(self, ev: Event) -> None:
        if ev.arg("request") == PTRACE_TRACEME:
            self.match(ev)


class PtraceCodeInjection(Signature):
    metadata = meta("TRC-103", "Code injection detected using ptrace", "ptrace_code_injection",
                    3, "T1055.008", "Ptrace System Calls", "defense-evasion",
                    "A process wrote into another process's memory with ptrace "
                    "(PTRACE_POKETEXT/POKEDATA), a code injection technique.")
    selected_events = select("ptrace")

    def on_event(self, ev: Event) -> None:
        if ev.arg("request") in (PTRACE_POKETEXT, PTRACE_POKEDATA):
            self.match(ev)


class DynamicCodeLoading(Signature):
    metadata = meta("TRC-104", "Dynamic code loading detected", "dynamic_code_loading", 2,
                    "T1027.002", "Software Packing", "defense-evasion",
                    "Memory that was writable became executable (W -> X): code was "
                    "written and then run, as packers and shellcode loaders do.")
    selected_events = select("mem_prot_alert")

    def on_event(self, ev: Event) -> None:
        if ev.arg("alert") == ALERT_MPROTECT_W_REMOVED:
            self.match(ev)


class FilelessExecution(Signature):
    metadata = meta("TRC-105", "Fileless execution detected", "fileless_execution", 3, "T1620",
                    "Reflective Code Loading", "defense-evasion",
                    "A binary was executed from memory (memfd) or shared memory rather than "
                    "from a file on disk, which hides it from file-based scanning.")
    selected_events = select("sched_process_exec")

    def on_event(self, ev: Event) -> None:
        path = ev.arg("pathname") or ""
        if path.startswith(FILELESS_PREFIXES):
            self.match(ev)


SIGNATURES = (AntiDebugging, PtraceCodeInjection, DynamicCodeLoading, FilelessExecution)
