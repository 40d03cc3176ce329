"""TCP flows between their SYN+ACK and their first FIN or RST (Tracee's netflowmap).

A flow is keyed initiator -> responder (ip, port, ip, port). `begin` is called on
a SYN+ACK with the initiator being that packet's destination; `end` on a FIN or
RST from either side, which says whether the packet's source was the initiator
and forgets the flow, so the other side's FIN finds nothing. A repeated SYN+ACK
keeps the flow as first recorded. Bounded: the oldest flow goes first.
"""

from __future__ import annotations

DEFAULT_MAX_FLOWS = 65535


class FlowTable:
    __slots__ = ("_flows", "max_entries", "evictions")

    def __init__(self, max_entries: int = DEFAULT_MAX_FLOWS) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._flows: dict[tuple[str, int, str, int], str] = {}
        self.max_entries = max_entries
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, key: tuple[str, int, str, int]) -> bool:
        return key in self._flows

    def begin(self, src: str, sport: int, dst: str, dport: int, direction: str) -> None:
        """Record src:sport (initiator) -> dst:dport; direction "incoming"/"outgoing"."""
        flows = self._flows
        key = (src, sport, dst, dport)
        if key in flows:
            return
        flows[key] = direction
        if len(flows) > self.max_entries:
            del flows[next(iter(flows))]     # dicts keep insertion order: the oldest
            self.evictions += 1

    def direction(self, src: str, sport: int, dst: str, dport: int) -> str | None:
        return self._flows.get((src, sport, dst, dport))

    def end(self, src: str, sport: int, dst: str, dport: int) -> bool | None:
        """Forget the flow of a FIN/RST packet src:sport -> dst:dport. True: the
        packet's source initiated it; False: its destination did; None: unknown flow."""
        flows = self._flows
        if flows.pop((src, sport, dst, dport), None) is not None:
            return True
        if flows.pop((dst, dport, src, sport), None) is not None:
            return False
        return None
