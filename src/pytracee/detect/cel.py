"""YAML+CEL detectors: Tracee's YAML detector format (tracee-compat §4.5).

A detector file (`type: detector`) names the event it produces, the events it
needs (with optional data and scope filters), its threat metadata, a list of
CEL `conditions` (all must hold) and `output.fields` computed by CEL into the
finding. String lists (`type: string_list`, `name: UPPER_SNAKE`, `values`) in
the same directory are visible to its expressions as `list(string)` variables
(`workload.process.name in SHELL_BINARIES`).

CEL engine: cel-expr-python (Google's C++ CEL behind pybind). Every expression
is parsed and type-checked at load, so a typo is a UsageError with the file and
line, never a detector that silently never fires.

The CEL environment (what an expression can use):
  * getEventData("f") / getData("f"): the event's argument `f` (null when the event
    has no such argument); hasData("f"): whether it carries `f`. These are
    functions (called back into Python) rather than a `data` map variable: a
    condition reads one or two arguments, and converting every argument of every
    event into CEL values costs more than those calls (bench/cel_eval.py).
  * workload.process.{pid, host_pid, tid, host_tid, ppid, host_ppid, name,
    unique_id, executable.path, real_user.id, thread.{name, tid, host_tid,
    unique_id}}, workload.container.{id, name, image.{name, repo_digests},
    started}, workload.kubernetes.{pod.{name, uid}, namespace.name} (also as
    workload.k8s), and `timestamp` (a CEL timestamp, microsecond precision).
    Host tasks get empty strings / false for the container and pod fields.
    Field paths are checked at load against this schema.
  * Tracee's string helpers as global functions: split(s, sep), join(list, sep),
    trim(s), replace(s, old, new), upper(s), lower(s), basename(s), dirname(s)
    (Go's filepath.Base/Dir semantics). The CEL strings extension is loaded too
    ("a,b".split(","), s.lowerAscii(), s.indexOf(x), ...), as are cel.bind()
    and optionals; `.matches()` (RE2), `has()`, `exists()`, `all()` ... are CEL's.
    Mind that this runtime compiles the regex of `.matches()` on every evaluation
    (4-5x the cost of a few startsWith/endsWith calls).

Speed: binding CEL variables is the dominant cost (an Activation plus the
conversion of the workload map: 4-12 us per event, against ~2 us for a whole
condition that reads one argument). So each expression also compiles in a
"fast form" without variables: workload leaf paths become calls that read the
task context, `timestamp` a call, string lists literals (_fast_form). Only what
cannot be rewritten (a whole map such as `workload.process`, `has(workload.x)`)
is bound per event, through one Activation shared by the detector's expressions.

Evaluation follows Tracee: an expression that errors (say `.startsWith` on an
integer argument) counts as false, but is counted (`eval_errors`) and logged
once per detector. An output field that errors is skipped when `optional: true`;
otherwise the finding is dropped and counted (`dropped_findings`).

Requirements: `data_filters` and `scope_filters` use pytracee's `--events`
filter grammar (`pathname=/etc/*`, `request=0`, `comm!=sshd`, `container`);
`=` filters on one field OR (Tracee), everything else ANDs. On another
detector's event (chaining) data filters are =/!= on the value's text.

Not supported (load errors, never silently ignored): the datastore functions
(process.get, container.get, dns.getResponse, ...). Accepted and ignored:
min/max versions, `dependency`, `min_tracee_version`, `enrichments`, `auto_populate` (pytracee's detection events always carry the
triggering event's context), produced_event.fields types. A detector whose
`architectures` do not include this machine's is skipped by load_yaml_detectors.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pytracee.detect.signature import SEVERITY_NAMES, EventSelector, Signature, SignatureMetadata
from pytracee.errors import UsageError, closest
from pytracee.events import definitions
from pytracee.events.definitions import EVENTS, SIGNATURE_EVENTS_START, EventDef
from pytracee.policy.filters import EventSelection, StringFilter, parse_events

if TYPE_CHECKING:
    from pytracee.events.event import Event, TaskContext

__all__ = ["SEVERITIES", "WORKLOAD_FIELDS", "CelSignature", "load_yaml_detectors"]

log = logging.getLogger(__name__)

SEVERITIES = {name: i for i, name in enumerate(SEVERITY_NAMES)}  # "info" 0 .. "critical" 4

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_LIST_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_DETECTOR_KEYS = ("type", "id", "produced_event", "requirements", "threat", "auto_populate",
                  "conditions", "output")
_LIST_KEYS = ("type", "name", "description", "values")
_PRODUCED_KEYS = ("name", "version", "description", "tags", "fields")
_REQUIREMENTS_KEYS = ("min_tracee_version", "architectures", "events", "enrichments")
_EVENT_REQ_KEYS = ("name", "dependency", "min_version", "max_version", "data_filters",
                   "scope_filters")
_THREAT_KEYS = ("name", "description", "severity", "mitre", "properties")
_MITRE_KEYS = ("technique", "tactic")
_OUTPUT_FIELD_KEYS = ("name", "expression", "optional")

# workload.* leaves: path -> how to read it off the task context. The single
# source of the schema (WORKLOAD_FIELDS), of the `workload` map and of the
# per-leaf reads the fast form of an expression makes (see _fast_form).
def _exe(ctx: TaskContext) -> str:
    return (ctx.proc.exe or "") if ctx.proc is not None else ""


def _ctr(attr: str) -> Callable[[TaskContext], str]:
    return lambda ctx: (getattr(ctx.container, attr) or "") if ctx.container is not None else ""


def _pod(attr: str) -> Callable[[TaskContext], str]:
    def read(ctx: TaskContext) -> str:
        info = ctx.container.info if ctx.container is not None else None
        return getattr(info, attr) if info is not None else ""
    return read


def _digests(ctx: TaskContext) -> list[str]:
    c = ctx.container
    return [c.image_digest] if c is not None and c.image_digest else []


_K8S_LEAVES: dict[str, Callable[[TaskContext], Any]] = {
    "pod.name": _pod("pod_name"), "pod.uid": _pod("pod_uid"),
    "namespace.name": _pod("pod_namespace"),
}
_LEAVES: dict[str, Callable[[TaskContext], Any]] = {
    "process.pid": lambda ctx: ctx.pid,
    "process.host_pid": lambda ctx: ctx.host_pid,
    "process.tid": lambda ctx: ctx.tid,
    "process.host_tid": lambda ctx: ctx.host_tid,
    "process.ppid": lambda ctx: ctx.ppid,
    "process.host_ppid": lambda ctx: ctx.host_ppid,
    "process.name": lambda ctx: ctx.comm,
    "process.unique_id": lambda ctx: ctx.process_entity,
    "process.executable.path": _exe,
    "process.real_user.id": lambda ctx: ctx.uid,
    "process.thread.name": lambda ctx: ctx.comm,
    "process.thread.tid": lambda ctx: ctx.tid,
    "process.thread.host_tid": lambda ctx: ctx.host_tid,
    "process.thread.unique_id": lambda ctx: ctx.thread_entity,
    "container.id": _ctr("id"),
    "container.name": _ctr("name"),
    "container.image.name": _ctr("image"),
    "container.image.repo_digests": _digests,
    "container.started": lambda ctx: bool(ctx.container is not None and ctx.container_started),
    **{f"kubernetes.{k}": f for k, f in _K8S_LEAVES.items()},
    **{f"k8s.{k}": f for k, f in _K8S_LEAVES.items()},  # Tracee's protobuf name for it
}


def _schema(paths: Iterable[str]) -> dict[str, Any]:
    """Nested dicts of the paths; a leaf is None."""
    root: dict[str, Any] = {}
    for path in paths:
        *parents, leaf = path.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = None
    return root


WORKLOAD_FIELDS: dict[str, Any] = _schema(_LEAVES)  # the `workload` variable's shape

# Tracee's datastore functions (§4.5): named so the load error can say why.
_DATASTORE_CALL = re.compile(r"\b(process|container|system|kernel|dns|syscall)\s*\.\s*"
                             r"(get|getAncestry|getChildren|getByName|info|resolveSymbol|"
                             r"getSymbolAddress|getResponse|getId|getName)\s*\(")
_CEL_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")
_IDENT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)")
_WORKLOAD_PATH = re.compile(r"(?<![\w.])workload((?:\s*\.\s*[A-Za-z_]\w*)+)(\s*\()?")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "arm64": "aarch64"}
_PLAIN = frozenset((str, int, bool, float, bytes, type(None)))
_ERROR = cel.Type.ERROR


# ---------------------------------------------------------------------------
# CEL helpers (Tracee's names and Go semantics)
# ---------------------------------------------------------------------------

def _split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)  # Go's Split("", "") splits into runes


def _basename(p: str) -> str:
    # Go filepath.Base: trailing slashes dropped, "" -> ".", "/" -> "/".
    if p == "":
        return "."
    p = p.rstrip("/")
    return "/" if p == "" else p.rsplit("/", 1)[-1]


def _dirname(p: str) -> str:
    # Go filepath.Dir: everything before the last element, cleaned; "." when none.
    d = posixpath.dirname(p)
    return posixpath.normpath(d) if d else "."


def _cel_value(v: Any) -> Any:
    """A Python value CEL can take (lists, str-keyed maps, scalars)."""
    if v.__class__ in _PLAIN:
        return v
    if isinstance(v, (list, tuple)):
        return [_cel_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _cel_value(x) for k, x in v.items()}
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    return str(v)


def _fn(name: str, overload: str, ret: cel.Type, params: list[cel.Type],
        impl: Callable[..., Any]) -> cel.FunctionDecl:
    return cel.FunctionDecl(name, [cel.Overload(overload, ret, params, impl=impl)])


_S = cel.Type.STRING
_STRING_HELPERS = [
    _fn("split", "pytracee_split_string_string", cel.Type.List(_S), [_S, _S], _split),
    _fn("join", "pytracee_join_list_string", _S, [cel.Type.List(_S), _S],
        lambda parts, sep: sep.join(parts)),
    _fn("trim", "pytracee_trim_string", _S, [_S], str.strip),
    _fn("replace", "pytracee_replace_string_string_string", _S, [_S, _S, _S],
        lambda s, old, new: s.replace(old, new)),
    _fn("upper", "pytracee_upper_string", _S, [_S], str.upper),
    _fn("lower", "pytracee_lower_string", _S, [_S], str.lower),
    _fn("basename", "pytracee_basename_string", _S, [_S], _basename),
    _fn("dirname", "pytracee_dirname_string", _S, [_S], _dirname),
]


def _workload(ctx: TaskContext) -> dict[str, Any]:
    """The whole workload map of a task, cached on the context like the JSON sink's
    fragment and rebuilt when the enrich stage learns more (exec, container)."""
    cache = ctx.cache
    p, c = ctx.proc, ctx.container
    stamp = (p.rev + 1 if p is not None else 0) + (c.rev + 1 if c is not None else 0)
    w: dict[str, Any] | None = cache.get("cel_workload")
    if w is not None and cache.get("cel_workload_stamp") == stamp:
        return w
    w = {}
    for path, read in _LEAVES.items():
        *parents, leaf = path.split(".")
        node = w
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = read(ctx)
    cache["cel_workload"] = w
    cache["cel_workload_stamp"] = stamp
    return w


def _blank_strings(src: str) -> str:
    """`src` with the insides of string literals and // comments replaced by spaces
    (same length), so identifier scans see only code."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch == "/" and src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
            continue
        if ch in "'\"":
            raw = i > 0 and src[i - 1] in "rR"
            q = src[i:i + 3] if src.startswith(ch * 3, i) else ch
            j = i + len(q)
            while j < n and not src.startswith(q, j):
                j += 2 if src[j] == "\\" and not raw else 1
            out[i + len(q):min(j, n)] = " " * (min(j, n) - i - len(q))
            i = j + len(q)
            continue
        i += 1
    return "".join(out)


_WORKLOAD_REF = re.compile(r"(?<![\w.])workload((?:\s*\.\s*[A-Za-z_]\w*)*)")
_WORKLOAD_SEG = re.compile(r"\s*\.\s*([A-Za-z_]\w*)")
_IN_HAS = re.compile(r"(?<![\w.])has\s*\(\s*\Z")
_TIMESTAMP_REF = re.compile(r"(?<![\w.])timestamp\b(?!\s*\()")


def _fast_form(src: str, lists: Mapping[str, Sequence[str]]) -> str:
    """`src` rewritten to need no CEL variables: a workload leaf path becomes
    __workload("process.name"), `timestamp` __timestamp(), a string list its literal.

    Why: binding variables costs more than most conditions. An Activation and the
    conversion of the workload map take 4-12 us per event; a call back into Python
    about 0.7 us, a literal list nothing per event. References that cannot be
    rewritten (a whole map such as workload.process, has(workload....)) are kept,
    and those variables are bound as usual."""
    code = _blank_strings(src)
    edits: list[tuple[int, int, str]] = []
    for m in _WORKLOAD_REF.finditer(code):
        shape: Any = WORKLOAD_FIELDS
        path: list[str] = []
        end = m.end(0) - len(m.group(1))
        for seg in _WORKLOAD_SEG.finditer(m.group(1)):
            if not isinstance(shape, dict) or seg.group(1) not in shape:
                break
            shape = shape[seg.group(1)]
            path.append(seg.group(1))
            end = m.start(1) + seg.end()
            if shape is None:
                break
        if shape is None and not _IN_HAS.search(code, 0, m.start()):
            edits.append((m.start(), end, f'__workload("{".".join(path)}")'))
    for m in _TIMESTAMP_REF.finditer(code):
        edits.append((m.start(), m.end(), "__timestamp()"))
    for name, values in lists.items():
        literal = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"
        for m in re.finditer(rf"(?<![\w.]){name}\b(?!\s*\()", code):
            edits.append((m.start(), m.end(), literal))
    for start, end, text in sorted(edits, reverse=True):
        src = src[:start] + text + src[end:]
    return src


# ---------------------------------------------------------------------------
# YAML node reading (errors carry file:line)
# ---------------------------------------------------------------------------

class _Doc:
    def __init__(self, path: str) -> None:
        self.path = path

    def at(self, node: Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def fail(self, node: Node, message: str) -> UsageError:
        return UsageError(message, where=self.at(node))

    def mapping(self, node: Node, what: str, known: Sequence[str] | None) -> dict[str, Node]:
        """The mapping's keys -> value nodes; `known` None accepts any key."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, Node] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, ScalarNode) else None
            if key is None:
                raise self.fail(k, f"{what}: keys must be plain strings")
            if key in out:
                raise self.fail(k, f"{what}: duplicate key '{key}'")
            if known is not None and key not in known:
                close = closest(key, known)
                hint = f" (did you mean '{close}'?)" if close else ""
                raise self.fail(k, f"{what}: unknown key '{key}'{hint}; known keys: "
                                   f"{', '.join(known)}")
            out[key] = v
        return out

    def opt_mapping(self, m: dict[str, Node], key: str, what: str,
                    known: Sequence[str] | None) -> tuple[Node | None, dict[str, Node]]:
        node = m.get(key)
        if node is None or _is_null(node):
            return node, {}
        return node, self.mapping(node, what, known)

    def string(self, node: Node | None, what: str, *, default: str | None = None) -> str:
        if node is None or _is_null(node):
            if default is not None:
                return default
            raise UsageError(f"missing '{what}'")
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"'{what}' must be a string")
        return str(node.value)

    def required(self, holder: Node, m: dict[str, Node], key: str, what: str) -> Node:
        node = m.get(key)
        if node is None or _is_null(node):
            raise self.fail(holder, f"{what}: missing '{key}'")
        return node

    def items(self, node: Node | None, what: str) -> list[Node]:
        if node is None or _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"'{what}' must be a list")
        return list(node.value)

    def strings(self, node: Node | None, what: str) -> list[tuple[str, Node]]:
        out = []
        for item in self.items(node, what):
            if not isinstance(item, ScalarNode) or _is_null(item):
                raise self.fail(item, f"'{what}' must be a list of strings")
            out.append((str(item.value), item))
        return out

    def boolean(self, node: Node | None, what: str) -> bool:
        if node is None or _is_null(node):
            return False
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            raise self.fail(node, f"'{what}' must be true or false")
        return node.value.lower() in ("true", "yes", "on", "y")


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _doc_type(node: Node) -> tuple[str | None, Node | None]:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == "type":
                return (str(v.value) if isinstance(v, ScalarNode) else None), v
    return None, None


# ---------------------------------------------------------------------------
# data_filters / scope_filters
# ---------------------------------------------------------------------------

class _Registry:
    """The event table as the filter grammar wants it (kernel events only)."""

    @staticmethod
    def lookup(name: str) -> EventDef | None:
        d = definitions.lookup(name)
        return d if d is not None and d.id < SIGNATURE_EVENTS_START else None

    @staticmethod
    def all_events() -> Iterable[EventDef]:
        return (d for d in EVENTS.values() if d.id < SIGNATURE_EVENTS_START)


_FILTER = re.compile(r"(?:data\.|args\.)?([A-Za-z_][\w]*)(!=|<=|>=|=|<|>)(.*)\Z", re.DOTALL)
_SCOPE_CARRIER = "sched_process_exec"  # scope filters do not depend on the event


def _merge_data_filters(filters: list[tuple[str, Node]], doc: _Doc) -> list[tuple[str, Node]]:
    """Tracee ORs filters on the same field: `pathname=/a*` and `pathname=/b*` become
    `pathname=/a*,/b*`. Other operators keep pytracee's AND."""
    merged: dict[str, tuple[list[str], Node]] = {}
    out: list[tuple[str, Node]] = []
    for text, node in filters:
        m = _FILTER.match(text)
        if m is None:
            raise doc.fail(node, f"invalid data filter '{text}': expected <field><op><value>, "
                                 "e.g. pathname=/etc/*")
        field, op, raw = m.groups()
        if op == "=":
            if field in merged:
                merged[field][0].append(raw)
            else:
                merged[field] = ([raw], node)
        else:
            out.append((f"{field}{op}{raw}", node))
    return [(f"{f}={','.join(raws)}", node) for f, (raws, node) in merged.items()] + out


def _kernel_filter(name: str, data: list[tuple[str, Node]], scope: list[tuple[str, Node]],
                   doc: _Doc) -> Callable[[Event], bool]:
    """Filters of a kernel event, through pytracee's `--events` grammar (one meaning
    for a filter everywhere, and its validation: unknown field, bad value ...)."""
    exprs = [(f"{name}.data.{t}", n) for t, n in data] + [(f"{name}.scope.{t}", n) for t, n in scope]
    for e, n in exprs:  # one at a time first, so an error names its line
        try:
            parse_events([e], _Registry(), frozenset())
        except UsageError as exc:
            raise doc.fail(n, exc.message) from None
    try:
        sel = parse_events([e for e, _ in exprs], _Registry(), frozenset())
    except UsageError as exc:
        raise doc.fail(exprs[0][1], exc.message) from None
    eid = next(iter(sel.event_ids))
    return lambda ev: sel.accepts(eid, ev.arg, ev.retval, ev.context_value)


def _detector_event_filter(data: list[tuple[str, Node]], scope: list[tuple[str, Node]],
                           doc: _Doc) -> Callable[[Event], bool]:
    """Filters of another detector's event (its fields are not known at load):
    data filters are =/!= on the value's text with prefix*/*suffix/*contains*."""
    tests: list[tuple[str, Callable[[str], bool], bool]] = []
    for text, node in data:
        m = _FILTER.match(text)
        if m is None or m.group(2) not in ("=", "!=") or m.group(3) == "":
            raise doc.fail(node, f"invalid data filter '{text}': on a detector's event only "
                                 "<field>=<value> and <field>!=<value> are supported")
        field, op, raw = m.groups()
        b: dict[str, set[str]] = {"exact": set(), "prefix": set(), "suffix": set(), "contains": set()}
        for v in raw.split(","):
            starts, ends = v.startswith("*") and len(v) > 1, v.endswith("*")
            core = v[1 if starts else 0:len(v) - 1 if ends else len(v)]
            b["contains" if starts and ends else "suffix" if starts else "prefix" if ends
              else "exact"].add(core)
            try:
                b["exact"].add(str(int(v, 0)))  # request=0x10 matches the int 16
            except ValueError:
                pass
        sf = (StringFilter(equal=b["exact"], prefixes=b["prefix"], suffixes=b["suffix"],
                           contains=b["contains"]) if op == "=" else
              StringFilter(not_equal=b["exact"], not_prefixes=b["prefix"],
                           not_suffixes=b["suffix"], not_contains=b["contains"]))
        tests.append((field, sf.matches, op == "!="))
    scope_sel: EventSelection | None = None
    if scope:
        scope_sel = _scope_only(scope, doc)
    carrier = definitions.BY_NAME[_SCOPE_CARRIER].id

    def text_of(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    def accept(ev: Event) -> bool:
        for field, test, every in tests:
            try:
                v = ev.arg(field)
            except KeyError:
                return False
            if isinstance(v, (list, tuple)):
                vals = [text_of(x) for x in v]
                ok = all(map(test, vals)) if every else any(map(test, vals))
            else:
                ok = v is not None and test(text_of(v))
            if not ok:
                return False
        return scope_sel is None or scope_sel.accepts(carrier, ev.arg, ev.retval,
                                                      ev.context_value)
    return accept


def _scope_only(scope: list[tuple[str, Node]], doc: _Doc) -> EventSelection:
    for t, n in scope:
        try:
            parse_events([f"{_SCOPE_CARRIER}.scope.{t}"], _Registry(), frozenset())
        except UsageError as exc:
            raise doc.fail(n, exc.message) from None
    return parse_events([f"{_SCOPE_CARRIER}.scope.{t}" for t, _ in scope], _Registry(), frozenset())


# ---------------------------------------------------------------------------
# The signature
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _OutputField:
    name: str
    expr: cel.Expression
    optional: bool


class CelSignature(Signature):
    """One YAML detector document. Build with `from_yaml` or `load_yaml_detectors`.

    Counters (never reset): `eval_errors` (a condition that errored or was not a
    bool: counted as false), `field_errors` (output fields that errored),
    `dropped_findings` (a required output field failed), `filtered_out` (events
    rejected by data/scope filters). `last_error` holds the latest error text."""

    def __init__(self, node: Node, path: str = "<yaml>",
                 lists: Mapping[str, Sequence[str]] | None = None,
                 known_events: Collection[str] | None = None) -> None:
        """`node`: the composed YAML document (yaml.compose). `lists`: the string lists
        in scope. `known_events`: event names besides the kernel's that requirements
        may name (other detectors' events); None accepts any name."""
        super().__init__()
        self.path = path
        self.eval_errors = 0
        self.field_errors = 0
        self.dropped_findings = 0
        self.filtered_out = 0
        self.last_error: str | None = None
        self._logged = False
        self._ev: Event | None = None
        self.requirement_where: dict[str, str] = {}  # required event -> "file:line"
        lists = dict(lists or {})
        doc = _Doc(path)
        top = doc.mapping(node, "detector", _DETECTOR_KEYS)
        kind = doc.string(doc.required(node, top, "type", "detector"), "type")
        if kind != "detector":
            raise doc.fail(top["type"], f"document type '{kind}' is not 'detector'")
        self.where = doc.at(node)
        sig_id = doc.string(doc.required(node, top, "id", "detector"), "id")
        self.defined_at = doc.at(top["id"])  # the id's line, for messages naming it

        pe_node = doc.required(node, top, "produced_event", "detector")
        pe = doc.mapping(pe_node, "produced_event", _PRODUCED_KEYS)
        event_name = doc.string(doc.required(pe_node, pe, "name", "produced_event"), "name")
        if not re.fullmatch(r"[a-z0-9_]+", event_name):
            raise doc.fail(pe["name"], f"produced event name '{event_name}' must be lowercase "
                                       "letters, digits and '_'")
        if _Registry.lookup(event_name) is not None:
            raise doc.fail(pe["name"], f"produced event name '{event_name}' is already the "
                                       "name of a kernel event")
        declared: set[str] = set()
        for item in doc.items(pe.get("fields"), "produced_event.fields"):
            f = doc.mapping(item, "produced_event.fields item", ("name", "type"))
            declared.add(doc.string(doc.required(item, f, "name", "field"), "name"))

        threat_node, threat = doc.opt_mapping(top, "threat", "threat", _THREAT_KEYS)
        properties: dict[str, Any] = {}
        if threat_node is not None and threat:
            properties.update(self._threat_properties(doc, threat_node, threat))
        description = doc.string(threat.get("description"), "description", default="") or \
            doc.string(pe.get("description"), "description", default="")
        self.metadata = SignatureMetadata(
            id=sig_id,
            name=doc.string(threat.get("name"), "name", default="") or
            doc.string(pe.get("description"), "description", default="") or event_name,
            event_name=event_name,
            version=doc.string(pe.get("version"), "version", default="1"),
            description=description,
            tags=tuple(t for t, _ in doc.strings(pe.get("tags"), "tags")),
            properties=properties,
        )

        self._filters = self._requirements(doc, node, top, known_events)
        self.selected_events = tuple(EventSelector(n, "*") for n in self._filters)

        # Expressions: checked against the environment, then compiled.
        srcs: list[tuple[str, Node]] = []
        conditions = []
        for item in doc.items(top.get("conditions"), "conditions"):
            if not isinstance(item, ScalarNode) or _is_null(item):
                raise doc.fail(item, "'conditions' must be a list of CEL expressions (strings)")
            srcs.append((str(item.value), item))
        outputs: list[tuple[str, str, Node, bool]] = []
        _, out = doc.opt_mapping(top, "output", "output", ("fields",))
        seen: set[str] = set()
        for item in doc.items(out.get("fields"), "output.fields"):
            f = doc.mapping(item, "output field", _OUTPUT_FIELD_KEYS)
            fname = doc.string(doc.required(item, f, "name", "output field"), "name")
            expr_node = doc.required(item, f, "expression", "output field")
            if fname in seen:
                raise doc.fail(item, f"output field '{fname}' is given twice")
            if declared and fname not in declared:
                raise doc.fail(item, f"output field '{fname}' is not declared in "
                                     f"produced_event.fields ({', '.join(sorted(declared))})")
            seen.add(fname)
            outputs.append((fname, doc.string(expr_node, "expression"), expr_node,
                            doc.boolean(f.get("optional"), "optional")))

        # Compiled twice: as written (errors, types) and in the fast form that
        # needs no variables (_fast_form); the fast one runs when it compiles.
        self._env = self._make_env(lists)
        used: list[str] = []  # the text of what runs, to see which variables it needs
        for i, (src, n) in enumerate(srcs):
            e = self._compile(doc, src, n, f"condition {i + 1}", lists)
            rt = e.return_type()
            if rt != cel.Type.BOOL and rt != cel.Type.DYN:
                raise doc.fail(n, f"condition {i + 1} must be a boolean expression; this one "
                                  f"gives {rt.name().lower()}")
            conditions.append(self._fast(e, src, lists, used))
        self._conditions = tuple(conditions)
        self._outputs = tuple(
            _OutputField(fname, self._fast(
                self._compile(doc, src, n, f"output field '{fname}'", lists), src, lists, used),
                opt)
            for fname, src, n, opt in outputs)
        # Only the variables still named are bound per event.
        refs = {m.group(1) for c in used for m in _IDENT.finditer(_blank_strings(c))}
        self._lists = {n: list(v) for n, v in lists.items() if n in refs}
        self._wants_workload = "workload" in refs
        self._wants_timestamp = "timestamp" in refs
        self._needs_data = bool(self._lists or self._wants_workload or self._wants_timestamp)

    # -- construction helpers -------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, path: str = "<yaml>",
                  lists: Mapping[str, Sequence[str]] | None = None,
                  known_events: Collection[str] | None = None) -> CelSignature:
        """A detector from YAML text (one document)."""
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(path, exc) from None
        if node is None:
            raise UsageError("empty YAML document", where=path)
        return cls(node, path, lists, known_events)

    @staticmethod
    def _threat_properties(doc: _Doc, node: Node, threat: dict[str, Node]) -> dict[str, Any]:
        props: dict[str, Any] = {}
        sev_node = threat.get("severity")
        if sev_node is not None and not _is_null(sev_node):
            sev = doc.string(sev_node, "severity").lower()
            if sev not in SEVERITIES:
                raise doc.fail(sev_node, f"unknown severity '{sev}' (known: "
                                         f"{', '.join(SEVERITY_NAMES)})")
            props["Severity"] = SEVERITIES[sev]
        _, mitre = doc.opt_mapping(threat, "mitre", "threat.mitre", _MITRE_KEYS)
        if mitre:
            _, tech = doc.opt_mapping(mitre, "technique", "mitre.technique", ("id", "name"))
            _, tactic = doc.opt_mapping(mitre, "tactic", "mitre.tactic", ("name",))
            tech_id = doc.string(tech.get("id"), "id", default="")
            tech_name = doc.string(tech.get("name"), "name", default="")
            tactic_name = doc.string(tactic.get("name"), "name", default="")
            # Tracee's legacy signatures' property names.
            if tech_id:
                props["external_id"] = tech_id
            if tech_name:
                props["Technique"] = tech_name
            if tactic_name:
                props["Category"] = tactic_name.lower().replace(" ", "-")
            if tactic_name or tech_name:
                props["MITRE ATT&CK"] = ": ".join(x for x in (tactic_name, tech_name) if x)
        _, extra = doc.opt_mapping(threat, "properties", "threat.properties", None)
        for k, v in extra.items():
            props[k] = doc.string(v, k)
        return props

    def _requirements(self, doc: _Doc, node: Node, top: dict[str, Node],
                      known: Collection[str] | None) -> dict[str, Callable[[Event], bool] | None]:
        req_node = doc.required(node, top, "requirements", "detector")
        req = doc.mapping(req_node, "requirements", _REQUIREMENTS_KEYS)
        # Tracee's spelling (amd64/arm64) or the kernel's (x86_64/aarch64).
        self.architectures = tuple(_ARCH_ALIASES.get(a.lower(), a.lower()) for a, _ in
                                   doc.strings(req.get("architectures"), "architectures"))
        events = doc.items(doc.required(req_node, req, "events", "requirements"),
                           "requirements.events")
        if not events:
            raise doc.fail(req_node, "requirements.events: the detector needs at least one event")
        out: dict[str, list[Callable[[Event], bool] | None]] = {}
        for item in events:
            r = doc.mapping(item, "requirements.events item", _EVENT_REQ_KEYS)
            name = doc.string(doc.required(item, r, "name", "event requirement"), "name")
            kernel = _Registry.lookup(name) is not None
            if not kernel and known is not None and name not in known:
                close = closest(name, [*known, *definitions.BY_NAME])
                hint = f" (did you mean '{close}'?)" if close else ""
                raise doc.fail(r["name"], f"unknown event '{name}'{hint}: not a kernel event "
                                          "nor produced by a loaded detector")
            self.requirement_where.setdefault(name, doc.at(r["name"]))
            if name == self.metadata.event_name:
                raise doc.fail(r["name"], "a detector cannot require the event it produces")
            dep = doc.string(r.get("dependency"), "dependency", default="required")
            if dep not in ("required", "optional"):
                raise doc.fail(r["dependency"], f"dependency '{dep}' is not 'required' or "
                                                "'optional'")
            data = _merge_data_filters(doc.strings(r.get("data_filters"), "data_filters"), doc)
            scope = doc.strings(r.get("scope_filters"), "scope_filters")
            pred: Callable[[Event], bool] | None = None
            if data or scope:
                pred = (_kernel_filter(name, data, scope, doc) if kernel
                        else _detector_event_filter(data, scope, doc))
            out.setdefault(name, []).append(pred)
        # Several requirements of one event OR; an unfiltered one takes everything.
        result: dict[str, Callable[[Event], bool] | None] = {}
        for name, preds in out.items():
            if any(p is None for p in preds):
                result[name] = None
            elif len(preds) == 1:
                result[name] = preds[0]
            else:
                ps = tuple(p for p in preds if p is not None)
                result[name] = lambda ev, ps=ps: any(p(ev) for p in ps)  # type: ignore[misc]
        return result

    def _make_env(self, lists: Mapping[str, Sequence[str]]) -> cel.Env:
        # getEventData and hasData read the event being evaluated (set in on_event):
        # the env belongs to this signature, so no other detector sees it.
        def get_data(name: str) -> Any:
            ev = self._ev
            if ev is None:
                return None
            i = ev.definition.arg_index(name)
            if i is None:
                return None
            v = ev.args[i]
            return v if v.__class__ in _PLAIN else _cel_value(v)

        def has_data(name: str) -> bool:
            ev = self._ev
            if ev is None:
                return False
            i = ev.definition.arg_index(name)
            return i is not None and ev.args[i] is not None

        def workload_leaf(path: str) -> Any:
            ev = self._ev
            return _LEAVES[path](ev.ctx) if ev is not None else None

        def timestamp() -> datetime.datetime:
            ev = self._ev
            return _EPOCH + datetime.timedelta(microseconds=ev.timestamp // 1000 if ev else 0)

        own = cel.CelExtension("pytracee", [
            _fn("__workload", "pytracee_workload_string", cel.Type.DYN, [_S], workload_leaf),
            _fn("__timestamp", "pytracee_timestamp", cel.Type.TIMESTAMP, [], timestamp),
            _fn("getEventData", "pytracee_getEventData_string", cel.Type.DYN, [_S], get_data),
            _fn("getData", "pytracee_getData_string", cel.Type.DYN, [_S], get_data),
            _fn("hasData", "pytracee_hasData_string", cel.Type.BOOL, [_S], has_data),
            *_STRING_HELPERS,
        ])
        variables = {"workload": cel.Type.DYN, "timestamp": cel.Type.TIMESTAMP}
        variables.update({n: cel.Type.List(_S) for n in lists})
        return cel.NewEnv(variables=variables, extensions=[
            ext_strings.ExtStrings(), ext_bindings.ExtBindings(), ext_optional.ExtOptional(), own])

    def _compile(self, doc: _Doc, src: str, node: Node, what: str,
                 lists: Mapping[str, Sequence[str]]) -> cel.Expression:
        code = _blank_strings(src)
        m = _DATASTORE_CALL.search(code)
        if m is not None:
            raise doc.fail(node, f"{what}: datastore function {m.group(1)}.{m.group(2)}() is "
                                 "not supported by pytracee's YAML detectors")
        for m in _WORKLOAD_PATH.finditer(code):
            self._check_workload_path(doc, node, what, m.group(1), m.group(2) is not None)
        try:
            return self._env.compile(src)
        except RuntimeError as exc:
            raise self._cel_error(doc, node, what, str(exc), lists) from None

    def _fast(self, checked: cel.Expression, src: str, lists: Mapping[str, Sequence[str]],
              used: list[str]) -> cel.Expression:
        fast_src = _fast_form(src, lists)
        if fast_src != src:
            try:
                fast = self._env.compile(fast_src)
            except RuntimeError:  # not expected; the checked form is always correct
                log.debug("fast form of %r does not compile: %r", src, fast_src)
            else:
                used.append(fast_src)
                return fast
        used.append(src)
        return checked

    @staticmethod
    def _check_workload_path(doc: _Doc, node: Node, what: str, path: str, called: bool) -> None:
        parts = [p.strip() for p in path.split(".")[1:]]
        shape: Any = WORKLOAD_FIELDS
        seen = "workload"
        for i, part in enumerate(parts):
            if shape is None or (called and i == len(parts) - 1 and part not in shape):
                return  # a method call on a value (or on a map: .size())
            if part not in shape:
                close = closest(part, shape)
                hint = f" (did you mean '{seen}.{close}'?)" if close else ""
                raise doc.fail(node, f"{what}: '{seen}' has no field '{part}'{hint}; known: "
                                     f"{', '.join(shape)}")
            shape = shape[part]
            seen += "." + part

    @staticmethod
    def _cel_error(doc: _Doc, node: Node, what: str, text: str,
                   lists: Mapping[str, Sequence[str]]) -> UsageError:
        line = node.start_mark.line + 1
        style = getattr(node, "style", None)
        m = _CEL_ERROR.search(text)
        if m is None:
            first = text.strip().splitlines()[0] if text.strip() else "compile error"
            return UsageError(f"{what}: {first}", where=f"{doc.path}:{line}")
        cel_line, col, msg = int(m.group(1)), int(m.group(2)), m.group(3)
        msg = re.sub(r" \(in container ''\)$", "", msg).strip()
        if style in ("|", ">"):
            line += 1  # the text starts below the block indicator
            if style == "|":  # a literal block keeps its lines (an error at EOF: the last)
                line += min(cel_line, len(str(node.value).rstrip("\n").split("\n"))) - 1
        u = re.fullmatch(r"undeclared reference to '(\w+)'", msg)
        if u is not None and _LIST_NAME.match(u.group(1)):
            known = ", ".join(sorted(lists)) or "none"
            msg = f"unknown string list '{u.group(1)}' (string lists in this directory: {known})"
        return UsageError(f"{what}: {msg} (column {col})", where=f"{doc.path}:{line}")

    # -- evaluation -------------------------------------------------------------

    def _bind(self, ev: Event) -> dict[str, Any]:
        data: dict[str, Any] = dict(self._lists)
        if self._wants_workload:
            data["workload"] = _workload(ev.ctx)
        if self._wants_timestamp:
            data["timestamp"] = _EPOCH + datetime.timedelta(microseconds=ev.timestamp // 1000)
        return data

    def _error(self, kind: str, what: str, text: Any) -> None:
        self.last_error = f"{what}: {text}"
        if not self._logged:  # once per detector: counted always, logged once
            self._logged = True
            log.warning("detector %s (%s): %s %s (counted as %s; further errors are counted "
                        "silently)", self.metadata.id, self.path, what, text, kind)

    def on_event(self, event: Event) -> None:
        pred = self._filters.get(event.name)
        if pred is not None and not pred(event):
            self.filtered_out += 1
            return
        self._ev = event
        try:
            act: Any = None
            if self._needs_data:
                # An Activation converts each variable once, on first use, for all
                # the expressions; eval(data=...) costs several times more.
                act = self._env.Activation(self._bind(event))
            for i, expr in enumerate(self._conditions):
                v = expr.eval(act).value()
                if v is True:
                    continue
                if v is not False:  # an error (its text) or a non-bool from a dyn expression
                    self.eval_errors += 1
                    self._error("false", f"condition {i + 1} on {event.name}", v)
                return
            fields: dict[str, Any] = {}
            for f in self._outputs:
                r = f.expr.eval(act)
                if r.type() == _ERROR:
                    self.field_errors += 1
                    if f.optional:
                        continue
                    self.dropped_findings += 1
                    self._error("a dropped finding", f"output field '{f.name}' on {event.name}",
                                r.value())
                    return
                fields[f.name] = r.plain_value()
        finally:
            self._ev = None  # do not keep the event alive
        self.match(event, **fields)


def _yaml_error(path: str, exc: yaml.MarkedYAMLError) -> UsageError:
    mark = exc.problem_mark or exc.context_mark
    line = f":{mark.line + 1}" if mark is not None else ""
    what = " ".join(p for p in (exc.context, exc.problem) if p)
    return UsageError(f"invalid YAML: {what}", where=f"{path}{line}")


# ---------------------------------------------------------------------------
# Loading files and directories
# ---------------------------------------------------------------------------

def _files(paths: Sequence[str], errors: list[UsageError]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                out += [os.path.join(root, n) for n in sorted(names) if n.endswith((".yaml", ".yml"))]
        elif os.path.exists(path):
            out.append(path)
        else:
            errors.append(UsageError("no such file or directory", where=path))
    unique: dict[str, str] = {}  # a file given twice (or via a link) loads once
    for f in out:
        unique.setdefault(os.path.realpath(f), f)
    return list(unique.values())


def _read(path: str) -> list[Node]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UsageError("cannot read detector file: not UTF-8 text", where=path) from None
    except OSError as exc:
        raise UsageError(f"cannot read detector file: {exc.strerror}", where=path) from None
    try:
        return [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader)
                if n is not None and not _is_null(n)]
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(path, exc) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"invalid YAML: {exc}", where=path) from None


def _string_list(doc: _Doc, node: Node) -> tuple[str, list[str]]:
    m = doc.mapping(node, "string list", _LIST_KEYS)
    name = doc.string(doc.required(node, m, "name", "string list"), "name")
    if not _LIST_NAME.match(name):
        raise doc.fail(m["name"], f"string list name '{name}' must be UPPER_SNAKE_CASE "
                                  "(e.g. SHELL_BINARIES)")
    values = doc.strings(doc.required(node, m, "values", "string list"), "values")
    return name, [v for v, _ in values]


def _produced_name(node: Node) -> str | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == "produced_event" and \
                    isinstance(v, MappingNode):
                for k2, v2 in v.value:
                    if isinstance(k2, ScalarNode) and k2.value == "name" and \
                            isinstance(v2, ScalarNode):
                        return str(v2.value)
    return None


def load_yaml_detectors(paths: Sequence[str], extra_events: Collection[str] = ()
                        ) -> tuple[list[CelSignature], list[UsageError]]:
    """Every YAML detector in `paths` (files, or directories searched recursively for
    *.yaml / *.yml). String lists load first; a detector sees the lists of its own
    directory. Each bad file gives one UsageError ("file:line: ...") and is skipped;
    the rest load. `extra_events`: event names other signatures (Python, Rego)
    produce, which a YAML detector may require."""
    errors: list[UsageError] = []
    docs: list[tuple[str, _Doc, Node]] = []
    for path in _files(paths, errors):
        try:
            nodes = _read(path)
        except UsageError as exc:
            errors.append(exc)
            continue
        d = _Doc(path)
        for n in nodes:
            docs.append((path, d, n))

    lists: dict[str, dict[str, list[str]]] = {}  # directory -> name -> values
    detector_docs: list[tuple[str, _Doc, Node]] = []
    bad: set[str] = set()
    for path, d, n in docs:
        kind, knode = _doc_type(n)
        try:
            if kind == "string_list":
                name, values = _string_list(d, n)
                scope = lists.setdefault(os.path.dirname(os.path.abspath(path)), {})
                if name in scope:
                    raise d.fail(n, f"string list '{name}' is defined twice in this directory")
                scope[name] = values
            elif kind == "detector":
                detector_docs.append((path, d, n))
            elif knode is None:
                raise d.fail(n, "missing 'type' (expected 'detector' or 'string_list')")
            else:
                raise d.fail(knode, f"unknown document type '{kind}' (expected 'detector' or "
                                    "'string_list')")
        except UsageError as exc:
            if path not in bad:  # one error per file
                errors.append(exc)
                bad.add(path)

    produced = {p for _, _, n in detector_docs if (p := _produced_name(n)) is not None}
    known = produced | set(extra_events)
    sigs: list[CelSignature] = []
    ids: dict[str, str] = {}
    events: dict[str, str] = {}
    for path, d, n in detector_docs:
        if path in bad:
            continue
        try:
            sig = CelSignature(n, path, lists.get(os.path.dirname(os.path.abspath(path)), {}),
                               known)
            md = sig.metadata
            if md.id in ids:
                raise UsageError(f"detector id '{md.id}' is already used at {ids[md.id]}",
                                 where=sig.where)
            if md.event_name in events:
                raise UsageError(f"produced event '{md.event_name}' is already produced by the "
                                 f"detector at {events[md.event_name]}", where=sig.where)
        except UsageError as exc:
            errors.append(exc)
            bad.add(path)
            continue
        arch = platform.machine().lower()
        if sig.architectures and _ARCH_ALIASES.get(arch, arch) not in sig.architectures:
            log.info("detector %s (%s) is for %s, not %s: not loaded", md.id, sig.where,
                     ", ".join(sig.architectures), arch)
            continue
        ids[md.id] = sig.where
        events[md.event_name] = sig.where
        sigs.append(sig)
    # A detector whose input comes from a detector that failed to load goes too
    # (and so on down the chain): the engine would refuse the whole set.
    while True:
        have = {s.metadata.event_name for s in sigs} | set(extra_events)
        orphans = [(s, n) for s in sigs for n in s.requirement_where
                   if _Registry.lookup(n) is None and n not in have]
        if not orphans:
            return sigs, errors
        for s, n in orphans:
            if s in sigs:
                errors.append(UsageError(f"requires event '{n}', whose detector did not load",
                                         where=s.requirement_where[n]))
                sigs.remove(s)
