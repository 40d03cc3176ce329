"""`file`: rendered events appended to a file, or to stdout/stderr.

    -o json:/var/log/pytracee/events.json
    -o destinations.audit.path=/var/log/pytracee/audit.json -o destinations.audit.rotate=10MB

Files hold security data: a file pytracee creates gets mode 0600 (and a missing
directory 0700); an existing file keeps its mode. A file is opened for appending,
so a restart continues the same log instead of truncating it.

Rotation (`rotate_bytes`): before a write would take the file past the limit,
path.(keep-1) -> path.keep, ..., path.1 -> path.2, path -> path.1, and a new
`path` is started (the oldest, path.keep, is overwritten; keep=0 keeps none).
Writes are cut at line ends, so each file holds whole lines and at most
`rotate_bytes` bytes (a single line longer than that gets a file of its own).
Only regular files rotate: a FIFO, a device or stdout never does.

Counts, for the stream's "delivered" (an event is delivered once it is written, not
while it waits in the buffer): `held_events`, events of sends whose bytes are (partly)
still in the buffer; `lost_events`, events whose buffered bytes a failed write
discarded (the stream counted them as sent; it moves them to failed).
"""

from __future__ import annotations

import os
import stat
import sys
from pytracee.events.event import Event

STDOUT_NAMES = ("stdout", "-", "/dev/stdout")
STDERR_NAMES = ("stderr", "/dev/stderr")


class FileDestination:
    wants_header = True  # the stream writes a table header once, at start
    local = True  # quick to write: a block-mode stream may send from the reader's thread

    def __init__(self, path: str | None = None, rotate_bytes: int | None = None, keep: int = 5,
                 buffer_bytes: int = 1 << 16) -> None:
        """`path` None (or "stdout"/"-") is stdout, "stderr" is stderr. Raises OSError
        when the file cannot be opened. Small writes are gathered up to `buffer_bytes`
        until `flush`; a larger one (a storm's batch) goes straight out: measured on
        JSON to /dev/null, copying 100s of KiB batches into a 1 MiB buffer cost 8%."""
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError("rotate_bytes must be > 0")
        if keep < 0:
            raise ValueError("keep must be >= 0")
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.size = 0  # bytes in the current file (what was there plus what we wrote)
        self.rotations = 0
        self._fill = 0  # bytes of _buf not yet written
        self.held_events = 0  # see the module doc
        self.lost_events = 0
        self._fd = -1
        self._regular = False
        if path is None or path in STDOUT_NAMES or path in STDERR_NAMES:
            self.path: str | None = None
            self.name = "file:stderr" if path in STDERR_NAMES else "file:stdout"
            # Raw writes on the process's own fd (never closed here): a reader that
            # went away loses only what was pending, with no buffered object left
            # to complain about it at exit.
            self._fd = sys.stderr.fileno() if path in STDERR_NAMES else sys.stdout.fileno()
            self._owned = False
        else:
            self.path = path
            self.name = "file:" + path
            self._owned = True
            self._open()
        self._buffer = buffer_bytes
        self._buf = bytearray(buffer_bytes)  # allocated once, like io.BufferedWriter's

    def _open(self) -> None:
        assert self.path is not None
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._regular = stat.S_ISREG(st.st_mode)
        self.size = st.st_size if self._regular else 0

    def send(self, payload: bytes, events: list[Event]) -> None:
        self._send(payload)
        if self._fill:  # (some of) this batch waits in the buffer; earlier ones may too
            self.held_events += len(events)

    def _send(self, payload: bytes) -> None:
        limit = self.rotate_bytes
        if limit is None or not self._regular:
            self._write(payload)
            return
        view = memoryview(payload)
        start, end = 0, len(payload)
        while start < end:
            room = limit - self.size
            if end - start <= room:
                self._write(view[start:end] if start else payload)
                return
            # The longest run of whole lines that still fits.
            cut = payload.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
            if cut <= start:
                if self.size > 0:
                    self._rotate()
                    continue
                # An empty file and a line longer than the limit: the line alone.
                nl = payload.find(b"\n", start)
                cut = end if nl < 0 else nl + 1
            self._write(view[start:cut])
            start = cut
            if start < end:
                self._rotate()

    def _write(self, data: bytes | memoryview) -> None:
        # Copied into a buffer allocated once (as io.BufferedWriter does): keeping the
        # payloads themselves, or a growing bytearray, defeated the allocator's reuse of
        # the renderer's 100s of KiB per batch and halved JSON throughput in a storm.
        n = len(data)
        self.size += n
        fill = self._fill
        if fill + n <= self._buffer:
            self._buf[fill:fill + n] = data
            self._fill = fill + n
            return
        self.flush()
        if n >= self._buffer:
            self._write_all(data)
        else:
            self._buf[:n] = data
            self._fill = n

    def flush(self) -> None:
        """Write what is buffered. On an error it is dropped (the caller counts it),
        never retried: a full disk or a closed pipe must not pile up memory."""
        fill = self._fill
        if not fill:
            return
        self._fill = 0
        held, self.held_events = self.held_events, 0
        try:
            with memoryview(self._buf) as view:
                self._write_all(view[:fill])
        except BaseException:
            self.lost_events += held
            raise

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        fd, write = self._fd, os.write
        while view:
            view = view[write(fd, view):]

    def _rotate(self) -> None:
        assert self.path is not None
        self.flush()
        os.close(self._fd)
        self._fd = -1
        path, keep = self.path, self.keep
        if keep == 0:
            os.unlink(path)
        else:
            for i in range(keep - 1, 0, -1):
                try:
                    os.replace(f"{path}.{i}", f"{path}.{i + 1}")
                except FileNotFoundError:
                    pass
            os.replace(path, f"{path}.1")
        self.rotations += 1
        self._open()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._owned and self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
