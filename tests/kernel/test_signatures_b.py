"""TRC-1019..TRC-1031 on the real kernel, through the CLI.

Every test runs pytracee with the signature's event (and, where it helps, the
kernel event it consumes, to show the near-miss was really seen), does the
near-miss first and the trigger last, and expects exactly one detection: the
trigger's. Nothing on the system is changed for good: files are opened for
writing without writing, or created where none existed and removed at once.

This kernel has no /proc/kcore (CONFIG_PROC_KCORE off) and no SysRq files
(CONFIG_MAGIC_SYSRQ off): TRC-1021 and TRC-1031 are triggered on stand-in files
at the same paths, on a tmpfs mounted over /proc in a private mount namespace of
a container that may mount. TRC-1020/TRC-1030 need hook-check events this kernel
cannot produce: tests/unit/test_signatures_recorded_b.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fail_or_skip

from tests.docker_env import Containers, docker
from tests.kernel.cli_proc import _no_leftover_tracers, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")

O_APPEND_WRITE = os.O_WRONLY | os.O_APPEND


# --- running and reading pytracee ---------------------------------------------------

def trace(events: list[str], scope: list[str], action: Callable[[], Any]) -> list[dict[str, Any]]:
    """Run pytracee on `events` within `scope` while `action` runs; the JSON events."""
    args = ["-o", "json"]
    for e in events:
        args += ["-e", e]
    for s in scope:
        args += ["-s", s]
    proc = start(*args)
    action()
    out, _ = stop(proc)
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def detections(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if "signatureID" in (d.get("metadata") or {}).get("Properties", {})]


def args_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in doc.get("args", [])}


def the_detection(docs: list[dict[str, Any]], sig_id: str, event_name: str,
                  trigger: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exactly one detection, of `sig_id`/`event_name`, triggered by a `trigger`
    event: (the detection, the triggering event's args by name)."""
    found = detections(docs)
    assert len(found) == 1, json.dumps(found, indent=1)
    det = found[0]
    assert det["metadata"]["Properties"]["signatureID"] == sig_id
    assert det["eventName"] == event_name
    by = args_of(det)["triggeredBy"]
    assert by["name"] == trigger
    return det, args_of(by)


def seen(docs: list[dict[str, Any]], name: str, times: int = 1, **want: Any) -> bool:
    """Exactly `times` events `name` (not detections) whose args include `want`: as
    many as the workload made (a near miss once; a file read and then written, twice)."""
    return sum(d["eventName"] == name and "metadata" not in d
               and all(args_of(d).get(k) == v for k, v in want.items()) for d in docs) == times


# --- host workloads -------------------------------------------------------------------

def py(comm: str, code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """A Python workload that names itself `comm` first (the tracer scopes on it)."""
    prog = ("import ctypes, os, sys\n"
            "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n" + textwrap.dedent(code))
    return subprocess.run([sys.executable, "-c", prog, comm, *argv], capture_output=True,
                          text=True, timeout=60, check=True)


# Open argv[2] for writing without writing: O_APPEND on a file that exists; a file
# that did not exist is created empty and removed.
WRITE_OPEN = """
path = sys.argv[2]
if os.path.exists(path):
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
else:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.unlink(path)
"""
READ_OPEN = "os.close(os.open(sys.argv[2], os.O_RDONLY))\n"
# Rename a new empty temp file (argv[2]) onto argv[3], a path that did not exist; remove it.
RENAME_INTO = """
tmp, dst = sys.argv[2], sys.argv[3]
assert not os.path.lexists(dst), dst
os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
try:
    os.rename(tmp, dst)
finally:
    for p in (tmp, dst):
        if os.path.lexists(p):
            os.unlink(p)
"""


@pytest.fixture
def cleanup() -> Iterator[list[Path]]:
    """Paths (files or empty directories) a test may create: removed afterwards,
    whatever happened. Register only paths that did not exist before."""
    paths: list[Path] = []
    yield paths
    for p in reversed(paths):
        if p.is_dir() and not p.is_symlink():
            try:
                p.rmdir()
            except OSError:
                pass
        elif p.exists() or p.is_symlink():
            p.unlink()


def new_path(cleanup: list[Path], path: str) -> str:
    """`path`, which must not exist yet; removed after the test in any case."""
    assert not os.path.lexists(path), f"{path} exists: refusing to touch it"
    cleanup.append(Path(path))
    return path


def temp_in_etc(cleanup: list[Path]) -> str:
    return new_path(cleanup, f"/etc/.ptb-{uuid.uuid4().hex[:8]}")


def an_existing_file(directory: str) -> str:
    for name in sorted(os.listdir(directory)):
        p = os.path.join(directory, name)
        if os.path.isfile(p) and not os.path.islink(p):
            return p
    fail_or_skip("a regular file to open for writing", f"none in {directory}")


# --- TRC-1026 rcd_modification --------------------------------------------------------

def test_rcd_modification_write_open_of_an_init_script() -> None:
    script = an_existing_file("/etc/init.d")
    st = os.stat(script)

    def act() -> None:
        py("ptb-rcd", READ_OPEN, script)      # near-miss: reading a boot script
        py("ptb-rcd", WRITE_OPEN, script)     # trigger: opened for writing

    docs = trace(["rcd_modification", "security_file_open"], ["comm=ptb-rcd"], act)
    assert seen(docs, "security_file_open", 2, pathname=script)  # the read, then the write
    det, by = the_detection(docs, "TRC-1026", "rcd_modification", "security_file_open")
    assert by["pathname"] == script and by["flags"] & os.O_ACCMODE == os.O_WRONLY
    assert det["metadata"]["Properties"]["Severity"] == 2
    assert det["metadata"]["Properties"]["external_id"] == "T1037.004"
    assert os.stat(script).st_mtime_ns == st.st_mtime_ns  # nothing written


def test_rcd_modification_rename_into_init_d(cleanup: list[Path]) -> None:
    near = new_path(cleanup, "/etc/init.d.ptb-test")  # shares the prefix, not the directory
    dst = new_path(cleanup, "/etc/init.d/ptb.test")

    def act() -> None:
        py("ptb-rcdmv", RENAME_INTO, temp_in_etc(cleanup), near)
        py("ptb-rcdmv", RENAME_INTO, temp_in_etc(cleanup), dst)

    docs = trace(["rcd_modification", "security_inode_rename"], ["comm=ptb-rcdmv"], act)
    assert seen(docs, "security_inode_rename", new_path=near)
    _, by = the_detection(docs, "TRC-1026", "rcd_modification", "security_inode_rename")
    assert by["new_path"] == dst
    assert not os.path.lexists(dst)


def test_rcd_modification_update_rc_d(tmp_path: Path) -> None:
    # Stand-ins, not Debian's tool: a shell script named update-rc.d (the kernel
    # reports the interpreter as the exec's file, the name as comm) and a near-miss.
    tool = tmp_path / "update-rc.d"
    tool.write_text("#!/bin/sh\nexit 0\n")
    near = tmp_path / "update-rc"
    shutil.copy(tool, near)
    for p in (tool, near):
        p.chmod(0o755)
    run = "import subprocess\nfor p in sys.argv[2:]:\n    subprocess.run([p], check=True)\n"
    docs = trace(["rcd_modification", "sched_process_exec"], ["comm=ptb-rcdx", "follow"],
                 lambda: py("ptb-rcdx", run, str(near), str(tool)))
    assert seen(docs, "sched_process_exec", cmdpath=str(near))
    det, by = the_detection(docs, "TRC-1026", "rcd_modification", "sched_process_exec")
    assert det["processName"] == "update-rc.d" and by["cmdpath"] == str(tool)


# --- TRC-1027 scheduled_task_mod ------------------------------------------------------

def test_scheduled_task_mod_write_open_in_cron_d() -> None:
    table = an_existing_file("/etc/cron.d")
    st = os.stat(table)

    def act() -> None:
        py("ptb-cron", READ_OPEN, table)
        py("ptb-cron", WRITE_OPEN, table)

    docs = trace(["scheduled_task_mod", "security_file_open"], ["comm=ptb-cron"], act)
    assert seen(docs, "security_file_open", 2, pathname=table)  # the read, then the write
    det, by = the_detection(docs, "TRC-1027", "scheduled_task_mod", "security_file_open")
    assert by["pathname"] == table
    assert det["metadata"]["Properties"]["external_id"] == "T1053.003"
    assert os.stat(table).st_mtime_ns == st.st_mtime_ns


def test_scheduled_task_mod_write_open_of_crontab(cleanup: list[Path]) -> None:
    crontab = "/etc/crontab"
    if not os.path.exists(crontab):
        new_path(cleanup, crontab)  # created empty and removed by the workload itself
    near = new_path(cleanup, "/etc/crontab.ptb-test")
    docs = trace(["scheduled_task_mod"], ["comm=ptb-crontab"],
                 lambda: (py("ptb-crontab", WRITE_OPEN, near), py("ptb-crontab", WRITE_OPEN, crontab)))
    _, by = the_detection(docs, "TRC-1027", "scheduled_task_mod", "security_file_open")
    assert by["pathname"] == crontab


def test_scheduled_task_mod_rename_into_cron_d(cleanup: list[Path]) -> None:
    near = new_path(cleanup, "/etc/cron.dptb-test")
    dst = new_path(cleanup, "/etc/cron.d/ptb.test")  # a dot: cron would ignore it anyway

    def act() -> None:
        py("ptb-cronmv", RENAME_INTO, temp_in_etc(cleanup), near)
        py("ptb-cronmv", RENAME_INTO, temp_in_etc(cleanup), dst)

    docs = trace(["scheduled_task_mod", "security_inode_rename"], ["comm=ptb-cronmv"], act)
    assert seen(docs, "security_inode_rename", new_path=near)
    _, by = the_detection(docs, "TRC-1027", "scheduled_task_mod", "security_inode_rename")
    assert by["new_path"] == dst


def test_scheduled_task_mod_crontab_command(tmp_path: Path) -> None:
    tool, near = tmp_path / "crontab", tmp_path / "crontabs"  # copies of true(1)
    for p in (tool, near):
        shutil.copy("/bin/true", p)
    run = "import subprocess\nfor p in sys.argv[2:]:\n    subprocess.run([p], check=True)\n"
    docs = trace(["scheduled_task_mod", "sched_process_exec"], ["comm=ptb-cronx", "follow"],
                 lambda: py("ptb-cronx", run, str(near), str(tool)))
    assert seen(docs, "sched_process_exec", pathname=str(near))
    det, by = the_detection(docs, "TRC-1027", "scheduled_task_mod", "sched_process_exec")
    assert by["pathname"] == str(tool) and det["processName"] == "crontab"


# --- TRC-1028 sudoers_modification ----------------------------------------------------

def test_sudoers_modification_write_open(cleanup: list[Path]) -> None:
    sudoers = "/etc/sudoers"
    if not os.path.exists(sudoers):
        new_path(cleanup, sudoers)
    near = new_path(cleanup, "/etc/sudoers.ptb-test")
    docs = trace(["sudoers_modification", "security_file_open"], ["comm=ptb-sudo"],
                 lambda: (py("ptb-sudo", WRITE_OPEN, near), py("ptb-sudo", WRITE_OPEN, sudoers)))
    assert seen(docs, "security_file_open", pathname=near)
    det, by = the_detection(docs, "TRC-1028", "sudoers_modification", "security_file_open")
    assert by["pathname"] == sudoers
    assert det["metadata"]["Properties"]["Category"] == "privilege-escalation"


def test_sudoers_modification_rename_into_sudoers_d(cleanup: list[Path]) -> None:
    d = "/etc/sudoers.d"
    if not os.path.isdir(d):
        os.mkdir(new_path(cleanup, d), 0o750)
    dst = new_path(cleanup, f"{d}/ptb.test")  # a dot: sudo's includedir skips it anyway
    near = new_path(cleanup, "/etc/ptb-sudoers")

    def act() -> None:
        py("ptb-sudomv", RENAME_INTO, temp_in_etc(cleanup), near)
        py("ptb-sudomv", RENAME_INTO, temp_in_etc(cleanup), dst)

    docs = trace(["sudoers_modification", "security_inode_rename"], ["comm=ptb-sudomv"], act)
    assert seen(docs, "security_inode_rename", new_path=near)
    _, by = the_detection(docs, "TRC-1028", "sudoers_modification", "security_inode_rename")
    assert by["new_path"] == dst


# --- TRC-1023/1024 /proc/<pid>/mem, TRC-1025 process_vm_writev ------------------------

@pytest.fixture
def victim() -> Iterator[subprocess.Popen[str]]:
    """A process to reach into: a small Python that prints its pid and the address
    of a 16-byte buffer, then prints the buffer once a line arrives on stdin."""
    code = ("import ctypes, os, sys\n"
            "buf = ctypes.create_string_buffer(b'original', 16)\n"
            "print(os.getpid(), ctypes.addressof(buf), flush=True)\n"
            "sys.stdin.readline()\n"
            "print(buf.value.decode(), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    yield proc
    proc.kill()
    proc.wait()


def victim_address(victim: subprocess.Popen[str]) -> tuple[int, int]:
    assert victim.stdout is not None
    pid, addr = victim.stdout.readline().split()
    return int(pid), int(addr)


OPEN_FLAGS = "os.close(os.open(sys.argv[2], int(sys.argv[3])))\n"


def test_proc_mem_access_read_open(victim: subprocess.Popen[str]) -> None:
    pid, _ = victim_address(victim)
    mem = f"/proc/{pid}/mem"

    def act() -> None:
        py("ptb-memrd", OPEN_FLAGS, f"/proc/{pid}/maps", str(os.O_RDONLY))  # near-miss
        py("ptb-memrd", OPEN_FLAGS, mem, str(os.O_WRONLY))                 # near-miss: a write
        py("ptb-memrd", OPEN_FLAGS, mem, str(os.O_RDONLY))                 # trigger

    docs = trace(["proc_mem_access", "security_file_open"], ["comm=ptb-memrd"], act)
    assert seen(docs, "security_file_open", pathname=f"/proc/{pid}/maps")
    det, by = the_detection(docs, "TRC-1023", "proc_mem_access", "security_file_open")
    assert by["pathname"] == mem and by["flags"] & os.O_ACCMODE == os.O_RDONLY
    assert det["metadata"]["Properties"]["Severity"] == 3
    assert det["metadata"]["Properties"]["external_id"] == "T1003.007"


def test_proc_mem_code_injection_write_open(victim: subprocess.Popen[str]) -> None:
    pid, _ = victim_address(victim)
    mem = f"/proc/{pid}/mem"

    def act() -> None:
        py("ptb-memwr", OPEN_FLAGS, f"/proc/{pid}/comm", str(O_APPEND_WRITE))  # near-miss
        py("ptb-memwr", OPEN_FLAGS, mem, str(os.O_RDONLY))                     # near-miss: a read
        py("ptb-memwr", OPEN_FLAGS, mem, str(os.O_WRONLY))                     # trigger

    docs = trace(["proc_mem_code_injection", "security_file_open"], ["comm=ptb-memwr"], act)
    assert seen(docs, "security_file_open", pathname=f"/proc/{pid}/comm")
    assert seen(docs, "security_file_open", 2, pathname=mem)  # the read, then the write
    det, by = the_detection(docs, "TRC-1024", "proc_mem_code_injection", "security_file_open")
    assert by["pathname"] == mem and by["flags"] & os.O_ACCMODE == os.O_WRONLY
    assert det["metadata"]["Properties"]["external_id"] == "T1055.009"


VM_WRITE = """
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

libc = ctypes.CDLL(None, use_errno=True)
libc.process_vm_writev.restype = ctypes.c_ssize_t
libc.process_vm_writev.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong,
                                   ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]

def write(pid, addr, data):
    src = ctypes.create_string_buffer(data)
    local, remote = iovec(ctypes.addressof(src), len(data)), iovec(addr, len(data))
    n = libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    assert n == len(data), os.strerror(ctypes.get_errno())

own = ctypes.create_string_buffer(b"original", 16)
write(os.getpid(), ctypes.addressof(own), b"selfcopy")    # near-miss: its own memory
assert own.value == b"selfcopy"
write(int(sys.argv[2]), int(sys.argv[3]), b"injected")   # trigger: another process
"""


def test_process_vm_write_inject(victim: subprocess.Popen[str]) -> None:
    pid, addr = victim_address(victim)
    docs = trace(["process_vm_write_inject", "process_vm_writev"], ["comm=ptb-vmw"],
                 lambda: py("ptb-vmw", VM_WRITE, str(pid), str(addr)))
    assert victim.stdin is not None and victim.stdout is not None
    victim.stdin.write("\n")
    victim.stdin.flush()
    assert victim.stdout.readline().strip() == "injected"  # the write really happened
    writer = [d for d in docs if d["eventName"] == "process_vm_writev"]
    assert len(writer) == 2 and args_of(writer[0])["pid"] == writer[0]["processId"]
    det, by = the_detection(docs, "TRC-1025", "process_vm_write_inject", "process_vm_writev")
    assert by["pid"] == pid and det["processId"] != pid
    assert det["metadata"]["Properties"]["external_id"] == "T1055"


# --- containers -----------------------------------------------------------------------

def container(containers: Containers, name: str, *options: str) -> str:
    """`docker run -d` a sleeping busybox container with extra options; its id.
    The docker_containers fixture removes it."""
    containers.names.append(name)
    docker("rm", "-f", name, socket=containers.socket, check=False)
    res = docker("run", "--detach", "--name", name, "--network", "none", *options,
                 containers.image, "sleep", "120", socket=containers.socket)
    return res.stdout.strip()


def sh(containers: Containers, name: str, script: str) -> str:
    """Run `script` with the container's sh (docker exec); its output."""
    return docker("exec", name, "sh", "-c", script, socket=containers.socket).stdout


@pytest.fixture(scope="module")
def connector() -> Iterator[Path]:
    """A static `ptconnect PATH`: connect(2) an AF_UNIX stream socket to PATH, print
    the result, send nothing. Static, so it runs in the busybox image."""
    d = Path(f"/tmp/ptb-connect-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o755)
    src = d / "ptconnect.c"
    src.write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <sys/un.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            struct sockaddr_un a = {.sun_family = AF_UNIX};
            if (argc < 2) return 64;
            strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
            int fd = socket(AF_UNIX, SOCK_STREAM, 0);
            printf("%d\\n", connect(fd, (struct sockaddr *)&a, sizeof a));
            close(fd);
            return 0;
        }
        """))
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "ptconnect"), str(src)], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_docker_abuse_write_open_in_container(docker_containers: Containers, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "docker.sock").write_text("")  # a file by that name: open(2) works on it
    cid = container(docker_containers, "ptb-dsock", "-v", f"{shared}:/run/pt")

    def act() -> None:
        sh(docker_containers, "ptb-dsock", "cat /run/pt/docker.sock")          # near-miss: read
        sh(docker_containers, "ptb-dsock", ": >> /run/pt/docker.sock.bak")    # near-miss: name
        sh(docker_containers, "ptb-dsock", ": >> /run/pt/docker.sock")        # trigger

    docs = trace(["docker_abuse", "security_file_open"], [f"container={cid}"], act)
    assert seen(docs, "security_file_open", pathname="/run/pt/docker.sock.bak")
    det, by = the_detection(docs, "TRC-1019", "docker_abuse", "security_file_open")
    assert by["pathname"] == "/run/pt/docker.sock" and by["flags"] & os.O_ACCMODE == os.O_WRONLY
    assert det["containerId"] == cid and det["contextFlags"]["containerStarted"] is True
    assert det["metadata"]["Properties"]["external_id"] == "T1068"
    assert (shared / "docker.sock").read_text() == ""


def test_docker_abuse_connect_from_container(docker_containers: Containers, connector: Path) -> None:
    cid = container(docker_containers, "ptb-dconn", "-v", f"{connector}:/pt:ro",
                    "-v", f"{docker_containers.socket}:/var/run/docker.sock")

    def act() -> None:
        # near-miss: another unix socket path (it need not exist: the hook runs first)
        sh(docker_containers, "ptb-dconn", "/pt/ptconnect /var/run/other.sock")
        assert sh(docker_containers, "ptb-dconn", "/pt/ptconnect /var/run/docker.sock").strip() == "0"

    docs = trace(["docker_abuse", "security_socket_connect"], [f"container={cid}"], act)
    assert any(d["eventName"] == "security_socket_connect"
               and args_of(d)["remote_addr"].get("sun_path") == "/var/run/other.sock" for d in docs)
    det, by = the_detection(docs, "TRC-1019", "docker_abuse", "security_socket_connect")
    assert by["remote_addr"]["sun_path"] == "/var/run/docker.sock"
    assert det["containerId"] == cid


def test_docker_abuse_not_from_the_host(docker_containers: Containers) -> None:
    """The docker CLI on the host connects to docker.sock all the time: not abuse."""
    docs = trace(["docker_abuse", "security_socket_connect"], ["comm=docker"],
                 lambda: docker("version", socket=docker_containers.socket))
    assert any(d["eventName"] == "security_socket_connect" for d in docs)
    assert detections(docs) == []


# Copy the ELF with write(2): busybox cp and cat copy with sendfile(2), which
# writes no user buffer, so the kernel side makes no magic_write of it.
DD = "busybox dd if=/bin/busybox bs=64k 2>/dev/null"


def test_dropped_executable_in_container(docker_containers: Containers) -> None:
    cid = container(docker_containers, "ptb-drop")

    def act() -> None:
        sh(docker_containers, "ptb-drop", "busybox mkdir -p /tmp")  # the image has none
        sh(docker_containers, "ptb-drop", "echo hello > /tmp/ptb-text")           # not ELF
        sh(docker_containers, "ptb-drop", f"{DD} of=/dev/shm/ptb-mem")   # memory path
        sh(docker_containers, "ptb-drop", f"{DD} of=/tmp/ptb-dropped")   # trigger

    docs = trace(["dropped_executable", "magic_write"], [f"container={cid}"], act)
    assert seen(docs, "magic_write", pathname="/tmp/ptb-text")
    assert seen(docs, "magic_write", pathname="/dev/shm/ptb-mem")
    det, by = the_detection(docs, "TRC-1022", "dropped_executable", "magic_write")
    assert args_of(det)["path"] == "/tmp/ptb-dropped" == by["pathname"]
    assert det["containerId"] == cid and det["contextFlags"]["containerStarted"] is True
    assert det["metadata"]["Properties"]["external_id"] == "T1036"


def test_dropped_executable_not_on_the_host(tmp_path: Path) -> None:
    code = "with open('/bin/true', 'rb') as f, open(sys.argv[2], 'wb') as g:\n    g.write(f.read())\n"
    docs = trace(["dropped_executable", "magic_write"], ["comm=ptb-drophost"],
                 lambda: py("ptb-drophost", code, str(tmp_path / "true-copy")))
    assert seen(docs, "magic_write", pathname=str(tmp_path / "true-copy"))
    assert detections(docs) == []


# A container that may mount (not --privileged: this host's capability bounding
# set lacks CAP_SYS_RESOURCE, which --privileged asks for), and a private mount
# namespace inside it, so its mounts touch neither the container's nor the host's
# mount table.
MOUNTER = ("--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
           "--security-opt", "apparmor=unconfined")


def in_private_mntns(script: str) -> str:
    return f"busybox unshare -m sh -c '{script}'"


def test_sched_debug_recon_in_container(docker_containers: Containers) -> None:
    cid = container(docker_containers, "ptb-sched", *MOUNTER)
    script = in_private_mntns(
        "busybox mount -t debugfs none /sys/kernel/debug"
        " && cat /sys/kernel/debug/percpu_stats > /dev/null"     # near-miss: another debug file
        " && cat /sys/kernel/debug/sched/debug > /dev/null")      # trigger
    docs = trace(["sched_debug_recon", "security_file_open"], [f"container={cid}"],
                 lambda: sh(docker_containers, "ptb-sched", script))
    assert seen(docs, "security_file_open", pathname="/sys/kernel/debug/percpu_stats")
    det, by = the_detection(docs, "TRC-1029", "sched_debug_recon", "security_file_open")
    assert by["pathname"] == "/sys/kernel/debug/sched/debug"
    assert det["containerId"] == cid
    assert det["metadata"]["Properties"]["Severity"] == 1
    assert det["metadata"]["Properties"]["external_id"] == "T1613"


HOST_SCHED_DEBUG = """
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x00020000) == 0                        # CLONE_NEWNS
assert libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) == 0  # MS_REC|MS_PRIVATE
if not os.path.exists("/sys/kernel/debug/sched"):  # the host may have debugfs mounted already
    assert libc.mount(b"none", b"/sys/kernel/debug", b"debugfs", 0, None) == 0
with open("/sys/kernel/debug/sched/debug") as f:
    f.read(64)
"""


def test_sched_debug_recon_not_on_the_host() -> None:
    docs = trace(["sched_debug_recon", "security_file_open"], ["comm=ptb-schedhost"],
                 lambda: py("ptb-schedhost", HOST_SCHED_DEBUG))
    assert seen(docs, "security_file_open", pathname="/sys/kernel/debug/sched/debug")
    assert detections(docs) == []


# Stand-ins for files this kernel does not have (see the module docstring).
FAKE_PROC = "busybox mount -t tmpfs ptb /proc && busybox mkdir -p /proc/sys/kernel"


def test_proc_kcore_read_in_container_stand_in(docker_containers: Containers) -> None:
    cid = container(docker_containers, "ptb-kcore", *MOUNTER)
    script = in_private_mntns(
        f"{FAKE_PROC} && echo core > /proc/kcore"        # near-miss: a write, not a read
        " && echo x > /proc/kcore.bak && cat /proc/kcore.bak > /dev/null"  # near-miss: name
        " && cat /proc/kcore > /dev/null")                 # trigger
    docs = trace(["proc_kcore_read", "security_file_open"], [f"container={cid}"],
                 lambda: sh(docker_containers, "ptb-kcore", script))
    assert seen(docs, "security_file_open", 2, pathname="/proc/kcore.bak")  # written, read
    det, by = the_detection(docs, "TRC-1021", "proc_kcore_read", "security_file_open")
    assert by["pathname"] == "/proc/kcore" and by["flags"] & os.O_ACCMODE == os.O_RDONLY
    assert det["containerId"] == cid
    assert det["metadata"]["Properties"]["external_id"] == "T1611"


@pytest.mark.parametrize("path", ["/proc/sysrq-trigger", "/proc/sys/kernel/sysrq"])
def test_system_request_key_mod_in_container_stand_in(docker_containers: Containers,
                                                       path: str) -> None:
    cid = container(docker_containers, "ptb-sysrq", *MOUNTER)
    script = in_private_mntns(
        f"{FAKE_PROC} && echo 0 > {path}.bak && echo 0 > /proc/x-sysrq"  # near-misses: names
        f" && cat {path}.bak > /dev/null"
        f" && : >> {path} && cat {path} > /dev/null")      # trigger (empty: written nothing)
    docs = trace(["system_request_key_mod", "security_file_open"], [f"container={cid}"],
                 lambda: sh(docker_containers, "ptb-sysrq", script))
    assert seen(docs, "security_file_open", 2, pathname=f"{path}.bak")  # written, read
    assert seen(docs, "security_file_open", 2, pathname=path)  # the write, and the read too
    det, by = the_detection(docs, "TRC-1031", "system_request_key_mod", "security_file_open")
    assert by["pathname"] == path and by["flags"] & os.O_ACCMODE == os.O_WRONLY
    assert det["containerId"] == cid
    assert det["metadata"]["Properties"]["Severity"] == 3
