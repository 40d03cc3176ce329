"""The artifact writer: one worker thread that copies, hashes and writes captures.

The event thread only opens the sources (a process's executable or memory, while
it still exists) and queues jobs; the copying, hashing and writing happen here,
off the event path. The queue is bounded: a job that does not fit is dropped and
counted, never waited for.

Layout under the output directory (Tracee's names):

    <dir>/<host|container id>/exec.<timestamp>.<basename>   an executed binary
    <dir>/<host|container id>/write.dev-<dev>.inode-<ino>   bytes written to a file, at their offsets
    <dir>/<host|container id>/bin.pid-<pid>.ts-<timestamp>  a memory region that became executable
    <dir>/captures.jsonl                                    one JSON line per artifact file

Directories are made 0700, files 0600. The output directory must be ours and not writable
by others (it is opened once and everything is created relative to that descriptor, never
following a symlink), so another user cannot redirect root's writes elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import shutil
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

MANIFEST = "captures.jsonl"
COPY_CHUNK = 1 << 20
MAX_EXEC_BYTES = 256 << 20   # a larger executable is skipped (counted)
MAX_MEM_BYTES = 1 << 20      # bytes dumped per memory region (the rest counted as truncated)
QUEUE_SIZE = 4096
OPEN_WRITE_FILES = 32        # capture files kept open for --capture write


def kernel_dev(st_dev: int) -> int:
    """A stat st_dev in the kernel's encoding (MAJOR << 20 | MINOR), as events carry it."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


def sha256_fd(fd: int, limit: int = MAX_EXEC_BYTES) -> tuple[str, int]:
    """sha256 and size of what `fd` holds, read with pread (the offset is not moved)."""
    h = hashlib.sha256()
    off = 0
    while True:
        chunk = os.pread(fd, COPY_CHUNK, off)
        if not chunk:
            return h.hexdigest(), off
        h.update(chunk)
        off += len(chunk)
        if off > limit:
            raise OSError(27, "file too large")  # EFBIG


def make_private_dir(path: str) -> None:
    """mkdir -p, each directory it creates 0700 (an existing one is left as it is)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        make_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # whatever the umask


@dataclass
class WriterCounts:
    exec_files: int = 0
    exec_bytes: int = 0
    exec_failed: int = 0
    write_files: int = 0
    write_bytes: int = 0
    write_failed: int = 0
    mem_files: int = 0
    mem_bytes: int = 0
    mem_truncated_bytes: int = 0
    mem_failed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # kind -> jobs the full queue refused


@dataclass(slots=True)
class ExecJob:
    fd: int
    subdir: str
    name: str
    meta: dict[str, Any]
    done: Callable[[str | None], None]  # told the sha256, or None when the copy failed
    kind: str = "exec"


@dataclass(slots=True)
class WriteJob:
    subdir: str
    name: str
    offset: int
    data: bytes
    meta: dict[str, Any]
    kind: str = "write"
    fd: int = -1


@dataclass(slots=True)
class MemJob:
    fd: int
    subdir: str
    name: str
    addr: int
    length: int
    meta: dict[str, Any]
    kind: str = "mem"


Job = ExecJob | WriteJob | MemJob
_STOP = object()


class ArtifactWriter:
    def __init__(self, root: str, clear: bool = False, queue_size: int = QUEUE_SIZE) -> None:
        self.root = os.path.abspath(root)
        if clear and os.path.isdir(self.root):
            for entry in os.listdir(self.root):
                p = os.path.join(self.root, entry)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
        make_private_dir(self.root)
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(self._root_fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(self._root_fd)
            raise PermissionError(errno.EPERM, "it belongs to another user or others can write to it")
        self._manifest = os.open(MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=self._root_fd)
        os.fchmod(self._manifest, 0o600)
        self.counts = WriterCounts()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._dirs: dict[str, int] = {}  # subdirectory -> its open descriptor
        self._write_fds: OrderedDict[str, int] = OrderedDict()  # capture file -> fd, LRU
        self._written: set[str] = set()  # write capture files made (in the manifest)
        self._warned: set[str] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pytracee-capture", daemon=True)
        self._thread.start()

    # -- the event thread's side ------------------------------------------------------

    def submit(self, job: Job) -> bool:
        try:
            self._q.put_nowait(job)
            return True
        except queue.Full:
            self.counts.dropped[job.kind] = self.counts.dropped.get(job.kind, 0) + 1
            if job.fd >= 0:
                os.close(job.fd)
            if isinstance(job, ExecJob):
                job.done(None)
            return False

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs (for at most `timeout` seconds), then close the files.
        Closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._q.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("capture: jobs still queued after %.0f s are not written", timeout)
            return  # the worker still owns the files
        for fd in (*self._write_fds.values(), *self._dirs.values(), self._manifest, self._root_fd):
            os.close(fd)
        self._write_fds.clear()
        self._dirs.clear()

    # -- the worker ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is _STOP:
                return
            try:
                if isinstance(job, ExecJob):
                    self._exec(job)
                elif isinstance(job, WriteJob):
                    self._write(job)
                else:
                    self._mem(job)
            except Exception as exc:  # counted per kind; one warning per kind and reason
                setattr(self.counts, f"{job.kind}_failed", getattr(self.counts, f"{job.kind}_failed") + 1)
                reason = f"{job.kind}: {exc}"
                if reason not in self._warned and len(self._warned) < 64:
                    self._warned.add(reason)
                    log.warning("capture failed (counted): %s", reason)
                if isinstance(job, ExecJob):
                    job.done(None)
            finally:
                if job.fd >= 0:
                    os.close(job.fd)
                    job.fd = -1

    def _dir(self, subdir: str) -> int:
        """The descriptor of <root>/<subdir> (made 0700 when new)."""
        fd = self._dirs.get(subdir)
        if fd is None:
            try:
                os.mkdir(subdir, 0o700, dir_fd=self._root_fd)
                os.chmod(subdir, 0o700, dir_fd=self._root_fd)  # whatever the umask
            except FileExistsError:
                pass
            fd = os.open(subdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self._root_fd)
            self._dirs[subdir] = fd
        return fd

    def _create(self, subdir: str, name: str) -> int:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=self._dir(subdir))
        os.fchmod(fd, 0o600)
        return fd

    def _record(self, kind: str, subdir: str, name: str, fields: dict[str, Any]) -> None:
        line = {"kind": kind, "path": f"{subdir}/{name}", **fields}
        os.write(self._manifest, orjson.dumps(line) + b"\n")

    def _exec(self, job: ExecJob) -> None:
        size = os.fstat(job.fd).st_size
        if size > MAX_EXEC_BYTES:
            raise OSError(27, f"executable larger than {MAX_EXEC_BYTES >> 20} MiB")
        out = self._create(job.subdir, job.name)
        h = hashlib.sha256()
        off = 0
        try:
            while off <= MAX_EXEC_BYTES:
                chunk = os.pread(job.fd, COPY_CHUNK, off)
                if not chunk:
                    break
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
                off += len(chunk)
        except BaseException:
            os.close(out)
            os.unlink(job.name, dir_fd=self._dir(job.subdir))
            raise
        os.close(out)
        digest = h.hexdigest()
        self._record("exec", job.subdir, job.name, {"sha256": digest, "size": off, **job.meta})
        self.counts.exec_files += 1
        self.counts.exec_bytes += off
        job.done(digest)

    def _write(self, job: WriteJob) -> None:
        key = f"{job.subdir}/{job.name}"
        fd = self._write_fds.get(key)
        if fd is None:
            fd = os.open(job.name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=self._dir(job.subdir))
            if key not in self._written:
                os.fchmod(fd, 0o600)
                self._written.add(key)
                self._record("write", job.subdir, job.name, job.meta)
                self.counts.write_files += 1
            self._write_fds[key] = fd
            if len(self._write_fds) > OPEN_WRITE_FILES:
                _, old = self._write_fds.popitem(last=False)
                os.close(old)
        else:
            self._write_fds.move_to_end(key)
        view = memoryview(job.data)
        off = job.offset
        while view:
            n = os.pwrite(fd, view, off)
            view = view[n:]
            off += n
        self.counts.write_bytes += len(job.data)

    def _mem(self, job: MemJob) -> None:
        want = min(job.length, MAX_MEM_BYTES)
        data = bytearray()
        while len(data) < want:  # pread from /proc/PID/mem may return less than asked
            chunk = os.pread(job.fd, want - len(data), job.addr + len(data))
            if not chunk:
                break
            data += chunk
        if not data:
            raise OSError(5, "memory region unreadable (the process exited?)")
        truncated = job.length - len(data)
        out = self._create(job.subdir, job.name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
        finally:
            os.close(out)
        self._record("mem", job.subdir, job.name, {
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **job.meta,
            "truncated": truncated})
        self.counts.mem_files += 1
        self.counts.mem_bytes += len(data)
        self.counts.mem_truncated_bytes += truncated


def identity(st: os.stat_result) -> tuple[int, int, int]:
    """(dev, inode, ctime) of a stat as sched_process_exec carries them."""
    return kernel_dev(st.st_dev), st.st_ino, st.st_ctime_ns


def is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)
