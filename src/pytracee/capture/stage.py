"""The capture stage: artifacts from events (--capture), and exec hashes (option:exec-hash).

Capture follows the policies: the kernel sends the events capture reads
(sched_process_exec, mem_prot_alert, capture_file_write) for every policy, so
within each policy's scope; user-space scopes are checked here. Events that came
only for capture are then cleared of those policies and, when none is left,
dropped before filters and outputs (not counted as filtered).

    on_decoded(events)   right after decoding: opens /proc/PID/exe and /proc/PID/mem
                         while the process still exists
    process(events, ...) after enrichment: queues copies and dumps, adds sha256
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytracee.capture.options import CaptureOptions
from pytracee.capture.writer import (
    ArtifactWriter,
    ExecJob,
    MemJob,
    WriteJob,
    identity,
    is_regular,
    sha256_fd,
)
from pytracee.errors import UsageError
from pytracee.events import definitions as d
from pytracee.policy import path_filters

if TYPE_CHECKING:
    from pytracee.events.event import Event
    from pytracee.policy.runtime import PolicyRuntime

log = logging.getLogger(__name__)

EXEC = d.SCHED_PROCESS_EXEC
MEM_PROT_ALERT = d.BY_NAME["mem_prot_alert"].id
WRITE = d.CAPTURE_FILE_WRITE
# mem_prot_alert codes whose region holds code when reported: executable added to a
# mapping (2, MPROT_X_ADD), write removed from a W+X one (4, MPROT_W_REM), and a W+X
# mapping of a file (1, MMAP_W_X: an anonymous one is still empty then).
_DUMP_ALERTS = frozenset({2, 4})
_ALERT_MMAP_W_X = 1
_HASH_CACHE = 16384
_EARLY_FDS = 64
_EXEC = d.EVENTS[EXEC]
_I_PATH, _I_DEV, _I_INODE, _I_CTIME = (_EXEC.arg_index(n) for n in ("pathname", "dev", "inode", "ctime"))
_I_SHA = _EXEC.arg_index("sha256")


@dataclass
class StageCounts:
    exec_no_source: int = 0     # neither /proc/PID/exe nor the path was the executed file
    mem_no_source: int = 0      # /proc/PID/mem could not be opened
    write_truncated_bytes: int = 0
    write_unreadable: int = 0   # chunks the kernel could not read from the writer's buffer
    hash_computed: int = 0
    hash_cached: int = 0
    hash_failed: int = 0
    hash_ns: int = 0            # time spent hashing on the event thread


def _subdir(ev: Event) -> str:
    c = ev.ctx.container
    cid = getattr(c, "id", "") if c is not None else ""
    return cid.replace("/", "_") if cid else "host"


def _basename(path: str) -> str:
    name = (path or "").rstrip("/").rsplit("/", 1)[-1] or "unknown"
    return name.encode()[:200].decode("utf-8", "ignore") or "unknown"


HashKey = tuple[Any, int, int]


class Capture:
    """`exec_hash`: option:exec-hash's mode, None when off. The hash cache is keyed by
    (dev, inode, ctime) ("dev-inode", the default), (inode, ctime) ("inode"), or
    (container image digest, inode, ctime) ("digest-inode"; dev for host processes)."""

    def __init__(self, opts: CaptureOptions, exec_hash: str | None = None) -> None:
        self.opts = opts
        self.exec_hash = exec_hash is not None
        self.hash_mode = exec_hash or "dev-inode"
        try:
            self.writer = ArtifactWriter(opts.dir, opts.clear_dir) if opts.enabled else None
        except OSError as exc:
            raise UsageError(f"cannot use capture directory {opts.dir}: {exc.strerror or exc}",
                             token=opts.dir) from None
        # What the kernel must send for every policy; what this stage looks at (packets
        # go to pcap files in the network stage, derive/network.py, before this one).
        self.kernel_inputs = frozenset(
            eid for eid, on in ((EXEC, opts.exec), (MEM_PROT_ALERT, opts.mem), (WRITE, opts.write),
                                (d.NET_PACKET_BASE, opts.network))
            if on)
        self.inputs = (self.kernel_inputs - {d.NET_PACKET_BASE}) | ({EXEC} if self.exec_hash else set())
        self._prefixes = tuple(opts.write_prefixes)
        self.counts = StageCounts()
        self._captured: dict[tuple[int, int, int], None] = {}  # executables copied or in the queue
        self._hashes: OrderedDict[HashKey, str] = OrderedDict()
        self._exec_src: OrderedDict[tuple[int, int, int], int] = OrderedDict()  # opened early
        self._mem_src: OrderedDict[int, tuple[Event, int]] = OrderedDict()  # id(event) -> (event, fd)

    # -- policies ---------------------------------------------------------------------

    def prepare(self, runtime: PolicyRuntime) -> None:
        """Before a policy set goes to the kernel: capture's inputs for every policy, and
        the write path prefixes as a kernel pathname filter of every policy."""
        runtime.add_capture_inputs(self.kernel_inputs)
        if self.opts.write and self._prefixes:
            every = (1 << len(runtime.names)) - 1
            idx = path_filters.PATH_EVENTS[WRITE]
            pf = runtime.path_filters
            pf.has[idx] = every
            for p in self._prefixes:
                pf.prefix[(idx, p.encode())] = every

    # -- right after decoding -----------------------------------------------------------

    def on_decoded(self, events: list[Event]) -> None:
        inputs = self.inputs
        for ev in events:
            eid = ev.event_id
            if eid not in inputs or not ev.matched:
                continue
            if eid == EXEC:
                key = self._key(ev)
                if key in self._exec_src or not self._wants_source(ev, key):
                    continue
                fd = self._open_exec(ev, key)
                if fd is not None:
                    self._exec_src[key] = fd
                    if len(self._exec_src) > _EARLY_FDS:
                        os.close(self._exec_src.popitem(last=False)[1])
            elif eid == MEM_PROT_ALERT and self._dumpable(ev):
                fd = self._open_mem(ev)
                if fd is not None:
                    self._mem_src[id(ev)] = (ev, fd)
                    if len(self._mem_src) > _EARLY_FDS:
                        os.close(self._mem_src.popitem(last=False)[1][1])

    # -- after enrichment ---------------------------------------------------------------

    def process(self, events: list[Event], runtimes: Mapping[int, PolicyRuntime]) -> list[Event]:
        """Capture what is in scope; return the events that go on (capture-only ones
        stripped of the policies they came for)."""
        inputs = self.inputs
        out = []
        append = out.append
        for ev in events:
            eid = ev.event_id
            if eid not in inputs:
                append(ev)
                continue
            rt = runtimes.get(ev.version)
            if rt is None:
                append(ev)  # the pipeline counts it
                continue
            only = rt.capture_only.get(eid, 0)
            kept = ev.matched & ~only
            if eid == EXEC:
                self._exec(ev, rt, kept)
            elif eid == WRITE:
                self._write(ev, rt)
            elif eid == MEM_PROT_ALERT:
                self._mem(ev, rt)
            if kept:
                ev.matched = kept
                append(ev)
        return out

    def _in_scope(self, ev: Event, rt: PolicyRuntime) -> bool:
        """Some policy's scope holds the event's task, user-space parts included."""
        bits = ev.matched
        for i, scope in rt.userland_scopes.items():
            if bits >> i & 1 and not scope.matches(ev.ctx):
                bits &= ~(1 << i)
        return bits != 0

    # exec ----------------------------------------------------------------------------

    @staticmethod
    def _key(ev: Event) -> tuple[int, int, int]:
        a = ev.args
        return (a[_I_DEV] or 0, a[_I_INODE] or 0, a[_I_CTIME] or 0)

    def _hash_key(self, ev: Event, key: tuple[int, int, int]) -> HashKey:
        if self.hash_mode == "inode":
            return (0, key[1], key[2])
        if self.hash_mode == "digest-inode":
            c = ev.ctx.container
            digest = getattr(c, "image_digest", "") if c is not None else ""
            return (digest or key[0], key[1], key[2])
        return key

    def _wants_source(self, ev: Event, key: tuple[int, int, int]) -> bool:
        return ((self.opts.exec and key not in self._captured)
                or (self.exec_hash and self._hash_key(ev, key) not in self._hashes))

    def _open_exec(self, ev: Event, key: tuple[int, int, int]) -> int | None:
        """The executed file, opened: the process's own /proc/PID/exe while it lives
        (same inode and ctime), else its path (inside its root, then on the host) when
        dev, inode and ctime match."""
        pid = ev.ctx.host_pid
        candidates = [(f"/proc/{pid}/exe", False)]
        path = ev.args[_I_PATH] or ""
        if path.startswith("/"):
            candidates += [(f"/proc/{pid}/root{path}", True), (path, True)]
        for candidate, check_dev in candidates:
            try:
                fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                dev, ino, ctime = identity(st)
                if is_regular(st) and ino == key[1] and ctime == key[2] \
                        and (not check_dev or dev == key[0]):
                    return fd
            except OSError:
                pass
            os.close(fd)
        return None

    def _exec(self, ev: Event, rt: PolicyRuntime, kept: int) -> None:
        key = self._key(ev)
        capture = self.opts.exec and key not in self._captured and self._in_scope(ev, rt)
        want_hash = self.exec_hash and kept != 0
        if not (capture or want_hash):
            return
        hkey = self._hash_key(ev, key)
        fd = self._exec_src.pop(key, None)
        if fd is None and (capture or (want_hash and hkey not in self._hashes)):
            fd = self._open_exec(ev, key)
        try:
            if want_hash:  # a new args tuple: the decoded one may be shared (Event)
                args = list(ev.args)
                args[_I_SHA] = self._hash(hkey, fd)
                ev.args, ev.args_key = tuple(args), None
            if capture:
                if fd is None:
                    self.counts.exec_no_source += 1
                    return
                assert self.writer is not None
                self._captured[key] = None
                meta = {"pathname": ev.args[_I_PATH] or "", "dev": key[0], "inode": key[1],
                        "ctime": key[2], "pid": ev.ctx.host_pid, "comm": ev.ctx.comm,
                        "timestamp": ev.timestamp}
                job = ExecJob(fd, _subdir(ev), f"exec.{ev.timestamp}.{_basename(meta['pathname'])}",
                              meta, lambda digest: self._copied(key, hkey, digest))
                fd = None  # the writer closes it now
                self.writer.submit(job)
        finally:
            if fd is not None:
                os.close(fd)

    def _copied(self, key: tuple[int, int, int], hkey: HashKey, digest: str | None) -> None:
        """From the writer: the copy's sha256 (cached for exec-hash), or a failure (a later
        exec of the same file tries again)."""
        if digest is None:
            self._captured.pop(key, None)
        elif self.exec_hash:
            self._remember(hkey, digest)

    def _hash(self, key: HashKey, fd: int | None) -> str | None:
        digest = self._hashes.get(key)
        if digest is not None:
            self.counts.hash_cached += 1
            return digest
        if fd is None:
            self.counts.hash_failed += 1
            return None
        t0 = time.perf_counter_ns()
        try:
            digest, _ = sha256_fd(fd)
        except OSError:
            self.counts.hash_failed += 1
            return None
        finally:
            self.counts.hash_ns += time.perf_counter_ns() - t0
        self.counts.hash_computed += 1
        self._remember(key, digest)
        return digest

    def _remember(self, key: HashKey, digest: str) -> None:
        self._hashes[key] = digest
        if len(self._hashes) > _HASH_CACHE:
            self._hashes.popitem(last=False)

    # write ---------------------------------------------------------------------------

    def _write(self, ev: Event, rt: PolicyRuntime) -> None:
        if self.writer is None or not self._in_scope(ev, rt):
            return
        dev, ino, path, offset, data, truncated = ev.args
        if self._prefixes and not (path or "").startswith(self._prefixes):
            return  # a path the kernel could not decide on (longer than its keys)
        if truncated is not None:  # the last event of a write too large to send whole
            self.counts.write_truncated_bytes += truncated
            return
        if not data:
            self.counts.write_unreadable += 1
            return
        meta = {"pathname": path or "", "dev": dev, "inode": ino, "pid": ev.ctx.host_pid,
                "comm": ev.ctx.comm, "timestamp": ev.timestamp}
        self.writer.submit(WriteJob(_subdir(ev), f"write.dev-{dev}.inode-{ino}", offset, data, meta))

    # mem -----------------------------------------------------------------------------

    @staticmethod
    def _dumpable(ev: Event) -> bool:
        alert = ev.arg("alert")
        return alert in _DUMP_ALERTS or (alert == _ALERT_MMAP_W_X and bool(ev.arg("pathname")))

    @staticmethod
    def _open_mem(ev: Event) -> int | None:
        try:
            return os.open(f"/proc/{ev.ctx.host_pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def _mem(self, ev: Event, rt: PolicyRuntime) -> None:
        early = self._mem_src.pop(id(ev), None)
        fd = early[1] if early is not None else None
        try:
            if self.writer is None or not self._dumpable(ev) or not self._in_scope(ev, rt):
                return
            if fd is None:
                fd = self._open_mem(ev)
            if fd is None:
                self.counts.mem_no_source += 1
                return
            addr = int(ev.arg("addr"), 16)
            meta = {"addr": ev.arg("addr"), "len": ev.arg("len"), "alert": ev.arg("alert"),
                    "prot": ev.arg("prot"), "prev_prot": ev.arg("prev_prot"),
                    "pathname": ev.arg("pathname") or "", "pid": ev.ctx.host_pid,
                    "comm": ev.ctx.comm, "timestamp": ev.timestamp}
            job = MemJob(fd, _subdir(ev), f"bin.pid-{ev.ctx.host_pid}.ts-{ev.timestamp}", addr,
                         ev.arg("len") or 0, meta)
            fd = None
            self.writer.submit(job)
        finally:
            if fd is not None:
                os.close(fd)

    # -- end ------------------------------------------------------------------------------

    def close(self) -> None:
        for fd in self._exec_src.values():
            os.close(fd)
        self._exec_src.clear()
        for _, fd in self._mem_src.values():
            os.close(fd)
        self._mem_src.clear()
        if self.writer is not None:
            self.writer.close()

    def summary(self) -> str:
        """Counts for the summary line: every failure, nothing silent."""
        parts = []
        c = self.counts
        w = self.writer.counts if self.writer is not None else None
        if w is not None:
            if self.opts.exec:
                parts.append(f"exec {w.exec_files} ({w.exec_bytes} B; failed {w.exec_failed}, "
                             f"no source {c.exec_no_source})")
            if self.opts.write:
                parts.append(f"write {w.write_files} files ({w.write_bytes} B; truncated "
                             f"{c.write_truncated_bytes} B, unreadable {c.write_unreadable}, "
                             f"failed {w.write_failed})")
            if self.opts.mem:
                parts.append(f"mem {w.mem_files} ({w.mem_bytes} B; truncated "
                             f"{w.mem_truncated_bytes} B, failed {w.mem_failed}, "
                             f"no source {c.mem_no_source})")
            drops = sum(w.dropped.values())
            parts.append(f"queue full {drops}")
        out = f", captured to {self.opts.dir}: " + ", ".join(parts) if parts else ""
        if self.exec_hash:
            out += (f", exec-hash: computed {c.hash_computed} ({c.hash_ns / 1e6:.1f} ms), "
                    f"cached {c.hash_cached}, failed {c.hash_failed}")
        return out

    def stats(self) -> dict[str, Any]:
        """Counters by name (for metrics and tests)."""
        out: dict[str, Any] = dict(vars(self.counts))
        if self.writer is not None:
            out.update({k: v for k, v in vars(self.writer.counts).items()})
        return out
