"""Tracee policy files: loading, validation (with file:line), compilation, describe()."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytracee.cli import Registry, default_event_ids
from pytracee.errors import UsageError
from pytracee.events.definitions import events_in_set, lookup
from pytracee.policy.compile import (
    CompiledPolicy,
    PolicySet,
    cli_policy_set,
    compile_policies,
    describe,
)
from pytracee.policy.files import PolicyDoc, PolicyErrors, RuleDoc, load_policies
from pytracee.policy.filters import (
    DataFilter,
    NumericFilter,
    Scope,
    StringFilter,
    parse_events,
    parse_scope,
)

OPENAT, EXECVE, CLOSE = 257, 59, 3


def write(dir_: Path, name: str, text: str) -> str:
    p = dir_ / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(p)


def errors_of(paths: list[str]) -> list[UsageError]:
    with pytest.raises(PolicyErrors) as info:
        load_policies(paths)
    assert str(info.value) == str(info.value.errors[0])
    return info.value.errors


def compile_errors(paths: list[str]) -> list[UsageError]:
    with pytest.raises(PolicyErrors) as info:
        compile_policies(load_policies(paths))
    return info.value.errors


def load_compile(dir_: Path, text: str, name: str = "p.yaml") -> PolicySet:
    return compile_policies(load_policies([write(dir_, name, text)]))


K8S = """
apiVersion: tracee.aquasec.com/v1beta1
kind: Policy
metadata:
  name: sample
  annotations:
    description: exec and sensitive opens
spec:
  scope:
    - comm=bash
    - follow
  rules:
    - event: execve
    - event: openat
      filters:
        - data.pathname=/etc/*
        - retval<0
        - comm!=systemd
    - event: tag=proc_life
"""

PLAIN = """
type: policy
name: sample
description: exec and sensitive opens
scope: [comm=bash, follow]
rules:
  - event: execve
  - event: openat
    filters: [data.pathname=/etc/*, retval<0, comm!=systemd]
  - event: tag=proc_life
"""


def plain(name: str, events: str = "openat", scope: str = "global") -> str:
    rules = "".join(f"  - event: {e}\n" for e in events.split())
    return f"type: policy\nname: {name}\ndescription: d\nscope: [{scope}]\nrules:\n{rules}"


# --------------------------------------------------------------------------
# Formats, documents, directories
# --------------------------------------------------------------------------

def test_both_formats_compile_identically(tmp_path: Path) -> None:
    a = load_compile(tmp_path, K8S, "k8s.yaml")
    b = load_compile(tmp_path, PLAIN, "plain.yaml")
    assert a.names() == b.names() == ["sample"]
    assert a.event_bits() == b.event_bits()
    pa, pb = a.policies[0], b.policies[0]
    assert pa.selection == pb.selection
    assert pa.scope == pb.scope == parse_scope(["comm=bash", "follow"])
    assert pa.description == pb.description == "exec and sensitive opens"
    assert (pa.where, pb.where) == (f"{tmp_path}/k8s.yaml:1", f"{tmp_path}/plain.yaml:1")


def test_policy_doc_fields_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", K8S)
    [doc] = load_policies([path])
    assert doc == PolicyDoc(
        name="sample", description="exec and sensitive opens",
        scope=["comm=bash", "follow"],
        rules=[RuleDoc("execve", [], f"{path}:12"),
               RuleDoc("openat", ["data.pathname=/etc/*", "retval<0", "comm!=systemd"],
                       f"{path}:13", [f"{path}:15", f"{path}:16", f"{path}:17"]),
               RuleDoc("tag=proc_life", [], f"{path}:18")],
        where=f"{path}:1", scope_where=[f"{path}:9", f"{path}:10"], name_where=f"{path}:4")


def test_multi_document_file(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", plain("one") + "---\n" + plain("two", "execve") + "---\n")
    docs = load_policies([path])
    assert [d.name for d in docs] == ["one", "two"]
    assert [d.where for d in docs] == [f"{path}:1", f"{path}:8"]
    ps = compile_policies(docs)
    assert ps.event_bits() == {OPENAT: 0b01, EXECVE: 0b10}


def test_directory_loading_order(tmp_path: Path) -> None:
    d = tmp_path / "pols"
    d.mkdir()
    write(d, "b.yaml", plain("bee"))
    write(d, "a.yml", plain("ay"))
    write(d, "c.yaml", plain("cee"))
    write(d, "notes.txt", "not yaml: [")
    (d / "sub.yaml").mkdir()  # directories are skipped, even with a .yaml name
    write(d / "sub.yaml", "x.yaml", plain("nested"))
    extra = write(tmp_path, "z.yaml", plain("zed"))
    docs = load_policies([extra, str(d)])
    assert [doc.name for doc in docs] == ["zed", "ay", "bee", "cee"]
    assert compile_policies(docs).names() == ["zed", "ay", "bee", "cee"]


def test_kubectl_metadata_and_scalars_as_written(tmp_path: Path) -> None:
    ps = load_compile(tmp_path, """
        apiVersion: tracee.aquasec.com/v1beta1
        kind: Policy
        metadata:
          name: from-kubectl
          uid: 0b5f
          resourceVersion: "42"
          labels: {team: sec}
          annotations:
            description: 2024
            kubectl.kubernetes.io/last-applied-configuration: "{}"
        spec:
          scope: [uid>=1000]
          defaultActions: [log]
          rules:
            - event: close
              filters:
              actions: [print]
        """)
    [p] = ps.policies
    assert (p.name, p.description) == ("from-kubectl", "2024")
    assert p.scope == parse_scope(["uid>=1000"])
    assert p.selection.event_ids == {CLOSE} and not p.selection.needs_userland_check(CLOSE)


# --------------------------------------------------------------------------
# Load errors: exact line and message
# --------------------------------------------------------------------------

HEAD = "apiVersion: tracee.aquasec.com/v1beta1\nkind: Policy\nmetadata:\n  name: p\n"

BAD_FILES = [
    ("yaml syntax", "type: policy\nname: p\nscope: [global\nrules: []\n", 4, "invalid YAML"),
    ("not a mapping", "- type\n- policy\n", 1, "a policy document must be a mapping"),
    ("unknown format", "name: p\nscope: [global]\nrules: [{event: openat}]\n", 1,
     "not a Tracee policy"),
    ("bad type", plain("p").replace("type: policy", "type: detector"), 1,
     "unsupported document type 'detector'"),
    ("bad apiVersion", HEAD.replace("tracee.aquasec.com", "aquasecurity.github.io")
     + "spec: {scope: [global], rules: [{event: openat}]}\n", 1,
     "apiVersion 'aquasecurity.github.io/v1beta1' is not supported"),
    ("bad kind", HEAD.replace("kind: Policy", "kind: TraceePolicy")
     + "spec: {scope: [global], rules: [{event: openat}]}\n", 2, "kind 'TraceePolicy'"),
    ("missing kind", HEAD.replace("kind: Policy\n", "")
     + "spec: {scope: [global], rules: [{event: openat}]}\n", 1, "policy: missing 'kind'"),
    ("missing plain name", plain("p").replace("name: p\n", ""), 1, "policy: missing 'name'"),
    ("missing metadata name", HEAD.replace("  name: p\n", "  labels: {}\n")
     + "spec: {scope: [global], rules: [{event: openat}]}\n", 4, "metadata: missing 'name'"),
    ("missing spec", HEAD, 1, "policy: missing 'spec'"),
    ("metadata not a mapping", HEAD.replace("metadata:\n  name: p\n", "metadata: p\n")
     + "spec: {scope: [global], rules: [{event: openat}]}\n", 3, "metadata must be a mapping"),
    ("missing scope", plain("p").replace("scope: [global]\n", ""), 1, "missing 'scope'"),
    ("missing scope k8s", HEAD + "spec:\n  rules: [{event: openat}]\n", 6,
     "spec: missing 'scope'"),
    ("missing rules", "type: policy\nname: p\nscope: [global]\n", 1, "missing 'rules'"),
    ("empty scope", plain("p").replace("[global]", "[]"), 4, "'scope' cannot be empty"),
    ("empty rules", "type: policy\nname: p\nscope: [global]\nrules: []\n", 4,
     "'rules' cannot be empty"),
    ("null rules", "type: policy\nname: p\nscope: [global]\nrules:\n", 4,
     "'rules' cannot be empty"),
    ("scope not a list", plain("p").replace("[global]", "global"), 4,
     "'scope' must be a list of strings"),
    ("scope item not a string", "type: policy\nname: p\nscope:\n  - global\n  - {comm: x}\n"
     "rules: [{event: openat}]\n", 5, "this item is not a string"),
    ("rules not a list", "type: policy\nname: p\nscope: [global]\nrules: {event: openat}\n", 4,
     "'rules' must be a list of mappings"),
    ("rule not a mapping", "type: policy\nname: p\nscope: [global]\nrules:\n  - openat\n", 5,
     "rule must be a mapping"),
    ("event not a string", "type: policy\nname: p\nscope: [global]\nrules:\n"
     "  - event: [openat]\n", 5, "'event' must be a string"),
    ("missing event", "type: policy\nname: p\nscope: [global]\nrules:\n  - filters: [retval<0]\n",
     5, "rule: missing 'event'"),
    ("filters not a list", plain("p") + "    filters: retval<0\n", 7,
     "'filters' must be a list of strings"),
    ("filter item not a string", plain("p") + "    filters:\n      - retval<0\n"
     "      - [a]\n", 9, "this item is not a string"),
    ("misspelt filter key", plain("p") + "    filter: [retval<0]\n", 7,
     "rule: unknown key 'filter' (did you mean 'filters'?)"),
    ("unknown top key", plain("p") + "defaultAction: log\n", 7,
     "unknown key 'defaultAction' (did you mean 'defaultActions'?)"),
    ("unknown spec key", HEAD + "spec:\n  scope: [global]\n  rules: [{event: openat}]\n"
     "  action: log\n", 8, "spec: unknown key 'action'"),
    ("duplicate key", plain("p") + "name: q\n", 7, "duplicate key 'name'"),
    ("duplicate event", plain("p", "openat execve openat"), 8,
     "event 'openat' appears twice in this policy (first at {path}:6)"),
    ("invalid name", plain("My Policy"), 2, "policy name 'My Policy' is invalid"),
    ("null name", plain("p").replace("name: p", "name:"), 2, "'name' must be a string"),
    ("description not a string", plain("p").replace("description: d", "description: {a: b}"),
     3, "'description' must be a string"),
    ("bad default action", plain("p") + "defaultActions: [webhook]\n", 7,
     "action 'webhook' is not supported"),
    ("bad rule action", plain("p") + "    actions:\n      - print\n      - forward\n", 9,
     "action 'forward' is not supported"),
    ("empty file", "# nothing here\n", None, "file holds no policy"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_load_errors(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    errs = errors_of([path])
    assert len(errs) == 1, [str(e) for e in errs]
    assert errs[0].where == (path if line is None else f"{path}:{line}")
    assert fragment.format(path=path) in errs[0].message


def test_missing_file_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    missing = str(tmp_path / "nope.yaml")
    errs = errors_of([missing, str(tmp_path / "empty")])
    assert [(e.where, e.message) for e in errs] == [
        (str(tmp_path / "empty"), "no *.yaml or *.yml policy files in directory"),
        (missing, "cannot read policy file: No such file or directory"),
    ]
    assert str(errs[1]) == f"{missing}: cannot read policy file: No such file or directory"


def test_all_errors_are_collected(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", plain("a").replace("[global]", "global"))
    b = write(tmp_path, "b.yaml", plain("b") + "    filter: [retval<0]\n")
    c = write(tmp_path, "c.yaml", "type: policy\nname: c\nrules: []\n")  # two problems
    errs = errors_of([a, b, c])
    assert [e.where for e in errs] == [f"{a}:4", f"{b}:7", f"{c}:1", f"{c}:3"]


def test_duplicate_policy_names_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", plain("same"))
    b = write(tmp_path, "b.yaml", "# second\n" + plain("same"))
    [err] = errors_of([a, b])
    assert err.where == f"{b}:3"
    assert err.message == f"policy name 'same' is already used at {a}:2"


def test_64_policies_ok_65_error(tmp_path: Path) -> None:
    docs = "---\n".join(plain(f"p{i}") for i in range(64))
    path = write(tmp_path, "many.yaml", docs)
    ps = compile_policies(load_policies([path]))
    assert len(ps.policies) == 64 and ps.event_bits() == {OPENAT: (1 << 64) - 1}
    path = write(tmp_path, "many.yaml", docs + "---\n" + plain("p64"))
    [err] = errors_of([path])
    assert err.where == f"{path}:{64 * 7 + 1}"
    assert "at most 64 policies" in err.message


def test_compile_refuses_65_docs() -> None:
    doc = PolicyDoc("p", "", ["global"], [RuleDoc("openat", [], "x:5")], "x:1")
    with pytest.raises(PolicyErrors, match="at most 64 policies"):
        compile_policies([doc] * 65)


# --------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------

def test_event_bits_for_overlapping_policies(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", plain("zero", "openat execve") + "---\n" + plain("one"))
    ps = compile_policies(load_policies([path]))
    assert ps.names() == ["zero", "one"]
    assert [p.index for p in ps.policies] == [0, 1]
    assert ps.event_bits() == {OPENAT: 0b11, EXECVE: 0b01}


def test_rule_filters_compile_to_exact_filters(tmp_path: Path) -> None:
    sel = load_compile(tmp_path, PLAIN).policies[0].selection
    assert sel.data_filters[OPENAT] == [DataFilter("pathname", "=", ("/etc/*",), "string")]
    assert sel.retval_filters[OPENAT] == NumericFilter(max=-1)
    assert sel.scope_filters[OPENAT] == [("processName", StringFilter(not_equal={"systemd"}))]
    assert set(sel.data_filters) == set(sel.retval_filters) == set(sel.scope_filters) == {OPENAT}
    same = parse_events(["openat.data.pathname=/etc/*", "openat.retval<0",
                         "openat.scope.comm!=systemd"], Registry(), set())
    assert sel.data_filters[OPENAT] == same.data_filters[OPENAT]
    assert sel.scope_filters[OPENAT] == same.scope_filters[OPENAT]
    ctx = {"processName": "cat"}.__getitem__
    assert sel.accepts(OPENAT, {"pathname": "/etc/shadow"}.__getitem__, -13, ctx)
    assert not sel.accepts(OPENAT, {"pathname": "/etc/shadow"}.__getitem__, 3, ctx)
    assert not sel.accepts(OPENAT, {"pathname": "/etc/x"}.__getitem__, -1,
                           {"processName": "systemd"}.__getitem__)


def test_legacy_args_and_scope_aliases(tmp_path: Path) -> None:
    sel = load_compile(tmp_path, plain("p") + "    filters: [args.pathname=/tmp/*, "
                                            "processName=ls, pid=1, container]\n"
                       ).policies[0].selection
    assert sel.data_filters[OPENAT] == [DataFilter("pathname", "=", ("/tmp/*",), "string")]
    names = [n for n, _ in sel.scope_filters[OPENAT]]
    assert names == ["processName", "processId", "container"]


def test_tag_rule_expands(tmp_path: Path) -> None:
    sel = load_compile(tmp_path, plain("p", "tag=fs")).policies[0].selection
    assert sel.event_ids == {e.id for e in events_in_set("fs")} and OPENAT in sel.event_ids


def test_filter_on_tag_rule_applies_to_events_with_that_field(tmp_path: Path) -> None:
    sel = load_compile(tmp_path, plain("p", "tag=fs") + "    filters: [data.pathname=/etc/*, "
                                                       "retval<0]\n").policies[0].selection
    with_path = {e.id for e in events_in_set("fs") if e.arg_index("pathname") is not None}
    assert sel.event_ids == with_path and CLOSE not in sel.event_ids
    for eid in with_path:
        assert sel.data_filters[eid] == [DataFilter("pathname", "=", ("/etc/*",), "string")]
        assert sel.retval_filters[eid] == NumericFilter(max=-1)


def test_glob_rule_with_scope_filter(tmp_path: Path) -> None:
    sel = load_compile(tmp_path, plain("p", '"open*"') + "    filters: [comm=ls]\n"
                       ).policies[0].selection
    assert {lookup("open").id, OPENAT} <= sel.event_ids  # type: ignore[union-attr]
    assert all(sel.scope_filters[e] == [("processName", StringFilter(equal={"ls"}))]
               for e in sel.event_ids)


def test_unfiltered_rule_ors_away_filters_of_another(tmp_path: Path) -> None:
    sel = load_compile(tmp_path, plain("p", "tag=fs_file_ops openat2")
                       + "    filters: [retval<0]\n").policies[0].selection
    assert lookup("openat2").id in sel.event_ids  # type: ignore[union-attr]
    assert not sel.retval_filters


def test_global_scope_and_kernel_alias(tmp_path: Path) -> None:
    [p] = load_compile(tmp_path, plain("p", "open")).policies
    assert p.scope == Scope(global_=True)


COMPILE_ERRORS = [
    ("threat selector", plain("p", "execve threat.severity>=extreme"), 7,
     "expected threat.severity with"),
    ("mitre selector", plain("p", "threat.mitre.technique=T9999"), 6, "no loaded signature matches"),
    ("unknown event", plain("p", "execve opneat"), 7, "unknown event 'opneat' (did you mean"),
    ("exclusion", plain("p", "-openat"), 6, "a rule cannot exclude events"),
    ("comma list", plain("p", "openat,close"), 6, "one event, glob or tag=<set> per rule"),
    ("filter as event", plain("p", "openat.retval<0"), 6, "put filters under 'filters'"),
    ("unknown set", plain("p", "tag=nope"), 6, "unknown event set 'nope'"),
    ("bad data field", plain("p") + "    filters:\n      - retval<0\n      - data.nope=1\n", 9,
     "invalid filter 'data.nope=1': event 'openat' has no data field 'nope'"),
    ("bad scope field in filters", plain("p") + "    filters: [colour=red]\n", 7,
     "invalid filter 'colour=red': unknown scope field 'colour'"),
    ("dotted filter", plain("p") + "    filters: [openat.data.pathname=/x]\n", 7,
     "invalid filter 'openat.data.pathname=/x'"),
    ("conflicting retval", plain("p") + "    filters: [retval>0, retval<0]\n", 7,
     "invalid filter 'retval<0'"),
    ("tag without the field", plain("p", "tag=ipc_futex") + "    filters: [data.pathname=/x]\n",
     6, "no event selected by 'tag=ipc_futex' has data field(s) pathname"),
    ("bad scope expr", "type: policy\nname: p\nscope:\n  - follow\n  - colour=red\n"
     "rules: [{event: openat}]\n", 5, "invalid scope 'colour=red': unknown scope field 'colour'"),
    ("global combined", "type: policy\nname: p\nscope:\n  - comm=ls\n  - global\n"
     "rules: [{event: openat}]\n", 5, "scope 'global' cannot be combined"),
    ("scope conflict", "type: policy\nname: p\nscope:\n  - pid=1\n  - pid=2\n"
     "rules: [{event: openat}]\n", 5, "no pid can satisfy"),
    ("two filtered rules on one event", "type: policy\nname: p\nscope: [global]\nrules:\n"
     "  - event: tag=fs_file_ops\n    filters: [pid=1]\n  - event: openat2\n"
     "    filters: [retval<0]\n", 7, "is filtered by this rule and by the rule at"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in COMPILE_ERRORS],
                         ids=[c[0] for c in COMPILE_ERRORS])
def test_compile_errors(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    errs = compile_errors([path])
    assert len(errs) == 1, [str(e) for e in errs]
    assert errs[0].where == f"{path}:{line}"
    assert fragment in errs[0].message


def test_compile_collects_errors_across_policies(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", plain("a", "threat.name=x") + "---\n"
                 + plain("b", "openat nope") + "---\n" + plain("c", scope="colour=red"))
    errs = compile_errors([path])
    assert [e.where for e in errs] == [f"{path}:6", f"{path}:14", f"{path}:19"]


def test_error_on_expanded_rule_names_the_event(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", plain("p", '"openat*"') + "    filters: [data.dirfd=x]\n")
    [err] = compile_errors([path])
    assert err.where == f"{path}:7"
    assert err.message.startswith("invalid filter 'data.dirfd=x': 'x' is not an integer")
    assert "(event 'openat" in err.message


# --------------------------------------------------------------------------
# CLI policy and describe()
# --------------------------------------------------------------------------

def test_cli_policy_set_matches_cli_parse() -> None:
    events = ["openat,execve", "openat.data.pathname=/etc/*", "close.retval!=0"]
    scope = ["comm=bash", "uid>=1000"]
    ps = cli_policy_set(events, scope, default_event_ids())
    assert ps.names() == ["cli"]
    [p] = ps.policies
    assert p.selection == parse_events(events, Registry(), default_event_ids())
    assert p.scope == parse_scope(scope)
    assert ps.event_bits() == {OPENAT: 1, EXECVE: 1, CLOSE: 1}
    default = cli_policy_set([], [], default_event_ids())
    assert default.policies[0].selection.event_ids == default_event_ids()
    with pytest.raises(UsageError, match="unknown event 'nope'"):
        cli_policy_set(["nope"], [], default_event_ids())


def test_describe(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", K8S)
    ps = compile_policies(load_policies([path]))
    ps.policies.append(CompiledPolicy(1, "cli", "", "command line", Scope(global_=True),
                                      parse_events(["close"], Registry(), set())))
    text = describe(ps)
    blocks = text.split("\n\n")
    assert len(blocks) == 2
    first = blocks[0].splitlines()
    assert first[:3] == [f"policy 0: sample  ({path}:1)", "  description: exec and sensitive opens",
                         "  scope: comm=bash, follow"]
    assert "    execve" in first
    assert ("    openat  data.pathname=/etc/*  retval<=-1  scope.processName!=systemd"
            in first)
    assert blocks[1].splitlines() == ["policy 1: cli  (command line)", "  scope: global",
                                      "  events (1):", "    close"]


GOOD = """\
apiVersion: tracee.aquasec.com/v1beta1
kind: Policy
metadata:
  name: {name}
spec:
  scope: [global]
  rules:
    - event: openat
"""


def test_a_directory_rewritten_during_a_load_is_read_again(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pytracee.policy import files

    (tmp_path / "a.yaml").write_text(GOOD.format(name="a"))
    (tmp_path / "b.yaml").write_text("spec: [")  # caught half written
    def writer_finishes(_s: float) -> None:  # what happens while the loader waits
        (tmp_path / "b.yaml").write_text(GOOD.format(name="b") + "\n")
    monkeypatch.setattr(files.time, "sleep", writer_finishes)
    assert [d.name for d in load_policies([str(tmp_path)])] == ["a", "b"]


def test_a_broken_file_that_stays_broken_is_reported(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pytracee.policy import files

    (tmp_path / "b.yaml").write_text("spec: [")
    waits: list[float] = []
    monkeypatch.setattr(files.time, "sleep", waits.append)
    with pytest.raises(PolicyErrors) as ei:
        load_policies([str(tmp_path)])
    assert ei.value.where.startswith(f"{tmp_path}/b.yaml:")
    assert waits == [files.SETTLE_S]  # looked once more, saw no change, gave up


def test_network_filters_reach_into_structured_args(tmp_path: Path) -> None:
    dns = lookup("net_packet_dns_request").id
    flow = lookup("net_flow_tcp_begin").id
    text = (plain("net", "net_packet_dns_request net_flow_tcp_begin")
            .replace("  - event: net_packet_dns_request\n",
                     "  - event: net_packet_dns_request\n"
                     "    filters: [data.dns_questions.query=*.evil.example]\n")
            + "    filters: [data.dst_port=22, data.dst=10.0.0.0]\n")
    sel = load_compile(tmp_path, text).policies[0].selection
    q = {"dns_questions": [{"query": "a.example", "query_type": "A", "query_class": "IN"},
                           {"query": "c2.evil.example", "query_type": "A", "query_class": "IN"}]}
    ctx = {}.__getitem__
    assert sel.accepts(dns, q.__getitem__, 0, ctx)
    q["dns_questions"].pop()
    assert not sel.accepts(dns, q.__getitem__, 0, ctx)
    assert sel.accepts(flow, {"dst_port": 22, "dst": "10.0.0.0"}.__getitem__, 0, ctx)
    assert not sel.accepts(flow, {"dst_port": 443, "dst": "10.0.0.0"}.__getitem__, 0, ctx)
    # A field the struct does not have is the policy's error, with file and line.
    bad = text.replace("dns_questions.query=", "dns_questions.qname=")
    with pytest.raises(UsageError) as ei:
        load_compile(tmp_path, bad, "bad.yaml")
    assert "has no field 'qname' (fields: query, query_type, query_class)" in str(ei.value)
    assert ei.value.where == f"{tmp_path}/bad.yaml:7"
