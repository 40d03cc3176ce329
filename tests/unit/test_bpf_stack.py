"""Every BPF program and the functions it calls fit in one 512-byte stack.

The verifier adds up the stack frames along each call chain (a program, the global
functions it calls, the callbacks bpf_loop runs) and refuses a program whose chain
passes 512 bytes. Kernels that give tracing programs private stacks (6.13 and newer,
for some program types) check each frame alone, so an object can load on one kernel
and be refused on another: this one refused sys_exit at 592 bytes. The chains are
read here from the compiled object, the way the verifier counts them (each frame
rounded up to 16 bytes, as for JITed programs), whatever the running kernel does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

import pytest

from pytracee.ebpf.tracer import bpf_object_path

MAX_BPF_STACK = 512

_FUNC = re.compile(r"^([0-9a-f]+) <([A-Za-z_]\w*)>:$")
_SYM = re.compile(r"^([0-9a-f]+)\s+[lg]\s+F\s+(\S+)\s+[0-9a-f]+\s+(\S+)$")
_STACK = re.compile(r"\(r10 - (\d+)\)")
_LDIMM = re.compile(r"= (\d+) ll$")
_RELOC = re.compile(r"R_BPF_64_(32|64)\s+(\S+)$")


def _objdump(*flags: str) -> str:
    tool = shutil.which("llvm-objdump")
    if tool is None:
        pytest.fail("llvm-objdump not found (the llvm package: make deps)")
    obj = bpf_object_path()
    if not obj.exists():
        pytest.fail(f"{obj} is not built: run `make bpf`")
    return subprocess.run([tool, *flags, str(obj)], check=True, capture_output=True,
                          text=True).stdout


@cache
def _graph() -> tuple[dict[str, int], dict[str, set[str]], set[str]]:
    """Frame size of each function, whom it calls (global functions, callbacks), and
    which functions are programs (in a section of their own, not .text)."""
    by_offset: dict[tuple[str, int], str] = {}
    programs: set[str] = set()
    for line in _objdump("-t").splitlines():
        m = _SYM.match(line.strip())
        if m:
            by_offset[(m.group(2), int(m.group(1), 16))] = m.group(3)
            if m.group(2) != ".text":
                programs.add(m.group(3))
    functions = set(by_offset.values())
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}
    fn = ""
    last = ""
    for line in _objdump("-dr", "--no-show-raw-insn").splitlines():
        m = _FUNC.match(line)
        if m and m.group(2) in functions:  # not a branch label (LBB...)
            fn = m.group(2)
            frames.setdefault(fn, 0)
            calls.setdefault(fn, set())
            continue
        if not fn:
            continue
        for depth in _STACK.findall(line):
            frames[fn] = max(frames[fn], int(depth))
        r = _RELOC.search(line)
        if r:
            kind, target = r.groups()
            if kind == "32" and target in functions:
                calls[fn].add(target)  # call of a global function
            elif kind == "64" and target == ".text":
                imm = _LDIMM.search(last)  # a callback's address, as bpf_loop takes it
                if imm and (".text", int(imm.group(1))) in by_offset:
                    calls[fn].add(by_offset[(".text", int(imm.group(1)))])
        elif line.strip():
            last = line.strip()
    return frames, calls, programs


def _deepest(fn: str, frames: dict[str, int], calls: dict[str, set[str]],
             seen: tuple[str, ...] = ()) -> tuple[int, tuple[str, ...]]:
    own = -(-frames.get(fn, 0) // 16) * 16
    best = (0, ())
    for callee in calls.get(fn, ()):
        if callee not in seen:
            best = max(best, _deepest(callee, frames, calls, seen + (fn,)))
    return own + best[0], (fn,) + best[1]


def test_the_object_has_the_programs_and_calls_this_test_reads() -> None:
    frames, calls, programs = _graph()
    assert {"trace_sys_enter", "trace_sys_exit", "trace_sched_process_exec"} <= programs
    assert {"emit_derived", "emit_capture_write"} <= calls["trace_sys_exit"]
    assert "path_step" in calls["resolve_path"]  # a bpf_loop callback
    assert frames["trace_sys_exit"] > 0


def test_every_call_chain_fits_one_bpf_stack() -> None:
    frames, calls, programs = _graph()
    too_deep = []
    for program in sorted(programs):
        depth, chain = _deepest(program, frames, calls)
        if depth > MAX_BPF_STACK:
            too_deep.append(f"{program}: {depth} bytes along "
                            + " -> ".join(f"{f} ({frames[f]})" for f in chain))
    assert not too_deep, f"the verifier allows {MAX_BPF_STACK} bytes: " + "; ".join(too_deep)
