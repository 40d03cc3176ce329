"""Shared test helpers.

require_bpf: kernel tests need root and BTF. In CI (CI=true) a missing
prerequisite FAILS the test, so a broken runner cannot pass by skipping;
on a developer machine the test skips and says why. Any truthy CI counts (in_ci()).

dockerd / busybox_image / docker_containers: a real dockerd and a local image for
container tests (tests/docker_env.py), under the same fail-in-CI rule.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

# src layout: make `pytracee` importable when the project is not pip-installed.
_SRC = Path(__file__).resolve().parent.parent / "src"
try:
    import pytracee  # noqa: F401
except ImportError:
    sys.path.insert(0, str(_SRC))

from tests.docker_env import IMAGE, Containers, Dockerd, DockerEnvError, ensure_image  # noqa: E402


def in_ci() -> bool:
    """CI is set to anything truthy (true, 1, yes, on ...): prerequisites must be there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def bpf_unavailable_reason() -> str | None:
    """Why BPF tests cannot run here, or None when they can."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        problems.append("no BTF at /sys/kernel/btf/vmlinux")
    return ", ".join(problems) or None


def check_bpf() -> None:
    """Fail (CI=true) or skip with the printed reason when BPF is unavailable."""
    reason = bpf_unavailable_reason()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"BPF required in CI but unavailable: {reason}", pytrace=False)
    print(f"skipping BPF test: {reason}", file=sys.stderr)
    pytest.skip(f"BPF unavailable: {reason}")


@pytest.fixture(scope="session")
def require_bpf() -> None:
    """Use as `pytestmark = pytest.mark.usefixtures("require_bpf")`; session-scoped so
    module/session fixtures that build BPF objects can depend on it."""
    check_bpf()


# --- real dockerd (tests/docker_env.py) -------------------------------------------

def fail_or_skip(what: str, reason: str) -> NoReturn:
    """The check_bpf rule for any prerequisite: FAIL under CI=true, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{what} required in CI but unavailable: {reason}", pytrace=False)
    print(f"skipping: {what} unavailable: {reason}", file=sys.stderr)
    pytest.skip(f"{what} unavailable: {reason}")


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """The dockerd on docker_env.SOCKET: the running one, else one we start (and
    stop at the end of the session)."""
    try:
        d: Dockerd | None = Dockerd.ensure()
    except DockerEnvError as e:
        d, reason = None, str(e)
    if d is None:  # outside the except: the failure report needs no chained traceback
        fail_or_skip("dockerd", reason)
    yield d
    if d.started_by_us:
        d.stop()


@pytest.fixture(scope="session")
def busybox_image(dockerd: Dockerd) -> str:
    """local/busybox:1 exists (imported from the host's busybox-static if missing)."""
    reason = None
    try:
        ensure_image(dockerd.socket, IMAGE)
    except DockerEnvError as e:
        reason = str(e)
    if reason is not None:
        fail_or_skip(f"image {IMAGE}", reason)
    return IMAGE


@pytest.fixture
def docker_containers(dockerd: Dockerd, busybox_image: str) -> Iterator[Containers]:
    """`docker_containers.run(name, labels, cmd)`; every container run is removed after the test."""
    containers = Containers(dockerd.socket, busybox_image)
    yield containers
    containers.remove_all()
