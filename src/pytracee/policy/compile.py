"""PolicyDoc -> CompiledPolicy: what the kernel maps and the pipeline run.

Policy i is bit i of the kernel's 64-bit bitmap. Each rule goes through the
same grammar as `--events` (filters.parse_events): Tracee's bare rule filters
(`data.pathname=/etc/*`, `retval<0`, `comm!=systemd`) are rewritten to the
event-qualified form (`openat.data.pathname=/etc/*`, ...), so one parser
decides what a filter means, and its errors are re-labelled with the rule's
or the filter's line and the text the user wrote.

Rules of one policy OR (Tracee). Per-event filters in an EventSelection are an
AND, so two rules that both *filter* one event (say `openat` and `tag=fs`,
each with filters) cannot be expressed and are refused; an event that an
unfiltered rule also selects is simply unfiltered, which is what OR means.
A data filter on a glob or tag= rule narrows it to the events that have that
field (an event without it could never match) and filters those.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from pytracee.errors import UsageError
from pytracee.events.definitions import EVENTS
from pytracee.events.wire import MAX_POLICIES
from pytracee.policy.files import PolicyDoc, PolicyErrors, RuleDoc
from pytracee.policy.filters import (
    BoolFilter,
    DataFilter,
    EventRegistry,
    EventSelection,
    NumericFilter,
    Scope,
    ScopeValueFilter,
    StringFilter,
    parse_events,
    parse_scope,
    threat_events,
)

__all__ = ["CompiledPolicy", "PolicySet", "compile_policies", "cli_policy_set", "describe"]

log = logging.getLogger(__name__)
_OP = re.compile(r"[=!<>]")
_RETVAL_HEAD = re.compile(r"retval[~:^]")  # what the grammar's retval operator check sees


@dataclass
class CompiledPolicy:
    index: int  # its bit in the kernel's 64-bit bitmap
    name: str
    description: str
    where: str
    scope: Scope  # `global` = no scope filter
    selection: EventSelection  # the events this policy wants and its per-event filters
    scope_exprs: tuple[str, ...] = ()  # as written, for describe()


@dataclass
class PolicySet:
    policies: list[CompiledPolicy]

    def names(self) -> list[str]:
        """Policy names by index (bit)."""
        return [p.name for p in sorted(self.policies, key=lambda p: p.index)]

    def event_bits(self) -> dict[int, int]:
        """Event id -> bitmap of the policies that select it."""
        bits: dict[int, int] = {}
        for p in self.policies:
            for eid in p.selection.event_ids:
                bits[eid] = bits.get(eid, 0) | 1 << p.index
        return bits


def _registry() -> EventRegistry:
    from pytracee.cli import Registry  # lazy: the CLI imports this module

    return Registry()


def cli_policy_set(events: Sequence[str], scope: Sequence[str],
                   default_ids: AbstractSet[int]) -> PolicySet:
    """The single policy "cli" that --events/--scope describe (errors raise as given)."""
    sel = parse_events(list(events), _registry(), default_ids)
    return PolicySet([CompiledPolicy(0, "cli", "", "command line", parse_scope(list(scope)),
                                     sel, tuple(scope))])


def compile_policies(docs: Sequence[PolicyDoc]) -> PolicySet:
    """Compile every policy; all errors are raised together as PolicyErrors."""
    errors: list[UsageError] = []
    if len(docs) > MAX_POLICIES:
        errors.append(UsageError(f"at most {MAX_POLICIES} policies can be loaded; this is policy "
                                 f"{MAX_POLICIES + 1}", where=docs[MAX_POLICIES].where))
    reg = _registry()
    out = []
    for i, doc in enumerate(docs[:MAX_POLICIES]):
        before = len(errors)
        scope = _scope(doc, errors)
        selection = _selection(doc, reg, errors)
        if len(errors) == before and scope is not None and selection is not None:
            out.append(CompiledPolicy(i, doc.name, doc.description, doc.where, scope, selection,
                                      tuple(doc.scope)))
    if errors:
        raise PolicyErrors(errors)
    return PolicySet(out)


# --------------------------------------------------------------------------
# scope
# --------------------------------------------------------------------------

def _scope(doc: PolicyDoc, errors: list[UsageError]) -> Scope | None:
    wheres = doc.scope_where if len(doc.scope_where) == len(doc.scope) else [doc.where] * len(doc.scope)
    bad = False
    for expr, where in zip(doc.scope, wheres):  # alone first: one error per bad item
        try:
            parse_scope([expr])
        except UsageError as exc:
            errors.append(UsageError(exc.message, token=exc.token, where=where))
            bad = True
    if bad:
        return None
    try:
        return parse_scope(doc.scope)  # then together: conflicts between items
    except UsageError as exc:
        where = wheres[doc.scope.index(exc.token)] if exc.token in doc.scope else doc.where
        errors.append(UsageError(exc.message, token=exc.token, where=where))
        return None


# --------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------

def _qualify(f: str) -> str:
    """A bare rule filter -> the part after '<event>.' in the --events grammar."""
    m = _OP.search(f)
    head = f[: m.start()] if m else f
    if head in ("retval", "data", "args") or head.startswith(("data.", "args.", "scope.", "context.")):
        return f
    if _RETVAL_HEAD.match(f):  # retval~5: a bad operator, which the grammar names
        return f
    if "." in head:
        raise UsageError(f"invalid filter '{f}': expected data.<field>, retval or a scope field "
                         "(comm, pid, uid, container, ...)", token=f)
    return "scope." + f


def _data_field(q: str) -> str | None:
    m = _OP.search(q)
    parts = (q[: m.start()] if m else q).split(".")
    return parts[1] if parts[0] in ("data", "args") and len(parts) == 2 else None


def _rule_targets(rule: RuleDoc, reg: EventRegistry) -> list[str]:
    """The event names a rule's `event:` selects (raises UsageError)."""
    ev = rule.event
    if ev.startswith("threat."):
        return [EVENTS[e].name for e in sorted(threat_events(ev))]
    if not ev.startswith("tag="):
        if ev.startswith("-"):
            raise UsageError(f"a rule cannot exclude events ('{ev}'); list what the policy wants",
                             token=ev)
        if "," in ev:
            raise UsageError(f"one event, glob or tag=<set> per rule, not '{ev}'", token=ev)
        if _OP.search(ev) or "." in ev:
            raise UsageError(f"'event' takes an event name, a glob or tag=<set>, not '{ev}'; "
                             "put filters under 'filters'", token=ev)
    ids = parse_events([ev], reg, frozenset()).event_ids
    return sorted(EVENTS[i].name for i in ids)


def _parse_rule(rule: RuleDoc, reg: EventRegistry, errors: list[UsageError]) -> EventSelection | None:
    wheres = rule.filter_where if len(rule.filter_where) == len(rule.filters) else [rule.where] * len(rule.filters)
    try:
        targets = _rule_targets(rule, reg)
    except UsageError as exc:
        errors.append(UsageError(exc.message, token=exc.token, where=rule.where))
        return None
    quals: list[tuple[str, str, str]] = []  # (qualified, original, where)
    for f, where in zip(rule.filters, wheres):
        try:
            quals.append((_qualify(f), f, where))
        except UsageError as exc:
            errors.append(UsageError(exc.message, token=exc.token, where=where))
    if len(quals) != len(rule.filters):
        return None
    expanded = len(targets) > 1 or "*" in rule.event or rule.event.startswith("tag=")
    if expanded:  # keep the events that have every data field the filters name
        fields = {d for q, _, _ in quals if (d := _data_field(q)) is not None}
        targets = [t for t in targets if fields <= _arg_names(reg, t)]
        if not targets:
            errors.append(UsageError(f"no event selected by '{rule.event}' has data field(s) "
                                     f"{', '.join(sorted(fields))}", token=rule.event,
                                     where=rule.where))
            return None
    # Each filter alone first, so every bad filter is reported at its own line.
    bad = False
    for q, f, where in quals:
        try:
            parse_events([f"{t}.{q}" for t in targets], reg, frozenset())
        except UsageError as exc:
            errors.append(_relabel(exc, f, where, expanded))
            bad = True
    if bad:
        return None
    by_expr = {f"{t}.{q}": (f, w) for t in targets for q, f, w in quals}
    try:
        return parse_events([",".join(targets), *by_expr], reg, frozenset())
    except UsageError as exc:  # filters that conflict with each other (retval>0, retval<0)
        f, where = by_expr.get(exc.token or "", (rule.event, rule.where))
        errors.append(_relabel(exc, f, where, expanded))
        return None


def _arg_names(reg: EventRegistry, name: str) -> set[str]:
    ev = reg.lookup(name)
    return {a.name for a in ev.args} if ev is not None else set()


def _relabel(exc: UsageError, original: str, where: str, expanded: bool) -> UsageError:
    """Show the filter as the user wrote it, not our '<event>.' form."""
    msg, tok = exc.message, exc.token
    if tok and "." in tok and tok.endswith(original):
        event = tok.split(".", 1)[0]
        msg = msg.replace(f"'{tok}'", f"'{original}'")
        if expanded:
            msg += f" (event '{event}')"
        tok = original
    return UsageError(msg, token=tok, where=where)


def _selection(doc: PolicyDoc, reg: EventRegistry, errors: list[UsageError]) -> EventSelection | None:
    """OR the rules of a policy into one EventSelection."""
    ids: set[int] = set()
    unfiltered: set[int] = set()
    owner: dict[int, RuleDoc] = {}  # event id -> the rule whose filters it carries
    data: dict[int, list[DataFilter]] = {}
    retval: dict[int, NumericFilter] = {}
    ctx: dict[int, list[tuple[str, ScopeValueFilter]]] = {}
    ok = True
    for rule in doc.rules:
        sel = _parse_rule(rule, reg, errors)
        if sel is None:
            ok = False
            continue
        ids |= sel.event_ids
        if not rule.filters:
            unfiltered |= sel.event_ids
            continue
        for eid in sel.event_ids:
            if eid in owner:
                errors.append(UsageError(
                    f"event '{EVENTS[eid].name}' is filtered by this rule and by the rule at "
                    f"{owner[eid].where}; pytracee cannot OR two sets of filters yet, so put "
                    "them in one rule", token=rule.event, where=rule.where))
                ok = False
                continue
            owner[eid] = rule
            if eid in sel.data_filters:
                data[eid] = list(sel.data_filters[eid])
            if eid in sel.retval_filters:
                retval[eid] = sel.retval_filters[eid]
            if eid in sel.scope_filters:
                ctx[eid] = list(sel.scope_filters[eid])
    if not ok:
        return None
    for eid in sorted(unfiltered & owner.keys()):
        # OR with an unfiltered rule: the filters cannot narrow this event.
        log.warning("%s: policy '%s': '%s' is also selected without filters, so the filters of "
                    "the rule at %s do not apply to it", doc.where, doc.name, EVENTS[eid].name,
                    owner[eid].where)
        data.pop(eid, None)
        retval.pop(eid, None)
        ctx.pop(eid, None)
    return EventSelection(frozenset(ids), data, retval, ctx)


# --------------------------------------------------------------------------
# pytracee list policies
# --------------------------------------------------------------------------

def describe(policy_set: PolicySet) -> str:
    """One block per policy: name, origin, scope, events with their filters."""
    blocks = []
    for p in sorted(policy_set.policies, key=lambda p: p.index):
        lines = [f"policy {p.index}: {p.name}  ({p.where})"]
        if p.description:
            lines.append(f"  description: {p.description}")
        lines.append(f"  scope: {', '.join(p.scope_exprs) or 'global'}")
        sel = p.selection
        lines.append(f"  events ({len(sel.event_ids)}):")
        for eid in sorted(sel.event_ids, key=lambda i: EVENTS[i].name if i in EVENTS else str(i)):
            name = EVENTS[eid].name if eid in EVENTS else str(eid)
            shown = [*(_data_expr(f) for f in sel.data_filters.get(eid, ())),
                     *_numeric_exprs("retval", sel.retval_filters.get(eid, NumericFilter())),
                     *(e for n, f in sel.scope_filters.get(eid, ()) for e in _scope_exprs(n, f))]
            lines.append(f"    {name}" + (f"  {'  '.join(shown)}" if shown else ""))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _value(v: object) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _data_expr(f: DataFilter) -> str:
    return f"data.{f.field}{f.op}{','.join(map(_value, f.values))}"


def _numeric_exprs(name: str, f: NumericFilter) -> list[str]:
    out = []
    if f.equal:
        out.append(f"{name}={','.join(map(str, sorted(f.equal)))}")
    if f.not_equal:
        out.append(f"{name}!={','.join(map(str, sorted(f.not_equal)))}")
    if f.min is not None:
        out.append(f"{name}>={f.min}")
    if f.max is not None:
        out.append(f"{name}<={f.max}")
    return out


def _string_exprs(name: str, f: StringFilter) -> list[str]:
    def vals(exact: AbstractSet[str], pre: AbstractSet[str], suf: AbstractSet[str],
             con: AbstractSet[str]) -> str:
        return ",".join([*sorted(exact), *(f"{v}*" for v in sorted(pre)),
                         *(f"*{v}" for v in sorted(suf)), *(f"*{v}*" for v in sorted(con))])

    pos = vals(f.equal, f.prefixes, f.suffixes, f.contains)
    neg = vals(f.not_equal, f.not_prefixes, f.not_suffixes, f.not_contains)
    return [e for e in (pos and f"{name}={pos}", neg and f"{name}!={neg}") if e]


def _scope_exprs(name: str, f: ScopeValueFilter) -> list[str]:
    if isinstance(f, BoolFilter):
        return [f"scope.{name}" if f.value else f"scope.{name}=false"]
    if isinstance(f, StringFilter):
        return _string_exprs(f"scope.{name}", f)
    return _numeric_exprs(f"scope.{name}", f)
