"""The event pipeline on the real kernel: exact events from real processes."""

from __future__ import annotations

import os
from pathlib import Path

from tests.kernel.harness import Session, of, run

O_RDONLY, O_WRONLY, O_CREAT, O_CLOEXEC = 0, 1, 0o100, 0o2000000


def test_openat_path_flags_and_return_value(syscaller: Path, tmp_path: Path) -> None:
    target = tmp_path / "known-file"
    target.write_text("x")
    flags = O_RDONLY | O_CLOEXEC
    with Session(["openat"], ["comm=pt-open"]) as s:
        res = run(syscaller, "-c", "pt-open", "open", target, hex(flags))
        events = s.drain()
    fd = int(res.stdout)
    mine = [e for e in of(events, "openat") if e.arg("pathname") == str(target)]
    assert len(mine) == 1
    ev = mine[0]
    assert ev.retval == fd == 3
    assert ev.arg("flags") == flags
    assert ev.arg("dirfd") == -100
    assert ev.arg("mode") == 0o644
    assert ev.ctx.comm == "pt-open"
    assert ev.syscall == 257
    assert ev.matched == 1


def test_failed_openat_returns_errno(syscaller: Path, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    with Session(["openat"], ["comm=pt-enoent"]) as s:
        run(syscaller, "-c", "pt-enoent", "open", missing, "0")
        events = s.drain()
    mine = [e for e in of(events, "openat") if e.arg("pathname") == str(missing)]
    assert [e.retval for e in mine] == [-2]  # -ENOENT


def test_execve_argv(syscaller: Path) -> None:
    with Session(["execve"], ["comm=pt-exec"]) as s:
        res = run(syscaller, "-c", "pt-exec", "spawn", "0", "/bin/echo", "hello", "two words")
        events = s.drain()
    child = int(res.stdout.splitlines()[-1].split()[0])
    execs = of(events, "execve", host_pid=child)
    assert len(execs) == 1
    ev = execs[0]
    assert ev.arg("pathname") == "/bin/echo"
    assert ev.arg("argv") == ["/bin/echo", "hello", "two words"]
    assert ev.retval == 0


def test_fork_exec_exit(syscaller: Path) -> None:
    with Session(["sched_process_fork", "sched_process_exec", "sched_process_exit"],
                 ["comm=pt-life", "follow"]) as s:
        res = run(syscaller, "-c", "pt-life", "spawn", "5", str(syscaller), "exit", "42")
        events = s.drain()
    child = int(res.stdout.splitlines()[-1].split()[0])
    parent_pid = [e for e in of(events, "sched_process_fork") if e.arg("child_pid") == child]
    assert len(parent_pid) == 1
    fork = parent_pid[0]
    parent = fork.ctx.host_pid
    assert fork.arg("parent_pid") == parent
    assert fork.arg("child_tid") == child

    execs = of(events, "sched_process_exec", host_pid=child)
    assert len(execs) == 1
    ex = execs[0]
    assert ex.arg("pathname") == str(syscaller)
    assert ex.arg("cmdpath") == str(syscaller)
    assert ex.arg("argv") == [str(syscaller), "exit", "42"]
    assert ex.arg("prev_comm") == "pt-life"
    st = os.stat(syscaller)
    assert ex.arg("inode") == st.st_ino
    assert ex.arg("ctime") == st.st_ctime_ns
    assert ex.arg("inode_mode") == st.st_mode
    assert ex.arg("dev") == os.major(st.st_dev) << 20 | os.minor(st.st_dev)  # kernel dev_t
    assert ex.arg("stdin_type") == 0o020000  # S_IFCHR: the harness gives /dev/null
    assert ex.arg("stdin_path") == "/dev/null"
    assert ex.arg("invoked_from_kernel") is False
    assert ex.arg("pwd") == os.getcwd()
    assert ex.ctx.host_ppid == parent

    exits = {e.ctx.host_pid: e for e in of(events, "sched_process_exit")}
    assert exits[child].arg("exit_code") == 42
    assert exits[child].arg("signal_code") == 0
    assert exits[child].arg("process_group_exit") is True
    assert exits[parent].arg("exit_code") == 5


def test_scope_comm_includes_only_that_comm(syscaller: Path) -> None:
    with Session(["getppid"], ["comm=pt-yes"]) as s:
        run(syscaller, "-c", "pt-yes", "getppid", "7")
        run(syscaller, "-c", "pt-no", "getppid", "5")
        events = s.drain()
    comms = sorted({e.ctx.comm for e in events})
    assert comms == ["pt-yes"]
    assert len(events) == 7


def test_scope_follow_includes_descendants_only(syscaller: Path) -> None:
    # pt-root spawns a child that execs syscaller again (comm becomes "syscaller")
    with Session(["getppid"], ["comm=pt-root", "follow"]) as s:
        res = run(syscaller, "-c", "pt-root", "spawn", "0", str(syscaller), "getppid", "3")
        run(syscaller, "-c", "pt-other", "getppid", "4")
        events = s.drain()
    child = int(res.stdout.splitlines()[-1].split()[0])
    assert {e.ctx.host_pid for e in events} == {child}
    assert len(events) == 3
    assert {e.ctx.comm for e in events} == {"syscaller"}


def test_scope_uid_range_and_not_equal(syscaller: Path) -> None:
    with Session(["getppid"], ["uid>=1000", "comm=pt-uid"]) as s:
        run("setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", syscaller,
            "-c", "pt-uid", "getppid", "2")
        run(syscaller, "-c", "pt-uid", "getppid", "3")  # root: out of scope
        events = s.drain()
    assert [e.ctx.uid for e in events] == [1234, 1234]
    with Session(["getppid"], ["uid!=0", "comm=pt-uid"]) as s:
        run(syscaller, "-c", "pt-uid", "getppid", "3")
        events = s.drain()
    assert events == []


def test_data_filter_and_retval_filter(syscaller: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.log"
    a.write_text("a")
    b.write_text("b")
    with Session(["openat.data.pathname=*.txt"], ["comm=pt-data"]) as s:
        for p in (a, b, tmp_path / "missing.txt"):
            run(syscaller, "-c", "pt-data", "open", p, "0")
        events = s.drain()
    assert sorted(e.arg("pathname") for e in events) == [str(a), str(tmp_path / "missing.txt")]
    with Session(["close.retval!=0"], ["comm=pt-ret"]) as s:
        run(syscaller, "-c", "pt-ret", "close", "99")   # EBADF
        run(syscaller, "-c", "pt-ret", "close", "1")    # ok
        events = s.drain()
    bad = [e for e in events if e.arg("fd") in (1, 99)]
    assert [(e.arg("fd"), e.retval) for e in bad] == [(99, -9)]


def test_pid_new_excludes_processes_started_before(syscaller: Path) -> None:
    import subprocess

    # Started before pytracee; it sends its signal only once pytracee runs.
    old = subprocess.Popen(["sh", "-c", "read x; kill -0 $$"], stdin=subprocess.PIPE, text=True)
    try:
        with Session(["kill"], ["pid=new"]) as s:
            new = subprocess.Popen(["sh", "-c", "kill -0 $$"])
            new.wait(timeout=30)
            old.communicate("go\n", timeout=30)
            events = s.drain()
    finally:
        old.kill()
    kills = [(e.ctx.host_pid, e.arg("pid"), e.arg("sig")) for e in of(events, "kill")]
    assert (new.pid, new.pid, 0) in kills
    assert all(pid != old.pid for pid, _, _ in kills)


def test_ia32_syscalls_are_not_mistaken_for_x86_64_ones(syscaller: Path) -> None:
    # ia32 syscall 20 is getpid; x86_64 syscall 20 is writev. Selecting writev
    # must not report the 32-bit getpid as one; the native getppid still shows.
    with Session(["writev", "getpid", "getppid"], ["comm=pt-ia32"]) as s:
        res = run(syscaller, "-c", "pt-ia32", "int80-getpid")
        run(syscaller, "-c", "pt-ia32", "getppid", "1")
        events = s.drain()
    assert int(res.stdout) > 0
    assert [e.name for e in events] == ["getppid"]


def test_argv_of_exactly_the_bound_is_not_marked_truncated(syscaller: Path) -> None:
    args38 = [f"a{i}" for i in range(37)]  # + argv[0] = 38 elements
    args39 = [f"b{i}" for i in range(38)]
    with Session(["execve"], ["comm=pt-argv"]) as s:
        run(syscaller, "-c", "pt-argv", "spawn", "0", "/bin/true", *args38)
        run(syscaller, "-c", "pt-argv", "spawn", "0", "/bin/true", *args39)
        events = s.drain()
    argvs = [e.arg("argv") for e in of(events, "execve")]
    assert argvs[0] == ["/bin/true", *args38]
    assert argvs[1] == ["/bin/true", *args39[:37], "...(truncated)"]


def test_exec_from_a_thread_keeps_prev_comm(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import os, threading\n"
            "open('/proc/self/comm', 'w').write('pt-thr-main')\n"
            "def run():\n"
            "    open(f'/proc/self/task/{threading.get_native_id()}/comm', 'w').write('pt-thr')\n"
            "    os.execv('/bin/true', ['true'])\n"
            "threading.Thread(target=run).start()\n"
            "threading.Event().wait(10)\n")
    with Session(["sched_process_exec"], ["comm=true"]) as s:
        p = subprocess.run([sys.executable, "-c", code], timeout=30)
        events = s.drain()
    assert p.returncode == 0
    execs = [e for e in of(events, "sched_process_exec") if e.arg("pathname") == "/usr/bin/true"]
    assert [e.arg("prev_comm") for e in execs] == ["pt-thr"]


def test_too_deep_a_path_is_marked_partial(syscaller: Path, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["d"] * 140))
    deep.mkdir(parents=True)
    with Session(["sched_process_exec"], ["comm=pt-deep", "follow"]) as s:
        subprocess_run = __import__("subprocess").run
        subprocess_run([str(syscaller), "-c", "pt-deep", "spawn", "0", str(syscaller), "exit", "0"],
                       cwd=deep, check=True, capture_output=True)
        events = s.drain()
    pwd = [e.arg("pwd") for e in of(events, "sched_process_exec")]
    assert len(pwd) == 1
    assert pwd[0].startswith(".../d/d/")  # never mistaken for an absolute path
    assert str(deep).endswith(pwd[0][3:])


def test_per_event_scope_filter_in_user_space(syscaller: Path) -> None:
    with Session(["getppid.scope.processName=pt-evscope"], ["comm=pt-evscope,pt-evother"]) as s:
        run(syscaller, "-c", "pt-evscope", "getppid", "2")
        run(syscaller, "-c", "pt-evother", "getppid", "3")
        events = s.drain()
    assert [e.ctx.comm for e in events] == ["pt-evscope", "pt-evscope"]
    assert s.pipeline.counts.filtered == 3
