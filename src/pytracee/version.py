"""What `pytracee version` prints: this build, and what it runs on."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path


def package_version() -> str:
    try:
        return metadata.version("pytracee")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> str:
    """The commit of the checkout pytracee runs from ('unknown' when installed from a
    wheel or git is missing); '+dirty' with uncommitted changes."""
    src = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def libbpf_version() -> str:
    from pytracee.ebpf.libbpf import libbpf_version as version

    return version()


def lines() -> list[str]:
    u = os.uname()
    return [f"pytracee {package_version()}",
            f"git revision: {git_revision()}",
            f"kernel: {u.sysname} {u.release} {u.machine}",
            f"libbpf: {libbpf_version()}"]
