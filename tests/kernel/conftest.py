from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import check_bpf

PROGS = Path(__file__).parent / "progs"


@pytest.fixture(scope="session")
def syscaller() -> Iterator[Path]:
    """The workload binary, in a directory every test user can reach: workloads run
    as other uids too, and pytest's own temp dirs are private to root."""
    check_bpf()
    d = Path(tempfile.mkdtemp(prefix="pytracee-progs-"))
    d.chmod(0o755)
    out = d / "syscaller"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(PROGS / "syscaller.c")], check=True)
    yield out
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _bpf_required() -> None:
    check_bpf()


def mounts_under(prefix: str) -> list[str]:
    """Mount points below `prefix`, from /proc/self/mountinfo (octal escapes kept)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(prefix)]


def unmount_all(points: list[str]) -> None:
    for p in reversed(points):  # the innermost first
        subprocess.run(["umount", "--lazy", p], check=False, capture_output=True)


@pytest.fixture(autouse=True)
def _no_mount_left_behind() -> Iterator[None]:
    """A test that leaves a mount under /tmp (a bind mount, a private dockerd's data
    root) fails, and the mount is taken down so the next tests and the host are as
    they were."""
    before = set(mounts_under("/tmp/"))
    yield
    left = [p for p in mounts_under("/tmp/") if p not in before]
    if left:
        unmount_all(left)
        pytest.fail(f"the test left mounts behind: {', '.join(left)}", pytrace=False)
