"""Shared test helpers.

require_bpf: kernel tests need root and BTF. In CI (CI=true) a missing
prerequisite FAILS the test, so a broken runner cannot pass by skipping;
on a developer machine the test skips and says why.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# src layout: make `pytracee` importable when the project is not pip-installed.
_SRC = Path(__file__).resolve().parent.parent / "src"
try:
    import pytracee  # noqa: F401
except ImportError:
    sys.path.insert(0, str(_SRC))


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
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"BPF required in CI but unavailable: {reason}", pytrace=False)
    print(f"skipping BPF test: {reason}", file=sys.stderr)
    pytest.skip(f"BPF unavailable: {reason}")


@pytest.fixture(scope="session")
def require_bpf() -> None:
    """Use as `pytestmark = pytest.mark.usefixtures("require_bpf")`; session-scoped so
    module/session fixtures that build BPF objects can depend on it."""
    check_bpf()
