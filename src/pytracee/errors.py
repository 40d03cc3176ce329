"""Errors that reach the user as one line.

UsageError is a mistake in what the user gave us (flag, filter, policy file):
the CLI prints it and exits 2. EnvironmentProblem is a missing prerequisite
(not root, no BPF, no BTF): exit 1.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad user input. `where` is "file:line" when the input came from a file."""

    def __init__(self, message: str, *, token: str | None = None, where: str | None = None) -> None:
        self.message = message
        self.token = token
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        tok = f" (in {self.token!r})" if self.token and self.token not in self.message else ""
        return f"{prefix}{self.message}{tok}"


class EnvironmentProblem(Exception):
    """The host cannot run pytracee (privileges, kernel features)."""
