"""Load pytracee.bpf.o, write the selection and scope maps, attach, read counters."""

from __future__ import annotations

import errno
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from pytracee.ebpf.libbpf import BpfError, BpfObject, Link, num_possible_cpus
from pytracee.enrich.cgroupfs import v2_mount
from pytracee.ebpf.ringbuf import RingReader
from pytracee.errors import EnvironmentProblem
from pytracee.events import wire
from pytracee.events.definitions import (
    AT_EXIT_SYSCALLS,
    BY_NAME,
    CAPTURE_FILE_WRITE,
    CAPTURE_WRITE_SYSCALLS,
    DERIVED_FROM_SYSCALL,
    EVENTS,
    NET_BASES,
    SCHED_PROCESS_EXEC,
    SYS_ENTER,
    SYS_EXIT,
)
from pytracee.policy.kernel_maps import COMM_KEY, NUM_KEY, SCOPE_EQ, descendants
from pytracee.policy import path_filters
from pytracee.policy.runtime import PolicyRuntime

log = logging.getLogger(__name__)
# (program, raw tracepoint); sys_enter and sys_exit are tp_btf programs (typed regs:
# plain loads instead of probe reads), attached by their BTF id, not by name.
TP_BTF = frozenset({"trace_sys_enter", "trace_sys_exit"})
PROGRAMS = (
    ("trace_sys_enter", "sys_enter"),
    ("trace_sys_exit", "sys_exit"),
    ("trace_sched_process_fork", "sched_process_fork"),
    ("trace_sched_process_exec", "sched_process_exec"),
    ("trace_sched_process_exit", "sched_process_exit"),
    ("trace_task_rename", "task_rename"),
    ("trace_cgroup_mkdir", "cgroup_mkdir"),
    ("trace_cgroup_rmdir", "cgroup_rmdir"),
    ("trace_cgroup_attach_task", "cgroup_attach_task"),
)
DEFAULT_RING_BYTES = 16 << 20   # the least (and the Tracer object's default)
MAX_DEFAULT_RING_BYTES = 256 << 20


def default_ring_bytes(meminfo: str = "/proc/meminfo") -> int:
    """The ring `pytracee` uses unless told (-b): 1/128 of the host's memory as a power
    of two, from 16 MiB to 256 MiB. A bigger ring rides out longer bursts that user
    space cannot keep up with (Tracee also sizes its buffers by the host's memory);
    it is kernel memory that is never swapped, hence the bounds."""
    try:
        with open(meminfo) as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return DEFAULT_RING_BYTES
    share = kib * 1024 // 128
    size = 1 << max(share.bit_length() - 1, 0)
    return max(DEFAULT_RING_BYTES, min(MAX_DEFAULT_RING_BYTES, size))
FOLLOW_BITS = struct.Struct("<QQ")  # struct follow_bits: one policy bitmap per slot


def bpf_object_path() -> Path:
    return Path(str(resources.files("pytracee") / "bpf" / "pytracee.bpf.o"))


def boot_offset_ns() -> int:
    """Epoch minus boot time: added to the kernel's boot-time stamps."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def effective_caps() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def check_environment() -> None:
    """One clear reason when this host cannot run us."""
    caps = effective_caps()
    bpf_ok = caps >> CAP_BPF & 1 and caps >> CAP_PERFMON & 1
    if not (bpf_ok or caps >> CAP_SYS_ADMIN & 1):
        raise EnvironmentProblem("pytracee needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) "
                                 "to load BPF programs")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        raise EnvironmentProblem("the kernel exposes no BTF (/sys/kernel/btf/vmlinux): "
                                 "CONFIG_DEBUG_INFO_BTF=y is required")
    if not bpf_object_path().exists():
        raise EnvironmentProblem(f"BPF object missing at {bpf_object_path()}: run `make bpf`")


_CAPTURE_WRITE_IDS = frozenset(BY_NAME[name].id for name in CAPTURE_WRITE_SYSCALLS)
SIGNAL_PROCTREE = 1    # fork, exec, exit of processes (bpf: cfg_signals)
SIGNAL_CONTAINERS = 2  # cgroup mkdir, rmdir


# bpf: syscall_interest bits
INTEREST_ENTER, INTEREST_EXIT, INTEREST_RAW_EXIT, INTEREST_SOCK, INTEREST_AT_EXIT = 1, 2, 4, 8, 16
_SYSCALL_IDS = frozenset(d.id for d in EVENTS.values() if d.syscall and d.id < wire.MAX_EVENT_ID)
# The calls after which the caller owns a socket (bpf: sock_owner_exit).
SOCKET_OWNER_SYSCALLS = frozenset(BY_NAME[n].id for n in
                                  ("socket", "accept", "accept4", "connect", "bind", "listen"))
NET_PROGRAMS = ("net_ingress", "net_egress")
DEFAULT_NET_SNAPLEN = 1024  # DNS messages and HTTP heads fit
MAX_NET_SNAPLEN = 4096  # bpf: NET_SNAP_MAX


class Interest(NamedTuple):
    """What a policy set asks of sys_enter and sys_exit, as sets of syscall ids."""
    enter: frozenset[int]    # sys_enter handles the call (INTEREST_ENTER)
    saved: frozenset[int]    # ... and may save it for sys_exit (INTEREST_EXIT)
    at_exit: frozenset[int]  # a derived event built at sys_exit alone (INTEREST_AT_EXIT)
    raw_exit: frozenset[int]  # the raw sys_exit event (INTEREST_RAW_EXIT)


def syscall_interest(bits: dict[int, int]) -> Interest:
    """For a policy set's kernel event bits: the syscalls sys_enter must handle, those
    whose calls it may save for sys_exit, those whose derived event sys_exit builds
    from the call's registers alone, and those whose raw sys_exit event is wanted.
    (Network events add INTEREST_SOCK on SOCKET_OWNER_SYSCALLS; see Tracer.apply.)"""
    saved = {nr for nr in _SYSCALL_IDS if bits.get(nr)}
    if bits.get(CAPTURE_FILE_WRITE):
        saved |= _CAPTURE_WRITE_IDS
    at_exit: set[int] = set()
    for nr, derived in DERIVED_FROM_SYSCALL.items():
        if bits.get(derived):
            (at_exit if nr in AT_EXIT_SYSCALLS else saved).add(nr)
    enter = set(saved)
    if bits.get(SCHED_PROCESS_EXEC) or bits.get(BY_NAME["commit_creds"].id):
        enter |= {BY_NAME["execve"].id, BY_NAME["execveat"].id}  # prev_comm, creds before
    if bits.get(SYS_ENTER):
        enter |= _SYSCALL_IDS
    raw_exit = _SYSCALL_IDS if bits.get(SYS_EXIT) else frozenset()
    return Interest(frozenset(enter), frozenset(saved), frozenset(at_exit), frozenset(raw_exit))


class Tracer:
    """The kernel side, loaded and attached. Use as a context manager."""

    def __init__(self, ring_bytes: int = DEFAULT_RING_BYTES) -> None:
        if ring_bytes < 4096 or ring_bytes & (ring_bytes - 1):
            raise ValueError("ring buffer size must be a power of two of at least one page")
        self.ring_bytes = ring_bytes
        self.obj: BpfObject | None = None
        self.reader: RingReader | None = None
        self.start_boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        # What the syscall_interest map holds (see apply()).
        self._active = Interest(frozenset(), frozenset(), frozenset(), frozenset())
        self._saved: set[int] = set()  # saved at sys_enter by some set since start
        self._sock = False  # INTEREST_SOCK is on: network events are selected
        self._interest: dict[int, int] = {}
        self._net_links: list[Link] = []
        self.net_error: str | None = None  # why packets cannot be seen, once tried
        self._attached = False
        self.page_cache_error: str | None = None  # why file data cannot be read in the kernel

    def load(self, runtime: PolicyRuntime, *, exec_env: bool = False, signals: int = 0,
             capture_write: bool = False, net_snaplen: int = DEFAULT_NET_SNAPLEN,
             before_attach: Callable[[], None] | None = None) -> None:
        """Load, write the first policy set, attach. `signals` (SIGNAL_*): state events
        the kernel sends whatever the policies select (process tree, containers).
        `capture_write`: compile in capture_file_write (--capture write); off, the
        verifier drops that code and write syscalls cost what they did without it.
        `net_snaplen`: bytes of each packet the kernel sends (network events, pcap).
        `before_attach`: runs once the maps exist, before any program is attached."""
        check_environment()
        try:
            obj = BpfObject.open(bpf_object_path())
        except BpfError as exc:
            raise EnvironmentProblem(f"cannot open BPF object: {exc}") from exc
        self.obj = obj
        obj.map("events").set_max_entries(self.ring_bytes)
        runtime.exec_env = runtime.exec_env or exec_env
        obj.set_global(".rodata", "cfg_signals", signals.to_bytes(4, "little"))
        obj.set_global(".rodata", "cfg_capture_write", int(capture_write).to_bytes(4, "little"))
        snap = max(1, min(net_snaplen, MAX_NET_SNAPLEN))
        obj.set_global(".rodata", "cfg_net_snaplen", snap.to_bytes(4, "little"))
        try:
            obj.load()
        except BpfError as exc:
            raise EnvironmentProblem(f"the kernel refused pytracee's BPF programs: {exc}") from exc
        from pytracee.ebpf.pagecache import calibrate

        self.page_cache_error = calibrate(obj)
        if self.page_cache_error is not None:
            log.warning("magic_write of copy_file_range, sendfile and splice will carry no "
                        "bytes: %s", self.page_cache_error)
        fetch = obj.map("event_fetch")
        for d in EVENTS.values():
            if d.syscall:
                kinds = list(d.kernel_kinds) + [wire.ARG_NONE] * (6 - len(d.kernel_kinds))
                derived = DERIVED_FROM_SYSCALL.get(d.id, 0)
                flags = ((wire.FETCH_CAPTURE if d.id in _CAPTURE_WRITE_IDS else 0)
                         | (wire.FETCH_AT_EXIT if d.id in AT_EXIT_SYSCALLS else 0))
                fetch.update(d.id.to_bytes(4, "little"),
                             wire.EVENT_FETCH.pack(*kinds, int(d.submit_on_enter), flags, derived))
        self.apply(runtime)  # before attaching: no event is decided on half-written maps
        if before_attach is not None:
            before_attach()
        for prog, tp in PROGRAMS:
            if prog in TP_BTF:
                obj.program(prog).attach()
            else:
                obj.program(prog).attach_raw_tracepoint(tp)
        self._attached = True
        if self._sock:
            self._attach_net()
        self.reader = RingReader(obj.map("events").fd, self.ring_bytes)

    def set_container(self, cgroup_id: int, state: int | None) -> None:
        """A container's state for the kernel's container scopes; None: it is gone."""
        assert self.obj is not None
        m = self.obj.map("containers_map")
        key = cgroup_id.to_bytes(8, "little")
        if state is None:
            m.delete(key)
        else:
            m.update(key, state.to_bytes(1, "little"))

    def apply(self, runtime: PolicyRuntime) -> None:
        """Write a policy set into its slot, then make it the active one.

        The slot written is not the active one (versions alternate slots), so
        the switch is the single write of config_version: every event is
        decided under exactly one policy set, the old or the new.
        """
        assert self.obj is not None
        slot = runtime.version & 1
        scope = runtime.kscope
        events_map = self.obj.map("events_map")
        for eid in range(wire.MAX_EVENT_ID):
            key = (slot * wire.MAX_EVENT_ID + eid).to_bytes(4, "little")
            events_map.update(key, runtime.kernel_bits.get(eid, 0).to_bytes(8, "little"))
        # Before the switch, what either set wants of each syscall; after it, only the
        # new set's (calls saved under any set are still looked for at sys_exit).
        new = syscall_interest(runtime.kernel_bits)
        self._saved |= new.saved
        sock = any(runtime.kernel_bits.get(b) for b in NET_BASES)
        self._sock |= sock
        self._write_interest(Interest(*(a | b for a, b in zip(self._active, new))))
        if sock and self._attached:
            self._attach_net()  # before the switch: the new set's packets come from the start
        comm = self.obj.map("scope_comm")
        for key in [k for k in comm.keys() if COMM_KEY.unpack(k)[0] == slot]:
            comm.delete(key)
        for value, (eq, neq) in scope.comm.items():
            comm.update(COMM_KEY.pack(slot, value), SCOPE_EQ.pack(eq, neq))
        nums = self.obj.map("scope_num")
        for key in [k for k in nums.keys() if NUM_KEY.unpack(k)[0] == slot]:
            nums.delete(key)
        for (fld, value), (eq, neq) in scope.nums.items():
            nums.update(NUM_KEY.pack(slot, fld, value & 0xFFFFFFFF), SCOPE_EQ.pack(eq, neq))
        # Follow state is per slot: forget what the slot's previous set followed,
        # then seed this set's tree=PID roots and their descendants.
        follow = self.obj.map("follow_map")
        for key in list(follow.keys()):
            value = follow.lookup(key)
            if value is None:
                continue  # the process exited meanwhile
            bits = list(FOLLOW_BITS.unpack(value))
            bits[slot] = 0
            if any(bits):
                follow.update(key, FOLLOW_BITS.pack(*bits))
            else:
                follow.delete(key)
        for root, bits in scope.tree_roots.items():
            if not os.path.exists(f"/proc/{root}"):
                names = [n for i, n in enumerate(runtime.names) if bits >> i & 1]
                log.warning("tree=%d (policy %s): no process %d is running, so this scope "
                            "selects nothing unless a new process gets that pid", root,
                            ", ".join(names), root)
        for pid, seed in descendants(scope.tree_roots).items():
            key = pid.to_bytes(4, "little")
            value = follow.lookup(key)
            bits = list(FOLLOW_BITS.unpack(value)) if value else [0, 0]
            bits[slot] |= seed
            follow.update(key, FOLLOW_BITS.pack(*bits))
        self._write_path_filters(slot, runtime.path_filters)
        cfg = scope.config_bytes(self.start_boot_ns, os.getpid(), runtime.exec_env)
        self.obj.map("scope_cfg").update(slot.to_bytes(4, "little"), cfg)
        self.obj.map("config_version").update(b"\0\0\0\0", (runtime.version & 0xFFFF).to_bytes(4, "little"))
        self._active = new
        self._sock = sock
        self._write_interest(new)

    def _attach_net(self) -> None:
        """cgroup_skb ingress and egress on the cgroup v2 root, once: attached only
        when a policy set first selects network events (until then packets cost
        nothing); later sets that do not select them make the programs return at once.
        Where they cannot be attached, tracing goes on without packets: said once, and
        kept in `net_error`."""
        assert self.obj is not None
        if self._net_links or self.net_error is not None:
            return
        root = v2_mount()
        try:
            if root is None:
                raise BpfError("find the cgroup v2 hierarchy (none in /proc/self/mountinfo)",
                               errno.ENOENT)
            for prog in NET_PROGRAMS:
                self._net_links.append(self.obj.program(prog).attach_cgroup(root))
        except BpfError as exc:
            for link in self._net_links:
                link.destroy()
            self._net_links.clear()
            self.net_error = f"network events are not available: {exc}"
            log.warning("%s; tracing goes on without them", self.net_error)

    def _write_interest(self, want: Interest) -> None:
        """`want` for sys_enter, the at-exit events and the raw sys_exit event; every call
        some set since start saved is looked for at its exit (it may have entered under an
        older set)."""
        assert self.obj is not None
        m = self.obj.map("syscall_interest")
        sock = SOCKET_OWNER_SYSCALLS if self._sock else frozenset()
        for nr in range(wire.MAX_EVENT_ID):
            bits = ((INTEREST_ENTER if nr in want.enter else 0)
                    | (INTEREST_EXIT if nr in self._saved else 0)
                    | (INTEREST_AT_EXIT if nr in want.at_exit else 0)
                    | (INTEREST_RAW_EXIT if nr in want.raw_exit else 0)
                    | (INTEREST_SOCK if nr in sock else 0))
            if bits != self._interest.get(nr, 0):
                m.update(nr.to_bytes(4, "little"), bytes((bits,)))
                self._interest[nr] = bits

    def _write_path_filters(self, slot: int, pf: path_filters.PathFilters) -> None:
        assert self.obj is not None
        n = len(path_filters.PATH_EVENTS)
        exact = self.obj.map("path_exact")
        prefix = self.obj.map("path_prefix")
        suffix = self.obj.map("path_suffix")
        for m, key in ((exact, path_filters.EXACT_KEY), (prefix, path_filters.LPM_KEY),
                       (suffix, path_filters.LPM_KEY)):
            slot_of = (lambda k: key.unpack(k)[0] // n) if key is path_filters.EXACT_KEY \
                else (lambda k: key.unpack(k)[1] // n)
            for k in [k for k in m.keys() if slot_of(k) == slot]:
                m.delete(k)
        for (idx, value), bits in pf.exact.items():
            exact.update(path_filters.EXACT_KEY.pack(slot * n + idx, value), bits.to_bytes(8, "little"))
        for m, entries in ((prefix, pf.prefix), (suffix, pf.suffix)):
            for (idx, value), bits in entries.items():
                key = path_filters.LPM_KEY.pack(32 + 8 * len(value), slot * n + idx, value)
                m.update(key, bits.to_bytes(8, "little"))
        cfg = self.obj.map("path_filter_cfg")
        for idx in range(n):
            cfg.update((slot * n + idx).to_bytes(4, "little"), pf.has.get(idx, 0).to_bytes(8, "little"))

    def stats(self, event_ids: Iterable[int] | None = None) -> dict[int, dict[int, int]]:
        """Kernel counters: stat kind -> {event id: count}, summed over CPUs."""
        assert self.obj is not None
        m = self.obj.map("stats")
        ids = range(wire.MAX_EVENT_ID) if event_ids is None else event_ids
        out: dict[int, dict[int, int]] = {}
        for kind in range(wire.STAT_NUM):
            per: dict[int, int] = {}
            for eid in ids:
                key = (kind * wire.MAX_EVENT_ID + eid % wire.MAX_EVENT_ID).to_bytes(4, "little")
                total = sum(int.from_bytes(v[:8], "little") for v in m.lookup_percpu(key))
                if total:
                    per[eid] = total
            out[kind] = per
        return out

    def skipped_runs(self) -> dict[str, int]:
        """Per loaded program: the runs the kernel skipped because the program was
        already running on that CPU (bpf_prog_info.recursion_misses). An event such a
        run would have sent is in no other counter."""
        assert self.obj is not None
        return {p.name: p.info().recursion_misses for p in self.obj.programs() if p.fd >= 0}

    def close(self) -> None:
        for link in self._net_links:
            link.destroy()
        self._net_links.clear()
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.obj is not None:
            self.obj.close()
            self.obj = None

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Tracer", "check_environment", "boot_offset_ns", "num_possible_cpus"]
