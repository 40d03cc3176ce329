"""How long the reader lets events gather after a read that emptied the ring."""

import pytest

from pytracee.pipeline import COALESCE_S, coalesce_pause

MIB = 1 << 20


def test_a_trickle_waits_the_full_coalescing_time() -> None:
    # 13,000 events/s of ~400 bytes (the mixed workload's security events), 128 MiB ring
    assert coalesce_pause(50_000, 0.01, 128 * MIB) == COALESCE_S == 0.01


def test_a_fast_producer_and_a_small_ring_wait_only_until_an_eighth_is_used() -> None:
    # 128 MiB/s into a 4 MiB ring: half a MiB takes 3.9 ms
    assert coalesce_pause(128 * MIB // 100, 0.01, 4 * MIB) == pytest.approx(0.00390625, rel=1e-4)
    assert coalesce_pause(64 * MIB, 1.0, 64 * 1024) < 0.001


def test_a_read_right_after_the_last_counts_as_one_millisecond() -> None:
    assert coalesce_pause(1 * MIB, 0.0, 8 * MIB) == pytest.approx(0.001)  # 1 MiB a ms
