"""A git revision of pytracee, built beside this tree, for side-by-side benchmarks.

    with Revision("HEAD~3", tmp) as rev:
        subprocess.run(rev.command("-e", "openat"))   # that revision's pytracee

Its tree is checked out in a temporary worktree and its BPF object compiled there
(with this tree's vmlinux.h); it runs with this tree's virtualenv and its own src/.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from syscall_storm import BenchError

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"


class Revision:
    def __init__(self, rev: str, tmp: Path) -> None:
        self.rev = rev
        self.tree = tmp / f"rev-{rev.replace('/', '_')}"
        self.src = self.tree / "src"

    def __enter__(self) -> Revision:
        r = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.tree),
                            self.rev], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError(f"git worktree add {self.rev} failed: {r.stderr.strip()}")
        try:
            obj = self.src / "pytracee" / "bpf" / "pytracee.bpf.o"
            obj.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(["clang", "-O2", "-g", "-Wall", "-target", "bpf",
                                "-D__TARGET_ARCH_x86", f"-I{self.tree / 'bpf'}", f"-I{ROOT / 'bpf'}",
                                "-c", str(self.tree / "bpf" / "pytracee.bpf.c"), "-o", str(obj)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise BenchError(f"compiling {self.rev}'s BPF object failed: "
                                 f"{r.stderr.strip()[-500:]}")
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        if self.tree.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.tree)],
                           capture_output=True, timeout=60)

    def command(self, *args: str) -> list[str]:
        return [str(PYTHON), "-m", "pytracee", *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.src)}
