"""Detections out of the box: a bare `pytracee` (no --events, --policy or --scope)
runs every built-in signature on Tracee's default events.

Real processes do the real thing (a memfd exec, PTRACE_TRACEME, LD_PRELOAD, a hidden
ELF copied with cp, a JIT-style mprotect) and each detection is asserted exactly once,
with its id and the process that caused it. Droppers that copy instead of write
(copy_file_range, sendfile, splice, pwritev2, install, busybox cp in a container) each
give one magic_write with the destination's path, inode and first 32 bytes. Ordinary
containers raise nothing; one that mounts a real block device raises one disk_mount.
"""

from __future__ import annotations

import base64
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker_env import IMAGE, Dockerd, docker
from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, start, stop  # noqa: F401
from tests.kernel.test_signatures_a import UNCONFINED, args, events_of, trigger

pytestmark = pytest.mark.usefixtures("require_bpf")

TRUE_ELF = Path("/bin/true").read_bytes()[:32]


def kdev(st: os.stat_result) -> int:
    return os.major(st.st_dev) << 20 | os.minor(st.st_dev)  # the kernel's dev_t


def spawn(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run a command to its end; its pid (the pid its events carry)."""
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    assert p.wait(timeout=30) == 0, argv
    return p.pid


def python(code: str) -> int:
    return spawn([sys.executable, "-c", textwrap.dedent(code)])


def detections_by_pid(out: bytes) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for e in events_of(out):
        sig = e.get("metadata", {}).get("Properties", {}).get("signatureID")
        if sig:
            found.setdefault(e["hostProcessId"], []).append(sig)
    return found


def test_a_bare_run_detects_out_of_the_box(tmp_path: Path) -> None:
    hidden = tmp_path / ".cache" / "kworkerd"
    hidden.parent.mkdir()
    proc = start("-o", "json")  # no selection: Tracee's default events and every signature
    fileless = python("""
        import os
        fd = os.memfd_create("pt-payload")
        os.write(fd, open("/bin/true", "rb").read())
        os.execv(f"/proc/self/fd/{fd}", ["pt-payload"])
    """)
    traceme = python("import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)")
    preload = spawn(["/bin/true"], env={"LD_PRELOAD": str(tmp_path / "evil.so")})
    copied = spawn(["cp", "/bin/true", str(hidden)])
    jit = python("""
        import ctypes
        libc = ctypes.CDLL(None)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        page = libc.mmap(None, 4096, 3, 0x22, -1, 0)                 # RW, anonymous
        assert libc.mprotect(ctypes.c_void_p(page), 4096, 5) == 0     # RX: code was loaded
    """)
    out, _ = stop(proc)
    found = detections_by_pid(out)
    assert found.get(fileless) == ["TRC-105"]
    assert found.get(traceme) == ["TRC-102"]
    assert found.get(preload) == ["TRC-107"]
    assert found.get(copied) == ["TRC-1015"]
    assert found.get(jit) == ["TRC-104"]
    dets = {e["metadata"]["Properties"]["signatureID"]: e for e in events_of(out) if "metadata" in e
            and e["hostProcessId"] in (fileless, traceme, preload, copied, jit)}
    assert {k: v["eventName"] for k, v in dets.items()} == {
        "TRC-105": "fileless_execution", "TRC-102": "anti_debugging", "TRC-107": "ld_preload",
        "TRC-1015": "hidden_file_created", "TRC-104": "dynamic_code_loading"}
    name, targs = trigger(dets["TRC-105"])
    assert name == "sched_process_exec" and targs["pathname"].startswith("memfd:pt-payload")
    name, targs = trigger(dets["TRC-1015"])
    assert (name, targs["pathname"]) == ("magic_write", str(hidden))
    name, targs = trigger(dets["TRC-104"])
    assert (name, targs["alert"], targs["prot"], targs["prev_prot"]) == ("mem_prot_alert", 4, 5, 3)
    assert dets["TRC-102"]["processName"] == "python3"
    assert dets["TRC-1015"]["processName"] == "cp"
    # Only the selected events are printed: the signatures' inputs are not.
    names = {e["eventName"] for e in events_of(out)}
    assert "magic_write" not in names and "mem_prot_alert" not in names


def _tty_run(env: dict[str, str]) -> bytes:
    """pytracee -e anti_debugging with its stdout on a pseudo-terminal; what it printed
    there while a process called PTRACE_TRACEME."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(PYTRACEE), "-e", "anti_debugging"], stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert line.startswith("pytracee: tracing"), line
        pid = python("import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)")
        seen = b""
        deadline = time.monotonic() + 10
        while str(pid).encode() + b" " not in seen.split(b"TRC-102")[-1] and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
            if b"TRC-102" in seen and seen.endswith(b"\n"):
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        return seen
    finally:
        proc.kill()
        os.close(master)


def test_detections_are_coloured_on_a_terminal_only() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _tty_run(env).decode()
    [line] = [ln for ln in coloured.splitlines() if "TRC-102" in ln]
    assert ("\x1b[34mLOW\x1b[0m \x1b[1mTRC-102 Anti-Debugging detected\x1b[0m, triggered by "
            "ptrace (request: PTRACE_TRACEME, pid: 0), process: python3(") in line
    plain = _tty_run({**env, "NO_COLOR": "1"}).decode()
    [line] = [ln for ln in plain.splitlines() if "TRC-102" in ln]
    assert "\x1b" not in line
    assert ("LOW TRC-102 Anti-Debugging detected, triggered by ptrace (request: PTRACE_TRACEME, "
            "pid: 0), process: python3(") in line


# --- droppers that copy ----------------------------------------------------------------

def _bytes(v: str) -> bytes:
    return base64.b64decode(v)  # JSON carries []byte as Go does: base64


def magic_writes(out: bytes, pid: int) -> list[tuple[str, int, int, bytes]]:
    return [(a["pathname"], a["dev"], a["inode"], _bytes(a["bytes"])) for e in events_of(out)
            if e["eventName"] == "magic_write" and e["hostProcessId"] == pid for a in [args(e)]]


def test_copies_give_one_magic_write_with_the_bytes_that_landed(tmp_path: Path) -> None:
    d = tmp_path / "drop"
    d.mkdir()
    src = "/bin/true"
    code = {
        "sendfile": f"""
            import os
            s = os.open({src!r}, os.O_RDONLY)
            o = os.open({str(d / '.sendfile')!r}, os.O_WRONLY | os.O_CREAT, 0o755)
            os.sendfile(o, s, 0, os.fstat(s).st_size)
        """,
        "copy_file_range": f"""
            import os
            s = os.open({src!r}, os.O_RDONLY)
            o = os.open({str(d / 'cfr')!r}, os.O_WRONLY | os.O_CREAT, 0o755)
            os.copy_file_range(s, o, os.fstat(s).st_size)
        """,
        "splice": f"""
            import os
            data = open({src!r}, "rb").read()[:8192]
            r, w = os.pipe()
            os.write(w, data)
            o = os.open({str(d / 'spliced')!r}, os.O_WRONLY | os.O_CREAT, 0o755)
            assert os.splice(r, o, 8192) == 8192
        """,
        "pwritev2": f"""
            import os
            data = open({src!r}, "rb").read()[:100]
            o = os.open({str(d / 'pw2')!r}, os.O_WRONLY | os.O_CREAT, 0o755)
            os.pwritev(o, [data[:4], data[4:]], 0, os.RWF_DSYNC)
        """,
        "writev": f"""
            import os
            data = open({src!r}, "rb").read()[:100]
            o = os.open({str(d / 'wv')!r}, os.O_WRONLY | os.O_CREAT, 0o755)
            os.writev(o, [data[:2], data[2:]])  # the header split over two iovecs
        """,
    }
    proc = start("-o", "json", "-e", "magic_write,hidden_file_created")
    pids = {"cp": spawn(["cp", src, str(d / ".cp")]),
            "install": spawn(["install", src, str(d / "installed")])}
    for name, c in code.items():
        pids[name] = python(c)
    out, _ = stop(proc)
    files = {"cp": ".cp", "install": "installed", "sendfile": ".sendfile",
             "copy_file_range": "cfr", "splice": "spliced", "pwritev2": "pw2", "writev": "wv"}
    for name, pid in pids.items():
        st = os.stat(d / files[name])
        got = magic_writes(out, pid)
        assert got == [(str(d / files[name]), kdev(st), st.st_ino, TRUE_ELF)], name
    hidden = detections_by_pid(out)
    assert {n: hidden.get(pid) for n, pid in pids.items()} == {
        "cp": ["TRC-1015"], "install": None, "sendfile": ["TRC-1015"],
        "copy_file_range": None, "splice": None, "pwritev2": None, "writev": None}


def test_busybox_cp_in_a_container_drops_an_executable(docker_containers: Any,
                                                       dockerd: Dockerd) -> None:
    busybox = next(p for p in ("/usr/bin/busybox", "/bin/busybox") if os.path.exists(p))
    elf = Path(busybox).read_bytes()[:32]
    proc = start("-o", "json", "-e", "magic_write,dropped_executable", "-s", "container")
    cid = docker_containers.run("pt-dropper", {}, ["sh", "-c",
                                "mkdir /tmp && cp /bin/busybox /tmp/dropped && ls -i /tmp/dropped"],
                                detach=False)
    out, _ = stop(proc)
    inode = int(docker("logs", cid, socket=dockerd.socket).stdout.split()[0])
    writes = [(args(e)["pathname"], args(e)["inode"], _bytes(args(e)["bytes"]))
              for e in events_of(out) if e["eventName"] == "magic_write" and e["containerId"] == cid
              and e["processName"] == "cp"]  # runc's sysctl writes come first
    assert writes == [("/tmp/dropped", inode, elf)]
    dets = [e for e in events_of(out) if e["eventName"] == "dropped_executable"]
    assert [(d["containerId"], d["processName"]) for d in dets] == [(cid, "cp")]
    name, targs = trigger(dets[0])
    assert (name, targs["pathname"]) == ("magic_write", "/tmp/dropped")


# --- containers: runc's set-up is not the container ---------------------------------

def test_ordinary_containers_raise_nothing_and_a_disk_mount_raises_one(
        tmp_path: Path, dockerd: Dockerd, docker_containers: Any) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "f").write_text("x")
    sock = dockerd.socket
    ordinary = [
        (), ("--read-only",), ("--tmpfs", "/run"), ("-v", f"{bind}:/data"),
        ("-v", f"{bind}:/data:ro"), ("--read-only", "--tmpfs", "/tmp"), ("--workdir", "/tmp"),
        ("--user", "1000:1000"), ("--tmpfs", "/scratch:size=1m"), ("-e", "A=1", "--hostname", "pt"),
    ]
    names = [f"pt-ordinary-{i}" for i in range(len(ordinary))] + ["pt-mounter"]
    try:
        proc = start("-o", "json")  # the bare default: every signature
        for name, flags in zip(names, ordinary):
            docker("run", "--rm", "--network", "none", "--name", name, *flags, IMAGE,
                   "sh", "-c", "cat /etc/hostname >/dev/null; ls / >/dev/null", socket=sock)
        cidfile = tmp_path / "mounter.cid"
        docker("run", "--rm", "--network", "none", "--name", "pt-mounter", "--cidfile", str(cidfile),
               *UNCONFINED, "--device", loop, IMAGE, "sh", "-c",
               f"mkdir -p /mnt/d && mount -t ext4 {loop} /mnt/d && umount /mnt/d", socket=sock)
        out, _ = stop(proc)
    finally:
        docker("rm", "-f", *names, socket=sock, check=False)
        subprocess.run(["losetup", "-d", loop], check=False)
    # Every container ran its command under the tracer (sched_process_exec is a default event).
    execs = {e["containerId"] for e in events_of(out)
             if e["eventName"] == "sched_process_exec" and e["containerId"]}
    assert len(execs) == len(names)
    # Nothing else anywhere: not runc's set-up in the containers, not the runtime's own
    # programs on the host (containerd starts them with LD_LIBRARY_PATH set).
    dets = [e for e in events_of(out) if "metadata" in e]
    mounter = cidfile.read_text().strip()
    assert [(d["eventName"], d["containerId"], d["processName"]) for d in dets] == [
        ("disk_mount", mounter, "mount")]
    name, targs = trigger(dets[0])
    assert (name, targs["dev_name"], targs["path"]) == ("security_sb_mount", loop, "/mnt/d")
    assert dets[0]["contextFlags"]["containerStarted"] is True
