"""Scopes -> the kernel's filter maps (bpf/common/scope.h).

Policy i is bit i. Whatever a scope asks that the kernel cannot evaluate
(string patterns, uts, ranges on fields without kernel ranges) is left open
in the kernel and checked in user space by `UserlandScope`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytracee.errors import UsageError
from pytracee.events.event import TaskContext
from pytracee.events.wire import MAX_POLICIES
from pytracee.policy.filters import NumericFilter, Scope, StringFilter

SCOPE_COMM, SCOPE_PID, SCOPE_TID, SCOPE_UID, SCOPE_MNTNS, SCOPE_PIDNS = range(6)
NFIELDS = 6
U32_MAX = 0xFFFFFFFF

# struct scope_config
_CONFIG_HEAD = struct.Struct(f"<{NFIELDS}Q{NFIELDS}Q10QII")
_U32_ARRAY = struct.Struct(f"<{MAX_POLICIES}I")
CONFIG_SIZE = _CONFIG_HEAD.size + 4 * _U32_ARRAY.size
# Entries one policy set may use in the shared scope maps: half of each map
# (bpf/pytracee.bpf.c), so the next set always fits beside the running one.
MAX_COMM_ENTRIES = 1024
MAX_NUM_ENTRIES = 16384
SCOPE_EQ = struct.Struct("<QQ")
NUM_KEY = struct.Struct("<HHI")    # slot, field, value
COMM_KEY = struct.Struct("<I16s")  # slot, comm


@dataclass
class KernelScope:
    """Everything to write into the maps for a set of policies."""

    has_filter: list[int] = field(default_factory=lambda: [0] * NFIELDS)
    has_eq: list[int] = field(default_factory=lambda: [0] * NFIELDS)
    uid_range: int = 0
    pid_range: int = 0
    new_pid: int = 0
    follow: int = 0
    tree: int = 0
    container: int = 0
    not_container: int = 0
    container_new: int = 0
    container_started: int = 0
    uid_min: list[int] = field(default_factory=lambda: [0] * MAX_POLICIES)
    uid_max: list[int] = field(default_factory=lambda: [U32_MAX] * MAX_POLICIES)
    pid_min: list[int] = field(default_factory=lambda: [0] * MAX_POLICIES)
    pid_max: list[int] = field(default_factory=lambda: [U32_MAX] * MAX_POLICIES)
    comm: dict[bytes, list[int]] = field(default_factory=dict)         # comm -> [eq, neq]
    nums: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (field, v) -> [eq, neq]
    tree_roots: dict[int, int] = field(default_factory=dict)           # pid -> policy bits

    def config_bytes(self, start_time: int, self_pid: int, exec_env: bool = False) -> bytes:
        return (
            _CONFIG_HEAD.pack(*self.has_filter, *self.has_eq, self.uid_range, self.pid_range,
                              self.new_pid, self.follow, self.tree, self.container,
                              self.not_container, self.container_new, self.container_started,
                              start_time, self_pid, int(exec_env))
            + _U32_ARRAY.pack(*self.uid_min) + _U32_ARRAY.pack(*self.uid_max)
            + _U32_ARRAY.pack(*self.pid_min) + _U32_ARRAY.pack(*self.pid_max)
        )


def _eq_entries(table: dict, keys: set, bit: int, slot: int) -> None:
    for k in keys:
        table.setdefault(k, [0, 0])[slot] |= bit


def _numeric(ks: KernelScope, fld: int, f: NumericFilter, bit: int, ranged: bool) -> bool:
    """Put one numeric filter in the kernel. False when a part must stay in user space."""
    if f.empty():
        return True
    ks.has_filter[fld] |= bit
    if f.equal:
        ks.has_eq[fld] |= bit
    _eq_entries(ks.nums, {(fld, v) for v in f.equal}, bit, 0)
    _eq_entries(ks.nums, {(fld, v) for v in f.not_equal}, bit, 1)
    if f.min is None and f.max is None:
        return True
    if not ranged:
        return False
    i = bit.bit_length() - 1
    lo = max(f.min or 0, 0)
    hi = min(f.max if f.max is not None else U32_MAX, U32_MAX)
    if fld == SCOPE_UID:
        ks.uid_range |= bit
        ks.uid_min[i], ks.uid_max[i] = lo, hi
    else:
        ks.pid_range |= bit
        ks.pid_min[i], ks.pid_max[i] = lo, hi
    return True


def _comm(ks: KernelScope, f: StringFilter, bit: int) -> bool:
    if f.empty():
        return True
    if not f.exact_only():
        return False  # patterns: user space
    ks.has_filter[SCOPE_COMM] |= bit
    if f.equal:
        ks.has_eq[SCOPE_COMM] |= bit
    enc = lambda s: s.encode()[:15].ljust(16, b"\0")  # noqa: E731 - comm is 15 bytes + NUL
    _eq_entries(ks.comm, {enc(s) for s in f.equal}, bit, 0)
    _eq_entries(ks.comm, {enc(s) for s in f.not_equal}, bit, 1)
    return True


def build(scopes: Sequence[Scope], wheres: Sequence[str] | None = None,
          ) -> tuple[KernelScope, dict[int, UserlandScope]]:
    """Kernel maps for policies 0..n-1, and the user-space checks some of them need.
    `wheres` (file:line per policy) goes into the errors."""
    if len(scopes) > MAX_POLICIES:
        raise UsageError(f"at most {MAX_POLICIES} policies can be loaded, got {len(scopes)}")
    ks = KernelScope()
    userland: dict[int, UserlandScope] = {}
    for i, s in enumerate(scopes):
        try:
            _check_supported(s)
        except UsageError as exc:
            if wheres:
                exc.where = wheres[i]
            raise
        bit = 1 << i
        rest = UserlandScope()
        if not _comm(ks, s.comm, bit):
            rest.comm = s.comm
        _numeric(ks, SCOPE_PID, s.pid, bit, ranged=True)
        if not _numeric(ks, SCOPE_TID, s.tid, bit, ranged=False):
            rest.tid = s.tid
        _numeric(ks, SCOPE_UID, s.uid, bit, ranged=True)
        if not _numeric(ks, SCOPE_MNTNS, s.mntns, bit, ranged=False):
            rest.mntns = s.mntns
        if not _numeric(ks, SCOPE_PIDNS, s.pidns, bit, ranged=False):
            rest.pidns = s.pidns
        if not s.uts.empty():
            rest.uts = s.uts
        if s.new_pid:
            ks.new_pid |= bit
        if s.follow:
            ks.follow |= bit
        cs = s.container
        if cs.only is True or cs.equal_ids():
            ks.container |= bit
        elif cs.only is False:
            ks.not_container |= bit
        if cs.new:
            ks.container_new |= bit
        if cs.started:
            ks.container_started |= bit
        if not cs.ids.empty():
            rest.container_ids = cs.ids  # ids are strings: matched in user space
        if not s.executable.empty():
            rest.executable = ExecutableFilter.of(s.executable)
        if s.tree:
            ks.tree |= bit
            for pid in s.tree:
                ks.tree_roots[pid] = ks.tree_roots.get(pid, 0) | bit
        if not rest.empty():
            userland[i] = rest
    if len(ks.comm) > MAX_COMM_ENTRIES:
        raise UsageError(f"too many comm values in scopes: {len(ks.comm)} "
                         f"(at most {MAX_COMM_ENTRIES})", token="comm")
    if len(ks.nums) > MAX_NUM_ENTRIES:
        raise UsageError(f"too many pid/tid/uid/mntns/pidns values in scopes: {len(ks.nums)} "
                         f"(at most {MAX_NUM_ENTRIES})", token="scope")
    return ks, userland


def _check_supported(s: Scope) -> None:
    if s.not_tree:
        raise UsageError("tree!= is not supported yet", token="tree!=")


def _host_mnt_ns() -> int:
    """init's mount namespace; pytracee's own where init's cannot be read (a
    sandboxed /proc), since pytracee runs on the host."""
    for path in ("/proc/1/ns/mnt", "/proc/self/ns/mnt"):
        try:
            return os.stat(path).st_ino
        except OSError:
            continue
    return 0


@dataclass(frozen=True)
class ExecutableFilter:
    """`executable=[host:|<mntns>:]/path` (Tracee's binary scope), on the process
    tree's executable path. A bare path matches in any mount namespace; `host:`
    only in the host's, `<mntns>:` only in that one."""

    equal: frozenset[tuple[int | None, str]]
    not_equal: frozenset[tuple[int | None, str]]

    @staticmethod
    def _split(value: str) -> tuple[int | None, str]:
        ns, sep, path = value.partition(":")
        if not sep:
            return None, value
        return (_host_mnt_ns() if ns == "host" else int(ns)), path

    @classmethod
    def of(cls, f: StringFilter) -> ExecutableFilter:
        return cls(frozenset(map(cls._split, f.equal)), frozenset(map(cls._split, f.not_equal)))

    def _hit(self, pairs: frozenset[tuple[int | None, str]], exe: str, mnt: int) -> bool:
        return (None, exe) in pairs or (mnt, exe) in pairs

    def matches(self, ctx: TaskContext) -> bool:
        p = ctx.proc
        exe = p.exe if p is not None else ""  # unknown: no '=' can match
        if self.equal and not self._hit(self.equal, exe, ctx.mnt_ns):
            return False
        return not self._hit(self.not_equal, exe, ctx.mnt_ns)


@dataclass
class UserlandScope:
    """The parts of a scope the kernel left open."""

    comm: StringFilter | None = None
    uts: StringFilter | None = None
    tid: NumericFilter | None = None
    mntns: NumericFilter | None = None
    pidns: NumericFilter | None = None
    container_ids: StringFilter | None = None
    executable: ExecutableFilter | None = None

    def empty(self) -> bool:
        return not (self.comm or self.uts or self.tid or self.mntns or self.pidns
                    or self.container_ids or self.executable)

    def matches(self, ctx: TaskContext) -> bool:
        return ((self.comm is None or self.comm.matches(ctx.comm))
                and (self.uts is None or self.uts.matches(ctx.hostname))
                and (self.tid is None or self.tid.matches(ctx.host_tid))
                and (self.mntns is None or self.mntns.matches(ctx.mnt_ns))
                and (self.pidns is None or self.pidns.matches(ctx.pid_ns))
                and (self.container_ids is None or self._container_id_matches(ctx))
                and (self.executable is None or self.executable.matches(ctx)))

    def _container_id_matches(self, ctx: TaskContext) -> bool:
        """Full ids or Docker's 12-character short ids both work."""
        f = self.container_ids
        assert f is not None
        c = ctx.container
        if c is None:
            return f.matches("")
        if f.has_positive():
            return f.matches(c.id) or f.matches(c.id[:12])
        return f.matches(c.id) and f.matches(c.id[:12])


def descendants(roots: dict[int, int], proc: str = "/proc") -> dict[int, int]:
    """tree=PID seeds: every live process under each root, with the root's bits."""
    children: dict[int, list[int]] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out: dict[int, int] = {}
    for root, bits in roots.items():
        todo = [root]
        while todo:
            pid = todo.pop()
            out[pid] = out.get(pid, 0) | bits
            todo.extend(children.get(pid, ()))
    return out
