"""A real dockerd for tests: use the one that answers, or start one and own it.

Plain functions and classes; the pytest fixtures that wrap them are in
tests/conftest.py. Everything here speaks to dockerd through its socket or the
docker CLI, never through pytracee's own runtime client, so a bug in the code
under test cannot make the environment look healthy.

Environment overrides (for a developer machine):
  PYTRACEE_TEST_DOCKER_SOCKET  socket to use/serve (default /var/run/docker.sock)
  PYTRACEE_TEST_DOCKERD        dockerd binary (default /usr/sbin/dockerd)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

SOCKET = os.environ.get("PYTRACEE_TEST_DOCKER_SOCKET", "/var/run/docker.sock")
DOCKERD = os.environ.get("PYTRACEE_TEST_DOCKERD", "/usr/sbin/dockerd")
# No firewall rules and no docker0 bridge: tests run containers with --network none,
# and the host's networking stays untouched.
DOCKERD_ARGS: tuple[str, ...] = ("--iptables=false", "--ip6tables=false", "--bridge=none")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0  # dockerd gives running containers up to 15 s to stop

IMAGE = "local/busybox:1"
BUSYBOX_PATHS = ("/usr/bin/busybox", "/bin/busybox")  # Debian busybox-static
BUSYBOX_APPLETS = ("sh", "ls", "cat", "sleep", "id", "echo", "true", "nslookup", "cp", "mkdir",
                   "mount", "umount")


class DockerEnvError(Exception):
    """The environment cannot provide a working dockerd/image; the message says why."""


def ping_error(socket_path: str, timeout: float = 1.0) -> str | None:
    """None when dockerd answers GET /_ping with 200 on socket_path, else why not."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while len(reply) < 64 and (chunk := s.recv(4096)):
                reply += chunk
    except OSError as e:
        return f"{socket_path}: {e.strerror or e}"
    status = reply.split(b"\r\n", 1)[0]
    return None if status.split()[1:2] == [b"200"] else f"{socket_path}: answered {status!r}"


def pings(socket_path: str, timeout: float = 1.0) -> bool:
    return ping_error(socket_path, timeout) is None


class Dockerd:
    """One dockerd serving `socket`. `started_by_us` says whether this object owns
    its lifecycle: only then may `stop()`/`start()` cycle it. dockerd starts its
    own containerd as a child and stops it on SIGTERM, so a cycle leaves nothing behind."""

    def __init__(self, socket: str = SOCKET, extra_args: Sequence[str] = (),
                 log_path: Path | None = None) -> None:
        self.socket = socket
        self.extra_args = tuple(extra_args)
        self.log_path = log_path
        self.started_by_us = False
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def ensure(cls, socket: str = SOCKET, extra_args: Sequence[str] = (),
               timeout: float = START_TIMEOUT) -> Dockerd:
        """The dockerd answering on `socket`, started (and owned) if none answers."""
        d = cls(socket, extra_args)
        if not pings(socket):
            d.start(timeout)
        return d

    @classmethod
    def private(cls, directory: Path) -> Dockerd:
        """A dockerd with its own socket, data, exec root and pid file under `directory`,
        independent of the host's. Keep `directory` short: unix socket paths are
        limited to 107 bytes and containerd's lives under exec-root."""
        return cls(str(directory / "docker.sock"),
                   ("--data-root", str(directory / "data"), "--exec-root", str(directory / "exec"),
                    "--pidfile", str(directory / "docker.pid")),
                   log_path=directory / "dockerd.log")

    def command(self) -> list[str]:
        host = [] if self.socket == "/var/run/docker.sock" else ["-H", f"unix://{self.socket}"]
        return [DOCKERD, *DOCKERD_ARGS, *host, *self.extra_args]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start dockerd and wait until it answers; DockerEnvError (with the log's
        tail) when it cannot."""
        if self.proc is not None and self.proc.poll() is None:
            raise DockerEnvError(f"dockerd (pid {self.proc.pid}) is already running")
        if pings(self.socket):
            raise DockerEnvError(f"a dockerd we did not start already answers on {self.socket}")
        if os.geteuid() != 0:
            raise DockerEnvError(f"no dockerd answers ({ping_error(self.socket)}) "
                                 "and starting one needs root")
        if not os.access(DOCKERD, os.X_OK):
            raise DockerEnvError(f"{DOCKERD} not found (apt-get install docker.io)")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="pytracee-dockerd-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as log:  # appended across restarts
            # Own session: a Ctrl-C aimed at pytest must not kill the daemon mid-test.
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started_by_us = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pings(self.socket):
                return
            rc = self.proc.poll()
            if rc is not None:
                raise DockerEnvError(f"dockerd exited with status {rc} before answering; "
                                     f"{self.log_path}:\n{self.log_tail()}")
            time.sleep(0.1)
        self.stop()
        raise DockerEnvError(f"dockerd did not answer on {self.socket} within {timeout:.0f} s; "
                             f"{self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the dockerd we started and wait for it (and its containerd) to exit."""
        if not self.started_by_us:
            raise DockerEnvError(f"refusing to stop the dockerd on {self.socket}: not started by us")
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Hung: kill its whole session (containerd included), not just dockerd.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def docker_cli() -> str:
    path = shutil.which("docker")
    if path is None:
        raise DockerEnvError("docker CLI not on PATH (apt-get install docker.io)")
    return path


def docker(*args: str, socket: str = SOCKET, check: bool = True, timeout: float = 60,
           stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI against `socket`; DockerEnvError on a non-zero exit when check."""
    res = subprocess.run([docker_cli(), "-H", f"unix://{socket}", *args], capture_output=True,
                         text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL if stdin is None else stdin)
    if check and res.returncode != 0:
        raise DockerEnvError(f"docker {' '.join(args)}: exit {res.returncode}: {res.stderr.strip()}")
    return res


def ensure_image(socket: str = SOCKET, image: str = IMAGE) -> None:
    """Make `image` exist: a rootfs of the host's static busybox and a few applet
    links, imported with `docker import` (no registry, no network). The applet list is
    the image's comment (a label would show up in every container's labels): an image
    left by an older list is imported again, not reused."""
    comment = "pytracee test applets: " + ",".join(BUSYBOX_APPLETS)
    have = docker("image", "inspect", "--format", "{{.Comment}}", image, socket=socket, check=False)
    if have.returncode == 0 and have.stdout.strip() == comment:
        return
    busybox = next((p for p in BUSYBOX_PATHS if os.access(p, os.X_OK)), None)
    if busybox is None:
        raise DockerEnvError("no static busybox (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory(prefix="pytracee-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        for applet in BUSYBOX_APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            docker("import", "--message", comment, "-", image, socket=socket,
                   stdin=tar.stdout.fileno())
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise DockerEnvError(f"tar of {rootfs} failed with status {tar.returncode}")


def run_container(name: str, labels: Mapping[str, str], cmd: Sequence[str], detach: bool = True,
                  *, socket: str = SOCKET, image: str = IMAGE) -> str:
    """`docker run --network none` a container named `name`; its full id.

    A container left with that name by an aborted run is removed first. With
    detach=False the call waits for the command; its exit status is not an error."""
    docker("rm", "-f", name, socket=socket, check=False)
    with tempfile.TemporaryDirectory(prefix="pytracee-cid-") as tmp:
        cidfile = Path(tmp) / "cid"  # the id in both modes; `run` without -d prints output
        args = ["run", f"--cidfile={cidfile}", "--name", name, "--network", "none"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        if detach:
            args.append("--detach")
        res = docker(*args, image, *cmd, socket=socket, check=detach)
        cid = cidfile.read_text().strip() if cidfile.exists() else ""
    if not cid:
        raise DockerEnvError(f"docker run {name}: no container created: {res.stderr.strip()}")
    return cid


class Containers:
    """Containers one test runs; `remove_all()` (fixture teardown) removes them."""

    def __init__(self, socket: str = SOCKET, image: str = IMAGE) -> None:
        self.socket = socket
        self.image = image
        self.names: list[str] = []

    def run(self, name: str, labels: Mapping[str, str] | None = None,
            cmd: Sequence[str] = ("sleep", "30"), detach: bool = True) -> str:
        self.names.append(name)
        return run_container(name, labels or {}, cmd, detach, socket=self.socket, image=self.image)

    def remove_all(self) -> None:
        remove_containers(self.names, socket=self.socket)
        self.names.clear()


def remove_containers(names: Iterable[str], socket: str = SOCKET) -> None:
    names = list(names)
    if names and pings(socket):
        docker("rm", "-f", *names, socket=socket, check=False)
