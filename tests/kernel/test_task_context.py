"""The task context of an event follows the task through the changes the kernel's
per-task context cache (bpf/common/task.h) must notice: a new mount namespace,
reparenting, an exec."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.kernel.harness import Session, of

CLONE_NEWNS = 0x00020000


def _opens(events: list, tmp: Path) -> dict[str, object]:
    return {Path(e.arg("pathname")).name: e for e in of(events, "security_file_open")
            if e.arg("pathname").startswith(str(tmp))}


def test_mount_namespace_and_parent_changes_show_in_later_events(tmp_path: Path) -> None:
    for name in ("before", "after-unshare", "after-reparent"):
        (tmp_path / name).write_text("x")
    code = textwrap.dedent(f"""
        import ctypes, os, sys, time
        open('/proc/self/comm', 'w').write('pt-taskctx')
        tmp = {str(tmp_path)!r}
        r, w = os.pipe()
        if os.fork() == 0:                      # the child does the work
            old_ppid = os.getppid()
            open(tmp + '/before').close()
            if ctypes.CDLL(None, use_errno=True).unshare({CLONE_NEWNS}) != 0:
                sys.exit(3)
            open(tmp + '/after-unshare').close()
            os.write(w, b'x')                   # let the parent exit ...
            while os.getppid() == old_ppid:     # ... and wait to be reparented
                time.sleep(0.01)
            open(tmp + '/after-reparent').close()
            print(os.getpid(), old_ppid, os.getppid(), os.stat('/proc/self/ns/mnt').st_ino,
                  flush=True)
            os._exit(0)
        os.read(r, 1)
        os._exit(0)
    """)
    with Session(["security_file_open"], ["comm=pt-taskctx"]) as s:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate(timeout=30)  # the child inherited stdout: read to its exit
        events = s.drain()
    pid, old_ppid, new_ppid, new_mnt = map(int, out.split())
    host_mnt = os.stat("/proc/self/ns/mnt").st_ino
    got = _opens(events, tmp_path)
    assert (got["before"].ctx.host_pid, got["before"].ctx.host_ppid, got["before"].ctx.mnt_ns) == \
        (pid, old_ppid, host_mnt)
    assert (got["after-unshare"].ctx.host_ppid, got["after-unshare"].ctx.mnt_ns) == \
        (old_ppid, new_mnt)
    assert new_mnt != host_mnt and new_ppid != old_ppid
    assert (got["after-reparent"].ctx.host_pid, got["after-reparent"].ctx.host_ppid,
            got["after-reparent"].ctx.mnt_ns) == (pid, new_ppid, new_mnt)


def test_exec_from_a_thread_takes_the_leaders_pid(tmp_path: Path) -> None:
    """A non-leader thread that execs becomes the leader (its tid becomes the pid):
    events after the exec carry the new ids, not the thread's cached ones."""
    marker = tmp_path / "after-exec"
    marker.write_text("x")
    code = textwrap.dedent(f"""
        import os, sys, threading
        open('/proc/self/comm', 'w').write('pt-threxec')
        def run():
            open({str(tmp_path / 'in-thread')!r}, 'w').close()   # an event from the thread
            os.execv(sys.executable, [sys.executable, '-c',
                     "open('/proc/self/comm', 'w').write('pt-threxec'); "
                     "open({str(marker)!r}).close(); print(__import__('os').getpid())"])
        t = threading.Thread(target=run)
        t.start()
        t.join()
    """)
    with Session(["security_file_open"], ["comm=pt-threxec"]) as s:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=30, check=True)
        events = s.drain()
    pid = int(res.stdout)
    got = _opens(events, tmp_path)
    thread = got["in-thread"].ctx
    assert thread.host_pid == pid and thread.host_tid != pid  # a thread of the process
    after = got["after-exec"].ctx
    assert (after.host_pid, after.host_tid, after.pid, after.tid) == (pid, pid, pid, pid)
