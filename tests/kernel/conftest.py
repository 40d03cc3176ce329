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
