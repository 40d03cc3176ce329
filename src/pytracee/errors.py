"""Errors that reach the user as one line.

UsageError is a mistake in what the user gave us (flag, filter, policy file):
the CLI prints it and exits 2. EnvironmentProblem is a missing prerequisite
(not root, no BPF, no BTF): exit 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


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


class UsageErrors(UsageError):
    """Several mistakes found together (policy files, signature files): str() is the
    first, `.errors` holds them all, and the CLI prints every one."""

    def __init__(self, errors: Sequence[UsageError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, token=first.token, where=first.where)


class EnvironmentProblem(Exception):
    """The host cannot run pytracee (privileges, kernel features)."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a misspelt `word` most likely meant (difflib's default cutoff), or None:
    what every "did you mean" hint is made from."""
    found = difflib.get_close_matches(word, list(choices), n=1)
    return found[0] if found else None
