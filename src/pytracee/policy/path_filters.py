"""Pathname filters the kernel applies itself (bpf/common/pathfilter.h).

For security_file_open, magic_write and sched_process_exec, a policy's one
`data.pathname=` filter made of exact values, `prefix*` and `*suffix` goes to
the kernel, which then never submits events that no policy wants. Anything
else (`*contains*`, `!=`, several pathname filters, long values) stays with
user space, which checks every filter anyway.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytracee.errors import UsageError
from pytracee.policy.filters import EventSelection

# event id -> index in the kernel's tables (1001: the prefixes of --capture write=/prefix*,
# which user space adds for every policy: see pytracee.capture)
PATH_EVENTS = {732: 0, 727: 1, 715: 2, 1001: 3}
KEY_LEN = 252
MAX_ENTRIES = 2048  # per table and policy set: half of each kernel map, the other half is the running set
EXACT_KEY = struct.Struct(f"<I{KEY_LEN}s")
LPM_KEY = struct.Struct(f"<II{KEY_LEN}s")


@dataclass
class PathFilters:
    has: dict[int, int] = field(default_factory=dict)  # event index -> policies filtered in the kernel
    exact: dict[tuple[int, bytes], int] = field(default_factory=dict)
    prefix: dict[tuple[int, bytes], int] = field(default_factory=dict)
    suffix: dict[tuple[int, bytes], int] = field(default_factory=dict)  # reversed strings


def _split(values: Sequence[object]) -> tuple[list[bytes], list[bytes], list[bytes]] | None:
    exact, prefix, suffix = [], [], []
    for v in values:
        s = str(v)
        core = s.strip("*")
        raw = core.encode()
        if len(raw) >= KEY_LEN or not core:
            return None
        if s.startswith("*") and s.endswith("*"):
            return None  # contains: not in the kernel
        if s.endswith("*"):
            prefix.append(raw)
        elif s.startswith("*"):
            suffix.append(raw[::-1])
        else:
            exact.append(raw)
    return exact, prefix, suffix


def _close_over_shorter(entries: dict[tuple[int, bytes], int]) -> None:
    """An LPM lookup returns the longest match only: give each entry the bits of
    every shorter entry it extends."""
    for (idx, p), bits in list(entries.items()):
        for (jdx, q), qbits in entries.items():
            if jdx == idx and q != p and p.startswith(q):
                bits |= qbits
        entries[(idx, p)] = bits


def build(selections: Sequence[EventSelection]) -> PathFilters:
    pf = PathFilters()
    for i, sel in enumerate(selections):
        bit = 1 << i
        for eid, idx in PATH_EVENTS.items():
            filters = [f for f in sel.data_filters.get(eid, []) if f.field == "pathname"]
            positive = [f for f in filters if f.op == "="]
            if len(positive) != 1:
                continue
            parts = _split(positive[0].values)
            if parts is None:
                continue
            pf.has[idx] = pf.has.get(idx, 0) | bit
            for table, values in zip((pf.exact, pf.prefix, pf.suffix), parts):
                for v in values:
                    table[(idx, v)] = table.get((idx, v), 0) | bit
    _close_over_shorter(pf.prefix)
    _close_over_shorter(pf.suffix)
    for name, table in (("exact", pf.exact), ("prefix", pf.prefix), ("suffix", pf.suffix)):
        if len(table) > MAX_ENTRIES:
            raise UsageError(f"too many {name} pathname filter values: {len(table)} "
                             f"(at most {MAX_ENTRIES})", token="pathname")
    return pf
