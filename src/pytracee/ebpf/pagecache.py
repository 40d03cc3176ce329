"""Find where the kernel keeps page contents, so BPF can read a file's cached data.

magic_write of copy_file_range, sendfile and splice reads the bytes that landed at
offset 0 of the destination from its page cache (bpf/common/pagecache.h). That needs
two addresses the kernel randomises at boot and does not export here: the base of
its direct map of physical memory and of its array of struct page. A page of a memfd
is filled with a random marker and its frame number read from /proc/self/pagemap;
the calibration program then finds the page by the marker (one guess a GiB below its
own task's address, where the direct map must start) and the struct page array from
the page's folio. Done once, before the programs attach.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import secrets
import struct

from pytracee.ebpf.libbpf import BpfError, BpfObject

PAGE = 4096
_PFN_MASK = (1 << 55) - 1
_PRESENT = 1 << 63


def _frame_of(addr: int) -> int:
    """The physical frame of this process's page at `addr` (0: unknown)."""
    with open("/proc/self/pagemap", "rb") as f:
        f.seek((addr // PAGE) * 8)
        (entry,) = struct.unpack("<Q", f.read(8))
    return entry & _PFN_MASK if entry & _PRESENT else 0


def calibrate(obj: BpfObject) -> str | None:
    """Run the calibration program of the loaded object; None when it worked, else why
    not (then magic_write of those calls carries no bytes)."""
    marker = secrets.token_bytes(16)
    fd = os.memfd_create("pytracee-calibrate", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, PAGE)
        with mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[:16] = marker
            addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
            pfn = _frame_of(addr)
            if not pfn:
                return "/proc/self/pagemap gives no frame numbers (needs CAP_SYS_ADMIN)"
            lo, hi = struct.unpack("<QQ", marker)
            try:
                ok = obj.program("pytracee_calibrate").test_run(struct.pack("<4Q", fd, pfn, lo, hi))
            except BpfError as exc:
                return f"the calibration program could not run: {exc}"
            return None if ok == 1 else "the kernel's direct map was not found"
    finally:
        os.close(fd)

