"""FlowTable: TCP flows between SYN+ACK and the first FIN/RST (derive() tests cover the events)."""

from __future__ import annotations

import pytest

from pytracee.net.flows import FlowTable

A, B = ("10.0.0.2", 40001), ("93.184.216.34", 80)


def test_end_from_either_side_then_gone():
    t = FlowTable()
    t.begin(*A, *B, "outgoing")
    assert (*A, *B) in t and t.direction(*A, *B) == "outgoing"
    assert t.end(*A, *B) is True            # the packet's source started the flow
    assert t.end(*B, *A) is None            # the second FIN finds nothing
    t.begin(*A, *B, "outgoing")
    assert t.end(*B, *A) is False           # the responder ended it
    assert len(t) == 0


def test_unknown_flow():
    assert FlowTable().end(*A, *B) is None


def test_repeated_begin_keeps_the_first_record():
    t = FlowTable()
    t.begin(*A, *B, "outgoing")
    t.begin(*A, *B, "incoming")
    assert t.direction(*A, *B) == "outgoing" and len(t) == 1


def test_bound_drops_the_oldest():
    t = FlowTable(max_entries=3)
    for port in range(5):
        t.begin("10.0.0.2", 50000 + port, *B, "outgoing")
    assert len(t) == 3 and t.evictions == 2
    assert t.end("10.0.0.2", 50000, *B) is None
    assert t.end("10.0.0.2", 50001, *B) is None
    assert t.end("10.0.0.2", 50002, *B) is True


def test_bad_size():
    with pytest.raises(ValueError):
        FlowTable(max_entries=0)
