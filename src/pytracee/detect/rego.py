"""Rego signatures in Tracee's v0 format (tracee-compat §4.4).

A `.rego` file is one signature: its package exports

    __rego_metadoc__        {id, version, name, eventName, description, tags, properties}
    tracee_selected_events  a set of {source, name, origin}
    tracee_match            true, or an object (the finding's data)

`input` is the event's legacy JSON document (pytracee.detect.legacy.event_dict).
Signatures may call the helpers of package `tracee.helpers` (HELPERS_REGO, loaded
with every signature): get_tracee_argument(name), is_file_write(flags),
is_file_read(flags). Both Rego syntaxes load: a file is read as Rego v1 if it
parses so (with or without `import rego.v1`), else as v0 (Tracee's signatures).

Library files: a file whose package is `tracee.helpers` is skipped (the helpers
are built in, and an old Tracee helpers.rego would redefine them). A file whose
package has a segment `lib` or `helpers` (e.g. `mycorp.lib.paths`) is a library:
loaded for signatures to use, not a signature itself. Any other file without
`__rego_metadoc__` is an error.

Engine note. Two real Rego engines from PyPI were measured on this machine, same
run (bench/rego_eval.py: fileless_execution.rego, sched_process_exec events,
median of 3): `gordon-to-regorus` 0.13.0 (Microsoft's regorus, Rust; import
`regorus`) evaluates tracee_match ~100 k/s, ~50 k/s counting the event's conversion
into the engine, ~33 k/s for a whole on_event (legacy JSON document included);
Microsoft's `regopy` 1.5.2 (rego-cpp) ~600 /s, ~430 /s and ~430 /s. regorus is the
engine: ~150x faster, it reads v0 and v1 per module, and its errors are
`--> file:line:col` plus one `error:` line. regopy stays behind the same adapter
(`engine="regopy"`; not a dependency) so the tests can check both agree. regorus's
RVM (compiled programs, ~200 k evals/s) is not used: it has no v0 and no `with`.
regorus differs from OPA in one way that matters: a builtin given the wrong type
(startswith(1, "a")) is an error, not undefined; the engine counts it against the
signature, and the helpers check types first.

All signatures share one engine, so an event is converted once whatever the
number of Rego signatures that see it, and only the top-level fields of `input`
that some loaded policy references are converted (the AST says which).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import orjson

from pytracee.detect.legacy import event_fields
from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata
from pytracee.errors import UsageError
from pytracee.events.event import Event

HELPERS_PACKAGE = "tracee.helpers"
HELPERS_PATH = "<pytracee>/tracee/helpers.rego"
HELPERS_REGO = """\
package tracee.helpers

import rego.v1

# The value of the event's argument `name` (undefined when the event has none).
get_tracee_argument(name) := arg.value if {
	some arg in input.args
	arg.name == name
}

# open(2) flags. Raw, the access mode is the low two bits: O_RDONLY 0, O_WRONLY 1,
# O_RDWR 2. With parse-arguments on, a string such as "O_WRONLY|O_CREAT".
is_file_write(flags) if {
	is_number(flags)
	bits.and(flags, 3) in {1, 2}
}

is_file_write(flags) if {
	is_string(flags)
	some name in _flag_names(flags)
	name in {"O_WRONLY", "O_RDWR"}
}

is_file_read(flags) if {
	is_number(flags)
	bits.and(flags, 3) in {0, 2}
}

# O_RDONLY is 0, so a string without an access mode is read-only too.
is_file_read(flags) if {
	is_string(flags)
	not "O_WRONLY" in _flag_names(flags)
}

is_file_read(flags) if {
	is_string(flags)
	"O_RDWR" in _flag_names(flags)
}

_flag_names(flags) := {upper(trim_space(name)) | some name in split(flags, "|")}
"""

# Packages that are libraries, not signatures (see the module docstring).
_LIBRARY_SEGMENTS = frozenset({"lib", "helpers"})
_PACKAGE_RE = re.compile(r"^[ \t]*package\s+([^\s#]+)", re.MULTILINE)
_METADOC_RE = re.compile(r"^[ \t]*__rego_metadoc__\b", re.MULTILINE)
_SELECTED_RE = re.compile(r"^[ \t]*tracee_selected_events\b", re.MULTILINE)
_UNDEFINED: Any = object()


class RegoError(Exception):
    """An error of the Rego engine: what is wrong, and where when it says."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        super().__init__(str(self))

    @property
    def where(self) -> str | None:
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class NoSuchRule(RegoError):
    """The policy has no rule by that name (engines that cannot tell say undefined)."""


# -- engines -----------------------------------------------------------------------


class RegoBackend(Protocol):
    """What pytracee needs of a Rego engine. Results are JSON-shaped (sets are lists)."""

    name: ClassVar[str]

    def clone(self) -> RegoBackend: ...
    def add_module(self, path: str, source: str) -> None: ...   # raises RegoError
    def set_input(self, doc: dict[str, Any]) -> None: ...
    def eval(self, ref: str) -> Any: ...    # _UNDEFINED; raises RegoError, NoSuchRule
    def input_keys(self) -> frozenset[str] | None: ...            # None: all of input


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """fd 2 to /dev/null: regorus writes parser warnings straight to it."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class RegorusBackend:
    """regorus (PyPI `gordon-to-regorus`, import `regorus`): Rego in Rust."""

    name: ClassVar[str] = "regorus"
    _V0_ONLY = re.compile(r"keyword is required")  # v1's complaints about v0 syntax

    def __init__(self, engine: Any = None) -> None:
        import regorus

        self._regorus = regorus
        self._engine = engine if engine is not None else regorus.Engine()

    def clone(self) -> RegorusBackend:
        return RegorusBackend(self._engine.clone())

    def add_module(self, path: str, source: str) -> None:
        # Parse as v1 first: in v0 mode a v1 file without `import rego.v1` parses
        # silently wrong (`p if { false }` makes p true). Fall back to v0 (Tracee's).
        v1_error = self._probe(path, source, v0=False)
        v0 = False
        if v1_error is not None:
            v0_error = self._probe(path, source, v0=True)
            if v0_error is not None:
                raise v0_error if self._V0_ONLY.search(v1_error.message) else v1_error
            v0 = True
        self._engine.set_rego_v0(v0)
        with _quiet_stderr():
            self._call(self._engine.add_policy, path, source)

    def _probe(self, path: str, source: str, *, v0: bool) -> RegoError | None:
        engine = self._regorus.Engine()
        engine.set_rego_v0(v0)
        try:
            with _quiet_stderr():  # the parser prints its own warnings; our error is one line
                self._call(engine.add_policy, path, source)
        except RegoError as exc:
            return exc
        return None

    def set_input(self, doc: dict[str, Any]) -> None:
        self._engine.set_input(doc)

    def eval(self, ref: str) -> Any:
        try:
            out = self._engine.eval_rule_as_json(ref)
        except RuntimeError as exc:
            text = str(exc)
            if text.startswith("not a valid rule path"):
                raise NoSuchRule(f"no rule {ref}") from None
            raise _regorus_error(text) from None
        # regorus renders an undefined rule as this string; a rule whose value is
        # the very same string is taken as undefined too.
        return _UNDEFINED if out == '"<undefined>"' else orjson.loads(out)

    def input_keys(self) -> frozenset[str] | None:
        return _input_keys(orjson.loads(self._engine.get_ast_as_json()))

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except RuntimeError as exc:
            raise _regorus_error(str(exc)) from None


def _regorus_error(text: str) -> RegoError:
    """`--> file:line:col`, the source excerpt, `error: what` (and a backtrace when
    RUST_BACKTRACE is set): keep the what and the where."""
    text = text.split("Stack backtrace:", 1)[0]
    loc = re.search(r"^--> (.+):(\d+):(\d+)\s*$", text, re.MULTILINE)
    msg = re.search(r"^error: (.+)$", text, re.MULTILINE)
    message = msg.group(1).strip() if msg else next(
        (ln.strip() for ln in text.splitlines() if ln.strip()), "Rego error")
    if loc is None:
        return RegoError(message)
    return RegoError(message, loc.group(1), int(loc.group(2)))


def _input_keys(modules: Any) -> frozenset[str] | None:
    """The top-level keys of `input` the policies can read, or None when one reads
    `input` other than as `input.key` / `input["key"]` (then all of it is needed)."""
    keys: set[str] = set()

    def input_key(ref: Any) -> str | None | bool:
        """For a RefDot/RefBrack node on `input`: its literal key, None if not literal;
        False when the node does not start at `input`."""
        refr = ref.get("refr")
        if not (isinstance(refr, dict) and refr.get("Var", {}).get("value") == "input"):
            return False
        if "field" in ref:
            field = ref["field"]
            return field[1] if isinstance(field, list) and isinstance(field[-1], str) else None
        index = ref.get("index")
        if isinstance(index, dict) and "String" in index:
            return str(index["String"]["value"])
        return None

    def walk(node: Any) -> bool:
        if isinstance(node, list):
            return all(walk(x) for x in node)
        if not isinstance(node, dict):
            return True
        for kind in ("RefDot", "RefBrack"):
            ref = node.get(kind)
            if isinstance(ref, dict):
                key = input_key(ref)
                if key is None:
                    return False
                if key is not False:
                    keys.add(str(key))
                    return walk(ref.get("index"))
        var = node.get("Var")
        if isinstance(var, dict) and var.get("value") == "input":
            return False
        return all(walk(v) for v in node.values())

    return frozenset(keys) if walk(modules) else None


class RegopyBackend:
    """regopy (PyPI `regopy`, Microsoft's rego-cpp). Not a dependency: for cross-checks."""

    name: ClassVar[str] = "regopy"

    def __init__(self, modules: Sequence[tuple[str, str]] = ()) -> None:
        import regopy

        self._regopy = regopy
        self._interp = regopy.Interpreter()
        self._modules: list[tuple[str, str]] = []
        for path, source in modules:
            self.add_module(path, source)

    def clone(self) -> RegopyBackend:
        return RegopyBackend(self._modules)  # no clone in its API: add the modules again

    def add_module(self, path: str, source: str) -> None:
        try:
            self._interp.add_module(path, source)
        except self._regopy.RegoError as exc:
            raise self._error(str(exc), path, source) from None
        self._modules.append((path, source))

    def set_input(self, doc: dict[str, Any]) -> None:
        self._interp.set_input_term(orjson.dumps(doc).decode())

    def eval(self, ref: str) -> Any:
        from regopy.rego_shared import rego_free_output, rego_output_string, rego_query

        out = rego_query(self._interp._impl, ref)  # the raw output: errors come as text
        try:
            text = rego_output_string(out)
        finally:
            rego_free_output(out)
        if text == "undefined":
            return _UNDEFINED
        if text.startswith("("):
            raise self._error(text)
        return orjson.loads(text)["expressions"][0]

    def input_keys(self) -> frozenset[str] | None:
        return None

    def _error(self, text: str, path: str | None = None, source: str | None = None) -> RegoError:
        """rego-cpp errors are S-expressions: `(error N:file|offset|len (errormsg N:what)`."""
        msg = re.search(r"\(errormsg \d+:([^\n]*)\)", text)
        message = msg.group(1).strip() if msg else "Rego error"
        loc = re.search(r"\(error \d+:([^|\s]+)\|(\d+)\|", text)
        if loc is None or path is None or source is None or loc.group(1) != path:
            return RegoError(message, path)
        return RegoError(message, path, source[: int(loc.group(2))].count("\n") + 1)


ENGINES: dict[str, type[RegorusBackend] | type[RegopyBackend]] = {
    "regorus": RegorusBackend, "regopy": RegopyBackend}


# -- signatures --------------------------------------------------------------------


class _SharedInput:
    """The one engine all Rego signatures of a load share, and its current input:
    each event is converted once, however many Rego signatures see it."""

    def __init__(self, backend: RegoBackend) -> None:
        self.backend = backend
        self.keys: frozenset[str] | None = None
        self.arg_names: frozenset[str] | None = None
        self._event: Event | None = None  # the input's event (held: ids are reused)

    def use(self, ev: Event) -> None:
        if ev is self._event:
            return
        self.backend.set_input(event_fields(ev, self.keys, self.arg_names))
        self._event = ev


class RegoSignature(Signature):
    """One `.rego` file's package as a Signature."""

    def __init__(self, path: Path, package: str, shared: _SharedInput,
                 metadata: SignatureMetadata, selected_events: tuple[EventSelector, ...]) -> None:
        super().__init__()
        self.path = path
        self.package = package
        self.metadata = metadata
        self.selected_events = selected_events
        self._shared = shared
        self._match_ref = f"data.{package}.tracee_match"

    def on_event(self, event: Event) -> None:
        # Errors propagate: the engine isolates and counts a failing signature.
        self._shared.use(event)
        result = self._shared.backend.eval(self._match_ref)
        if result is _UNDEFINED or result is False:
            return
        if result is True:
            self.match(event)
        elif isinstance(result, dict):
            self.match(event, **result)
        else:
            raise RegoError(f"tracee_match is {type(result).__name__} {result!r}: "
                            "expected a bool or an object", str(self.path))

    def __repr__(self) -> str:
        return f"<RegoSignature {self.metadata.id} {self.path}>"


def load_rego_signatures(paths: Sequence[Path], *, engine: str = "regorus",
                         ) -> tuple[list[RegoSignature], list[UsageError]]:
    """The signatures of every *.rego file among `paths` (files, or directories
    searched recursively). A file that does not parse, compile or describe itself
    is one UsageError (where = "file:line"); the other files still load."""
    errors: list[UsageError] = []
    files: list[tuple[Path, str, str]] = []  # (path, source, package)
    for path in _rego_files(paths, errors):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(UsageError(f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                                     where=str(path)))
            continue
        package = _package_of(source)
        if package is None:
            errors.append(UsageError("no package declaration", where=f"{path}:1"))
            continue
        files.append((path, source, package))

    shared = _SharedInput(ENGINES[engine]())
    shared.backend.add_module(HELPERS_PATH, HELPERS_REGO)
    signature_files = []
    for path, source, package in files:
        if package == HELPERS_PACKAGE:
            continue  # built in
        if _LIBRARY_SEGMENTS.isdisjoint(package.split(".")):
            signature_files.append((path, source, package))
            continue
        try:  # libraries first: signatures may use them
            shared.backend.add_module(str(path), source)
        except RegoError as exc:
            errors.append(_usage(exc, path))

    sigs: list[RegoSignature] = []
    packages: dict[str, Path] = {}
    for path, source, package in signature_files:
        if package in packages:
            errors.append(UsageError(f"package {package} is already the signature of "
                                     f"{packages[package]}", where=f"{path}:{_line_of(source, _PACKAGE_RE)}"))
            continue
        try:
            sig = _load_one(path, source, package, shared)
        except RegoError as exc:
            errors.append(_usage(exc, path))
            continue
        except UsageError as exc:
            errors.append(exc)
            continue
        packages[package] = path
        sigs.append(sig)
    shared.keys = shared.backend.input_keys()
    shared.arg_names = _argument_names([src for _, src, _ in files])
    return sigs, errors


_ARG_CALL = re.compile(r"get_tracee_argument\(\s*(\"[^\"]*\")?")


def _argument_names(sources: Sequence[str]) -> frozenset[str] | None:
    """The args the rules can read, when they read args only through
    get_tracee_argument("literal"): then the other args need not be sent to the
    engine (converting input is half of an evaluation). None: send them all."""
    names: set[str] = set()
    for src in sources:
        code = "\n".join(ln.split("#", 1)[0] for ln in src.splitlines())
        if "input.args" in code or "input[" in code or re.search(r"\binput\s*$|\binput\s*[,)}\]]", code):
            return None
        for m in _ARG_CALL.finditer(code):
            if m.group(1) is None:
                return None  # a computed name: any arg
            names.add(m.group(1)[1:-1])
    return frozenset(names)


def _load_one(path: Path, source: str, package: str, shared: _SharedInput) -> RegoSignature:
    # Check it alone (with the helpers and libraries) before it joins the shared engine.
    trial = shared.backend.clone()
    trial.add_module(str(path), source)
    prefix = f"data.{package}"
    metadoc = _eval_rule(trial, f"{prefix}.__rego_metadoc__")
    if metadoc is _UNDEFINED:
        raise UsageError("no __rego_metadoc__: not a signature (a library's package needs a "
                         "'lib' or 'helpers' segment)", where=f"{path}:{_line_of(source, _PACKAGE_RE)}")
    metadata = _metadata(metadoc, f"{path}:{_line_of(source, _METADOC_RE)}")
    selected = _selectors(_eval_rule(trial, f"{prefix}.tracee_selected_events"),
                          f"{path}:{_line_of(source, _SELECTED_RE)}")
    # Evaluate tracee_match once on an empty input: regorus finds unknown functions
    # and the like only when a rule is evaluated.
    trial.set_input({})
    try:
        trial.eval(f"{prefix}.tracee_match")
    except NoSuchRule:
        raise UsageError("no tracee_match rule",
                         where=f"{path}:{_line_of(source, _PACKAGE_RE)}") from None
    shared.backend.add_module(str(path), source)
    sig = RegoSignature(path, package, shared, metadata, selected)
    sig.defined_at = f"{path}:{_id_line(source)}"  # for messages naming where an id is
    return sig


_ID_KEY_RE = re.compile(r"""["']id["']\s*:""")


def _id_line(source: str) -> int:
    """The line of the "id" key of __rego_metadoc__ (else of __rego_metadoc__)."""
    code = "\n".join(ln.split("#", 1)[0] for ln in source.splitlines())
    start = _METADOC_RE.search(code)
    m = _ID_KEY_RE.search(code, start.start()) if start else None
    if m is None:
        return _line_of(source, _METADOC_RE)
    return code[: m.start()].count("\n") + 1


def _eval_rule(backend: RegoBackend, ref: str) -> Any:
    try:
        return backend.eval(ref)
    except NoSuchRule:
        return _UNDEFINED


def _metadata(doc: Any, where: str) -> SignatureMetadata:
    if not isinstance(doc, dict):
        raise UsageError(f"__rego_metadoc__ is {type(doc).__name__}: expected an object",
                         where=where)
    for key in ("id", "name", "eventName"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise UsageError(f"__rego_metadoc__ has no {key} (a non-empty string)", where=where)
    tags = doc.get("tags") or []
    props = doc.get("properties") or {}
    if not isinstance(tags, list) or not isinstance(props, dict):
        raise UsageError("__rego_metadoc__: tags must be a list and properties an object",
                         where=where)
    return SignatureMetadata(
        id=doc["id"], name=doc["name"], event_name=doc["eventName"],
        version=str(doc.get("version", "1")), description=str(doc.get("description", "")),
        tags=tuple(str(t) for t in tags), properties=props)


def _selectors(value: Any, where: str) -> tuple[EventSelector, ...]:
    if value is _UNDEFINED or not value:
        raise UsageError("tracee_selected_events is missing or empty: the signature would "
                         "see no event", where=where)
    if not isinstance(value, list):  # a set comes as a list
        raise UsageError("tracee_selected_events must be a set of {source, name, origin}",
                         where=where)
    out: list[EventSelector] = []
    for sel in value:
        if not isinstance(sel, dict) or not isinstance(sel.get("name"), str):
            raise UsageError(f"tracee_selected_events: {sel!r} has no name", where=where)
        es = EventSelector(sel["name"], str(sel.get("origin") or "*"),
                           str(sel.get("source") or "tracee"))
        if es not in out:
            out.append(es)
    return tuple(out)


def _rego_files(paths: Sequence[Path], errors: list[UsageError]) -> Iterator[Path]:
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.rego") if q.is_file())
        elif p.is_file():
            found = [p] if p.suffix == ".rego" else []
        else:
            errors.append(UsageError("no such file or directory", where=str(p)))
            continue
        for q in found:
            if q not in seen:
                seen.add(q)
                yield q


def _package_of(source: str) -> str | None:
    # The first statement of a module; comments before it are allowed.
    code = "\n".join(ln.split("#", 1)[0] for ln in source.splitlines())
    m = _PACKAGE_RE.search(code)
    return m.group(1) if m else None


def _line_of(source: str, pattern: re.Pattern[str]) -> int:
    """The line of what `pattern` finds, else of the package statement (what is
    missing is missing from the package)."""
    m = pattern.search(source) or _PACKAGE_RE.search(source)
    return source[: m.start()].count("\n") + 1 if m else 1


def _usage(exc: RegoError, path: Path) -> UsageError:
    # The engine names the file; a message without a location is about this file.
    where = exc.where if exc.path is not None else str(path)
    return UsageError(exc.message, where=where)
