"""packaging/Dockerfile builds with the local dockerd, and the image traces the host
when run the way its header documents.

No registry is reachable here, so the base is made locally: a minimal Debian
bookworm by debootstrap (python3, python3-venv, libbpf1 included, so the
Dockerfile's apt step is skipped and the build needs no network), imported with
`docker import`. The rootfs tarball is cached under CACHE and the imported
image is kept, so only the first run pays for debootstrap (about 40 s from
deb.debian.org); later runs take seconds: wheels, `docker build`, `docker run`.

The systemd unit is checked with `systemd-analyze verify` (there is no systemd
to run it here), and its capability set is the one the image is run with below.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fail_or_skip
from tests.docker_env import Dockerd, DockerEnvError, docker

pytestmark = pytest.mark.usefixtures("require_bpf")

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "packaging" / "Dockerfile"
UNIT = ROOT / "packaging" / "pytracee.service"
CACHE = Path(os.environ.get("PYTRACEE_TEST_CACHE", "/var/cache/pytracee-test"))
MIRROR = os.environ.get("PYTRACEE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = "python3,python3-venv,libbpf1"
BASE_TAG = "local/pytracee-base:bookworm-" + hashlib.sha256(f"{INCLUDE} {MIRROR}".encode()).hexdigest()[:8]
IMAGE = "local/pytracee:test"
DEBOOTSTRAP_TIMEOUT = 600
COMM = "pt-img"


def _unit_caps() -> list[str]:
    line = next(ln for ln in UNIT.read_text().splitlines() if ln.startswith("CapabilityBoundingSet="))
    return [c.removeprefix("CAP_") for c in line.split("=", 1)[1].split()]


def _debootstrap(tarball: Path) -> None:
    """A minbase bookworm rootfs with INCLUDE, as a tarball (written atomically)."""
    if shutil.which("debootstrap") is None:
        fail_or_skip("debootstrap", "not installed (apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        res = subprocess.run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", "bookworm",
                              str(rootfs), MIRROR], capture_output=True, text=True,
                             timeout=DEBOOTSTRAP_TIMEOUT)
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-5:])
            fail_or_skip("a bookworm base from debootstrap", f"debootstrap failed ({MIRROR}):\n{tail}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


@pytest.fixture(scope="module")
def base_image(dockerd: Dockerd) -> str:
    """BASE_TAG in dockerd: imported from the cached tarball, made first if missing."""
    if docker("image", "inspect", BASE_TAG, socket=dockerd.socket, check=False).returncode == 0:
        return BASE_TAG
    tarball = CACHE / f"{BASE_TAG.rsplit(':', 1)[1]}.tar"
    if not tarball.exists():
        _debootstrap(tarball)
    with open(tarball, "rb") as fh:
        docker("import", "-", BASE_TAG, socket=dockerd.socket, stdin=fh.fileno(), timeout=300)
    return BASE_TAG


@pytest.fixture(scope="module")
def wheels() -> Iterator[Path]:
    """A build context of wheels: pytracee from this checkout (with its BPF object) and
    its dependencies (from pip's configured index)."""
    if not (ROOT / "src" / "pytracee" / "bpf" / "pytracee.bpf.o").exists():
        fail_or_skip("the BPF object", "src/pytracee/bpf/pytracee.bpf.o missing: run `make bpf`")
    with tempfile.TemporaryDirectory(prefix="pytracee-wheels-") as tmp:
        # Built from a copy: a build in the checkout would leave build/ and egg-info behind.
        src = Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=lambda d, names: [
            n for n in names if n in (".venv", ".git", "build", "bench", "tests", "__pycache__")
            or n.endswith((".egg-info", "_cache"))])
        ctx = Path(tmp) / "ctx"
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(ctx), str(src)],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        yield ctx


@pytest.fixture(scope="module")
def image(dockerd: Dockerd, base_image: str, wheels: Path) -> Iterator[str]:
    t0 = time.monotonic()
    res = docker("build", "-t", IMAGE, "-f", str(DOCKERFILE), "--build-arg", f"BASE={base_image}",
                 str(wheels), socket=dockerd.socket, check=False, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    print(f"docker build: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    yield IMAGE
    docker("rmi", "-f", IMAGE, socket=dockerd.socket, check=False)


def test_systemd_unit_verifies() -> None:
    if shutil.which("systemd-analyze") is None:
        fail_or_skip("systemd-analyze", "not installed (apt-get install systemd)")
    res = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True,
                         timeout=60)
    # The only complaint allowed: pytracee is not installed at /opt/pytracee on this machine.
    problems = [ln for ln in (res.stdout + res.stderr).splitlines()
                if ln.strip() and "/opt/pytracee/bin/pytracee is not executable" not in ln]
    assert problems == [], problems
    assert set(_unit_caps()) >= {"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE"}
    text = UNIT.read_text()
    assert re.search(r"^LimitMEMLOCK=infinity$", text, re.M)
    assert re.search(r"^Restart=on-failure$", text, re.M)


def test_image_runs_pytracee(dockerd: Dockerd, image: str) -> None:
    res = docker("run", "--rm", "--network", "none", image, "--help", socket=dockerd.socket, timeout=120)
    assert "--server" in res.stdout and "--events" in res.stdout
    # The default command, without the privileges it needs: one line, exit 1 (not a traceback).
    res = docker("run", "--rm", "--network", "none", image, socket=dockerd.socket, check=False, timeout=120)
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("pytracee: pytracee needs root"), res.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bounding_set() -> int:
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith("CapBnd:")).split()[1], 16)


_CAP_NUMBERS = {"SYS_ADMIN": 21, "SYS_RESOURCE": 24, "IPC_LOCK": 14, "SYS_PTRACE": 19,
                "PERFMON": 38, "BPF": 39}


def _privileges(dockerd: Dockerd, image: str) -> list[str]:
    """docker run flags: the capability list the Dockerfile's header documents. (Its
    --privileged alternative cannot start here: runc gives a privileged container every
    capability, and this sandbox's bounding set lacks some.)"""
    bounding = _bounding_set()
    caps = _unit_caps()
    probe = docker("run", "--rm", "--network", "none", "--cap-add=BPF", image, "--help",
                   socket=dockerd.socket, check=False, timeout=120)
    if "unknown capability" in probe.stderr:  # docker < 23: the documented fallback
        caps = ["SYS_ADMIN"] + [c for c in caps if c not in ("BPF", "PERFMON")]
    # A capability the host itself lacks cannot be added (and pytracee can do without
    # SYS_RESOURCE on kernels >= 5.11, which charge BPF maps to the memory cgroup).
    missing = [c for c in caps if not bounding >> _CAP_NUMBERS[c] & 1]
    print(f"capabilities: {caps}; not in this host's bounding set, left out: {missing}",
          file=sys.stderr)
    return [f"--cap-add={c}" for c in caps if c not in missing]


def test_image_traces_the_host(dockerd: Dockerd, image: str, syscaller: Path) -> None:
    privileges = _privileges(dockerd, image)
    port = _free_port()
    name = f"pytracee-pkg-test-{port}"
    docker("rm", "-f", name, socket=dockerd.socket, check=False)
    try:
        # Inside the try: a run that fails to start leaves a created container to remove.
        docker("run", "-d", "--name", name, "--pid=host", "--cgroupns=host", "--network=host",
               *privileges, "-v", "/var/run:/var/run:ro", image,
               "-e", "getppid", "-s", f"comm={COMM}", "-o", "none",
               "--server", f"http-address=127.0.0.1:{port}", socket=dockerd.socket, timeout=120)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status: tuple[int, str] = (0, "")
        while time.monotonic() < deadline:
            try:
                status = _get(base + "/healthz")
            except (urllib.error.URLError, ConnectionError):
                status = (0, "")
            if status == (200, "OK"):
                break
            state = docker("inspect", "-f", "{{.State.Running}}", name, socket=dockerd.socket).stdout.strip()
            if state != "true":
                break
            time.sleep(0.2)
        logs = docker("logs", name, socket=dockerd.socket, check=False)
        assert status == (200, "OK"), logs.stdout + logs.stderr
        subprocess.run([str(syscaller), "-c", COMM, "getppid", "25"], check=True)
        key = 'pytracee_events_total{event="getppid"} 25'
        while time.monotonic() < deadline and key not in _get(base + "/metrics")[1]:
            time.sleep(0.1)
        text = _get(base + "/metrics")[1]
        assert key in text, text
        assert 'pytracee_events_lost_total{reason="ring_full"} 0' in text
        assert re.search(r"^pytracee_proctree_processes [1-9]", text, re.M)  # host /proc seen
        docker("stop", "-t", "20", name, socket=dockerd.socket, timeout=60)  # SIGTERM: clean stop
        logs = docker("logs", name, socket=dockerd.socket)
        assert "events delivered: 25," in logs.stderr, logs.stderr
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name, socket=dockerd.socket).stdout.strip()
        assert code == "0", logs.stderr
    finally:
        try:
            docker("rm", "-f", name, socket=dockerd.socket, check=False)
        except DockerEnvError:
            pass
