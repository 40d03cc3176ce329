"""The built-ins that were only tested on constructed events, now from real processes:
TRC-101 (a reverse shell's dup2 of a connected socket onto stdin/stdout/stderr) and
TRC-103 (PTRACE_POKEDATA into another process). Each is asserted exactly once with its
id and process, next to a near miss in the same run that must not be reported."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from tests.kernel.cli_proc import _no_leftover_tracers, start, stop  # noqa: F401
from tests.kernel.test_signatures_a import args, detections, events_of, trigger

pytestmark = pytest.mark.usefixtures("require_bpf")


def python(code: str) -> int:
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    return p.pid


def test_trc101_reverse_shell_dup2_of_a_connected_socket() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    t = threading.Thread(target=lambda: [accepted.append(listener.accept()[0]) for _ in range(2)])
    t.start()
    proc = start("-o", "json", "-e", "stdio_over_socket,socket_dup", "-s", "comm=pt-revsh")
    shell = python(f"""
        import ctypes, os, socket
        ctypes.CDLL(None).prctl(15, b"pt-revsh", 0, 0, 0)
        s = socket.create_connection(("127.0.0.1", {port}))
        os.dup2(s.fileno(), 7)      # near miss: not a standard stream
        os.dup2(s.fileno(), 1)      # stdout is the socket: a reverse shell
    """)
    miss = python(f"""
        import ctypes, os, socket
        ctypes.CDLL(None).prctl(15, b"pt-revsh", 0, 0, 0)
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)   # near miss: not INET
        a, b = socket.socketpair()
        os.dup2(a.fileno(), 2)
        s = socket.create_connection(("127.0.0.1", {port}))
    """)
    out, _ = stop(proc)
    t.join(timeout=10)
    for c in accepted:
        c.close()
    listener.close()
    [det] = detections(out, "TRC-101")
    assert (det["eventName"], det["hostProcessId"], det["processName"]) == (
        "stdio_over_socket", shell, "pt-revsh")
    assert {a["name"]: a["value"] for a in det["args"] if a["name"] != "triggeredBy"} == {
        "IP address": "127.0.0.1", "Port": str(port), "File descriptor": 1}
    name, targs = trigger(det)
    assert (name, targs["oldfd"], targs["newfd"]) == ("socket_dup", targs["oldfd"], 1)
    # The near misses happened and were seen: the dup2 onto fd 7, the UNIX pair onto fd 2.
    dups = sorted((e["hostProcessId"], args(e)["newfd"]) for e in events_of(out)
                  if e["eventName"] == "socket_dup")
    assert dups == sorted([(shell, 7), (shell, 1), (miss, 2)])


def test_trc103_ptrace_pokedata_into_another_process() -> None:
    proc = start("-o", "json", "-e", "ptrace_code_injection,ptrace", "-s", "comm=pt-inject")
    injector = python("""
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, b"pt-inject", 0, 0, 0)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        libc.ptrace.restype = ctypes.c_long
        word = ctypes.c_long(0)
        child = os.fork()
        if child == 0:
            libc.ptrace(0, 0, None, None)                  # PTRACE_TRACEME: the parent traces it
            os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(0 if word.value == 0x41 else 3)
        os.waitpid(child, os.WUNTRACED)
        addr = ctypes.addressof(word)                      # the same address in the child
        libc.ptrace(2, child, ctypes.c_void_p(addr), None)                       # PEEKDATA: a read
        assert libc.ptrace(5, child, ctypes.c_void_p(addr), ctypes.c_void_p(0x41)) == 0  # POKEDATA
        assert libc.ptrace(7, child, None, None) == 0     # PTRACE_CONT
        _, status = os.waitpid(child, 0)
        assert os.WEXITSTATUS(status) == 0                # the child ran with the poked word
    """)
    out, _ = stop(proc)
    [det] = detections(out, "TRC-103")
    assert (det["eventName"], det["hostProcessId"], det["processName"]) == (
        "ptrace_code_injection", injector, "pt-inject")
    name, targs = trigger(det)
    assert (name, targs["request"]) == ("ptrace", 5)
    # The peek was seen too and did not count.
    requests = sorted(args(e)["request"] for e in events_of(out)
                      if e["eventName"] == "ptrace" and e["hostProcessId"] == injector)
    assert requests == [2, 5, 7]
