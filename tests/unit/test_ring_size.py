"""The default ring size follows the host's memory (as Tracee's buffers do), bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytracee.ebpf.tracer import default_ring_bytes

MIB = 1 << 20


@pytest.mark.parametrize(("mem_kib", "ring"), [
    (1 << 20, 16 * MIB),            # 1 GiB host: the least
    (24_684_000, 128 * MIB),        # 24 GB: 192 MB share, down to a power of two
    (64 << 20, 256 * MIB),          # 64 GiB: the most
])
def test_default_ring_bytes(tmp_path: Path, mem_kib: int, ring: int) -> None:
    (tmp_path / "meminfo").write_text(f"MemTotal:       {mem_kib} kB\nMemFree: 1 kB\n")
    assert default_ring_bytes(str(tmp_path / "meminfo")) == ring


def test_unreadable_meminfo_gives_the_least(tmp_path: Path) -> None:
    assert default_ring_bytes(str(tmp_path / "missing")) == 16 * MIB
