"""--scope / --events grammar: exact parsed structures, matching, and errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from pytracee.errors import UsageError
from pytracee.policy.filters import (
    CONTEXT_FIELDS,
    BoolFilter,
    ContainerScope,
    DataFilter,
    EventSelection,
    NumericFilter,
    Scope,
    StringFilter,
    parse_events,
    parse_scope,
)

NF = NumericFilter
SF = StringFilter


# --------------------------------------------------------------------------
# A tiny registry (names, ids, sets and types as in Tracee's table)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Arg:
    name: str
    type: str


@dataclass(frozen=True)
class Ev:
    id: int
    name: str
    sets: tuple[str, ...]
    args: tuple[Arg, ...] = ()
    internal: bool = False


def _args(spec: str) -> tuple[Arg, ...]:
    return tuple(Arg(n, t) for t, n in (f.split() for f in spec.split(";") if f.strip()))


EVENTS = [
    Ev(0, "read", ("syscalls", "fs", "fs_read_write"),
       _args("int32 fd; trace.Pointer buf; uint64 count; int64 returnValue")),
    Ev(2, "open", ("syscalls", "fs", "fs_file_ops"),
       _args("string pathname; int32 flags; uint16 mode; int64 returnValue")),
    Ev(3, "close", ("syscalls", "fs", "fs_file_ops"), _args("int32 fd; int64 returnValue")),
    Ev(35, "nanosleep", ("syscalls", "time", "time_timer"),
       _args("float64 req; float64 rem; int64 returnValue")),
    Ev(42, "connect", ("syscalls", "net", "net_sock"),
       _args("int32 sockfd; SockAddr addr; int32 addrlen; int64 returnValue")),
    Ev(59, "execve", ("syscalls", "proc", "proc_life"),
       _args("string pathname; []string argv; []string envp; int64 returnValue")),
    Ev(110, "getppid", ("syscalls", "proc", "proc_ids"), _args("int64 returnValue")),
    Ev(257, "openat", ("syscalls", "fs", "fs_file_ops"),
       _args("int32 dirfd; string pathname; int32 flags; uint16 mode; int64 returnValue")),
    Ev(715, "sched_process_exec", ("default", "proc"),
       _args("string cmdpath; string pathname; uint64 inode; []string argv; "
             "bool invoked_from_kernel; string prev_comm")),
    Ev(732, "security_file_open", ("lsm_hooks", "fs", "fs_file_ops"),
       _args("string pathname; int32 flags; uint32 dev; uint64 inode; uint64 ctime; "
             "string syscall_pathname")),
    Ev(2000, "syscall_table_check", (), _args("int32 syscall_id; uint64 syscall_address"),
       internal=True),
    Ev(2001, "hidden_internal", ("fs",), internal=True),  # must never leak in via a set
]


class FakeRegistry:
    def __init__(self, events: Iterable[Ev]) -> None:
        self._by_name = {e.name: e for e in events}

    def lookup(self, name: str) -> Ev | None:
        return self._by_name.get(name)

    def all_events(self) -> Iterable[Ev]:
        return self._by_name.values()


REG = FakeRegistry(EVENTS)
FS = {0, 2, 3, 257, 732}
PROC = {59, 110, 715}
DEFAULTS = {715, 732}


def events(*exprs: str, default: set[int] | None = None) -> EventSelection:
    return parse_events(list(exprs), REG, DEFAULTS if default is None else default)


# --------------------------------------------------------------------------
# NumericFilter / StringFilter / BoolFilter matching
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("flt", "value", "expected"), [
    (NF(), 123, True),
    (NF(equal={1, 2}), 1, True),
    (NF(equal={1, 2}), 3, False),
    (NF(not_equal={1, 2}), 2, False),
    (NF(not_equal={1, 2}), 3, True),
    (NF(min=5), 5, True),
    (NF(min=5), 4, False),
    (NF(max=5), 5, True),
    (NF(max=5), 6, False),
    (NF(min=1, max=3), 2, True),
    (NF(min=1, max=3), 0, False),
    (NF(min=1, max=3), 4, False),
    (NF(equal={5, 50}, max=10), 50, False),   # equality and range AND
    (NF(equal={5, 50}, max=10), 5, True),
    (NF(min=0, not_equal={7}), 7, False),
    (NF(min=-5, max=-1), -3, True),           # retval ranges are negative
])
def test_numeric_matches(flt: NumericFilter, value: int, expected: bool) -> None:
    assert flt.matches(value) is expected


@pytest.mark.parametrize(("flt", "value", "expected"), [
    (SF(), "anything", True),
    (SF(equal={"bash"}), "bash", True),
    (SF(equal={"bash"}), "bas", False),
    (SF(not_equal={"bash"}), "bash", False),
    (SF(not_equal={"bash"}), "zsh", True),
    (SF(prefixes={"/etc/"}), "/etc/passwd", True),
    (SF(prefixes={"/etc/"}), "/tmp/etc/", False),
    (SF(suffixes={"shadow"}), "/etc/shadow", True),
    (SF(suffixes={"shadow"}), "/etc/shadow-", False),
    (SF(contains={"ssh"}), "/home/u/.ssh/id", True),
    (SF(contains={"ssh"}), "/home/u/id", False),
    (SF(not_prefixes={"/proc"}), "/proc/1/maps", False),
    (SF(not_suffixes={".so"}), "/lib/x.so", False),
    (SF(not_contains={"tmp"}), "/var/tmp/x", False),
    (SF(not_contains={"tmp"}), "/var/log/x", True),
    (SF(equal={"a"}, prefixes={"b"}, suffixes={"c"}, contains={"d"}), "xdx", True),  # any positive
    (SF(equal={"a"}, prefixes={"b"}, suffixes={"c"}, contains={"d"}), "xyz", False),
    (SF(prefixes={"/etc/"}, not_equal={"/etc/shadow"}), "/etc/shadow", False),  # != always holds
    (SF(prefixes={"/etc/"}, not_equal={"/etc/shadow"}), "/etc/passwd", True),
    (SF(equal={""}), "", True),
])
def test_string_matches(flt: StringFilter, value: str, expected: bool) -> None:
    assert flt.matches(value) is expected


def test_filters_are_immutable_and_normalised() -> None:
    f = NF(equal={1})
    assert isinstance(f.equal, frozenset)
    with pytest.raises(AttributeError):
        f.min = 3  # type: ignore[misc]
    assert SF(equal={"a"}) == SF(equal=frozenset({"a"}))
    assert repr(NF(min=1)) == "NumericFilter(min=1)"
    assert repr(SF(equal={"b", "a"})) == "StringFilter(equal={'a', 'b'})"


@pytest.mark.parametrize(("flt", "empty"), [
    (NF(), True), (NF(min=0), False), (NF(not_equal={1}), False),
    (SF(), True), (SF(not_contains={"x"}), False), (SF(prefixes={"x"}), False),
])
def test_empty(flt: NumericFilter | StringFilter, empty: bool) -> None:
    assert flt.empty() is empty


@pytest.mark.parametrize(("flt", "value", "expected"), [
    (BoolFilter(True), True, True), (BoolFilter(True), False, False),
    (BoolFilter(False), False, True), (BoolFilter(True), 1, True), (BoolFilter(False), "", True),
])
def test_bool_matches(flt: BoolFilter, value: object, expected: bool) -> None:
    assert flt.matches(value) is expected


# --------------------------------------------------------------------------
# --scope: good input -> exact structure
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("exprs", "expected"), [
    ([], Scope()),
    # numeric: every operator on pid/uid/tid, '=' and '!=' on namespaces
    (["pid=1,2"], Scope(pid=NF(equal={1, 2}))),
    (["pid!=1,2"], Scope(pid=NF(not_equal={1, 2}))),
    (["pid>5"], Scope(pid=NF(min=6))),
    (["pid>=5"], Scope(pid=NF(min=5))),
    (["pid<5"], Scope(pid=NF(max=4))),
    (["pid<=5"], Scope(pid=NF(max=5))),
    (["pid=0x10"], Scope(pid=NF(equal={16}))),
    (["tid=7"], Scope(tid=NF(equal={7}))),
    (["tid>7"], Scope(tid=NF(min=8))),
    (["uid>1000"], Scope(uid=NF(min=1001))),
    (["uid<=5"], Scope(uid=NF(max=5))),
    (["uid>=1000", "uid<2000"], Scope(uid=NF(min=1000, max=1999))),
    (["uid>10", "uid>20"], Scope(uid=NF(min=21))),            # AND: tighter bound wins
    (["uid<10", "uid<20"], Scope(uid=NF(max=9))),
    (["uid>-1"], Scope(uid=NF(min=0))),                       # Tracee's own example
    (["uid<99999999999"], Scope(uid=NF(max=2**32 - 1))),      # clamped to the uid range
    (["uid>0", "uid!=1000"], Scope(uid=NF(min=1, not_equal={1000}))),
    (["pid=5", "pid>3"], Scope(pid=NF(equal={5}, min=4))),
    (["pid=1,2,3", "pid=2,3,4"], Scope(pid=NF(equal={2, 3}))),  # AND of two OR-lists
    (["pid=1,2", "pid!=2"], Scope(pid=NF(equal={1, 2}, not_equal={2}))),
    (["mntns=4026531840"], Scope(mntns=NF(equal={4026531840}))),
    (["mntns!=4026531840"], Scope(mntns=NF(not_equal={4026531840}))),
    (["pidns=4026531836"], Scope(pidns=NF(equal={4026531836}))),
    (["pidns!=4026531836,4026531837"], Scope(pidns=NF(not_equal={4026531836, 4026531837}))),
    # strings: = and != with every pattern form
    (["comm=bash"], Scope(comm=SF(equal={"bash"}))),
    (["comm=bash,zsh"], Scope(comm=SF(equal={"bash", "zsh"}))),
    (["comm!=bash,zsh"], Scope(comm=SF(not_equal={"bash", "zsh"}))),
    (["comm=ba*"], Scope(comm=SF(prefixes={"ba"}))),
    (["comm=*sh"], Scope(comm=SF(suffixes={"sh"}))),
    (["comm=*as*"], Scope(comm=SF(contains={"as"}))),
    (["comm=bash,ba*,*sh,*as*"],
     Scope(comm=SF(equal={"bash"}, prefixes={"ba"}, suffixes={"sh"}, contains={"as"}))),
    (["comm!=ba*,*sh,*x*"], Scope(comm=SF(not_prefixes={"ba"}, not_suffixes={"sh"},
                                          not_contains={"x"}))),
    (["comm=123456789012345"], Scope(comm=SF(equal={"123456789012345"}))),  # 15 bytes fits
    (["comm=bash,zsh", "comm=zsh,fish"], Scope(comm=SF(equal={"zsh"}))),
    (["comm=bash,dash", "comm=ba*"], Scope(comm=SF(equal={"bash"}))),
    (["comm=ba*", "comm!=bash"], Scope(comm=SF(prefixes={"ba"}, not_equal={"bash"}))),
    (["comm!=a", "comm!=b*"], Scope(comm=SF(not_equal={"a"}, not_prefixes={"b"}))),
    (["uts=node1"], Scope(uts=SF(equal={"node1"}))),
    (["uts!=ab*"], Scope(uts=SF(not_prefixes={"ab"}))),
    # executable and its aliases; prefixes kept verbatim
    (["executable=/usr/bin/ls"], Scope(executable=SF(equal={"/usr/bin/ls"}))),
    (["exec=host:/usr/bin/ls"], Scope(executable=SF(equal={"host:/usr/bin/ls"}))),
    (["binary=4026532447:/usr/bin/ls"], Scope(executable=SF(equal={"4026532447:/usr/bin/ls"}))),
    (["bin!=/bin/sh,/bin/bash"], Scope(executable=SF(not_equal={"/bin/sh", "/bin/bash"}))),
    # containers (parsed, not yet applied)
    (["container"], Scope(container=ContainerScope(only=True))),
    (["not-container"], Scope(container=ContainerScope(only=False))),
    (["!container"], Scope(container=ContainerScope(only=False))),
    (["container=new"], Scope(container=ContainerScope(new=True))),
    (["container=started"], Scope(container=ContainerScope(started=True))),
    (["container", "container=new"], Scope(container=ContainerScope(only=True, new=True))),
    (["container=ab355bc4dd554"], Scope(container=ContainerScope(ids=SF(equal={"ab355bc4dd554"})))),
    (["container=ab3*"], Scope(container=ContainerScope(ids=SF(prefixes={"ab3"})))),
    (["container!=ab3,cd4"], Scope(container=ContainerScope(ids=SF(not_equal={"ab3", "cd4"})))),
    (["not-container", "container!=abc"],
     Scope(container=ContainerScope(only=False, ids=SF(not_equal={"abc"})))),
    # special words
    (["follow"], Scope(follow=True)),
    (["global"], Scope(global_=True)),
    (["pid=new"], Scope(new_pid=True)),
    (["pid=new", "pid=5"], Scope(new_pid=True, pid=NF(equal={5}))),
    (["tree=476164"], Scope(tree=frozenset({476164}))),
    (["tree=3212,5200", "tree!=3215"], Scope(tree=frozenset({3212, 5200}),
                                             not_tree=frozenset({3215}))),
    (["tree!=1", "tree!=2"], Scope(not_tree=frozenset({1, 2}))),
    (["comm=bash", "follow"], Scope(comm=SF(equal={"bash"}), follow=True)),
])
def test_scope_parses(exprs: list[str], expected: Scope) -> None:
    assert parse_scope(exprs) == expected


# --------------------------------------------------------------------------
# --scope: bad input -> UsageError naming the expression
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("exprs", "message"), [
    ([""], "empty scope expression"),
    ([" comm=bash"], "unexpected whitespace"),
    (["comm=bash "], "unexpected whitespace"),
    (["comm=a, b"], "unexpected whitespace in value ' b'"),
    (["foo=1"], "invalid scope 'foo=1': unknown scope field 'foo' (did you mean 'follow'?)"),
    (["xyzzy"], "invalid scope 'xyzzy': unknown scope field 'xyzzy' (known: bin, binary, comm, "
     "container, exec, executable, follow, global, mntns, not-container, pid, pidns, tid, tree, "
     "uid, uts)"),
    (["=5"], "missing field name"),
    (["pid!5"], "'!' must be followed by '='"),
    (["comm==bash"], "unexpected operator '=='"),
    (["pid=>5"], "unexpected operator '=>'"),
    # operator not valid for the field type
    (["comm>x"], "operator '>' needs a numeric field"),
    (["comm<x"], "operator '<' needs a numeric field"),
    (["comm>=x"], "operator '>=' needs a numeric field"),
    (["uts<=x"], "operator '<=' needs a numeric field"),
    (["executable>/x"], "operator '>' needs a numeric field"),
    (["container>abc"], "operator '>' needs a numeric field"),
    (["mntns<5"], "operator '<' is not supported for 'mntns'"),
    (["mntns>=5"], "operator '>=' is not supported for 'mntns'"),
    (["pidns>5"], "operator '>' is not supported for 'pidns'"),
    (["pidns<=5"], "operator '<=' is not supported for 'pidns'"),
    (["tree>5"], "operator '>' is not supported for 'tree'"),
    # bad numbers
    (["pid=abc"], "'abc' is not an integer"),
    (["uid=1.5"], "'1.5' is not an integer"),
    (["uid>x"], "'x' is not an integer"),
    (["mntns=0755"], "leading zero"),
    (["pid=-1"], "-1 is out of range"),
    (["tree=-3"], "-3 is out of range"),
    (["pid=99999999"], "99999999 is out of range"),
    (["uid=4294967296"], "4294967296 is out of range"),
    (["pid<0"], "no value in 0..4194304 is < 0"),
    (["uid>4294967295"], "no value in 0..4294967295 is > 4294967295"),
    (["pid>1,2"], "operator '>' takes a single value"),
    # empty values
    (["pid="], "empty value"),
    (["comm="], "empty value"),
    (["uts!="], "empty value"),
    (["pid=1,,2"], "empty value in comma list"),
    (["comm=bash,"], "empty value in comma list"),
    # string values
    (["comm=averyveryverylongname"], "longer than 15 bytes"),
    (["comm=averyveryverylong*"], "longer than 15 bytes"),
    (["comm=*"], "'*' would match everything"),
    (["comm!=**"], "'**' would match everything"),
    (["comm=a*b"], "'*' is allowed only at the start or end"),
    (["uts=" + "x" * 65], "longer than 64 bytes"),
    (["executable=ls"], "'ls' is not an absolute path"),
    (["exec=foo:/bin/ls"], "'foo:/bin/ls' is not an absolute path"),
    (["executable=/usr/*"], "patterns are not supported for executable"),
    # contradictions between separate expressions (they AND)
    (["pid=1", "pid=2"], "e.g. pid=1,2"),
    (["uid>10", "uid<5"], "no uid can satisfy this"),
    (["pid=5", "pid!=5"], "no pid can satisfy this"),
    (["comm=bash", "comm=zsh"], "e.g. comm=a,b"),
    (["comm=bash", "comm!=bash"], "no comm can satisfy this"),
    (["comm=ba*", "comm=*sh"], "put the alternatives in one expression"),
    (["tree=1", "tree=2"], "e.g. tree=1,2"),
    (["tree=5", "tree!=5"], "every tree root is also excluded"),
    # special values and words
    (["pid=new,5"], "'pid=new', alone"),
    (["pid!=new"], "'pid=new', alone"),
    (["container=new,abc"], "container=new or container=started, alone"),
    (["container!=started"], "container=new or container=started, alone"),
    (["container!=new"], "container=new or container=started, alone"),
    (["container", "not-container"], "conflicts with an earlier container scope"),
    (["not-container", "container"], "conflicts with 'not-container'"),
    (["not-container", "container=new"], "conflicts with 'not-container'"),
    (["not-container", "container=abc"], "conflicts with 'not-container'"),
    (["container=abc", "not-container"], "conflicts with an earlier container scope"),
    (["follow=1"], "'follow' takes no value"),
    (["global=yes"], "'global' takes no value"),
    (["not-container=1"], "'not-container' takes no value"),
    (["pid"], "'pid' needs an operator and a value"),
    (["comm"], "'comm' needs an operator and a value"),
    (["not-follow"], "only 'container' can be negated"),
    (["!pid"], "only 'container' can be negated"),
    (["global", "comm=x"], "'global' cannot be combined"),
])
def test_scope_errors(exprs: list[str], message: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_scope(exprs)
    assert message in str(ei.value)
    assert ei.value.token is not None
    assert ei.value.token in str(ei.value)  # the message names the bad token


def test_scope_error_format() -> None:
    with pytest.raises(UsageError) as ei:
        parse_scope(["comm>x"])
    assert str(ei.value) == "invalid scope 'comm>x': operator '>' needs a numeric field"
    assert ei.value.token == "comm>x"


def test_scope_error_names_the_second_expression() -> None:
    with pytest.raises(UsageError) as ei:
        parse_scope(["uid>10", "uid<5"])
    assert ei.value.token == "uid<5"


def test_scope_filters_match_like_the_kernel_will() -> None:
    s = parse_scope(["uid>=1000", "uid!=1001", "comm=ba*", "comm!=bat"])
    assert [u for u in (999, 1000, 1001, 1002) if s.uid.matches(u)] == [1000, 1002]
    assert [c for c in ("bash", "bat", "zsh") if s.comm.matches(c)] == ["bash"]


# --------------------------------------------------------------------------
# --events: selection
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("exprs", "default", "expected"), [
    ([], DEFAULTS, DEFAULTS),
    ([], set(), set()),
    (["openat"], DEFAULTS, {257}),
    (["openat,close"], DEFAULTS, {257, 3}),
    (["openat", "close"], DEFAULTS, {257, 3}),
    (["open*"], DEFAULTS, {2, 257}),
    (["*at"], DEFAULTS, {257}),
    (["*ppi*"], DEFAULTS, {110}),
    (["tag=fs"], DEFAULTS, FS),
    (["tag=fs,proc"], DEFAULTS, FS | PROC),
    (["fs"], DEFAULTS, FS),                        # v0.24 bare set name
    (["fs,execve"], DEFAULTS, FS | {59}),
    (["fs", "-open*"], DEFAULTS, FS - {2, 257}),
    (["fs", "-open,-openat"], DEFAULTS, FS - {2, 257}),
    (["-openat"], {257, 715}, {715}),              # only exclusions: start from defaults
    (["-open*"], {2, 257, 715}, {715}),
    (["-fs"], DEFAULTS, {715}),
    (["openat", "-openat", "close"], DEFAULTS, {3}),
    (["-openat", "openat"], DEFAULTS, set()),      # exclusions apply after additions
    (["openat.data.pathname=/etc/*"], DEFAULTS, {257}),   # a filter selects its event
    (["close.retval!=0", "-openat"], DEFAULTS, {3}),
    (["security_file_open.scope.container"], DEFAULTS, {732}),
])
def test_event_selection(exprs: list[str], default: set[int], expected: set[int]) -> None:
    if not expected and exprs:
        with pytest.raises(UsageError, match="no events left"):
            events(*exprs, default=default)
        return
    assert events(*exprs, default=default).event_ids == expected


def test_internal_events_never_selected_by_set_or_glob() -> None:
    assert 2001 not in events("fs").event_ids
    assert 2000 not in events("*").event_ids


# --------------------------------------------------------------------------
# --events: filters -> exact structure
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "eid", "expected"), [
    ("openat.data.pathname=/etc/*", 257, DataFilter("pathname", "=", ("/etc/*",), "string")),
    ("openat.args.pathname=/tmp/1,/bin/ls", 257,
     DataFilter("pathname", "=", ("/tmp/1", "/bin/ls"), "string")),
    ("openat.data.pathname!=/tmp/1,/bin/ls", 257,
     DataFilter("pathname", "!=", ("/tmp/1", "/bin/ls"), "string")),
    ("openat.data.pathname=*shadow", 257, DataFilter("pathname", "=", ("*shadow",), "string")),
    ("openat.data.pathname=*ssh*", 257, DataFilter("pathname", "=", ("*ssh*",), "string")),
    ("close.data.fd=5", 3, DataFilter("fd", "=", (5,), "int")),
    ("close.data.fd=5,6", 3, DataFilter("fd", "=", (5, 6), "int")),
    ("close.data.fd!=0,1,2", 3, DataFilter("fd", "!=", (0, 1, 2), "int")),
    ("close.data.fd=-100", 3, DataFilter("fd", "=", (-100,), "int")),
    ("read.data.count>100", 0, DataFilter("count", ">", (100,), "int")),
    ("read.data.count>=100", 0, DataFilter("count", ">=", (100,), "int")),
    ("read.data.count<100", 0, DataFilter("count", "<", (100,), "int")),
    ("read.data.count<=100", 0, DataFilter("count", "<=", (100,), "int")),
    ("openat.data.mode=0o644", 257, DataFilter("mode", "=", (420,), "int")),
    ("read.data.buf=0x7f00", 0, DataFilter("buf", "=", (0x7F00,), "int")),
    ("execve.data.argv=-la", 59, DataFilter("argv", "=", ("-la",), "string", many=True)),
    ("sched_process_exec.data.invoked_from_kernel=true", 715,
     DataFilter("invoked_from_kernel", "=", (True,), "bool")),
    ("sched_process_exec.data.invoked_from_kernel!=0", 715,
     DataFilter("invoked_from_kernel", "!=", (False,), "bool")),
    ("nanosleep.data.req>1.5", 35, DataFilter("req", ">", (1.5,), "float")),
    ("nanosleep.data.req=2", 35, DataFilter("req", "=", (2.0,), "float")),
    ("openat.data.returnValue<0", 257, DataFilter("returnValue", "<", (0,), "int")),
])
def test_data_filter_structure(expr: str, eid: int, expected: DataFilter) -> None:
    sel = events(expr)
    assert sel.data_filters == {eid: [expected]}
    assert sel.event_ids == {eid}
    assert sel.retval_filters == {} and sel.scope_filters == {}


def test_data_filters_on_one_event_accumulate() -> None:
    sel = events("openat.data.pathname=/etc/*", "openat.data.pathname!=/etc/shadow",
                 "openat.data.flags=0")
    assert sel.data_filters == {257: [
        DataFilter("pathname", "=", ("/etc/*",)),
        DataFilter("pathname", "!=", ("/etc/shadow",)),
        DataFilter("flags", "=", (0,), "int"),
    ]}


@pytest.mark.parametrize(("exprs", "expected"), [
    (["close.retval=0"], {3: NF(equal={0})}),
    (["close.retval!=0"], {3: NF(not_equal={0})}),
    (["openat.retval<0"], {257: NF(max=-1)}),
    (["openat.retval<=0"], {257: NF(max=0)}),
    (["openat.retval>0"], {257: NF(min=1)}),
    (["openat.retval>=3"], {257: NF(min=3)}),
    (["openat.retval=-2,-13"], {257: NF(equal={-2, -13})}),
    (["openat.retval>=-13", "openat.retval<0"], {257: NF(min=-13, max=-1)}),
    (["openat.retval<0", "close.retval!=0"], {257: NF(max=-1), 3: NF(not_equal={0})}),
])
def test_retval_structure(exprs: list[str], expected: dict[int, NumericFilter]) -> None:
    assert events(*exprs).retval_filters == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("openat.scope.processName=ls", [("processName", SF(equal={"ls"}))]),
    ("openat.scope.comm=ls,cat", [("processName", SF(equal={"ls", "cat"}))]),
    ("openat.scope.comm!=ba*", [("processName", SF(not_prefixes={"ba"}))]),
    ("openat.context.processName=ls", [("processName", SF(equal={"ls"}))]),  # old spelling
    ("openat.scope.pid=1,2", [("processId", NF(equal={1, 2}))]),
    ("openat.scope.p>100", [("processId", NF(min=101))]),
    ("openat.scope.processId<=100", [("processId", NF(max=100))]),
    ("openat.scope.tid!=5", [("threadId", NF(not_equal={5}))]),
    ("openat.scope.threadId>=5", [("threadId", NF(min=5))]),
    ("openat.scope.ppid=1", [("parentProcessId", NF(equal={1}))]),
    ("openat.scope.parentProcessId<2", [("parentProcessId", NF(max=1))]),
    ("openat.scope.hostTid=9", [("hostThreadId", NF(equal={9}))]),
    ("openat.scope.hostThreadId=9", [("hostThreadId", NF(equal={9}))]),
    ("openat.scope.hostPid=9", [("hostProcessId", NF(equal={9}))]),
    ("openat.scope.hostProcessId=9", [("hostProcessId", NF(equal={9}))]),
    ("openat.scope.hostParentProcessId=9", [("hostParentProcessId", NF(equal={9}))]),
    ("openat.scope.uid>=1000", [("userId", NF(min=1000))]),
    ("openat.scope.userId=0", [("userId", NF(equal={0}))]),
    ("openat.scope.mntns=4026531840", [("mountNamespace", NF(equal={4026531840}))]),
    ("openat.scope.mountNamespace!=1", [("mountNamespace", NF(not_equal={1}))]),
    ("openat.scope.pidns=4026531836", [("pidNamespace", NF(equal={4026531836}))]),
    ("openat.scope.pidNamespace=1", [("pidNamespace", NF(equal={1}))]),
    ("openat.scope.hostName=node*", [("hostName", SF(prefixes={"node"}))]),
    ("openat.scope.cgroupId=123", [("cgroupId", NF(equal={123}))]),
    ("openat.scope.syscall=openat", [("syscall", SF(equal={"openat"}))]),
    ("openat.scope.timestamp>10", [("timestamp", NF(min=11))]),
    ("openat.scope.processorId=0", [("processorId", NF(equal={0}))]),
    ("openat.scope.containerId=abc*", [("containerId", SF(prefixes={"abc"}))]),
    ("openat.scope.containerImage=ubuntu:*", [("containerImage", SF(prefixes={"ubuntu:"}))]),
    ("openat.scope.containerImageDigest=sha256:1", [("containerImageDigest",
                                                      SF(equal={"sha256:1"}))]),
    ("openat.scope.containerName!=db", [("containerName", SF(not_equal={"db"}))]),
    ("openat.scope.podName=web-*", [("podName", SF(prefixes={"web-"}))]),
    ("openat.scope.podNamespace=default", [("podNamespace", SF(equal={"default"}))]),
    ("openat.scope.podUid=u1", [("podUid", SF(equal={"u1"}))]),
    ("openat.scope.podSandbox", [("podSandbox", BoolFilter(True))]),
    ("openat.scope.podSandbox=false", [("podSandbox", BoolFilter(False))]),
    ("openat.scope.container", [("container", BoolFilter(True))]),
    ("openat.scope.container!=true", [("container", BoolFilter(False))]),
    ("openat.scope.host", [("container", BoolFilter(False))]),
    ("openat.scope.not-container", [("container", BoolFilter(False))]),
    ("openat.scope.container=started", [("container", BoolFilter(True)),
                                        ("containerStarted", BoolFilter(True))]),
])
def test_event_scope_structure(expr: str, expected: list[tuple[str, object]]) -> None:
    sel = events(expr)
    assert sel.scope_filters == {257: expected}
    assert {name for name, _ in expected} <= CONTEXT_FIELDS


# --------------------------------------------------------------------------
# --events: bad input
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("exprs", "message", "token"), [
    ([""], "empty --events value", ""),
    (["openat, close"], "unexpected whitespace in event name ' close'", " close"),
    (["openat,,close"], "empty event name in 'openat,,close'", "openat,,close"),
    (["openat,-"], "empty event name", "openat,-"),
    (["opnat"], "unknown event 'opnat' (did you mean 'openat'?)", "opnat"),
    (["-opnat"], "unknown event 'opnat'", "opnat"),
    (["zzzz"], "unknown event 'zzzz'", "zzzz"),
    (["zzz*"], "pattern 'zzz*' matches no event", "zzz*"),
    (["-zzz*"], "pattern 'zzz*' matches no event", "-zzz*"),
    (["syscall_table_check"], "event 'syscall_table_check' is internal", "syscall_table_check"),
    (["tag=nosuch"], "unknown event set 'nosuch'", "nosuch"),
    (["tag=fs,"], "empty value in comma list", "tag=fs,"),
    (["tag="], "empty value", "tag="),
    (["tag!=fs"], "'tag' supports only '='", "tag!=fs"),
    (["event=openat"], "expected tag=<set>", "event=openat"),
    (["threat.severity>=extreme"], "expected threat.severity with", "threat.severity>=extreme"),
    (["threat.colour=red"], "expected threat.severity, threat.mitre.technique",
     "threat.colour=red"),
    (["threat.mitre.technique=T9999"], "no loaded signature matches",
     "threat.mitre.technique=T9999"),
    # malformed filter expressions
    (["openat,close.retval=0"], "a filter must be alone in its --events value",
     "openat,close.retval=0"),
    (["openat.data="], "expected openat.data.<field><op><value>", "openat.data="),
    ([".data.x=1"], "expected <event>.data.<field>", ".data.x=1"),
    (["openat..x=1"], "expected <event>.data.<field>", "openat..x=1"),
    (["openat.data.a.b=1"], "event 'openat' has no data field 'a'", "openat.data.a.b=1"),
    (["openat.foo.x=1"], "unknown filter kind 'foo'", "openat.foo.x=1"),
    (["openat.data.pathname"], "needs an operator and a value", "openat.data.pathname"),
    (["openat.retval"], "retval needs an operator and a value", "openat.retval"),
    (["openat.retval.x=1"], "expected openat.retval<op><value>", "openat.retval.x=1"),
    (["openat.scope=1"], "expected openat.scope.<field>", "openat.scope=1"),
    (["openat .data.x=1"], "unexpected whitespace", "openat .data.x=1"),
    (["open*.data.pathname=/x"], "not a pattern or exclusion", "open*.data.pathname=/x"),
    (["-openat.data.pathname=/x"], "not a pattern or exclusion", "-openat.data.pathname=/x"),
    (["fs.data.pathname=/x"], "'fs' is an event set", "fs"),
    (["nosuch.data.x=1"], "unknown event 'nosuch'", "nosuch"),
    (["syscall_table_check.data.syscall_id=1"], "is internal", "syscall_table_check"),
    (["openat.data.pathname!5"], "'!' must be followed by '='", "openat.data.pathname!5"),
    (["openat.data.pathname==/x"], "unexpected operator '=='", "openat.data.pathname==/x"),
    # data fields
    (["openat.data.nosuch=1"],
     "event 'openat' has no data field 'nosuch' (fields: dirfd, pathname, flags, mode, "
     "returnValue)", "openat.data.nosuch=1"),
    (["getppid.data.x=1"], "has no data field 'x'", "getppid.data.x=1"),
    (["connect.data.addr=1.2.3.4"], "has type SockAddr, which cannot be filtered",
     "connect.data.addr=1.2.3.4"),
    (["openat.data.pathname>x"], "operator '>' needs a numeric field", "openat.data.pathname>x"),
    (["openat.data.pathname<x"], "operator '<' needs a numeric field", "openat.data.pathname<x"),
    (["openat.data.pathname>=x"], "operator '>=' needs a numeric field",
     "openat.data.pathname>=x"),
    (["openat.data.pathname<=x"], "operator '<=' needs a numeric field",
     "openat.data.pathname<=x"),
    (["execve.data.argv>1"], "operator '>' needs a numeric field", "execve.data.argv>1"),
    (["openat.data.pathname="], "empty value", "openat.data.pathname="),
    (["openat.data.pathname=/a,"], "empty value in comma list", "openat.data.pathname=/a,"),
    (["openat.data.pathname=*"], "would match everything", "openat.data.pathname=*"),
    (["openat.data.pathname=/a*b"], "allowed only at the start or end",
     "openat.data.pathname=/a*b"),
    (["close.data.fd=abc"], "'abc' is not an integer", "close.data.fd=abc"),
    (["close.data.fd=1.5"], "'1.5' is not an integer", "close.data.fd=1.5"),
    (["close.data.fd>abc"], "'abc' is not an integer", "close.data.fd>abc"),
    (["close.data.fd="], "empty value", "close.data.fd="),
    (["close.data.fd=5000000000"], "5000000000 is out of range for int32",
     "close.data.fd=5000000000"),
    (["openat.data.mode=-1"], "-1 is out of range for uint16", "openat.data.mode=-1"),
    (["openat.data.mode=0644"], "leading zero", "openat.data.mode=0644"),
    (["close.data.fd>1,2"], "operator '>' takes a single value", "close.data.fd>1,2"),
    (["nanosleep.data.req=abc"], "is a number", "nanosleep.data.req=abc"),
    (["nanosleep.data.req<1,2"], "takes a single value", "nanosleep.data.req<1,2"),
    (["sched_process_exec.data.invoked_from_kernel=maybe"], "'maybe' is not a boolean",
     "sched_process_exec.data.invoked_from_kernel=maybe"),
    (["sched_process_exec.data.invoked_from_kernel>0"], "operator '>' needs a numeric field",
     "sched_process_exec.data.invoked_from_kernel>0"),
    # retval
    (["openat.retval=abc"], "'abc' is not an integer", "openat.retval=abc"),
    (["openat.retval="], "empty value", "openat.retval="),
    (["openat.retval>1,2"], "takes a single value", "openat.retval>1,2"),
    (["openat.retval=0", "openat.retval=1"], "no retval can satisfy this", "openat.retval=1"),
    (["openat.retval>0", "openat.retval<0"], "no retval can satisfy this", "openat.retval<0"),
    # per-event scope
    (["openat.scope.nosuch=1"], "unknown scope field 'nosuch'", "openat.scope.nosuch=1"),
    (["openat.scope.comm>x"], "operator '>' needs a numeric field", "openat.scope.comm>x"),
    (["openat.scope.pid=x"], "'x' is not an integer", "openat.scope.pid=x"),
    (["openat.scope.pid="], "empty value", "openat.scope.pid="),
    (["openat.scope.processName=averyveryverylongname"], "longer than 15 bytes",
     "openat.scope.processName=averyveryverylongname"),
    (["openat.scope.container=1x"], "'container' is a flag", "openat.scope.container=1x"),
    (["openat.scope.host>1"], "'host' is a flag", "openat.scope.host>1"),
    (["openat.scope.comm"], "'comm' needs an operator and a value", "openat.scope.comm"),
    # selection left empty or contradicting filters
    (["openat", "-openat"], "no events left to trace after exclusions", "-openat"),
    (["-proc"], "no events left", "-proc"),
    (["openat.data.pathname=/x", "-open*"],
     "'openat.data.pathname=/x' filters an event that '-open*' excludes", "-open*"),
])
def test_event_errors(exprs: list[str], message: str, token: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_events(exprs, REG, {715})
    assert message in str(ei.value)
    assert ei.value.token == token


def test_event_error_formats() -> None:
    with pytest.raises(UsageError) as ei:
        events("openat.data.pathname>x")
    assert str(ei.value) == ("invalid filter 'openat.data.pathname>x': "
                             "operator '>' needs a numeric field")
    with pytest.raises(UsageError) as ei:
        events("qqqqqq")
    assert str(ei.value) == "unknown event 'qqqqqq'"


# --------------------------------------------------------------------------
# accepts() / needs_userland_check()
# --------------------------------------------------------------------------

def _accepts(sel: EventSelection, eid: int, args: dict[str, object] | None = None,
             retval: int = 0, ctx: dict[str, object] | None = None) -> bool:
    a, c = args or {}, ctx or {}
    return sel.accepts(eid, a.__getitem__, retval, c.__getitem__)


@pytest.mark.parametrize(("exprs", "eid", "args", "expected"), [
    (["openat.data.pathname=/etc/*"], 257, {"pathname": "/etc/passwd"}, True),
    (["openat.data.pathname=/etc/*"], 257, {"pathname": "/tmp/etc/x"}, False),
    (["openat.data.pathname=*shadow"], 257, {"pathname": "/etc/shadow"}, True),
    (["openat.data.pathname=*shadow"], 257, {"pathname": "/etc/shadow-"}, False),
    (["openat.data.pathname=*ssh*"], 257, {"pathname": "/root/.ssh/id"}, True),
    (["openat.data.pathname=/tmp/1,/bin/ls"], 257, {"pathname": "/bin/ls"}, True),
    (["openat.data.pathname=/tmp/1,/bin/ls"], 257, {"pathname": "/bin/cat"}, False),
    (["openat.data.pathname!=/tmp/1,/bin/ls"], 257, {"pathname": "/bin/ls"}, False),
    (["openat.data.pathname!=/tmp/1,/bin/ls"], 257, {"pathname": "/bin/cat"}, True),
    (["openat.data.pathname!=/proc/*"], 257, {"pathname": "/proc/1/maps"}, False),
    (["openat.data.pathname=/etc/*", "openat.data.pathname!=/etc/shadow"], 257,
     {"pathname": "/etc/shadow"}, False),
    (["openat.data.pathname=/etc/*", "openat.data.pathname!=/etc/shadow"], 257,
     {"pathname": "/etc/passwd"}, True),
    (["openat.data.pathname=/etc/x"], 257, {"pathname": b"/etc/x"}, True),  # bytes decoded
    (["openat.data.pathname=/etc/x"], 257, {}, False),                      # missing arg
    (["close.data.fd=5"], 3, {"fd": 5}, True),
    (["close.data.fd=5"], 3, {"fd": 6}, False),
    (["close.data.fd!=0,1,2"], 3, {"fd": 1}, False),
    (["close.data.fd!=0,1,2"], 3, {"fd": 3}, True),
    (["read.data.count>100"], 0, {"count": 101}, True),
    (["read.data.count>100"], 0, {"count": 100}, False),
    (["read.data.count>=100"], 0, {"count": 100}, True),
    (["read.data.count<100"], 0, {"count": 100}, False),
    (["read.data.count<=100"], 0, {"count": 100}, True),
    (["read.data.count>100"], 0, {"count": "not a number"}, False),
    (["read.data.buf=0x10"], 0, {"buf": 16}, True),
    (["read.data.buf=0x10"], 0, {"buf": "0x10"}, True),   # pointer rendered as hex text
    (["read.data.buf>0x10"], 0, {"buf": "0x11"}, True),
    (["nanosleep.data.req>1.5"], 35, {"req": 2.0}, True),
    (["nanosleep.data.req>1.5"], 35, {"req": 1.0}, False),
    (["sched_process_exec.data.invoked_from_kernel=true"], 715,
     {"invoked_from_kernel": True}, True),
    (["sched_process_exec.data.invoked_from_kernel=true"], 715,
     {"invoked_from_kernel": False}, False),
    (["sched_process_exec.data.invoked_from_kernel!=true"], 715,
     {"invoked_from_kernel": False}, True),
    (["execve.data.argv=-la"], 59, {"argv": ["ls", "-la"]}, True),
    (["execve.data.argv=-la"], 59, {"argv": ["ls"]}, False),
    (["execve.data.argv=-la"], 59, {"argv": []}, False),
    (["execve.data.argv!=-la"], 59, {"argv": ["ls", "-la"]}, False),
    (["execve.data.argv!=-la"], 59, {"argv": ["ls"]}, True),
    (["execve.data.argv!=-la"], 59, {"argv": []}, True),
    (["execve.data.envp=LD_PRELOAD=*"], 59, {"envp": ["A=1", "LD_PRELOAD=/x.so"]}, True),
])
def test_accepts_data(exprs: list[str], eid: int, args: dict[str, object],
                      expected: bool) -> None:
    sel = events(*exprs)
    assert sel.needs_userland_check(eid)
    assert _accepts(sel, eid, args) is expected


@pytest.mark.parametrize(("exprs", "eid", "retval", "expected"), [
    (["close.retval!=0"], 3, 0, False),
    (["close.retval!=0"], 3, -9, True),
    (["close.retval=0"], 3, 0, True),
    (["openat.retval<0"], 257, -2, True),
    (["openat.retval<0"], 257, 3, False),
    (["openat.retval>=-13", "openat.retval<0"], 257, -14, False),
    (["openat.retval>=-13", "openat.retval<0"], 257, -13, True),
])
def test_accepts_retval(exprs: list[str], eid: int, retval: int, expected: bool) -> None:
    assert _accepts(events(*exprs), eid, retval=retval) is expected


@pytest.mark.parametrize(("exprs", "ctx", "expected"), [
    (["openat.scope.processName=ls"], {"processName": "ls"}, True),
    (["openat.scope.processName=ls"], {"processName": "cat"}, False),
    (["openat.scope.comm!=ba*"], {"processName": "bash"}, False),
    (["openat.scope.pid>100"], {"processId": 101}, True),
    (["openat.scope.pid>100"], {"processId": 100}, False),
    (["openat.scope.pid>100", "openat.scope.pid<200"], {"processId": 250}, False),
    (["openat.scope.container"], {"container": True}, True),
    (["openat.scope.container"], {"container": False}, False),
    (["openat.scope.host"], {"container": False}, True),
    (["openat.scope.container=started"], {"container": True, "containerStarted": False}, False),
    (["openat.scope.container=started"], {"container": True, "containerStarted": True}, True),
    (["openat.scope.processName=ls"], {}, False),  # context field unavailable
])
def test_accepts_scope(exprs: list[str], ctx: dict[str, object], expected: bool) -> None:
    assert _accepts(events(*exprs), 257, ctx=ctx) is expected


def test_accepts_ands_all_filter_kinds() -> None:
    sel = events("openat.data.pathname=/etc/*", "openat.retval>=0", "openat.scope.comm=cat")
    ok = ({"pathname": "/etc/hosts"}, 3, {"processName": "cat"})
    assert _accepts(sel, 257, ok[0], ok[1], ok[2])
    assert not _accepts(sel, 257, {"pathname": "/tmp/x"}, ok[1], ok[2])
    assert not _accepts(sel, 257, ok[0], -1, ok[2])
    assert not _accepts(sel, 257, ok[0], ok[1], {"processName": "ls"})


def test_unfiltered_events_skip_the_userland_check() -> None:
    sel = events("openat", "close", "close.retval!=0")
    assert sel.event_ids == {257, 3}
    assert not sel.needs_userland_check(257)
    assert sel.needs_userland_check(3)
    assert _accepts(sel, 257, {}, -1)  # nothing to check, nothing to look up


def test_event_selection_can_be_built_directly() -> None:
    sel = EventSelection({1}, data_filters={1: [DataFilter("fd", "=", (3,), "int")]})
    assert sel.needs_userland_check(1)
    assert _accepts(sel, 1, {"fd": 3}) and not _accepts(sel, 1, {"fd": 4})


# --------------------------------------------------------------------------
# Robustness: any input gives a result or a UsageError, never another exception
# --------------------------------------------------------------------------

_PIECES = ["", "openat", "pid", "comm", "uid", "container", ".", ".data", ".scope", ".retval",
           "pathname", "=", "!=", "<", ">=", "!", "*", ",", "-", "5", "-1", "x", "new", "0x"]


def _fuzz_inputs() -> list[str]:
    return ["".join(p) for p in itertools.product(_PIECES, repeat=3)]


def test_scope_never_raises_anything_but_usage_error() -> None:
    for s in _fuzz_inputs():
        try:
            parse_scope([s])
        except UsageError:
            pass


def test_events_never_raise_anything_but_usage_error() -> None:
    for s in _fuzz_inputs():
        try:
            parse_events([s], REG, DEFAULTS)
        except UsageError:
            pass
