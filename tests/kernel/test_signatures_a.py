"""Built-in signatures TRC-106..TRC-1018 on the real kernel, through the CLI.

Each test makes the real thing happen (a file opened, renamed, written, a
program started, a mount, a connection; in a container where the signature is
about containers) with pytracee attached, and checks that exactly that is
reported, once, with the right id, event and fields; then a near miss that
must not be reported. TRC-1017 (module_load) cannot happen on this kernel
(no module support): tests/unit/test_signatures_recorded.py covers it.

Nothing on the host is changed for good: triggers write under temporary
directories where the signature's logic allows it (suffix and basename
matches); where it needs a real system path (/usr/lib, /etc/kubernetes/pki),
the test creates its own entry there and removes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.docker_env import IMAGE, Dockerd, docker
from tests.kernel.cli_proc import _no_leftover_tracers, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")

O_RDONLY, O_WRONLY = os.O_RDONLY, os.O_WRONLY
O_APPEND, O_CREAT = os.O_APPEND, os.O_CREAT


# --- helpers ---------------------------------------------------------------------

def events_of(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def args(ev: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in ev["args"]}


def detections(out: bytes, sig_id: str) -> list[dict[str, Any]]:
    return [e for e in events_of(out)
            if e.get("metadata", {}).get("Properties", {}).get("signatureID") == sig_id]


def raw(out: bytes, name: str, **fields: Any) -> list[dict[str, Any]]:
    """Plain (not detection) events named `name` whose args include `fields`."""
    return [e for e in events_of(out) if "metadata" not in e and e["eventName"] == name
            and all(args(e).get(k) == v for k, v in fields.items())]


def trigger(det: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event that triggered a detection: its name and args."""
    t = args(det)["triggeredBy"]
    return t["name"], {a["name"]: a["value"] for a in t["args"]}


def one(out: bytes, sig_id: str, event_name: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The single detection of `sig_id` (named `event_name`), its trigger's name and args."""
    found = detections(out, sig_id)
    assert len(found) == 1, [trigger(d) for d in found]
    [det] = found
    assert det["eventName"] == event_name
    assert det["metadata"]["Properties"]["signatureID"] == sig_id
    name, targs = trigger(det)
    return det, name, targs


def none_of(out: bytes, sig_id: str, *seen: tuple[str, dict[str, Any]]) -> None:
    """No detection of `sig_id`, though the near misses `seen` (event name, some of
    its args) did happen: the tracer saw them, the signature let them go."""
    found = detections(out, sig_id)
    assert found == [], [trigger(d) for d in found]
    for name, fields in seen:
        got = raw(out, name, **fields)
        assert len(got) == 1, f"near miss {name} {fields} seen {len(got)} times, not once"


def sel(sig_event: str, *events: str) -> str:
    return ",".join((sig_event, *events))


def py(comm: str, code: str, env: dict[str, str] | None = None) -> None:
    """Run Python code in a process named `comm` (prctl PR_SET_NAME first)."""
    prelude = f"import ctypes, os\nctypes.CDLL(None).prctl(15, {comm.encode()!r}, 0, 0, 0)\n"
    subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], check=True,
                   env=env, capture_output=True, timeout=30)


def open_close(path: str | Path, flags: int) -> str:
    return f"os.close(os.open({str(path)!r}, {flags}, 0o644))\n"


def write_config(tmp: Path, text: str) -> str:
    cfg = tmp / "signatures.yaml"
    cfg.write_text(textwrap.dedent(text))
    return str(cfg)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


# --- containers --------------------------------------------------------------------

@pytest.fixture
def box(docker_containers: Any, dockerd: Dockerd) -> Iterator[Any]:
    """A running busybox container and a way to run shell commands in it."""
    class Box:
        def __init__(self, name: str, extra: tuple[str, ...] = ()) -> None:
            self.name = name
            if extra:  # flags the fixture's run() does not take: docker run ourselves
                docker("rm", "-f", name, socket=dockerd.socket, check=False)
                self.id = docker("run", "-d", "--network", "none", "--name", name, *extra,
                                 IMAGE, "sleep", "120", socket=dockerd.socket).stdout.strip()
                made.append(name)
            else:
                self.id = docker_containers.run(name, {}, ["sleep", "120"])

        def sh(self, script: str, *exec_flags: str, check: bool = True) -> str:
            res = docker("exec", *exec_flags, self.name, "sh", "-c", script,
                         socket=dockerd.socket, check=check)
            return res.stdout

    made: list[str] = []
    try:
        yield Box
    finally:
        if made:
            docker("rm", "-f", *made, socket=dockerd.socket, check=False)


# What --privileged would give that these tests need (--privileged itself asks for
# every capability, and this host's bounding set lacks CAP_SYS_RESOURCE).
UNCONFINED = ("--cap-add", "SYS_ADMIN", "--security-opt", "systempaths=unconfined")


def scope_of(*containers: Any) -> str:
    return "container=" + ",".join(c.id[:12] for c in containers)


# --- TRC-106 cgroup_notify_on_release ----------------------------------------------

def test_trc106_cgroup_notify_on_release(box: Any) -> None:
    c = box("pt-sig106")
    c.sh("busybox mkdir -p /tmp/cg")
    proc = start("-o", "json", "-e", "cgroup_notify_on_release", "-s", scope_of(c))
    c.sh("echo 1 > /tmp/cg/notify_on_release")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-106", "cgroup_notify_on_release")
    assert name == "security_file_open"
    assert targs["pathname"] == "/tmp/cg/notify_on_release"
    assert targs["flags"] & 3 == O_WRONLY
    assert det["containerId"] == c.id and det["contextFlags"]["containerStarted"] is True
    assert det["metadata"]["Properties"]["Severity"] == 3
    assert det["metadata"]["Properties"]["external_id"] == "T1611"

    # Near misses: reading it in the container; writing one on the host.
    ev = sel("cgroup_notify_on_release", "security_file_open")
    proc = start("-o", "json", "-e", ev, "-s", scope_of(c))
    c.sh("cat /tmp/cg/notify_on_release")
    out, _ = stop(proc)
    none_of(out, "TRC-106", ("security_file_open", {"pathname": "/tmp/cg/notify_on_release"}))
    with tempfile.TemporaryDirectory() as d:
        proc = start("-o", "json", "-e", ev, "-s", "comm=pt-sig106")
        py("pt-sig106", open_close(Path(d) / "notify_on_release", O_WRONLY | O_CREAT))
        out, _ = stop(proc)
    none_of(out, "TRC-106", ("security_file_open", {"pathname": f"{d}/notify_on_release"}))


# --- TRC-107 ld_preload -------------------------------------------------------------

def test_trc107_ld_preload_in_the_environment(tmp: Path) -> None:
    prog = tmp / "pt-sig107"
    shutil.copy("/bin/true", prog)
    proc = start("-o", "json", "-e", "ld_preload,sched_process_exec", "-s", "comm=pt-sig107")
    subprocess.run([prog], check=True, env={"PATH": "/usr/bin:/bin",
                                            "LD_LIBRARY_PATH": "/nonexistent/pt"})
    # Near miss: the name only ends like one of the variables.
    subprocess.run([prog], check=True, env={"MY_LD_PRELOAD": "/x.so", "LD_PRELOADX": "1"})
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-107", "ld_preload")
    assert name == "sched_process_exec" and targs["pathname"] == str(prog)
    assert args(det)["LD_LIBRARY_PATH"] == "LD_LIBRARY_PATH=/nonexistent/pt"
    assert det["metadata"]["Properties"]["Severity"] == 2
    assert det["metadata"]["Properties"]["external_id"] == "T1574"
    [_, near] = raw(out, "sched_process_exec", pathname=str(prog))
    assert sorted(args(near)["env"]) == ["LD_PRELOADX=1", "MY_LD_PRELOAD=/x.so"]


def test_trc107_ld_so_preload_written_or_renamed(tmp: Path) -> None:
    # The signature matches a path ending in /etc/ld.so.preload (a container's
    # root seen from the host included): a private copy of /etc is enough.
    etc = tmp / "etc"
    etc.mkdir()
    target = etc / "ld.so.preload"
    proc = start("-o", "json", "-e", "ld_preload", "-s", "comm=pt-sig107")
    py("pt-sig107", open_close(target, O_WRONLY | O_CREAT | O_APPEND))
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-107", "ld_preload")
    assert name == "security_file_open" and targs["pathname"] == str(target)
    assert det["processName"] == "pt-sig107"

    (tmp / "staged").write_text("")
    proc = start("-o", "json", "-e", "ld_preload", "-s", "comm=pt-sig107")
    py("pt-sig107", f"os.rename({str(target)!r}, {str(tmp / 'old')!r})\n"
                    f"os.rename({str(tmp / 'staged')!r}, {str(target)!r})\n")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-107", "ld_preload")  # the rename to it, not from it
    assert name == "security_inode_rename" and targs["new_path"] == str(target)

    # Near misses: read it; write a file next to it.
    proc = start("-o", "json", "-e", "ld_preload,security_file_open", "-s", "comm=pt-sig107")
    py("pt-sig107", open_close(target, O_RDONLY) + open_close(etc / "ld.so.preload.bak",
                                                              O_WRONLY | O_CREAT))
    out, _ = stop(proc)
    none_of(out, "TRC-107", ("security_file_open", {"pathname": str(target)}),
            ("security_file_open", {"pathname": f"{target}.bak"}))


# --- TRC-108 k8s_service_account_token ------------------------------------------------

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_trc108_service_account_token_read_in_a_container(box: Any, tmp: Path) -> None:
    c = box("pt-sig108")
    c.sh(f"busybox mkdir -p {TOKEN_DIR} && echo tok > {TOKEN_DIR}/token "
         f"&& echo ns > {TOKEN_DIR}/namespace")
    ev = sel("k8s_service_account_token", "security_file_open")
    proc = start("-o", "json", "-e", ev, "-s", scope_of(c))
    c.sh(f"cat {TOKEN_DIR}/token")
    c.sh(f"cat {TOKEN_DIR}/namespace && echo new > {TOKEN_DIR}/token")  # near misses
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-108", "k8s_service_account_token")
    assert name == "security_file_open" and targs["pathname"] == f"{TOKEN_DIR}/token"
    assert targs["flags"] & 3 == O_RDONLY
    assert det["processName"] == "cat" and det["containerId"] == c.id
    assert det["metadata"]["Properties"]["Severity"] == 0
    assert det["metadata"]["Properties"]["external_id"] == "T1212"
    assert raw(out, "security_file_open", pathname=f"{TOKEN_DIR}/namespace")
    assert len(raw(out, "security_file_open", pathname=f"{TOKEN_DIR}/token")) == 2

    # The allow-list comes from the signature config: silence cat, no code change.
    cfg = write_config(tmp, """\
        TRC-108:
          allowed_processes: [cat]
        """)
    proc = start("-o", "json", "-e", ev, "-s", scope_of(c), "--signatures-config", cfg)
    c.sh(f"cat {TOKEN_DIR}/token")
    out, _ = stop(proc)
    none_of(out, "TRC-108", ("security_file_open", {"pathname": f"{TOKEN_DIR}/token"}))

    # The same path read on the host is not a container's token.
    host_dir = tmp / "secrets" / "kubernetes.io" / "serviceaccount"
    host_dir.mkdir(parents=True)
    (host_dir / "token").write_text("tok")
    proc = start("-o", "json", "-e", ev, "-s", "comm=pt-sig108")
    py("pt-sig108", open_close(host_dir / "token", O_RDONLY))
    out, _ = stop(proc)
    none_of(out, "TRC-108", ("security_file_open", {"pathname": str(host_dir / "token")}))


# --- TRC-109 aslr_inspection ----------------------------------------------------------

ASLR = "/proc/sys/kernel/randomize_va_space"


def test_trc109_aslr_inspection() -> None:
    proc = start("-o", "json", "-e", "aslr_inspection", "-s", "comm=pt-sig109")
    py("pt-sig109", f"print(open({ASLR!r}).read())")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-109", "aslr_inspection")
    assert name == "security_file_open" and targs["pathname"] == ASLR
    assert det["processName"] == "pt-sig109"
    assert det["metadata"]["Properties"]["Severity"] == 0
    assert det["metadata"]["Properties"]["external_id"] == "T1068"

    # Near misses: another file of /proc/sys/kernel; the setting opened write-only
    # (nothing is written).
    proc = start("-o", "json", "-e", "aslr_inspection,security_file_open", "-s", "comm=pt-sig109")
    py("pt-sig109", open_close("/proc/sys/kernel/ostype", O_RDONLY)
       + open_close(ASLR, O_WRONLY))
    out, _ = stop(proc)
    none_of(out, "TRC-109", ("security_file_open", {"pathname": "/proc/sys/kernel/ostype"}),
            ("security_file_open", {"pathname": ASLR}))


# --- TRC-1010 cgroup_release_agent ------------------------------------------------------

def test_trc1010_cgroup_release_agent(box: Any) -> None:
    c = box("pt-sig1010")
    c.sh("busybox mkdir -p /tmp/cg && echo x > /tmp/cg/staged")
    proc = start("-o", "json", "-e", "cgroup_release_agent", "-s", scope_of(c))
    c.sh("echo /evil > /tmp/cg/release_agent")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1010", "cgroup_release_agent")
    assert name == "security_file_open" and targs["pathname"] == "/tmp/cg/release_agent"
    assert det["containerId"] == c.id
    assert det["metadata"]["Properties"]["Severity"] == 3

    proc = start("-o", "json", "-e", "cgroup_release_agent", "-s", scope_of(c))
    c.sh("busybox mv /tmp/cg/release_agent /tmp/cg/old && busybox mv /tmp/cg/staged "
         "/tmp/cg/release_agent")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1010", "cgroup_release_agent")
    assert name == "security_inode_rename" and targs["new_path"] == "/tmp/cg/release_agent"

    # Near misses: read in the container; written on the host.
    ev = sel("cgroup_release_agent", "security_file_open")
    proc = start("-o", "json", "-e", ev, "-s", scope_of(c))
    c.sh("cat /tmp/cg/release_agent")
    out, _ = stop(proc)
    none_of(out, "TRC-1010", ("security_file_open", {"pathname": "/tmp/cg/release_agent"}))
    with tempfile.TemporaryDirectory() as d:
        proc = start("-o", "json", "-e", ev, "-s", "comm=pt-sig1010")
        py("pt-sig1010", open_close(Path(d) / "release_agent", O_WRONLY | O_CREAT))
        out, _ = stop(proc)
    none_of(out, "TRC-1010", ("security_file_open", {"pathname": f"{d}/release_agent"}))


# --- TRC-1011 core_pattern_modification -------------------------------------------------

CORE_PATTERN = "/proc/sys/kernel/core_pattern"


def test_trc1011_core_pattern_opened_for_write_in_a_container(box: Any) -> None:
    # The real file: /proc/sys is read-only in a container unless docker leaves the
    # system paths alone (what --privileged does; this host's bounding set lacks
    # CAP_SYS_RESOURCE, so --privileged itself cannot start). The shell opens it for
    # append and writes nothing, so the host's setting is untouched.
    c = box("pt-sig1011", UNCONFINED)
    before = Path(CORE_PATTERN).read_text()
    proc = start("-o", "json", "-e", "core_pattern_modification", "-s", scope_of(c))
    c.sh(f": >> {CORE_PATTERN}")
    out, _ = stop(proc)
    assert Path(CORE_PATTERN).read_text() == before
    det, name, targs = one(out, "TRC-1011", "core_pattern_modification")
    assert name == "security_file_open" and targs["pathname"] == CORE_PATTERN
    assert targs["flags"] & 3 == O_WRONLY
    assert det["containerId"] == c.id
    assert det["metadata"]["Properties"]["Severity"] == 3

    # Near misses: read in the container; opened for write on the host.
    ev = sel("core_pattern_modification", "security_file_open")
    proc = start("-o", "json", "-e", ev, "-s", scope_of(c))
    c.sh(f"cat {CORE_PATTERN}")
    out, _ = stop(proc)
    none_of(out, "TRC-1011", ("security_file_open", {"pathname": CORE_PATTERN}))
    proc = start("-o", "json", "-e", ev, "-s", "comm=pt-sig1011")
    py("pt-sig1011", open_close(CORE_PATTERN, O_WRONLY | O_APPEND))
    out, _ = stop(proc)
    assert Path(CORE_PATTERN).read_text() == before
    none_of(out, "TRC-1011", ("security_file_open", {"pathname": CORE_PATTERN}))


# --- TRC-1012 default_loader_mod ---------------------------------------------------------

@pytest.fixture
def usr_lib_dir() -> Iterator[Path]:
    """A directory of this test's own under /usr/lib (the loader's pattern needs it)."""
    d = Path(tempfile.mkdtemp(prefix="pytracee-", dir="/usr/lib"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_trc1012_default_loader_mod(usr_lib_dir: Path) -> None:
    loader = usr_lib_dir / "ld-pytracee.so.2"
    proc = start("-o", "json", "-e", "default_loader_mod", "-s", "comm=pt-sig1012")
    py("pt-sig1012", open_close(loader, O_WRONLY | O_CREAT))
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1012", "default_loader_mod")
    assert name == "security_file_open" and targs["pathname"] == str(loader)
    assert det["processName"] == "pt-sig1012"
    assert det["metadata"]["Properties"]["Severity"] == 3
    assert det["metadata"]["Properties"]["external_id"] == "T1574"

    (usr_lib_dir / "staged").write_text("")
    proc = start("-o", "json", "-e", "default_loader_mod", "-s", "comm=pt-sig1012")
    py("pt-sig1012", f"os.rename({str(usr_lib_dir / 'staged')!r}, {str(loader)!r})")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1012", "default_loader_mod")
    assert name == "security_inode_rename" and targs["new_path"] == str(loader)

    # Near misses: the loader read (as every program start does); a library that is
    # not a loader written next to it.
    real = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    proc = start("-o", "json", "-e", "default_loader_mod,security_file_open", "-s",
                 "comm=pt-sig1012")
    py("pt-sig1012", open_close(real, O_RDONLY) + open_close(loader, O_RDONLY)
       + open_close(usr_lib_dir / "libpytracee.so.1", O_WRONLY | O_CREAT))
    out, _ = stop(proc)
    none_of(out, "TRC-1012", ("security_file_open", {"pathname": real}),
            ("security_file_open", {"pathname": str(loader)}),
            ("security_file_open", {"pathname": str(usr_lib_dir / "libpytracee.so.1")}))


# --- TRC-1013 k8s_api_connection ---------------------------------------------------------

def test_trc1013_k8s_api_connection(box: Any) -> None:
    # --network none: the pod's "API server" is on loopback. The connection is refused,
    # which does not matter: the attempt is what is reported.
    c = box("pt-sig1013")
    other = box("pt-sig1013b")
    proc = start("-o", "json", "-e", "k8s_api_connection", "-s", scope_of(c, other))
    env = ("-e", "KUBERNETES_SERVICE_HOST=127.0.0.1", "-e", "KUBERNETES_SERVICE_PORT=6443")
    c.sh("busybox nc -w 1 127.0.0.1 6443 </dev/null", *env, check=False)
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1013", "k8s_api_connection")
    assert name == "security_socket_connect"
    assert targs["remote_addr"]["sin_addr"] == "127.0.0.1"
    assert str(targs["remote_addr"]["sin_port"]) == "6443"
    assert args(det)["ip"] == "127.0.0.1"
    assert det["containerId"] == c.id
    assert det["metadata"]["Properties"]["Severity"] == 1

    # Near misses: the container learnt the address above, but connects elsewhere;
    # another container (no such variable) connects to the same address.
    proc = start("-o", "json", "-e", "k8s_api_connection,security_socket_connect", "-s",
                 scope_of(c, other))
    c.sh("busybox nc -w 1 127.0.0.2 6443 </dev/null", *env, check=False)
    other.sh("busybox nc -w 1 127.0.0.1 6443 </dev/null", check=False)
    out, _ = stop(proc)
    none_of(out, "TRC-1013")
    conns = {(e["containerId"], args(e)["remote_addr"]["sin_addr"])
             for e in raw(out, "security_socket_connect")}
    assert conns == {(c.id, "127.0.0.2"), (other.id, "127.0.0.1")}


# --- TRC-1014 disk_mount -------------------------------------------------------------------

def test_trc1014_disk_mount(box: Any) -> None:
    # Mounting needs CAP_SYS_ADMIN in the container. A tmpfs takes any source name,
    # so "/dev/pt-disk" reaches the mount hook without touching a real disk.
    c = box("pt-sig1014", UNCONFINED)
    c.sh("busybox mkdir -p /mnt/a /mnt/b")
    proc = start("-o", "json", "-e", "disk_mount,security_sb_mount", "-s", scope_of(c))
    c.sh("busybox mount -t tmpfs /dev/pt-disk /mnt/a")
    c.sh("busybox mount -t tmpfs none /mnt/b")  # near miss: not a device
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1014", "disk_mount")
    assert name == "security_sb_mount"
    assert targs["dev_name"] == "/dev/pt-disk" and targs["path"] == "/mnt/a"
    assert det["containerId"] == c.id
    assert det["metadata"]["Properties"]["Severity"] == 3
    assert det["metadata"]["Properties"]["external_id"] == "T1611"
    assert raw(out, "security_sb_mount", dev_name="none", path="/mnt/b")


# --- TRC-1015 hidden_file_created ----------------------------------------------------------

def test_trc1015_hidden_file_created(tmp: Path) -> None:
    elf = Path("/bin/true").read_bytes()[:64]
    hidden = tmp / ".cache" / "kworker"
    hidden.parent.mkdir()
    code = "def put(p, b):\n    with open(p, 'wb') as f: f.write(b)\n"
    proc = start("-o", "json", "-e", "hidden_file_created", "-s", "comm=pt-sig1015")
    py("pt-sig1015", code + f"put({str(hidden)!r}, {elf!r})\n")
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1015", "hidden_file_created")
    assert name == "magic_write" and targs["pathname"] == str(hidden)
    assert det["processName"] == "pt-sig1015"
    assert det["metadata"]["Properties"]["Severity"] == 2
    assert det["metadata"]["Properties"]["external_id"] == "T1564.001"

    # Near misses: an ELF where nothing is hidden; text in a hidden file.
    proc = start("-o", "json", "-e", "hidden_file_created,magic_write", "-s", "comm=pt-sig1015")
    py("pt-sig1015", code + f"put({str(tmp / 'visible')!r}, {elf!r})\n"
       f"put({str(tmp / '.notes')!r}, b'#!/bin/sh\\necho hi\\n')\n")
    out, _ = stop(proc)
    none_of(out, "TRC-1015", ("magic_write", {"pathname": str(tmp / "visible")}),
            ("magic_write", {"pathname": str(tmp / ".notes")}))


# --- TRC-1016 illegitimate_shell -----------------------------------------------------------

def test_trc1016_illegitimate_shell() -> None:
    # A process named like a web server execs a shell; a near miss (another name)
    # does the same. Scoped to the shell's name: match only our own processes.
    exec_sh = "os.execv('/bin/sh', ['sh', '-c', 'exit 0'])"
    proc = start("-o", "json", "-e", "illegitimate_shell,sched_process_exec", "-s", "comm=sh")
    p = subprocess.Popen([sys.executable, "-c", "import ctypes, os\n"
                          "ctypes.CDLL(None).prctl(15, b'nginx', 0, 0, 0)\n" + exec_sh])
    assert p.wait(timeout=30) == 0
    py("pt-notweb", exec_sh)
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1016", "illegitimate_shell")
    assert name == "sched_process_exec"
    assert targs["prev_comm"] == "nginx" and targs["pathname"] == os.path.realpath("/bin/sh")
    assert det["processName"] == "sh" and det["hostProcessId"] == p.pid
    assert det["metadata"]["Properties"]["Severity"] == 2
    assert det["metadata"]["Properties"]["external_id"] == "T1190"
    assert raw(out, "sched_process_exec", prev_comm="pt-notweb")


# --- TRC-1018 k8s_cert_theft ---------------------------------------------------------------

@pytest.fixture
def k8s_pki() -> Iterator[Path]:
    """/etc/kubernetes/pki with a file of this test's own; what the test made is removed."""
    pki = Path("/etc/kubernetes/pki")
    made = next(p for p in (pki, *pki.parents) if p.exists() or p.parent.exists())
    made_by_us = not made.exists()
    pki.mkdir(parents=True, exist_ok=True)
    cert = pki / "pytracee-test.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    try:
        yield cert
    finally:
        for f in pki.glob("pytracee-test*"):
            f.unlink()
        if made_by_us:
            shutil.rmtree(made, ignore_errors=True)


def test_trc1018_k8s_cert_theft(k8s_pki: Path, tmp: Path) -> None:
    cert = str(k8s_pki)
    proc = start("-o", "json", "-e", "k8s_cert_theft", "-s", "comm=pt-sig1018")
    py("pt-sig1018", open_close(cert, O_RDONLY))
    out, _ = stop(proc)
    det, name, targs = one(out, "TRC-1018", "k8s_cert_theft")
    assert name == "security_file_open" and targs["pathname"] == cert
    assert det["processName"] == "pt-sig1018"
    assert det["metadata"]["Properties"]["Severity"] == 3
    assert det["metadata"]["Properties"]["external_id"] == "T1528"

    moved = str(k8s_pki.with_name("pytracee-test-moved.crt"))
    proc = start("-o", "json", "-e", "k8s_cert_theft", "-s", "comm=pt-sig1018")
    py("pt-sig1018", f"os.rename({cert!r}, {moved!r})\nos.rename({moved!r}, {cert!r})\n")
    out, _ = stop(proc)
    found = detections(out, "TRC-1018")  # both renames start in pki/
    assert [trigger(d) for d in found] == [
        ("security_inode_rename", {"old_path": cert, "new_path": moved}),
        ("security_inode_rename", {"old_path": moved, "new_path": cert})]

    # Near misses: kubelet reads it (default allow-list); a process named in the
    # config's allow-list reads it; the certificate opened for writing.
    ev = sel("k8s_cert_theft", "security_file_open")
    proc = start("-o", "json", "-e", ev, "-s", "comm=kubelet")
    py("kubelet", open_close(cert, O_RDONLY))
    out, _ = stop(proc)
    none_of(out, "TRC-1018", ("security_file_open", {"pathname": cert}))
    cfg = write_config(tmp, """\
        TRC-1018:
          allowed_processes: [pt-sig1018]
        """)
    proc = start("-o", "json", "-e", ev, "-s", "comm=pt-sig1018", "--signatures-config", cfg)
    py("pt-sig1018", open_close(cert, O_RDONLY))
    out, _ = stop(proc)
    none_of(out, "TRC-1018", ("security_file_open", {"pathname": cert}))
    proc = start("-o", "json", "-e", ev, "-s", "comm=pt-sig1018b")
    py("pt-sig1018b", open_close(cert, O_WRONLY | O_APPEND))
    out, _ = stop(proc)
    none_of(out, "TRC-1018", ("security_file_open", {"pathname": cert}))
