"""Tracee policy files -> PolicyDoc: reading, format detection and validation.

Both of Tracee's formats are accepted, auto-detected per YAML document:
  * Kubernetes: apiVersion: tracee.aquasec.com/v1beta1, kind: Policy,
    metadata.name, metadata.annotations.description, spec.{scope, defaultActions, rules}
  * plain: type: policy, name, description, scope, defaultActions, rules

We walk PyYAML's composed node tree (not the loaded Python objects) so every
error can name the line of the node at fault, and we collect every error
before raising, so one run shows the user all that is wrong.

Choices where Tracee is silent or loose:
  * scalars are read as written (like Tracee's YAML decoder does for string
    fields): `description: 2024` is the string "2024"; null is "missing";
  * unknown keys are errors (Tracee ignores them), with a did-you-mean hint,
    because a misspelt `filter:` would otherwise silently drop filters.
    Standard Kubernetes metadata keys (labels, uid, ...) are accepted;
  * `description` may be absent (Tracee's loader does not require it);
  * names must be DNS-1123 subdomains, as Tracee's loader requires;
  * a file may hold several documents (`---`); empty documents are skipped.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pytracee.errors import UsageError, closest, UsageErrors
from pytracee.events.wire import MAX_POLICIES

__all__ = ["PolicyDoc", "RuleDoc", "PolicyErrors", "load_policies", "API_VERSION"]

API_VERSION = "tracee.aquasec.com/v1beta1"
ACTIONS = frozenset({"log", "print"})  # the actions Tracee's v1beta1 loader accepts
_NULL = "tag:yaml.org,2002:null"
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_K8S_TOP = ("apiVersion", "kind", "metadata", "spec")
# Kubernetes ObjectMeta: present in `kubectl get policy -o yaml` output, ignored here.
_K8S_META = ("name", "annotations", "labels", "namespace", "uid", "resourceVersion", "generation",
             "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
             "generateName", "finalizers", "ownerReferences", "managedFields")
_K8S_SPEC = ("scope", "defaultActions", "rules")
_PLAIN_TOP = ("type", "name", "description", "scope", "defaultActions", "rules")
_RULE = ("event", "filters", "actions")


@dataclass
class RuleDoc:
    event: str
    filters: list[str]
    where: str  # "path:line" of the rule
    filter_where: list[str] = field(default_factory=list)  # one per filter


@dataclass
class PolicyDoc:
    name: str
    description: str
    scope: list[str]
    rules: list[RuleDoc]
    where: str  # "path:line" of the document
    scope_where: list[str] = field(default_factory=list)  # one per scope item
    name_where: str = ""


class PolicyErrors(UsageErrors):
    """Every problem found in the policy files; str() is the first, `.errors` all."""


LOAD_ATTEMPTS = 3
SETTLE_S = 0.05


def snapshot(paths: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(mtime, size, inode) of each policy file, directories' entries included."""
    out: dict[str, tuple[int, int, int]] = {}
    for raw in paths:
        try:
            files = sorted(os.listdir(raw)) if os.path.isdir(raw) else [""]
        except OSError:
            continue
        for name in files:
            f = os.path.join(raw, name) if name else raw
            try:
                st = os.stat(f)
            except OSError:
                continue
            out[f] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return out


def load_policies(paths: Sequence[str]) -> list[PolicyDoc]:
    """Read policy files and directories (their *.yaml/*.yml, by name); raise PolicyErrors.

    Files that change while they are read (a directory being rewritten when a reload
    comes) are read again, up to LOAD_ATTEMPTS times: errors count only for files
    that stayed as they were."""
    for attempt in range(LOAD_ATTEMPTS):
        before = snapshot(paths)
        try:
            return _load_once(paths)
        except PolicyErrors:
            if attempt == LOAD_ATTEMPTS - 1:
                raise
            time.sleep(SETTLE_S)
            if snapshot(paths) == before:
                raise
    raise AssertionError("unreachable")


def _load_once(paths: Sequence[str]) -> list[PolicyDoc]:
    errors: list[UsageError] = []
    docs: list[PolicyDoc] = []
    seen_names: dict[str, str] = {}
    count = 0
    files = _expand(paths, errors)
    for path in files:
        for node in _documents(path, errors):
            count += 1
            r = _Reader(path, errors, node)
            if count == MAX_POLICIES + 1:
                r.error(node, f"at most {MAX_POLICIES} policies can be loaded; this is policy "
                              f"{count}")
            doc = r.policy()
            if doc is None:
                continue
            if doc.name in seen_names:
                errors.append(UsageError(f"policy name '{doc.name}' is already used at "
                                         f"{seen_names[doc.name]}", where=doc.name_where))
                continue
            seen_names[doc.name] = doc.name_where
            docs.append(doc)
    if errors:
        # The documents that did load are still compiled (events, filters, scope), so a
        # YAML error in one file does not hide the mistakes in the others.
        errors += _compile_errors(docs)
        raise PolicyErrors(_in_file_order(errors, files))
    return docs


def _compile_errors(docs: Sequence[PolicyDoc]) -> list[UsageError]:
    from pytracee.policy.compile import compile_policies  # lazy: compile imports this module

    try:
        compile_policies(docs)
    except PolicyErrors as exc:
        return exc.errors
    return []


def _in_file_order(errors: list[UsageError], files: Sequence[str]) -> list[UsageError]:
    """By file, in the order they are read (one file's errors as they were found: the
    first is what `pytracee -p` prints); errors of no file (a directory, an empty path)
    first."""
    index = {f: i for i, f in enumerate(files)}

    def key(err: UsageError) -> int:
        where = err.where or ""
        path, _, line = where.rpartition(":")
        return index.get(where, index.get(path, -1) if line.isdigit() else -1)

    return sorted(errors, key=key)


def _expand(paths: Sequence[str], errors: list[UsageError]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if path == "":
            errors.append(UsageError("empty policy path"))
        elif os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as exc:
                errors.append(UsageError(f"cannot read policy directory: {exc.strerror}",
                                         where=path))
                continue
            found = [os.path.join(path, n) for n in names if n.endswith((".yaml", ".yml"))
                     and os.path.isfile(os.path.join(path, n))]
            if not found:
                errors.append(UsageError("no *.yaml or *.yml policy files in directory",
                                         where=path))
            files += found
        else:
            files.append(path)
    return files


def _documents(path: str, errors: list[UsageError]) -> list[Node]:
    """The file's non-empty YAML documents; read and syntax errors are recorded."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        errors.append(UsageError("cannot read policy file: not UTF-8 text", where=path))
        return []
    except OSError as exc:
        errors.append(UsageError(f"cannot read policy file: {exc.strerror}", where=path))
        return []
    nodes: list[Node] = []
    before = len(errors)
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is not None and not (isinstance(node, ScalarNode) and node.tag == _NULL):
                nodes.append(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        errors.append(UsageError(f"invalid YAML: {what}", where=f"{path}{line}"))
    except yaml.YAMLError as exc:
        errors.append(UsageError(f"invalid YAML: {exc}", where=path))
    if not nodes and len(errors) == before:
        errors.append(UsageError("file holds no policy", where=path))
    return nodes


class _Reader:
    """Validates one document, appending errors; methods return None on failure."""

    def __init__(self, path: str, errors: list[UsageError], root: Node) -> None:
        self.path = path
        self.errors = errors
        self.root = root  # the document
        self.failed = False

    def at(self, node: Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def error(self, node: Node, message: str, token: str | None = None) -> None:
        self.failed = True
        self.errors.append(UsageError(message, token=token, where=self.at(node)))

    # -- generic shapes -------------------------------------------------------
    def mapping(self, node: Node, what: str, known: Collection[str]) -> dict[str, Node] | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return None
        out: dict[str, Node] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                self.error(k, f"{what}: keys must be plain strings")
            elif k.value in out:
                self.error(k, f"{what}: duplicate key '{k.value}'")
            elif k.value not in known:
                close = closest(k.value, known)
                hint = f" (did you mean '{close}'?)" if close else ""
                self.error(k, f"{what}: unknown key '{k.value}'{hint}; "
                              f"known keys: {', '.join(known)}")
            else:
                out[k.value] = v
        return out

    def string(self, node: Node, what: str) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.error(node, f"'{what}' must be a string")
            return None
        return str(node.value)

    def strings(self, node: Node, what: str, *, null_ok: bool = False) -> list[tuple[str, str]] | None:
        """A list of strings, each with its "path:line"."""
        if null_ok and isinstance(node, ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, SequenceNode):
            self.error(node, f"'{what}' must be a list of strings")
            return None
        out = []
        for item in node.value:
            if not isinstance(item, ScalarNode) or item.tag == _NULL:
                self.error(item, f"'{what}' must be a list of strings; this item is not a string")
            else:
                out.append((str(item.value), self.at(item)))
        return out

    def require(self, where: Node, m: dict[str, Node], key: str, what: str) -> Node | None:
        if key not in m:
            self.error(where, f"{what}: missing '{key}'")
        return m.get(key)

    # -- a policy -------------------------------------------------------------
    def policy(self) -> PolicyDoc | None:
        node = self.root
        if not isinstance(node, MappingNode):
            self.error(node, "a policy document must be a mapping")
            return None
        keys = {k.value for k, _ in node.value if isinstance(k, ScalarNode)}
        if "type" in keys:
            return self._plain(node)
        if "kind" in keys or "apiVersion" in keys:
            return self._k8s(node)
        self.error(node, "not a Tracee policy: expected 'apiVersion: tracee.aquasec.com/v1beta1' "
                         "with 'kind: Policy', or 'type: policy'")
        return None

    def _plain(self, node: Node) -> PolicyDoc | None:
        top = self.mapping(node, "policy", _PLAIN_TOP)
        if top is None:
            return None
        t = self.string(top["type"], "type") if "type" in top else None
        if t is not None and t != "policy":
            self.error(top["type"], f"unsupported document type '{t}' (expected 'policy')")
        name_node = self.require(node, top, "name", "policy")
        desc = self.string(top["description"], "description") if "description" in top else ""
        return self._body(node, top, name_node, desc, "policy")

    def _k8s(self, node: Node) -> PolicyDoc | None:
        top = self.mapping(node, "policy", _K8S_TOP)
        if top is None:
            return None
        for key, want in (("apiVersion", API_VERSION), ("kind", "Policy")):
            v = self.require(node, top, key, "policy")
            s = self.string(v, key) if v is not None else None
            if s is not None and s != want:
                self.error(v, f"{key} '{s}' is not supported (expected '{want}')")
        name_node, desc = None, ""
        meta_node = self.require(node, top, "metadata", "policy")
        meta = self.mapping(meta_node, "metadata", _K8S_META) if meta_node is not None else None
        if meta is not None:
            name_node = self.require(meta_node, meta, "name", "metadata")
            ann = meta.get("annotations")
            if ann is not None and not (isinstance(ann, ScalarNode) and ann.tag == _NULL):
                if not isinstance(ann, MappingNode):
                    self.error(ann, "metadata.annotations must be a mapping")
                else:
                    for k, v in ann.value:
                        if isinstance(k, ScalarNode) and k.value == "description":
                            desc = self.string(v, "description")
        spec_node = self.require(node, top, "spec", "policy")
        if spec_node is None:
            return None
        spec = self.mapping(spec_node, "spec", _K8S_SPEC)
        if spec is None:
            return None
        return self._body(spec_node, spec, name_node, desc, "spec")

    def _body(self, holder: Node, m: dict[str, Node], name_node: Node | None,
              desc: str | None, what: str) -> PolicyDoc | None:
        """name, scope, defaultActions and rules: the same in both formats."""
        name = None
        if name_node is not None:
            name = self.string(name_node, "name")
            if name is not None and not (len(name) <= 253 and _DNS1123.fullmatch(name)):
                self.error(name_node, f"policy name '{name}' is invalid: use lowercase letters, "
                                      "digits, '-' and '.', starting and ending with a letter "
                                      "or digit (a DNS-1123 subdomain, as Tracee requires)")
                name = None
        scope = self._scope(holder, m, what)
        if "defaultActions" in m:
            self._actions(m["defaultActions"], "defaultActions")
        rules = self._rules(holder, m, what)
        if self.failed or name is None or desc is None or scope is None or rules is None:
            return None
        return PolicyDoc(name=name, description=desc, scope=[s for s, _ in scope], rules=rules,
                         where=self.at(self.root), scope_where=[w for _, w in scope],
                         name_where=self.at(name_node) if name_node is not None else "")

    def _scope(self, holder: Node, m: dict[str, Node], what: str) -> list[tuple[str, str]] | None:
        node = self.require(holder, m, "scope", what)
        if node is None:
            return None
        scope = self.strings(node, "scope", null_ok=True)
        if scope is not None and not scope:
            self.error(node, "'scope' cannot be empty (use [global] for every process)")
            return None
        return scope

    def _actions(self, node: Node, what: str) -> None:
        for action, where in self.strings(node, what, null_ok=True) or ():
            if action not in ACTIONS:
                self.failed = True
                close = closest(action, sorted(ACTIONS))
                hint = f" (did you mean '{close}'?)" if close else \
                    f" (known: {', '.join(sorted(ACTIONS))})"
                self.errors.append(UsageError(
                    f"action '{action}' is not supported{hint}; "
                    "choose destinations with --output", token=action, where=where))

    def _rules(self, holder: Node, m: dict[str, Node], what: str) -> list[RuleDoc] | None:
        node = self.require(holder, m, "rules", what)
        if node is None:
            return None
        if isinstance(node, ScalarNode) and node.tag == _NULL or \
                isinstance(node, SequenceNode) and not node.value:
            self.error(node, "'rules' cannot be empty")
            return None
        if not isinstance(node, SequenceNode):
            self.error(node, "'rules' must be a list of mappings (- event: <name>)")
            return None
        rules: list[RuleDoc] = []
        first: dict[str, str] = {}
        for item in node.value:
            r = self.mapping(item, "rule", _RULE)
            if r is None:
                continue
            ev_node = self.require(item, r, "event", "rule")
            event = self.string(ev_node, "event") if ev_node is not None else None
            filters = self.strings(r["filters"], "filters", null_ok=True) if "filters" in r else []
            if "actions" in r:
                self._actions(r["actions"], "actions")
            if event is None or filters is None:
                continue
            if event in first:
                # Tracee: each event may appear once per policy.
                self.error(ev_node, f"event '{event}' appears twice in this policy (first at "
                                    f"{first[event]}); each event may appear once per policy")
                continue
            first[event] = self.at(ev_node)
            rules.append(RuleDoc(event, [f for f, _ in filters], self.at(item),
                                 [w for _, w in filters]))
        return rules
