from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import check_bpf

PROGS = Path(__file__).parent / "progs"


@pytest.fixture(scope="session")
def syscaller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    check_bpf()
    out = tmp_path_factory.mktemp("progs") / "syscaller"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(PROGS / "syscaller.c")], check=True)
    return out


@pytest.fixture(autouse=True)
def _bpf_required() -> None:
    check_bpf()
