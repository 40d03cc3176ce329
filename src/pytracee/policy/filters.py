"""The `--scope` and `--events` filter grammar (Tracee's expression syntax).

Parsing happens once at startup and turns user strings into small immutable
filter objects whose `matches()` methods run per event, so everything that can
be decided up front (pattern kind, value type, bounds) is decided here.

Semantics, shared by both flags:
  * separate expressions AND; comma values inside one `=` expression OR;
    `!=` with comma values excludes all of them;
  * numeric fields take = != < > <= >= ; string fields take = and != with
    `prefix*`, `*suffix` and `*contains*` patterns;
  * every user mistake raises UsageError naming the offending expression.

Where Tracee is loose we are strict, so a policy never silently means
something else: a repeated `=` on one scope field is intersected (and is an
error when nothing could match, e.g. `pid=1` then `pid=2`: write `pid=1,2`);
a matching `!=` always rejects (Tracee lets a matching `=` win); `*` only at
the ends of a value; a value may not start with another operator (`comm==x`);
range operators take one value; `0755` is refused as ambiguous (use 0o755).
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeAlias

from pytracee.errors import UsageError, closest
from pytracee.events.structs import STRUCT_FIELDS

__all__ = [
    "ArgInfo", "EventInfo", "EventRegistry",
    "NumericFilter", "StringFilter", "BoolFilter", "ContainerScope", "Scope", "parse_scope",
    "DataFilter", "EventSelection", "parse_events", "CONTEXT_FIELDS",
]


# --------------------------------------------------------------------------
# What we need from the event registry (kept structural so the registry can
# evolve independently).
# --------------------------------------------------------------------------

class ArgInfo(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...  # Tracee type string: int32, string, []string, ...


class EventInfo(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def sets(self) -> tuple[str, ...]: ...
    @property
    def args(self) -> Sequence[ArgInfo]: ...
    @property
    def internal(self) -> bool: ...


class EventRegistry(Protocol):
    def lookup(self, name: str) -> EventInfo | None: ...
    def all_events(self) -> Iterable[EventInfo]: ...


# --------------------------------------------------------------------------
# Value filters
# --------------------------------------------------------------------------

def _compact_repr(obj: object, names: Sequence[str]) -> str:
    """Show only the constraints that are set: filters print in test failures and logs."""
    parts = []
    for n in names:
        v = getattr(obj, n)
        if v is None or v == frozenset():
            continue
        shown = "{" + ", ".join(map(repr, sorted(v))) + "}" if isinstance(v, frozenset) else repr(v)
        parts.append(f"{n}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True, repr=False)
class NumericFilter:
    """Integer predicate: `equal` OR-set, `not_equal` exclusions, inclusive bounds.

    matches(v) == (not equal or v in equal) and v not in not_equal and min <= v <= max.
    """

    equal: AbstractSet[int] = frozenset()
    not_equal: AbstractSet[int] = frozenset()
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        # Normalise to frozensets: filters are shared across threads and must not change.
        object.__setattr__(self, "equal", frozenset(self.equal))
        object.__setattr__(self, "not_equal", frozenset(self.not_equal))

    def __repr__(self) -> str:
        return _compact_repr(self, ("equal", "not_equal", "min", "max"))

    def matches(self, v: int) -> bool:
        eq = self.equal
        if eq and v not in eq:
            return False
        if v in self.not_equal:
            return False
        lo = self.min
        if lo is not None and v < lo:
            return False
        hi = self.max
        return hi is None or v <= hi

    def empty(self) -> bool:
        return not self.equal and not self.not_equal and self.min is None and self.max is None

    def intersect(self, other: NumericFilter) -> NumericFilter | None:
        """Both filters must hold (separate expressions AND); None if no integer can."""
        if self.equal and other.equal:
            equal = self.equal & other.equal
            if not equal:
                return None
        else:
            equal = self.equal or other.equal
        mins = [m for m in (self.min, other.min) if m is not None]
        maxs = [m for m in (self.max, other.max) if m is not None]
        both = NumericFilter(
            equal=equal,
            not_equal=self.not_equal | other.not_equal,
            min=max(mins) if mins else None,
            max=min(maxs) if maxs else None,
        )
        return both if both._satisfiable() else None

    def _satisfiable(self) -> bool:
        lo, hi = self.min, self.max
        if lo is not None and hi is not None and lo > hi:
            return False
        if self.equal:
            return any(self.matches(v) for v in self.equal)
        if lo is not None and hi is not None:
            return hi - lo + 1 > sum(1 for v in self.not_equal if lo <= v <= hi)
        return True


_STRING_FIELDS = ("equal", "not_equal", "prefixes", "suffixes", "contains",
                  "not_prefixes", "not_suffixes", "not_contains")


@dataclass(frozen=True, slots=True, repr=False)
class StringFilter:
    """String predicate. Positive forms OR together; any negative form rejects.

    A value passes when (no positive forms, or it matches one of them) and it
    matches none of the negative forms. Unlike Tracee, a matching `!=` is never
    overridden by a matching `=`: both expressions must hold.
    """

    equal: AbstractSet[str] = frozenset()
    not_equal: AbstractSet[str] = frozenset()
    prefixes: AbstractSet[str] = frozenset()
    suffixes: AbstractSet[str] = frozenset()
    contains: AbstractSet[str] = frozenset()
    not_prefixes: AbstractSet[str] = frozenset()
    not_suffixes: AbstractSet[str] = frozenset()
    not_contains: AbstractSet[str] = frozenset()
    # Tuples for str.startswith/endswith (C loops), built once.
    _pre: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _suf: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _con: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _npre: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _nsuf: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _ncon: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _pos: bool = field(init=False, repr=False, compare=False)
    _neg: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name in _STRING_FIELDS:
            put(self, name, frozenset(getattr(self, name)))
        put(self, "_pre", tuple(sorted(self.prefixes)))
        put(self, "_suf", tuple(sorted(self.suffixes)))
        put(self, "_con", tuple(sorted(self.contains)))
        put(self, "_npre", tuple(sorted(self.not_prefixes)))
        put(self, "_nsuf", tuple(sorted(self.not_suffixes)))
        put(self, "_ncon", tuple(sorted(self.not_contains)))
        put(self, "_pos", bool(self.equal or self._pre or self._suf or self._con))
        put(self, "_neg", bool(self.not_equal or self._npre or self._nsuf or self._ncon))

    def __repr__(self) -> str:
        return _compact_repr(self, _STRING_FIELDS)

    def matches(self, v: str) -> bool:
        if self._pos and not (
            v in self.equal
            or (self._pre and v.startswith(self._pre))
            or (self._suf and v.endswith(self._suf))
            or (self._con and any(c in v for c in self._con))
        ):
            return False
        if self._neg and (
            v in self.not_equal
            or (self._npre and v.startswith(self._npre))
            or (self._nsuf and v.endswith(self._nsuf))
            or (self._ncon and any(c in v for c in self._ncon))
        ):
            return False
        return True

    def empty(self) -> bool:
        return not (self._pos or self._neg)

    def has_positive(self) -> bool:
        """Some '=' form is present (so only listed values/patterns can pass)."""
        return self._pos

    def exact_only(self) -> bool:
        """The '=' side has no patterns (it is a plain set of values, maybe empty)."""
        return not (self._pre or self._suf or self._con)

    def intersect(self, other: StringFilter) -> StringFilter | None:
        """Both filters must hold; None if no string can.

        Raises ValueError when both sides have '=' patterns: "matches one of A's
        patterns and one of B's" is not expressible as a single filter.
        """
        neg = dict(not_equal=self.not_equal | other.not_equal,
                   not_prefixes=self.not_prefixes | other.not_prefixes,
                   not_suffixes=self.not_suffixes | other.not_suffixes,
                   not_contains=self.not_contains | other.not_contains)
        if not self._pos or not other._pos:
            src = self if self._pos else other
            both = StringFilter(equal=src.equal, prefixes=src.prefixes, suffixes=src.suffixes,
                                contains=src.contains, **neg)
        elif self.exact_only() or other.exact_only():
            exact, pats = (self, other) if self.exact_only() else (other, self)
            keep = {v for v in exact.equal if pats._positive_matches(v)}
            if not keep:
                return None
            both = StringFilter(equal=keep, **neg)
        else:
            raise ValueError("two sets of '=' patterns")
        if both._pos and both.exact_only() and not any(map(both.matches, both.equal)):
            return None  # every listed value is also excluded
        return both

    def _positive_matches(self, v: str) -> bool:
        return StringFilter(equal=self.equal, prefixes=self.prefixes, suffixes=self.suffixes,
                            contains=self.contains).matches(v)


@dataclass(frozen=True, slots=True)
class BoolFilter:
    """A context flag that must equal `value` (e.g. `.scope.container`, `.scope.host`)."""

    value: bool

    def matches(self, v: object) -> bool:
        return bool(v) is self.value


# --------------------------------------------------------------------------
# Shared lexing helpers
# --------------------------------------------------------------------------

_OPS = ("!=", "<=", ">=", "=", "<", ">")  # longest first
RETVAL_OPS = ("=", "!=", "<", ">", "<=", ">=")  # as the user is told
# <event>.retval and what follows it, when that looks like an operator (`~`, `=~`, `!~`,
# `==`, `=<`, `:`): a numeric field, so none of these can start a value.
_RETVAL_OP = re.compile(r"[^.=!<>~:^]+\.retval([=!<>~:^]+)")
_RANGE_OPS = frozenset(_OPS)
_EQ_OPS = frozenset(("=", "!="))
_OP_CHARS = re.compile(r"[=!<>]")

COMM_MAX = 15  # task->comm is 16 bytes with the NUL; the kernel never shows more
UTS_MAX = 64  # __NEW_UTS_LEN
PID_MAX = 1 << 22  # PID_MAX_LIMIT on 64-bit kernels
U32_MAX = (1 << 32) - 1
I64 = (-(1 << 63), (1 << 63) - 1)


def _fail(kind: str, expr: str, reason: str) -> UsageError:
    return UsageError(f"invalid {kind} '{expr}': {reason}", token=expr)


def _split_op(kind: str, expr: str) -> tuple[str, str | None, str]:
    """'uid>=1000' -> ('uid', '>=', '1000'); bare words give (word, None, '')."""
    m = _OP_CHARS.search(expr)
    if m is None:
        return expr, None, ""
    i = m.start()
    for op in _OPS:
        if expr.startswith(op, i):
            value = expr[i + len(op):]
            if value[:1] in ("=", "<", ">"):
                raise _fail(kind, expr, f"unexpected operator '{op}{value[0]}'")
            return expr[:i], op, value
    raise _fail(kind, expr, "'!' must be followed by '=' (use != or the not- prefix)")


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a known name is close to `name` (difflib's default
    cutoff, as for events and policy keys), else ''."""
    close = closest(name, known)
    return f" (did you mean '{close}'?)" if close else ""


def _unknown_name(what: str, name: str, known: Sequence[str]) -> str:
    """"unknown <what> 'x' (did you mean 'y'?)", or with the known names when none is close."""
    hint = _did_you_mean(name, known)
    return f"unknown {what} '{name}'" + (hint or f" (known: {', '.join(known)})")


def _check_spaces(kind: str, expr: str) -> None:
    if expr != expr.strip():
        raise _fail(kind, expr, "unexpected whitespace")


_THREAT_FIELDS = ("severity", "mitre.technique", "mitre.tactic", "name")
_SEVERITIES = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_NUM_OPS = {"=": int.__eq__, "!=": int.__ne__, "<": int.__lt__, ">": int.__gt__,
            "<=": int.__le__, ">=": int.__ge__}


def _norm(s: str) -> str:
    return s.strip().strip('"').lower().replace("-", " ").replace("_", " ")


def threat_events(expr: str) -> set[int]:
    """`threat.severity>=high`, `threat.mitre.technique=T1055`, `threat.mitre.tactic="Defense
    Evasion"`, `threat.name=...`: the events of the loaded signatures that match
    (resolved once, when the selection is parsed). None matching is an error."""
    from pytracee.events.definitions import SIGNATURE_THREATS

    k = "threat selector"
    head, op, raw = _split_op(k, expr)
    field_name = head[len("threat."):]
    if field_name == "severity":
        value = raw.strip('"').lower()
        level = _SEVERITIES.get(value, int(value) if value.isdigit() else None)
        if level is None or op not in _NUM_OPS:
            raise _fail(k, expr, "expected threat.severity with = != < > <= >= and info, low, "
                                 "medium, high, critical or 0-4")
        test = lambda t: _NUM_OPS[op](t["severity"], level)  # noqa: E731
    elif field_name in ("mitre.technique", "mitre.tactic", "name") and op in ("=", "!="):
        want = _norm(raw)

        def test(t: dict[str, Any]) -> bool:
            if field_name == "mitre.technique":
                tech = t["technique"].lower()
                hit = tech == want.upper().lower() or tech.startswith(want + ".") \
                    or _norm(t["technique_name"]) == want
            elif field_name == "mitre.tactic":
                hit = _norm(t["tactic"]) == want
            else:
                hit = _norm(t["name"]) == want
            return hit if op == "=" else not hit
    else:
        close = closest(field_name, _THREAT_FIELDS)
        hint = f" (did you mean 'threat.{close}'?)" if close else ""
        raise _fail(k, expr, "expected threat.severity, threat.mitre.technique, "
                             f"threat.mitre.tactic or threat.name with an operator{hint}")
    found = {eid for eid, t in SIGNATURE_THREATS.items() if test(t)}
    if not found:
        raise _fail(k, expr, "no loaded signature matches")
    return found


def _values(kind: str, expr: str, raw: str) -> list[str]:
    if raw == "":
        raise _fail(kind, expr, "empty value")
    vals = raw.split(",")
    for v in vals:
        if v == "":
            raise _fail(kind, expr, "empty value in comma list")
        if v != v.strip():
            raise _fail(kind, expr, f"unexpected whitespace in value '{v}'")
    return vals


def _parse_int(kind: str, expr: str, v: str) -> int:
    """Decimal, or 0x/0o/0b prefixed; '0755' is refused as ambiguous."""
    try:
        return int(v, 0)
    except ValueError:
        pass
    if re.fullmatch(r"[+-]?0[0-9]+", v):
        raise _fail(kind, expr, f"'{v}' has a leading zero; write it in decimal or with 0o/0x")
    raise _fail(kind, expr, f"'{v}' is not an integer")


def _numeric(kind: str, expr: str, op: str, raw: str, lo: int, hi: int,
             clamp: bool) -> NumericFilter:
    """One numeric expression; `clamp` folds out-of-domain bounds (uid>-1 means any uid)."""
    vals = _values(kind, expr, raw)
    if op in _EQ_OPS:
        nums = {_parse_int(kind, expr, v) for v in vals}
        for n in nums:
            if not lo <= n <= hi:
                raise _fail(kind, expr, f"{n} is out of range ({lo}..{hi})")
        return NumericFilter(equal=nums) if op == "=" else NumericFilter(not_equal=nums)
    if len(vals) != 1:
        raise _fail(kind, expr, f"operator '{op}' takes a single value")
    n = _parse_int(kind, expr, vals[0])
    bound = {"<": n - 1, "<=": n, ">": n + 1, ">=": n}[op]
    if op[0] == "<":
        if bound < lo:
            raise _fail(kind, expr, f"no value in {lo}..{hi} is {op} {n}")
        return NumericFilter(max=min(bound, hi) if clamp else bound)
    if bound > hi:
        raise _fail(kind, expr, f"no value in {lo}..{hi} is {op} {n}")
    return NumericFilter(min=max(bound, lo) if clamp else bound)


def _split_pattern(v: str) -> tuple[str, str]:
    """'pre*' -> ('prefix','pre'); '*suf' -> ('suffix','suf'); '*mid*' -> ('contains','mid')."""
    starts, ends = v.startswith("*"), v.endswith("*")
    core = v[1 if starts else 0: len(v) - 1 if ends else len(v)]
    form = "contains" if starts and ends else "suffix" if starts else "prefix" if ends else "exact"
    return form, core


def _string_filter(op: str, values: Iterable[str]) -> StringFilter:
    """Build from already-validated values written with their '*'."""
    b: dict[str, set[str]] = {"exact": set(), "prefix": set(), "suffix": set(), "contains": set()}
    for v in values:
        form, core = _split_pattern(v)
        b[form].add(core)
    if op == "=":
        return StringFilter(equal=b["exact"], prefixes=b["prefix"], suffixes=b["suffix"],
                            contains=b["contains"])
    return StringFilter(not_equal=b["exact"], not_prefixes=b["prefix"],
                        not_suffixes=b["suffix"], not_contains=b["contains"])


def _string_values(kind: str, expr: str, op: str, raw: str, max_len: int | None = None,
                   what: str = "value", patterns: bool = True) -> list[str]:
    """Validate a string expression's operator and values; return the values."""
    if op not in _EQ_OPS:
        raise _fail(kind, expr, f"operator '{op}' needs a numeric field")
    vals = _values(kind, expr, raw)
    for v in vals:
        if v.strip("*") == "":
            raise _fail(kind, expr, f"'{v}' would match everything")
        form, core = _split_pattern(v)
        if "*" in core:
            raise _fail(kind, expr, "'*' is allowed only at the start or end of a value")
        if form != "exact" and not patterns:
            raise _fail(kind, expr, f"patterns are not supported for {what}")
        if max_len is not None and len(core.encode()) > max_len:
            raise _fail(kind, expr, f"{what} '{core}' is longer than {max_len} bytes, "
                                    "so it can never match")
    return vals


def _strings(kind: str, expr: str, op: str, raw: str, max_len: int | None = None,
             what: str = "value", patterns: bool = True) -> StringFilter:
    return _string_filter(op, _string_values(kind, expr, op, raw, max_len, what, patterns))


# --------------------------------------------------------------------------
# --scope
# --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ContainerScope:
    """Container scope as parsed. The kernel decides container / not-container /
    new / started from its container map; ids are matched in user space.

    only:    True for `container`, False for `not-container`/`!container`, None if unset
    new:     `container=new`   (containers created after pytracee started)
    started: `container=started` (past the entrypoint exec)
    ids:     `container=<id>,...` / `container!=<id>` (prefix patterns allowed)
    """

    only: bool | None = None
    new: bool = False
    started: bool = False
    ids: StringFilter = StringFilter()

    def equal_ids(self) -> bool:
        """`container=<id>`: only containers can match."""
        return self.ids.has_positive()


@dataclass
class Scope:
    """Parsed `--scope` expressions; all fields AND. Empty filters mean "any".

    `container` is parsed and validated but not yet applied anywhere.
    """

    comm: StringFilter = field(default_factory=StringFilter)
    pid: NumericFilter = field(default_factory=NumericFilter)
    tid: NumericFilter = field(default_factory=NumericFilter)
    uid: NumericFilter = field(default_factory=NumericFilter)
    mntns: NumericFilter = field(default_factory=NumericFilter)
    pidns: NumericFilter = field(default_factory=NumericFilter)
    uts: StringFilter = field(default_factory=StringFilter)
    executable: StringFilter = field(default_factory=StringFilter)  # '[host:|<mntns>:]/path' as given
    container: ContainerScope = field(default_factory=ContainerScope)
    follow: bool = False
    new_pid: bool = False
    tree: frozenset[int] = frozenset()      # tree=<pid>: descendants of any of these
    not_tree: frozenset[int] = frozenset()  # tree!=<pid>: but not of these
    global_: bool = False


# field -> (allowed operators, lowest, highest)
_SCOPE_NUMERIC: dict[str, tuple[frozenset[str], int, int]] = {
    "pid": (_RANGE_OPS, 0, PID_MAX),
    "tid": (_RANGE_OPS, 0, PID_MAX),
    "uid": (_RANGE_OPS, 0, U32_MAX),
    "mntns": (_EQ_OPS, 0, U32_MAX),
    "pidns": (_EQ_OPS, 0, U32_MAX),
}
_SCOPE_STRING_LIMITS = {"comm": COMM_MAX, "uts": UTS_MAX}
_EXECUTABLE_NAMES = frozenset(("executable", "exec", "binary", "bin"))
_SCOPE_FIELDS = sorted([*_SCOPE_NUMERIC, *_SCOPE_STRING_LIMITS, *_EXECUTABLE_NAMES, "tree",
                        "container", "not-container", "follow", "global"])
_EXEC_VALUE = re.compile(r"(?:(?:host|[0-9]+):)?/.*")


def parse_scope(exprs: Sequence[str]) -> Scope:
    """Parse `--scope` values (one expression each) into a Scope."""
    scope = Scope()
    for expr in exprs:
        _scope_expr(scope, expr)
    if scope.global_ and len(exprs) > 1:
        raise UsageError("scope 'global' cannot be combined with other scope expressions",
                         token="global")
    return scope


def _scope_expr(scope: Scope, expr: str) -> None:
    k = "scope"
    if expr == "":
        raise UsageError("empty scope expression", token=expr)
    _check_spaces(k, expr)
    if expr.startswith("!") and not expr.startswith("!="):
        name, op, raw = "not-" + expr[1:], None, ""  # legacy '!container'
    else:
        name, op, raw = _split_op(k, expr)
    if name == "":
        raise _fail(k, expr, "missing field name before the operator")
    if op is None:
        _scope_word(scope, expr, name)
        return

    if name in _SCOPE_NUMERIC:
        ops, lo, hi = _SCOPE_NUMERIC[name]
        if name == "pid" and "new" in raw.split(","):
            if op != "=" or raw != "new":
                raise _fail(k, expr, "'new' is supported only as 'pid=new', alone")
            scope.new_pid = True
            return
        if op not in ops:
            raise _fail(k, expr, f"operator '{op}' is not supported for '{name}' (use = or !=)")
        new = _numeric(k, expr, op, raw, lo, hi, clamp=True)
        setattr(scope, name, _and_numeric(expr, name, getattr(scope, name), new))
    elif name in _SCOPE_STRING_LIMITS:
        new_s = _strings(k, expr, op, raw, _SCOPE_STRING_LIMITS[name], name)
        setattr(scope, name, _and_strings(expr, name, getattr(scope, name), new_s))
    elif name in _EXECUTABLE_NAMES:
        new_s = _strings(k, expr, op, raw, what="executable", patterns=False)
        for v in new_s.equal | new_s.not_equal:
            if not _EXEC_VALUE.fullmatch(v):
                raise _fail(k, expr, f"'{v}' is not an absolute path "
                                     "(optionally prefixed with host: or <mntns>:)")
        scope.executable = _and_strings(expr, "executable", scope.executable, new_s)
    elif name == "tree":
        _scope_tree(scope, expr, op, raw)
    elif name == "container":
        _scope_container(scope, expr, op, raw)
    elif name in ("follow", "global", "not-container"):
        raise _fail(k, expr, f"'{name}' takes no value")
    else:
        raise _unknown_scope_field(expr, name)


def _scope_word(scope: Scope, expr: str, word: str) -> None:
    c = scope.container
    if word == "follow":
        scope.follow = True
    elif word == "global":
        scope.global_ = True
    elif word == "container":
        if c.only is False:
            raise _fail("scope", expr, "conflicts with 'not-container'")
        scope.container = replace(c, only=True)
    elif word == "not-container":
        if c.only or c.new or c.started or c.ids.has_positive():
            raise _fail("scope", expr, "conflicts with an earlier container scope")
        scope.container = replace(c, only=False)
    elif word in _SCOPE_NUMERIC or word in _SCOPE_STRING_LIMITS or word in _EXECUTABLE_NAMES \
            or word == "tree":
        raise _fail("scope", expr, f"'{word}' needs an operator and a value, e.g. {word}=...")
    elif word.startswith("not-"):
        raise _fail("scope", expr, "only 'container' can be negated with not- or !")
    else:
        raise _unknown_scope_field(expr, word)


def _scope_tree(scope: Scope, expr: str, op: str, raw: str) -> None:
    if op not in _EQ_OPS:
        raise _fail("scope", expr, f"operator '{op}' is not supported for 'tree' (use = or !=)")
    f = _numeric("scope", expr, op, raw, 0, PID_MAX, clamp=False)
    if op == "=":
        if scope.tree:
            # AND of two roots is not a set of roots; make the user say "either".
            raise _fail("scope", expr, "'tree' is already set; list alternative roots in "
                                       "one expression, e.g. tree=1,2")
        scope.tree = frozenset(f.equal)
    else:
        scope.not_tree = scope.not_tree | f.not_equal
    if scope.tree and scope.tree <= scope.not_tree:
        raise _fail("scope", expr, "every tree root is also excluded with tree!=")


def _scope_container(scope: Scope, expr: str, op: str, raw: str) -> None:
    c = scope.container
    vals = raw.split(",")
    if "new" in vals or "started" in vals:
        if op != "=" or len(vals) != 1:
            raise _fail("scope", expr, "'new' and 'started' are supported only as "
                                       "container=new or container=started, alone")
        if c.only is False:
            raise _fail("scope", expr, "conflicts with 'not-container'")
        scope.container = replace(c, new=c.new or raw == "new",
                                  started=c.started or raw == "started")
        return
    ids = _strings("scope", expr, op, raw, what="container id")
    if op == "=" and c.only is False:
        raise _fail("scope", expr, "conflicts with 'not-container'")
    scope.container = replace(c, ids=_and_strings(expr, "container", c.ids, ids))


def _and_numeric(expr: str, name: str, old: NumericFilter, new: NumericFilter,
                 kind: str = "scope") -> NumericFilter:
    both = old.intersect(new)
    if both is None:
        hint = (f"; to match either value use one expression, e.g. {name}=1,2"
                if old.equal and new.equal else "")
        raise _fail(kind, expr, f"no {name} can satisfy this together with the earlier "
                                f"'{name}' expressions{hint}")
    return both


def _and_strings(expr: str, name: str, old: StringFilter, new: StringFilter) -> StringFilter:
    try:
        both = old.intersect(new)
    except ValueError:
        raise _fail("scope", expr, f"'{name}' already has '=' patterns; put the alternatives "
                                   f"in one expression ({name}=a*,b*)") from None
    if both is None:
        hint = (f"; to match either value use one expression, e.g. {name}=a,b"
                if old.equal and new.equal else "")
        raise _fail("scope", expr, f"no {name} can satisfy this together with the earlier "
                                   f"'{name}' expressions{hint}")
    return both


def _unknown_scope_field(expr: str, name: str) -> UsageError:
    return _fail("scope", expr, _unknown_name("scope field", name, _SCOPE_FIELDS))


# --------------------------------------------------------------------------
# --events: data filters
# --------------------------------------------------------------------------

ValueKind: TypeAlias = Literal["int", "float", "bool", "string"]

# Tracee scalar type strings -> (kind, lowest, highest)
_INT_TYPES: dict[str, tuple[int, int]] = {
    "int8": (-(1 << 7), (1 << 7) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "int64": I64,
    "uint8": (0, 255), "uint16": (0, 65535), "uint32": (0, U32_MAX), "uint64": (0, (1 << 64) - 1),
    "trace.Pointer": (0, (1 << 64) - 1),
}
_FLOAT_TYPES = frozenset(("float32", "float64"))
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_BOOL_WORDS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def _arg_kind(type_: str) -> tuple[ValueKind, bool] | None:
    """(kind, is_list) for a filterable Tracee type; None for structs, bytes, sockaddrs."""
    many = type_.startswith("[]")
    base = type_[2:] if many else type_
    if base in _INT_TYPES:
        return "int", many
    if base in _FLOAT_TYPES:
        return "float", many
    if base == "bool":
        return "bool", many
    if base == "string":
        return "string", many
    return None


def _as_number(v: object) -> int | float | None:
    # Slow path only: decoders may render pointers as "0x..." strings.
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return None
    return None


def _as_str(v: object) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode(errors="replace")
    return str(v)


def _as_bool(v: object) -> bool | None:
    if isinstance(v, str):
        return _BOOL_WORDS.get(v.lower())
    return bool(v)


def _scalar_test(kind: ValueKind, op: str, values: tuple[object, ...]) -> Callable[[object], bool]:
    """Predicate for one scalar value, closed over precomputed sets/bounds."""
    if kind == "string":
        m = _string_filter(op, map(str, values)).matches

        def t_str(v: object) -> bool:
            return m(v if v.__class__ is str else _as_str(v))  # type: ignore[arg-type]
        return t_str
    if kind == "bool":
        want = frozenset(values)
        if op == "=":
            return lambda v: _as_bool(v) in want
        return lambda v: (b := _as_bool(v)) is not None and b not in want
    # int / float
    if op in _EQ_OPS:
        s = frozenset(values)
        if op == "=":
            def t_eq(v: object) -> bool:
                if v.__class__ is not int:
                    v = _as_number(v)
                return v in s
            return t_eq

        def t_ne(v: object) -> bool:
            if v.__class__ is not int:
                v = _as_number(v)
                if v is None:
                    return False
            return v not in s
        return t_ne
    x = values[0]
    cmp = _CMP[op]

    def t_rng(v: object) -> bool:
        if v.__class__ is not int:
            v = _as_number(v)
            if v is None:
                return False
        return cmp(v, x)
    return t_rng


@dataclass(frozen=True, slots=True)
class DataFilter:
    """One predicate on an event argument, e.g. pathname = /etc/*,/tmp/x.

    `values` are as parsed: ints/floats/bools for those kinds, and the strings as
    written (with their '*') for strings. For list arguments ([]string, ...)
    `=` and range operators need any element to match; `!=` needs every element
    to pass (no element is one of the excluded values).
    """

    field: str  # the argument's name, or arg.sub.field inside a structured argument
    op: str
    values: tuple[object, ...]
    kind: ValueKind = "string"
    many: bool = False
    # `field` is an attribute name here, hence the qualified dataclasses.field.
    _test: Callable[[object], bool] = dataclasses.field(init=False, repr=False, compare=False)

    @property
    def arg(self) -> str:
        return self.field.split(".", 1)[0]

    def __post_init__(self) -> None:
        one = _scalar_test(self.kind, self.op, self.values)
        every = self.op == "!="
        path = tuple(self.field.split(".")[1:])
        if path:  # inside a struct (or a list of them): any leaf matches (every, for !=)
            def t_path(v: object) -> bool:
                leaves = _leaves(v, path)
                return all(map(one, leaves)) if every else any(map(one, leaves))
            object.__setattr__(self, "_test", t_path)
            return
        if not self.many:
            object.__setattr__(self, "_test", one)
            return

        def t_list(v: object) -> bool:
            if not isinstance(v, (list, tuple)):
                return one(v)
            return all(map(one, v)) if every else any(map(one, v))
        object.__setattr__(self, "_test", t_list)

    def matches(self, value: object) -> bool:
        return self._test(value)


def _leaves(v: object, path: tuple[str, ...]) -> list[object]:
    """The values at `path` inside nested dicts, lists flattened on the way."""
    level = [v]
    for key in path:
        nxt: list[object] = []
        for item in level:
            for x in item if isinstance(item, list) else (item,):
                if isinstance(x, dict) and key in x:
                    nxt.append(x[key])
        level = [y for x in nxt for y in (x if isinstance(x, list) else (x,))]
    return level


def _field_type(expr: str, event: EventInfo, name: str) -> str:
    """The Tracee type of a data field: an argument, or arg.sub... inside a structured one
    (the structs' fields are in STRUCT_FIELDS)."""
    k = "filter"
    types = {a.name: a.type for a in event.args}
    arg, *path = name.split(".")
    if arg not in types:
        known = ", ".join(types) or "none"
        raise _fail(k, expr, f"event '{event.name}' has no data field '{arg}' (fields: {known})")
    type_ = types[arg]
    for i, sub in enumerate(path):
        fields = STRUCT_FIELDS.get(type_.removeprefix("[]"))
        where = ".".join([arg, *path[:i]])
        if fields is None:
            raise _fail(k, expr, f"data field '{where}' has type {type_}, which has no fields")
        if sub not in fields:
            raise _fail(k, expr, f"data field '{where}' has no field '{sub}' "
                                 f"(fields: {', '.join(fields)})")
        type_ = fields[sub]
    return type_


def _data_filter(expr: str, event: EventInfo, name: str, op: str, raw: str) -> DataFilter:
    k = "filter"
    type_ = _field_type(expr, event, name)
    ak = _arg_kind(type_)
    if ak is None:
        raise _fail(k, expr, f"data field '{name}' has type {type_}, which cannot be filtered")
    kind, many = ak
    vals = _values(k, expr, raw)
    if kind == "string":
        return DataFilter(name, op, tuple(_string_values(k, expr, op, raw)), "string", many)
    if kind == "bool":
        if op not in _EQ_OPS:
            raise _fail(k, expr, f"operator '{op}' needs a numeric field")
        bools = []
        for v in vals:
            if v.lower() not in _BOOL_WORDS:
                raise _fail(k, expr, f"'{v}' is not a boolean (true or false)")
            bools.append(_BOOL_WORDS[v.lower()])
        return DataFilter(name, op, tuple(bools), "bool", many)
    if op not in _EQ_OPS and len(vals) != 1:
        raise _fail(k, expr, f"operator '{op}' takes a single value")
    if kind == "float":
        try:
            nums: list[int | float] = [float(v) for v in vals]
        except ValueError:
            raise _fail(k, expr, f"data field '{name}' is a number; got '{raw}'") from None
        return DataFilter(name, op, tuple(nums), "float", many)
    lo, hi = _INT_TYPES[type_.removeprefix("[]")]
    ints = []
    for v in vals:
        n = _parse_int(k, expr, v)
        if op in _EQ_OPS and not lo <= n <= hi:
            raise _fail(k, expr, f"{n} is out of range for {type_}")
        ints.append(n)
    return DataFilter(name, op, tuple(ints), "int", many)


# --------------------------------------------------------------------------
# --events: per-event scope fields (Tracee's names -> one canonical name)
# --------------------------------------------------------------------------

# (aliases, canonical context name passed to get_ctx, kind). Tracee maps
# hostParentProcessId onto the host pid filter; here it filters the host ppid.
_CTX_TABLE: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("timestamp",), "timestamp", "int"),
    (("processorId",), "processorId", "int"),
    (("p", "pid", "processId"), "processId", "int"),
    (("tid", "threadId"), "threadId", "int"),
    (("ppid", "parentProcessId"), "parentProcessId", "int"),
    (("hostTid", "hostThreadId"), "hostThreadId", "int"),
    (("hostPid", "hostProcessId"), "hostProcessId", "int"),
    (("hostParentProcessId",), "hostParentProcessId", "int"),
    (("uid", "userId"), "userId", "int"),
    (("mntns", "mountNamespace"), "mountNamespace", "int"),
    (("pidns", "pidNamespace"), "pidNamespace", "int"),
    (("comm", "processName"), "processName", "string"),
    (("hostName",), "hostName", "string"),
    (("cgroupId",), "cgroupId", "int"),
    (("syscall",), "syscall", "string"),
    (("containerId",), "containerId", "string"),
    (("containerImage",), "containerImage", "string"),
    (("containerImageDigest",), "containerImageDigest", "string"),
    (("containerName",), "containerName", "string"),
    (("podName",), "podName", "string"),
    (("podNamespace",), "podNamespace", "string"),
    (("podUid",), "podUid", "string"),
    (("podSandbox",), "podSandbox", "bool"),
    (("container",), "container", "bool"),            # in a container
    (("host", "not-container"), "container", "bool"),  # negated below
)
_CTX_ALIASES: dict[str, tuple[str, str]] = {
    alias: (canon, kind) for aliases, canon, kind in _CTX_TABLE for alias in aliases}

#: Names get_ctx() must answer (plus "containerStarted" for `.scope.container=started`).
CONTEXT_FIELDS = frozenset({c for c, _ in _CTX_ALIASES.values()} | {"containerStarted"})

ScopeValueFilter: TypeAlias = NumericFilter | StringFilter | BoolFilter


def _ctx_filter(expr: str, name: str, op: str | None, raw: str) -> list[tuple[str, ScopeValueFilter]]:
    k = "filter"
    if name not in _CTX_ALIASES:
        raise _fail(k, expr, _unknown_name("scope field", name, sorted(_CTX_ALIASES)))
    canon, kind = _CTX_ALIASES[name]
    if kind == "bool":
        want = name not in ("host", "not-container")
        if op is None:
            return [(canon, BoolFilter(want))]
        if name == "container" and op == "=" and raw == "started":
            return [("container", BoolFilter(True)), ("containerStarted", BoolFilter(True))]
        if op in _EQ_OPS and raw.lower() in _BOOL_WORDS:  # podSandbox=false, container!=true
            return [(canon, BoolFilter(want == (_BOOL_WORDS[raw.lower()] == (op == "="))))]
        raise _fail(k, expr, f"'{name}' is a flag: use it bare or with =true/=false")
    if op is None:
        raise _fail(k, expr, f"'{name}' needs an operator and a value")
    if kind == "string":
        limit = COMM_MAX if canon == "processName" else None
        return [(canon, _strings(k, expr, op, raw, limit, name))]
    lo, hi = (0, (1 << 64) - 1) if canon == "cgroupId" else I64
    return [(canon, _numeric(k, expr, op, raw, lo, hi, clamp=False))]


# --------------------------------------------------------------------------
# --events: selection
# --------------------------------------------------------------------------

_Check = tuple[
    tuple[tuple[str, Callable[[object], bool]], ...],  # data: (arg name, test)
    Callable[[int], bool] | None,                      # retval
    tuple[tuple[str, Callable[[object], bool]], ...],  # context: (field, test)
]


@dataclass
class EventSelection:
    """Selected event ids and the userland filters that apply to them.

    Treat as immutable once built: the hot-path plan is compiled in __post_init__.
    """

    event_ids: frozenset[int]
    data_filters: dict[int, list[DataFilter]] = field(default_factory=dict)
    retval_filters: dict[int, NumericFilter] = field(default_factory=dict)
    scope_filters: dict[int, list[tuple[str, ScopeValueFilter]]] = field(default_factory=dict)
    _plan: dict[int, _Check] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.event_ids = frozenset(self.event_ids)
        plan: dict[int, _Check] = {}
        for eid in set(self.data_filters) | set(self.retval_filters) | set(self.scope_filters):
            data = tuple((f.arg, f.matches) for f in self.data_filters.get(eid, ()))
            ret = self.retval_filters.get(eid)
            ctx = tuple((name, f.matches) for name, f in self.scope_filters.get(eid, ()))
            if data or ctx or (ret is not None and not ret.empty()):
                plan[eid] = (data, ret.matches if ret is not None and not ret.empty() else None, ctx)
        self._plan = plan

    def needs_userland_check(self, event_id: int) -> bool:
        return event_id in self._plan

    def accepts(self, event_id: int, get_arg: Callable[[str], object], retval: int,
                get_ctx: Callable[[str], object]) -> bool:
        """All filters of the event hold. A missing arg or context field (KeyError) fails."""
        check = self._plan.get(event_id)
        if check is None:
            return True
        data, ret, ctx = check
        if ret is not None and not ret(retval):
            return False
        try:
            for name, test in data:
                if not test(get_arg(name)):
                    return False
            for name, test in ctx:
                if not test(get_ctx(name)):
                    return False
        except KeyError:
            return False
        return True


def parse_events(exprs: Sequence[str], registry: EventRegistry,
                 default_ids: AbstractSet[int]) -> EventSelection:
    """Parse `--events` values (each a comma list of names, or one filter expression)."""
    p = _EventsParser(registry)
    for expr in exprs:
        p.feed(expr)
    return p.finish(default_ids)


class _EventsParser:
    def __init__(self, registry: EventRegistry) -> None:
        self.reg = registry
        self.added: set[int] = set()
        self.excluded: dict[int, str] = {}   # id -> token that excluded it
        self.filtered: dict[int, str] = {}   # id -> first filter expression
        self.data: dict[int, list[DataFilter]] = {}
        self.retval: dict[int, NumericFilter] = {}
        self.ctx: dict[int, list[tuple[str, ScopeValueFilter]]] = {}
        self._sets: dict[str, set[int]] | None = None
        self._names: dict[str, int] | None = None

    # -- registry indexes, built on first need ------------------------------
    def _index(self) -> tuple[dict[str, set[int]], dict[str, int]]:
        if self._sets is None or self._names is None:
            sets: dict[str, set[int]] = {}
            names: dict[str, int] = {}
            for ev in self.reg.all_events():
                if ev.internal:
                    continue  # internal events are never user-selectable
                names[ev.name] = ev.id
                for s in ev.sets:
                    sets.setdefault(s, set()).add(ev.id)
            self._sets, self._names = sets, names
        return self._sets, self._names

    def _unknown_event(self, name: str) -> UsageError:
        _, names = self._index()
        return UsageError(f"unknown event '{name}'{_did_you_mean(name, names)}", token=name)

    def _event(self, name: str) -> EventInfo:
        ev = self.reg.lookup(name)
        if ev is None:
            if name in self._index()[0]:
                raise UsageError(f"'{name}' is an event set; filters apply to one event",
                                 token=name)
            raise self._unknown_event(name)
        if ev.internal:
            raise UsageError(f"event '{name}' is internal and cannot be selected", token=name)
        return ev

    def _resolve(self, name: str, token: str) -> set[int]:
        """Event name, glob, or (v0.24 style) bare set name -> ids."""
        sets, names = self._index()
        if "*" in name:
            rx = re.compile(".*".join(map(re.escape, name.split("*"))))
            ids = {i for n, i in names.items() if rx.fullmatch(n)}
            if not ids:
                raise UsageError(f"pattern '{name}' matches no event", token=token)
            return ids
        ev = self.reg.lookup(name)
        if ev is not None:
            if ev.internal:
                raise UsageError(f"event '{name}' is internal and cannot be selected", token=token)
            return {ev.id}
        if name in sets:
            return set(sets[name])
        raise self._unknown_event(name)

    # -- one --events value -------------------------------------------------
    def feed(self, expr: str) -> None:
        if expr == "":
            raise UsageError("empty --events value", token=expr)
        m = _OP_CHARS.search(expr)
        if m is not None:
            head = expr[: m.start()]
            if "," in head:
                raise _fail("filter", expr, "a filter must be alone in its --events value; "
                                            "give it its own -e")
            if "." not in head:
                self._tags(expr)
            else:
                self._filter(expr)
        elif "." in expr:
            self._filter(expr)  # e.g. openat.scope.container (boolean, no operator)
        else:
            for tok in expr.split(","):
                self._name(expr, tok)

    def _name(self, expr: str, tok: str) -> None:
        if tok == "" or tok == "-":
            raise UsageError(f"empty event name in '{expr}'", token=expr)
        if tok != tok.strip():
            raise UsageError(f"unexpected whitespace in event name '{tok}'", token=tok)
        if tok.startswith("-"):
            for i in self._resolve(tok[1:], tok):
                self.excluded.setdefault(i, tok)
        else:
            self.added |= self._resolve(tok, tok)

    def _tags(self, expr: str) -> None:
        name, op, raw = _split_op("event selection", expr)
        if name != "tag":
            raise _fail("event selection", expr,
                        "expected tag=<set>,... or <event>.data.<field>=<value>")
        if op != "=":
            raise _fail("event selection", expr, "'tag' supports only '=' (exclude with -<event>)")
        sets, _ = self._index()
        for s in _values("event selection", expr, raw):
            if s not in sets:
                raise UsageError(f"unknown event set '{s}'{_did_you_mean(s, sets)}", token=s)
            self.added |= sets[s]

    def _filter(self, expr: str) -> None:
        k = "filter"
        bad_op = _RETVAL_OP.match(expr)
        if bad_op is not None and bad_op.group(1) not in _OPS:
            raise _fail(k, expr, f"bad retval filter operator '{bad_op.group(1)}' "
                                 f"(valid: {' '.join(RETVAL_OPS)})")
        head, op, raw = _split_op(k, expr)
        if head.startswith("threat."):
            self.added |= threat_events(expr)
            return
        parts = head.split(".")
        if parts[1:2] in (["data"], ["args"]) and len(parts) > 3:
            parts = [*parts[:2], ".".join(parts[2:])]  # a field inside a structured argument
        if len(parts) < 2 or any(p == "" for p in head.split(".")) or len(parts) > 3:
            raise _fail(k, expr, "expected <event>.data.<field>, <event>.retval or "
                                 "<event>.scope.<field> followed by an operator and value")
        ev_name, what = parts[0], parts[1]
        if any(p != p.strip() for p in parts):
            raise _fail(k, expr, "unexpected whitespace")
        if "*" in ev_name or ev_name.startswith("-"):
            raise _fail(k, expr, "a filter applies to one event name, not a pattern or exclusion")
        ev = self._event(ev_name)
        if what in ("data", "args"):
            if len(parts) != 3:
                raise _fail(k, expr, f"expected {ev_name}.{what}.<field><op><value>")
            if op is None:
                raise _fail(k, expr, f"data field '{parts[2]}' needs an operator and a value")
            self.data.setdefault(ev.id, []).append(_data_filter(expr, ev, parts[2], op, raw))
        elif what == "retval":
            if len(parts) != 2:
                raise _fail(k, expr, f"expected {ev_name}.retval<op><value>")
            if op is None:
                raise _fail(k, expr, "retval needs an operator and a value")
            new = _numeric(k, expr, op, raw, I64[0], I64[1], clamp=False)
            old = self.retval.get(ev.id, NumericFilter())
            self.retval[ev.id] = _and_numeric(expr, "retval", old, new, kind=k)
        elif what in ("scope", "context"):  # 'context': older Tracee spelling
            if len(parts) != 3:
                raise _fail(k, expr, f"expected {ev_name}.scope.<field>")
            self.ctx.setdefault(ev.id, []).extend(_ctx_filter(expr, parts[2], op, raw))
        else:
            hint = _did_you_mean(what, ("data", "args", "retval", "scope"))
            raise _fail(k, expr, f"unknown filter kind '{what}'"
                                 + (hint or " (expected data, args, retval or scope)"))
        self.filtered.setdefault(ev.id, expr)

    def finish(self, default_ids: AbstractSet[int]) -> EventSelection:
        base = set(self.added) | set(self.filtered)
        if not base:
            base = set(default_ids)  # only exclusions (or nothing): start from the defaults
            if not self.excluded:
                return EventSelection(frozenset(base))
        for eid, tok in self.excluded.items():
            if eid in self.filtered:
                raise UsageError(f"'{self.filtered[eid]}' filters an event that '{tok}' excludes",
                                 token=tok)
        ids = base - set(self.excluded)
        if not ids:
            raise UsageError("no events left to trace after exclusions",
                             token=next(iter(self.excluded.values()), None))
        return EventSelection(frozenset(ids), self.data, self.retval, self.ctx)
