"""Policy reload without a restart: SIGHUP or a changed policy file.

The new files are loaded and compiled first; only a valid set is written to
the kernel (into the inactive slot, then switched). A refused reload keeps the
running set. Either way a `policy_reload` event goes to the outputs.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pytracee.events.definitions import EVENTS, POLICY_RELOAD
from pytracee.events.event import Event, TaskContext
from pytracee.policy.files import snapshot

log = logging.getLogger(__name__)


def _ns_inode(kind: str) -> int:
    return os.stat(f"/proc/self/ns/{kind}").st_ino


def self_context(boot_offset: int) -> TaskContext:
    """pytracee's own task context, for the events it makes itself."""
    stat = Path("/proc/self/stat").read_bytes()
    fields = stat[stat.rindex(b")") + 2:].split()
    start_ns = int(fields[19]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    pid = os.getpid()
    comm = stat[stat.index(b"(") + 1:stat.rindex(b")")]
    cgroup = 0
    return TaskContext((start_ns, start_ns, 0, cgroup, pid, pid, os.getppid(), pid, pid, os.getppid(),
                        os.getuid(), os.getgid(), _ns_inode("mnt"), _ns_inode("pid"),
                        comm, socket.gethostname().encode()), boot_offset)


def reload_event(ctx: TaskContext, version: int, names: Sequence[str], error: str | None) -> Event:
    return Event(time.time_ns(), 0, 0, POLICY_RELOAD, -1, 0, version, 0, ctx, EVENTS[POLICY_RELOAD],
                 [error is None, version, list(names), error or ""])


class PolicyWatcher:
    """Notices changes to policy files or directories (by polling their stat).

    A change counts once the files have stayed as they are for `settle` seconds:
    a tool that rewrites a directory (remove all, write each) passes through sets
    that are valid but partial, and one of those must not be switched in."""

    def __init__(self, paths: Sequence[str], interval: float = 1.0, settle: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = list(paths)
        self.interval = interval
        self.settle = settle
        self.clock = clock
        self._next = clock() + interval
        self._seen = self._snapshot()
        self._pending: dict[str, tuple[int, int, int]] | None = None  # changed, not yet settled

    def _snapshot(self) -> dict[str, tuple[int, int, int]]:
        return snapshot(self.paths)

    def sync(self) -> None:
        """Take the files as they are now as seen (a SIGHUP reload just read them)."""
        self._seen = self._snapshot()
        self._pending = None

    def changed(self) -> bool:
        """True once per change, when it has settled; checks every `interval` seconds,
        and `settle` seconds after seeing a change."""
        now = self.clock()
        if now < self._next:
            return False
        snap = self._snapshot()
        if snap == self._seen:
            self._pending = None
            self._next = now + self.interval
            return False
        if snap != self._pending:  # new, or still changing: look again once it may have settled
            self._pending = snap
            self._next = now + self.settle
            return False
        self._seen = snap
        self._pending = None
        self._next = now + self.interval
        return True
