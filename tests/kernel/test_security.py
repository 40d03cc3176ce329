"""Security events built at sys_exit from the kernel objects a syscall really used."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.kernel.harness import Session, of, run

O_LARGEFILE = 0o100000  # the kernel adds it to f_flags of every 64-bit open


def kdev(st: os.stat_result) -> int:
    return os.major(st.st_dev) << 20 | os.minor(st.st_dev)  # the kernel's dev_t


def py(comm: str, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A Python workload that names itself `comm` first."""
    prog = f"open('/proc/self/comm', 'w').write({comm!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", prog], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=True)


def test_file_open_resolves_relative_symlinked_path(syscaller: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    real = tmp_path / "real.txt"
    real.write_text("x")
    (tmp_path / "link").symlink_to("real.txt")
    with Session(["security_file_open"], ["comm=pt-fopen"]) as s:
        subprocess.run([str(syscaller), "-c", "pt-fopen", "open", "../link", "0"], cwd=tmp_path / "sub",
                       check=True, capture_output=True)
        subprocess.run([str(syscaller), "-c", "pt-fopen", "open", "../missing", "0"], cwd=tmp_path / "sub",
                       check=True, capture_output=True)
        events = s.drain()
    mine = [e for e in of(events, "security_file_open") if e.arg("syscall_pathname").startswith("../")]
    assert len(mine) == 1  # the failed open has no file, so no event
    ev = mine[0]
    st = os.stat(real)
    assert ev.arg("pathname") == str(real)
    assert ev.arg("syscall_pathname") == "../link"
    assert ev.arg("flags") == os.O_RDONLY | O_LARGEFILE
    assert (ev.arg("dev"), ev.arg("inode"), ev.arg("ctime")) == (kdev(st), st.st_ino, st.st_ctime_ns)
    assert ev.retval == 3


def test_file_open_through_a_bind_mount(syscaller: Path, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_text("x")
    subprocess.run(["mount", "--bind", str(src), str(dst)], check=True)
    try:
        with Session(["security_file_open"], ["comm=pt-bind"]) as s:
            run(syscaller, "-c", "pt-bind", "open", dst / "f", "0")
            events = s.drain()
    finally:
        subprocess.run(["umount", str(dst)], check=True)
    mine = [e for e in of(events, "security_file_open") if e.arg("syscall_pathname") == str(dst / "f")]
    assert [e.arg("pathname") for e in mine] == [str(dst / "f")]


def test_file_open_reports_the_file_opened_when_the_symlink_is_swapped(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    link = tmp_path / "link"
    link.symlink_to(a)
    code = f"""
        import os, threading
        link, a, b, tmp = {str(link)!r}, {str(a)!r}, {str(b)!r}, {str(tmp_path / 'tmp')!r}
        stop = False
        def flip():
            i = 0
            while not stop:
                os.symlink(b if i % 2 else a, tmp)
                os.replace(tmp, link)
                i += 1
        t = threading.Thread(target=flip)
        t.start()
        seen = set()
        for _ in range(3000):
            fd = os.open(link, os.O_RDONLY)
            seen.add(os.read(fd, 1))
            os.close(fd)
        stop = True
        t.join()
        print(len(seen))
    """
    with Session(["security_file_open"], ["comm=pt-toctou"]) as s:
        res = py("pt-toctou", code)
        events = s.drain()
    assert res.stdout.strip() == "2"  # both targets were really opened
    ino = {os.stat(a).st_ino: str(a), os.stat(b).st_ino: str(b)}
    mine = [e for e in of(events, "security_file_open") if e.arg("syscall_pathname") == str(link)]
    assert len(mine) == 3000
    assert {e.arg("pathname") for e in mine} == {str(a), str(b)}
    for e in mine:  # the path is always the file behind the fd, never a guess from the string
        assert ino[e.arg("inode")] == e.arg("pathname")


def test_magic_write_only_at_offset_zero_of_regular_files(tmp_path: Path) -> None:
    target = tmp_path / "dropped"
    code = f"""
        import os
        fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"\\x7fELF" + bytes(range(60)))     # offset 0: event, first 32 bytes
        os.write(fd, b"later")                             # offset 64: none
        os.pwrite(fd, b"#!/bin/sh", 0)                     # pwrite at 0: event
        os.writev(fd, [b"abc", b"def"])                    # offset 73: none
        os.close(fd)
        r, w = os.pipe()
        os.write(w, b"pipe")                               # not a regular file: none
    """
    with Session(["magic_write"], ["comm=pt-magic"]) as s:
        py("pt-magic", code)
        events = s.drain()
    st = os.stat(target)
    got = [(e.arg("pathname"), e.arg("bytes"), e.retval) for e in of(events, "magic_write")]
    assert got == [(str(target), (b"\x7fELF" + bytes(range(60)))[:32], 64),
                   (str(target), b"#!/bin/sh", 9)]
    assert {(e.arg("dev"), e.arg("inode")) for e in of(events, "magic_write")} == {(kdev(st), st.st_ino)}


def test_socket_events_and_reverse_shell_dup2() -> None:
    code = """
        import os, socket
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(7)
        port = srv.getsockname()[1]
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.connect(("127.0.0.1", port))
        conn, _ = srv.accept()
        for fd in (0, 1, 2):
            os.dup2(cli.fileno(), fd)
        with open(os.environ["PT_OUT"], "w") as f:
            f.write(f"{port} {cli.getsockname()[1]} {srv.fileno()} {cli.fileno()}")
    """
    events_all = ["security_socket_create", "security_socket_bind", "security_socket_listen",
                  "security_socket_connect", "security_socket_accept", "socket_dup"]
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"pt-sock-{os.getpid()}"
    with Session(events_all, ["comm=pt-sock"]) as s:
        env = dict(os.environ, PT_OUT=str(out))
        prog = "open('/proc/self/comm', 'w').write('pt-sock')\n" + textwrap.dedent(code)
        subprocess.run([sys.executable, "-c", prog], env=env, check=True, timeout=60,
                       stdin=subprocess.DEVNULL, capture_output=True)
        events = s.drain()
    port, cport, srv_fd, cli_fd = map(int, out.read_text().split())
    out.unlink()
    loop = {"sa_family": "AF_INET", "sin_addr": "127.0.0.1"}
    creates = [(e.arg("family"), e.arg("type"), e.arg("protocol")) for e in of(events, "security_socket_create")]
    assert creates[:2] == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)] * 2
    bind = of(events, "security_socket_bind")
    assert [(e.arg("sockfd"), e.arg("local_addr")) for e in bind] == [
        (srv_fd, {**loop, "sin_port": str(port)})]  # the address as bound, read from the socket
    listen = of(events, "security_socket_listen")
    assert [(e.arg("sockfd"), e.arg("local_addr"), e.arg("backlog")) for e in listen] == [
        (srv_fd, {**loop, "sin_port": str(port)}, 7)]
    connect = of(events, "security_socket_connect")
    assert [(e.arg("sockfd"), e.arg("type"), e.arg("remote_addr"), e.retval) for e in connect] == [
        (cli_fd, socket.SOCK_STREAM, {**loop, "sin_port": str(port)}, 0)]
    accept = of(events, "security_socket_accept")
    assert [(e.arg("sockfd"), e.arg("local_addr")) for e in accept] == [
        (srv_fd, {**loop, "sin_port": str(port)})]
    dups = [(e.arg("oldfd"), e.arg("newfd"), e.arg("remote_addr")) for e in of(events, "socket_dup")]
    assert dups == [(cli_fd, fd, {**loop, "sin_port": str(port)}) for fd in (0, 1, 2)]
    assert cport != port


def test_task_rename() -> None:
    with Session(["task_rename"], ["comm=pt-before,pt-after"]) as s:
        py("pt-before", "import ctypes; ctypes.CDLL(None).prctl(15, b'pt-after', 0, 0, 0)")
        events = s.drain()
    assert [(e.arg("old_name"), e.arg("new_name")) for e in of(events, "task_rename")] == [
        ("pt-before", "pt-after")]


def test_cgroup_mkdir_attach_rmdir(tmp_path: Path) -> None:
    root = Path("/sys/fs/cgroup/unified")
    cg = root / f"pt-test-{os.getpid()}"
    with Session(["cgroup_mkdir", "cgroup_rmdir", "cgroup_attach_task"], ["comm=pt-cgroup"]) as s:
        py("pt-cgroup", f"""
            import os
            os.mkdir({str(cg)!r})
            open({str(cg / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))
            open({str(root / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))
            os.rmdir({str(cg)!r})
        """)
        events = s.drain()
    name = f"/pt-test-{os.getpid()}"
    mk = [(e.arg("cgroup_path"), e.arg("cgroup_id") > 0) for e in of(events, "cgroup_mkdir")]
    rm = [e.arg("cgroup_path") for e in of(events, "cgroup_rmdir")]
    att = [(e.arg("cgroup_path"), e.arg("comm")) for e in of(events, "cgroup_attach_task")]
    assert mk == [(name, True)]
    assert rm == [name]
    assert att == [(name, "pt-cgroup"), ("/", "pt-cgroup")]
    ids = {e.arg("cgroup_id") for e in of(events, "cgroup_mkdir") + of(events, "cgroup_rmdir")}
    assert len(ids) == 1


def test_mem_prot_alerts(tmp_path: Path) -> None:
    code = """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        RW, RX, RWX = 3, 5, 7
        wx = libc.mmap(None, 4096, RWX, 0x22, -1, 0)                # W+X at once: alert 1
        fd = os.open(LIB, os.O_RDONLY)
        wxf = libc.mmap(None, 4096, RWX, 0x02, fd, 0)               # a file's, private: alert 1
        assert libc.mmap(None, 4096, RWX, 0x02, 999, 0) == 2**64 - 1  # MAP_FAILED (EBADF): no alert
        jit = libc.mmap(None, 4096, RW, 0x22, -1, 0)
        assert libc.mprotect(ctypes.c_void_p(jit), 4096, RX) == 0     # RW -> RX: alert 4
        assert libc.mprotect(ctypes.c_void_p(jit), 4096, RWX) == 0    # exec made writable: alert 3
        assert libc.mprotect(ctypes.c_void_p(jit), 4096, RX) == 0     # write removed from W+X: alert 4
        plain = libc.mmap(None, 4096, RW, 0x22, -1, 0)
        assert libc.mprotect(ctypes.c_void_p(plain), 4096, 1) == 0    # read-only: no alert
        open("/proc/self/comm", "w").write("pt-memdone")
        print(wx, wxf, jit)
    """
    lib = tmp_path / "code.bin"
    lib.write_bytes(b"\x90" * 4096)
    with Session(["mem_prot_alert"], ["comm=pt-mem"]) as s:
        res = py("pt-mem", code.replace("LIB", repr(str(lib))))
        events = s.drain()
    wx, wxf, jit = map(int, res.stdout.split())
    alerts = of(events, "mem_prot_alert")
    got = [(e.arg("alert"), int(e.arg("addr"), 16), e.arg("len"), e.arg("prot"), e.arg("prev_prot"))
           for e in alerts]
    assert got == [(1, wx, 4096, 7, 0), (1, wxf, 4096, 7, 0), (4, jit, 4096, 5, 3),
                   (3, jit, 4096, 7, 5), (4, jit, 4096, 5, 7)]
    assert [e.arg("pathname") for e in alerts[:2]] == [None, str(lib)]
    assert alerts[1].arg("inode") == lib.stat().st_ino


def tracee_mprotect_alert(prev: int, prot: int) -> int:
    """Tracee's mem_prot_alert code for an mprotect (0: none): its three conditions in
    turn, a later match replacing an earlier one."""
    w, x = 2, 4
    alert = 0
    if not prev & x and prot & x:
        alert = 2  # made executable
    if prev & x and not prev & w and prot & (w | x) == w | x:
        alert = 3  # executable made writable
    if prev & w and prot & x and not prot & w:
        alert = 4  # write removed: code loaded
    return alert


def test_mem_prot_alert_codes_for_every_protection_change() -> None:
    code = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        for prev in range(8):
            for prot in range(8):
                page = libc.mmap(None, 4096, prev, 0x22, -1, 0)
                assert libc.mprotect(ctypes.c_void_p(page), 4096, prot) == 0
                print(prev, prot, page)
    """
    with Session(["mem_prot_alert"], ["comm=pt-mprot"]) as s:
        res = py("pt-mprot", code)
        events = s.drain()
    calls = [tuple(map(int, line.split())) for line in res.stdout.splitlines()]
    assert len(calls) == 64
    mprotects = [e for e in of(events, "mem_prot_alert") if e.syscall == 10]
    got = {(e.arg("prev_prot"), e.arg("prot"), int(e.arg("addr"), 16)): e.arg("alert")
           for e in mprotects}
    assert len(got) == len(mprotects)
    want = {(prev, prot, addr): tracee_mprotect_alert(prev, prot) for prev, prot, addr in calls
            if tracee_mprotect_alert(prev, prot)}
    assert got == want
    codes = sorted(want.values())
    assert (codes.count(2), codes.count(3), codes.count(4)) == (12, 4, 8)
    by_change = {(p, q): a for (p, q, _), a in got.items()}
    assert (by_change[(3, 5)], by_change[(7, 5)], by_change[(5, 7)], by_change[(1, 5)]) == (4, 4, 3, 2)
    assert (3, 1) not in by_change and (5, 5) not in by_change


def test_mount_and_umount(tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    with Session(["security_sb_mount", "security_sb_umount"], ["comm=mount,umount"]) as s:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pt-tmpfs", str(target)], check=True)
        subprocess.run(["umount", str(target)], check=True)
        events = s.drain()
    mounts = [(e.arg("dev_name"), e.arg("path"), e.arg("type"), e.retval)
              for e in of(events, "security_sb_mount")]
    assert mounts == [("pt-tmpfs", str(target), "tmpfs", 0)]
    umounts = [(e.arg("mountpoint"), e.retval) for e in of(events, "security_sb_umount")]
    assert umounts == [(str(target), 0)]


def test_process_execute_failed(syscaller: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-binary"
    notexec = tmp_path / "not-executable"
    notexec.write_text("x")
    with Session(["process_execute_failed", "execve"], ["comm=pt-execfail"]) as s:
        run(syscaller, "-c", "pt-execfail", "spawn", "0", missing, "arg1")
        run(syscaller, "-c", "pt-execfail", "spawn", "0", notexec)
        run(syscaller, "-c", "pt-execfail", "spawn", "0", "/bin/true")
        events = s.drain()
    failed = [(e.arg("pathname"), e.arg("argv"), e.arg("dirfd"), e.retval)
              for e in of(events, "process_execute_failed")]
    assert failed == [(str(missing), [str(missing), "arg1"], -100, -2),
                      (str(notexec), [str(notexec)], -100, -13)]
    assert [e.arg("pathname") for e in of(events, "execve")] == [str(missing), str(notexec), "/bin/true"]


def test_commit_creds_on_setuid_and_not_on_a_no_op() -> None:
    code = """
        import os
        os.setuid(0)        # no change: no event
        os.setgid(1234)
        os.setuid(1234)     # root gives up root: uids and capabilities change
    """
    with Session(["commit_creds"], ["comm=pt-creds"]) as s:
        py("pt-creds", code)
        events = s.drain()
    got = of(events, "commit_creds")
    assert len(got) == 2
    gid_change, uid_change = got
    assert (gid_change.arg("old_cred")["Gid"], gid_change.arg("new_cred")["Gid"]) == (0, 1234)
    old, new = uid_change.arg("old_cred"), uid_change.arg("new_cred")
    assert (old["Uid"], old["Euid"], old["Suid"], old["Fsuid"]) == (0, 0, 0, 0)
    assert (new["Uid"], new["Euid"], new["Suid"], new["Fsuid"]) == (1234, 1234, 1234, 1234)
    assert old["CapEffective"] != 0 and new["CapEffective"] == 0 and new["CapPermitted"] == 0
    assert uid_change.retval == 0


def test_switch_task_ns_on_unshare_and_setns(syscaller: Path) -> None:
    import time

    with Session(["switch_task_ns"], ["comm=unshare,nsenter"]) as s:
        holder = subprocess.Popen(["unshare", "--mount", "--uts", "sleep", "30"])
        try:
            for _ in range(100):  # until it is in its new namespaces
                if os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino:
                    break
                time.sleep(0.05)
            new_mnt = os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino
            new_uts = os.stat(f"/proc/{holder.pid}/ns/uts").st_ino
            subprocess.run(["nsenter", "-t", str(holder.pid), "--mount", "true"], check=True)
            events = s.drain()
        finally:
            holder.kill()
    got = of(events, "switch_task_ns")
    assert len(got) == 2
    unshare, nsenter = got
    assert (unshare.ctx.comm, unshare.ctx.host_pid) == ("unshare", holder.pid)
    assert (unshare.arg("new_mnt"), unshare.arg("new_uts"), unshare.arg("new_pid"),
            unshare.arg("new_ipc"), unshare.arg("new_net"), unshare.arg("new_cgroup")) == (
        new_mnt, new_uts, 0, 0, 0, 0)
    assert unshare.arg("pid") == holder.pid
    assert nsenter.ctx.comm == "nsenter"
    assert (nsenter.arg("new_mnt"), nsenter.arg("new_uts")) == (new_mnt, 0)


def test_inode_events_give_absolute_paths(tmp_path: Path) -> None:
    d = tmp_path / "work"
    d.mkdir()
    code = f"""
        import os
        os.chdir({str(d)!r})
        open("a", "w").close()
        os.rename("a", "../b")                                   # rename: relative to the cwd
        dfd = os.open({str(tmp_path)!r}, os.O_RDONLY)
        os.symlink("/etc/passwd", "link", dir_fd=dfd)            # symlinkat: relative to a dirfd
        os.mkfifo("fifo", 0o600)                                 # mknodat(AT_FDCWD) in glibc
        os.link("../b", "hard")                                  # linkat(AT_FDCWD, AT_FDCWD)
        os.link("hard", "hard2", dst_dir_fd=dfd)                 # linkat into a dirfd
        os.unlink({str(tmp_path / 'b')!r})                       # absolute
        os.unlink("fifo")
        try:
            os.unlink("missing")                                 # failed: no event
        except FileNotFoundError:
            pass
    """
    with Session(["security_inode_unlink", "security_inode_rename", "security_inode_symlink",
                  "security_inode_mknod", "security_inode_link"], ["comm=pt-inode"]) as s:
        py("pt-inode", code)
        events = s.drain()
    assert [(e.arg("old_path"), e.arg("new_path")) for e in of(events, "security_inode_rename")] == [
        (f"{d}/a", f"{d}/../b")]
    assert [(e.arg("old_path"), e.arg("new_path")) for e in of(events, "security_inode_link")] == [
        (f"{d}/../b", f"{d}/hard"), (f"{d}/hard", f"{tmp_path}/hard2")]
    assert [(e.arg("linkpath"), e.arg("target")) for e in of(events, "security_inode_symlink")] == [
        (f"{tmp_path}/link", "/etc/passwd")]
    assert [(e.arg("file_name"), e.arg("mode")) for e in of(events, "security_inode_mknod")] == [
        (f"{d}/fifo", 0o010600)]
    assert [e.arg("pathname") for e in of(events, "security_inode_unlink")] == [
        str(tmp_path / "b"), f"{d}/fifo"]


def test_pathname_filters_run_in_the_kernel(syscaller: Path, tmp_path: Path) -> None:
    from pytracee.events import wire

    other = tmp_path / "other.txt"
    other.write_text("x")
    paths = ["/etc/hostname", "/etc/passwd", str(other)]
    cases = [  # filter -> (submitted by the kernel, delivered)
        ("/etc/host*", 1, 1),
        ("*.txt", 1, 1),
        ("/etc/passwd,/etc/host*", 2, 2),
        ("*host*", 3, 1),  # contains: the kernel cannot, user space does
    ]
    for value, submitted, delivered in cases:
        with Session([f"security_file_open.data.pathname={value}"], ["comm=pt-pf"]) as s:
            for p in paths:
                run(syscaller, "-c", "pt-pf", "open", p, "0")
            events = s.drain()
            stats = s.tracer.stats([732])
        assert (stats[wire.STAT_SUBMITTED].get(732, 0), len(events)) == (submitted, delivered), value


def test_exec_reports_the_elf_interpreter_and_script_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    with Session(["sched_process_exec"], ["comm=true,script.sh"]) as s:
        subprocess.run(["/bin/true"], check=True)
        subprocess.run([str(script)], check=True)
        events = s.drain()
    ld = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    st = os.stat(ld)
    execs = of(events, "sched_process_exec")
    assert [(e.arg("pathname"), e.arg("interp")) for e in execs] == [
        ("/usr/bin/true", "/bin/true"), (os.path.realpath("/bin/sh"), "/bin/sh")]
    for e in execs:
        assert (e.arg("interpreter_pathname"), e.arg("interpreter_inode"), e.arg("interpreter_dev"),
                e.arg("interpreter_ctime")) == (ld, st.st_ino, kdev(st), st.st_ctime_ns)
    assert execs[1].arg("cmdpath") == str(script)


def test_setuid_exec_is_a_credential_change(syscaller: Path) -> None:
    suid = syscaller.parent / "pt-suid"
    suid.write_bytes(syscaller.read_bytes())
    os.chown(suid, 0, 0)
    suid.chmod(0o4755)
    try:
        with Session(["commit_creds"], ["comm=pt-suid,syscaller"]) as s:
            run("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", suid, "getppid", "1")
            events = s.drain()
    finally:
        suid.unlink()
    got = [(e.arg("old_cred")["Euid"], e.arg("new_cred")["Euid"], e.arg("new_cred")["Uid"])
           for e in of(events, "commit_creds")]
    assert got == [(1000, 0, 1000)]  # euid became root, the real uid stayed


def test_clone_into_new_namespaces() -> None:
    code = """
        import ctypes, os
        CLONE_NEWUTS, SIGCHLD = 0x04000000, 17
        libc = ctypes.CDLL(None, use_errno=True)
        pid = libc.syscall(56, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
    """
    with Session(["switch_task_ns"], ["comm=pt-clone"]) as s:
        res = py("pt-clone", code)
        events = s.drain()
    child = int(res.stdout.split()[-1])
    got = of(events, "switch_task_ns")
    assert len(got) == 1
    ev = got[0]
    assert ev.arg("pid") == child
    assert ev.arg("new_uts") not in (0, os.stat("/proc/self/ns/uts").st_ino)
    assert (ev.arg("new_mnt"), ev.arg("new_pid"), ev.arg("new_ipc"), ev.arg("new_net"),
            ev.arg("new_cgroup")) == (0, 0, 0, 0, 0)


def test_ptrace_memfd_process_vm_writev_and_module_attempts(tmp_path: Path) -> None:
    code = """
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace(0, 0, 0, 0)                                   # PTRACE_TRACEME
        fd = os.memfd_create("pt-payload", 0)
        buf = ctypes.create_string_buffer(b"hello")
        class iovec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        local = iovec(ctypes.addressof(buf), 5)
        target = ctypes.create_string_buffer(5)
        remote = iovec(ctypes.addressof(target), 5)
        n = libc.syscall(311, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        r = libc.syscall(313, fd, b"", 0)                            # finit_module: no modules here
        print(fd, n, r, ctypes.get_errno())
    """
    with Session(["ptrace", "memfd_create", "process_vm_writev", "finit_module"], ["comm=pt-inject"]) as s:
        res = py("pt-inject", code)
        events = s.drain()
    fd, n, r, errno = map(int, res.stdout.split())
    assert (n, r) == (5, -1)
    pt = of(events, "ptrace")
    assert [(e.arg("request"), e.retval) for e in pt] == [(0, 0)]
    mf = of(events, "memfd_create")
    assert [(e.arg("name"), e.arg("flags"), e.retval) for e in mf] == [("pt-payload", 0, fd)]
    vm = of(events, "process_vm_writev")
    assert [(e.arg("pid"), e.arg("liovcnt"), e.arg("riovcnt"), e.retval) for e in vm] == [
        (vm[0].ctx.host_pid, 1, 1, 5)]
    fm = of(events, "finit_module")
    assert [(e.arg("fd"), e.retval) for e in fm] == [(fd, -errno)]
