"""Read a BPF_MAP_TYPE_RINGBUF through mmap, without libbpf callbacks.

Kernel layout (uapi linux/bpf.h, kernel/bpf/ringbuf.c), offsets into the map fd:

    0          consumer page: u64 consumer_pos       (we map it read-write)
    page       producer page: u64 producer_pos       (read-only)
    2 * page   data area, `size` bytes, mapped twice back to back, so a
               record that wraps is still contiguous in our mapping

A record is an 8-byte header {u32 len, u32 pg_off} and its data; it occupies
round_up(len + 8, 8) bytes. len bit 31 = BUSY (reserved, not yet committed),
bit 30 = DISCARD (skip it). producer_pos moves at reserve time, so a BUSY
record stops the reader until the program commits it.

The kernel refuses a writable mapping of anything but the consumer page
(EPERM), hence two mmaps. Positions are read/written as aligned 8-byte words
through memoryviews: single loads/stores, and x86_64's ordering (TSO) gives the
acquire/release the protocol needs.
"""

from __future__ import annotations

import mmap
import os
import select
from typing import Callable

__all__ = ["RingReader"]

_BUSY = 1 << 31
_DISCARD = 1 << 30
_LEN_MASK = _DISCARD - 1
_HDR = 8


_MAP_TYPE_RINGBUF = 27  # enum bpf_map_type


def _ignore(_: memoryview) -> None:
    pass


def _ringbuf_info(map_fd: int) -> tuple[int, int]:
    """(map_type, max_entries) of a BPF map fd, from /proc/self/fdinfo (no libbpf needed)."""
    fields: dict[str, str] = {}
    try:
        with open(f"/proc/self/fdinfo/{map_fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return int(fields["map_type"]), int(fields["max_entries"])
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"fd {map_fd} is not a BPF map: {e}") from e


class RingReader:
    """Batch reader over one ring buffer map.

    drain() hands each record to a callback as a memoryview into the ring,
    valid only during the call (the kernel reuses the space once we move on).
    """

    __slots__ = ("size", "_fd", "_ep", "_cons_mm", "_data_mm", "_cons_q", "_prod_q", "_data", "_body", "_hdr",
                 "_mask", "_page")

    def __init__(self, map_fd: int, size: int | None = None) -> None:
        """`size` is the map's max_entries; read from the fd when None, checked when given
        (a wrong size would make every offset wrong, silently)."""
        page = mmap.PAGESIZE
        map_type, actual = _ringbuf_info(map_fd)
        if map_type != _MAP_TYPE_RINGBUF:
            raise ValueError(f"fd {map_fd} is a BPF map of type {map_type}, not a ring buffer ({_MAP_TYPE_RINGBUF})")
        if size is None:
            size = actual
        elif size != actual:
            raise ValueError(f"ring size {size} given, but the map's max_entries is {actual}")
        if size <= 0 or size & (size - 1) or size % page:
            raise ValueError(f"ring size {size} must be a power of two and a multiple of {page}")
        self.size = size
        self._page = page
        self._mask = size - 1
        self._fd = os.dup(map_fd)  # our own fd: independent of when the BpfObject closes
        self._ep: select.epoll | None = None
        try:
            self._cons_mm = mmap.mmap(self._fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._data_mm = mmap.mmap(self._fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
            self._cons_q = memoryview(self._cons_mm)[:8].cast("Q")
            self._prod_q = memoryview(self._data_mm)[:8].cast("Q")
            self._data = memoryview(self._data_mm)[page:]
            self._hdr = self._data.cast("I")  # headers are 8-aligned: index = offset >> 2
            self._body = self._data[_HDR:]  # record data at body[offset]: saves an add per record
            self._ep = select.epoll()
            self._ep.register(self._fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    # -- introspection (metrics, tests)

    @property
    def consumer_pos(self) -> int:
        return self._cons_q[0]

    @property
    def producer_pos(self) -> int:
        return self._prod_q[0]

    def pending_bytes(self) -> int:
        """Bytes reserved by producers and not yet consumed (includes BUSY records)."""
        return self._prod_q[0] - self._cons_q[0]

    # -- waiting

    def fileno(self) -> int:
        """The (dup'ed) map fd: readable when data is available; usable in selectors/epoll."""
        return self._fd

    def wait(self, timeout_ms: int) -> bool:
        """Block up to timeout_ms (negative: forever) until data is there."""
        if self._ep is None:
            raise ValueError("ring reader is closed")
        return bool(self._ep.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1, 1))

    # -- reading

    def drain(self, handle: Callable[[memoryview], object] | None = None, limit: int = 1 << 30) -> int:
        """Consume up to `limit` committed records, one callback per record; return the count.

        The memoryview is valid only during the call. A record whose callback
        raises is skipped; the others of its batch are still handled, then the
        first exception propagates.
        """
        each = handle or _ignore

        def per_record(views: list[memoryview]) -> None:
            error: BaseException | None = None
            for view in views:
                try:
                    each(view)
                except BaseException as exc:  # noqa: BLE001 - re-raised below
                    error = error or exc
            if error is not None:
                raise error

        return self.drain_batches(per_record, limit)

    def drain_batches(self, handle_batch: Callable[[list[memoryview]], object],
                      limit: int = 1 << 30, batch: int = 256) -> int:
        """Consume up to `limit` committed records, handing them over in lists of up to
        `batch` views; return the count. The space of a batch goes back to the
        kernel only after its callback returns, so the views stay valid until then.

        Stops at the first BUSY record or when the ring is empty.
        """
        hdr, body, cons_q, prod_q = self._hdr, self._body, self._cons_q, self._prod_q
        mask = self._mask
        cons = cons_q[0]  # re-read: another reader (e.g. libbpf's) may have consumed meanwhile
        n = 0
        try:
            while n < limit:
                prod = prod_q[0]
                if cons >= prod:
                    break
                views: list[memoryview] = []
                append = views.append
                room = min(batch, limit - n)
                busy = False
                while cons < prod and room:
                    off = cons & mask
                    ln = hdr[off >> 2]
                    if ln < _DISCARD:  # committed, kept: the common case, one compare
                        cons += (ln + 15) & ~7  # header + data, rounded up to 8
                        append(body[off : off + ln])
                        room -= 1
                    elif ln & _BUSY:
                        busy = True
                        break
                    else:  # discarded by the program
                        cons += ((ln & _LEN_MASK) + 15) & ~7
                if views:
                    n += len(views)
                    handle_batch(views)
                cons_q[0] = cons  # the batch is handled: give its space back
                if busy:
                    break
        finally:
            cons_q[0] = cons
        return n

    def drain_batch(self, limit: int) -> list[bytes]:
        """Like drain(), returning copies of up to `limit` records."""
        out: list[bytes] = []
        self.drain(lambda view: out.append(view.tobytes()), limit)
        return out

    def close(self) -> None:
        """Unmap and close; idempotent."""
        ep, self._ep = getattr(self, "_ep", None), None  # getattr: __init__ may have failed early
        if ep is not None:
            ep.close()
        for name in ("_hdr", "_body", "_data", "_prod_q", "_cons_q"):
            view = getattr(self, name, None)
            if view is not None:
                setattr(self, name, None)
                try:
                    view.release()
                except BufferError:
                    pass
        for name in ("_data_mm", "_cons_mm"):
            mm = getattr(self, name, None)
            if mm is not None:
                setattr(self, name, None)
                try:
                    mm.close()
                except BufferError:  # a caller kept a record view: unmapped when it dies
                    pass
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> RingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
