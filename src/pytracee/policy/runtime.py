"""A policy set as the pipeline runs it: kernel maps for one version, and the
user-space checks that clear the policy bits the kernel could not decide."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pytracee.events.definitions import dependencies
from pytracee.events.event import Event
from pytracee.policy import kernel_maps, path_filters
from pytracee.policy.filters import EventSelection, Scope
from pytracee.policy.kernel_maps import KernelScope, UserlandScope


@dataclass
class PolicyRuntime:
    version: int
    names: list[str]
    selections: list[EventSelection]  # by policy index
    event_bits: dict[int, int]  # event id -> policies selecting it
    kernel_bits: dict[int, int]  # what the kernel emits: event_bits plus derived events' bases
    kscope: KernelScope
    userland_scopes: dict[int, UserlandScope]
    path_filters: path_filters.PathFilters  # pathname filters the kernel applies
    # Events for which some matched policy still needs a user-space check.
    check_events: frozenset[int] = field(default=frozenset())
    # event id -> the policies the kernel sends it for only because artifact capture
    # (--capture) reads it: cleared before filters and outputs, never counted as filtered.
    capture_only: dict[int, int] = field(default_factory=dict)
    exec_env: bool = False  # the kernel sends the environment with sched_process_exec

    def add_capture_inputs(self, event_ids: Iterable[int]) -> None:
        """Make the kernel send `event_ids` for every policy (capture follows the
        policies' scopes), remembering which bits are there for capture only."""
        every = (1 << len(self.names)) - 1
        for eid in event_ids:
            have = self.kernel_bits.get(eid, 0)
            self.capture_only[eid] = every & ~have
            self.kernel_bits[eid] = have | every

    def keep(self, ev: Event) -> bool:
        """Clear the bits of the policies whose user-space filters fail; False when none is left."""
        matched = ev.matched
        for i, scope in self.userland_scopes.items():
            if matched >> i & 1 and not scope.matches(ev.ctx):
                matched &= ~(1 << i)
        eid = ev.event_id
        bits = matched
        while bits:
            low = bits & -bits
            i = low.bit_length() - 1
            bits ^= low
            sel = self.selections[i]
            if sel.needs_userland_check(eid) and not sel.accepts(
                    eid, ev.arg, ev.retval, ev.context_value):
                matched &= ~low
        ev.matched = matched
        return matched != 0


def build_runtime(version: int, names: Sequence[str], scopes: Sequence[Scope],
                  selections: Sequence[EventSelection],
                  wheres: Sequence[str] | None = None) -> PolicyRuntime:
    """Policies by index (bit): their names, scopes and event selections."""
    kscope, userland = kernel_maps.build(scopes, wheres)
    paths = path_filters.build(selections)  # refused here, not halfway through writing maps
    bits: dict[int, int] = {}
    for i, sel in enumerate(selections):
        for eid in sel.event_ids:
            bits[eid] = bits.get(eid, 0) | 1 << i
    kbits = dict(bits)
    for eid, policies in bits.items():
        for base in dependencies(eid):
            kbits[base] = kbits.get(base, 0) | policies
    if userland:
        check = frozenset(bits)
    else:
        check = frozenset(e for sel in selections for e in sel.event_ids
                          if sel.needs_userland_check(e))
    return PolicyRuntime(version, list(names), list(selections), bits, kbits, kscope, userland,
                         paths, check)
