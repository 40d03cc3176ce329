"""Finding signatures: the built-ins, and user files (Python, Rego, YAML+CEL)."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from pytracee.detect.signature import Signature, where_defined
from pytracee.errors import UsageError

# Warnings about the user's signature files, printed as "pytracee: WARNING <name>: ...".
log = logging.getLogger("pytracee.signatures")


def builtin_signatures() -> list[Signature]:
    from pytracee.detect.builtin import all_signatures

    return all_signatures()


def _python_signatures(module: ModuleType, path: str) -> list[Signature]:
    """Every concrete Signature subclass a module defines (not ones it imports), each
    knowing where it is defined (the file as given, the line of its id)."""
    out = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if (issubclass(obj, Signature) and obj is not Signature and obj.__module__ == module.__name__
                and getattr(obj, "metadata", None) is not None):
            sig = obj()
            where = where_defined(sig)  # the module's file is `path`
            sig.defined_at = f"{path}:{where.rsplit(':', 1)[1]}" if where else path
            out.append(sig)
    return out


def _load_python(path: Path, name: str | None = None) -> list[Signature]:
    name = name or f"pytracee_user_signatures.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError("cannot load this file as Python", where=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise UsageError(f"Python syntax error: {exc.msg}", where=f"{path}:{exc.lineno}") from None
    except Exception as exc:  # the user's module failed at import: one line, where it failed
        tb = exc.__traceback__
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == str(path):
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f"{path}:{line}" if line else str(path)
        raise UsageError(f"importing failed: {type(exc).__name__}: {exc}", where=where) from None
    return _python_signatures(module, str(path))


SIGNATURE_SUFFIXES = (".py", ".rego", ".yaml", ".yml")
SIGNATURE_KINDS = "*.py, *.rego, *.yaml/*.yml"


def signature_files(directory: str) -> list[str]:
    """The signature files under `directory`, subdirectories included (not hidden ones
    nor __pycache__), sorted, as paths joined to `directory` as given."""
    out: list[str] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        out += [os.path.join(root, n) for n in sorted(names)
                if n.endswith(SIGNATURE_SUFFIXES) and not n.startswith(".")
                and os.path.isfile(os.path.join(root, n))]
    return out


def load_signature_dirs(dirs: Sequence[str]) -> tuple[list[Signature], list[UsageError]]:
    """Signatures from `--signatures-dir` directories (searched recursively) or files:
    *.py, *.rego, *.yaml/*.yml detectors; other files are ignored. A bad file is an
    error in the list; the rest load. A directory without any signature file, or a
    file of another kind, is a warning (a typo in the path, or the wrong directory).
    Files are named as given, normalised (./sigs/a.py is sigs/a.py), whatever their kind."""
    sigs: list[Signature] = []
    errors: list[UsageError] = []
    paths: list[str] = []
    for given in dirs:
        raw = os.fspath(given)
        if os.path.isdir(raw):
            found = [os.path.normpath(f) for f in signature_files(raw)]
            if not found:
                log.warning("--signatures-dir %s: no signature file in it or its "
                            "subdirectories (looked for %s)", raw, SIGNATURE_KINDS)
            paths.extend(found)
        elif os.path.isfile(raw):
            if raw.endswith(SIGNATURE_SUFFIXES):
                paths.append(os.path.normpath(raw))
            else:
                log.warning("--signatures-dir %s: not a signature file (expected %s): ignored",
                            raw, SIGNATURE_KINDS)
        else:
            errors.append(UsageError("no such file or directory", where=raw))
    unique: dict[str, str] = {}  # a file given twice (a directory and a file in it) loads once
    for f in paths:
        unique.setdefault(os.path.realpath(f), f)
    paths = list(unique.values())
    py = [p for p in paths if p.endswith(".py")]
    rego = [Path(p) for p in paths if p.endswith(".rego")]
    yml = [p for p in paths if p.endswith((".yaml", ".yml"))]
    modules: set[str] = set()  # files of one name in two directories: two modules
    for p in py:
        stem = Path(p).stem
        name, n = f"pytracee_user_signatures.{stem}", 1
        while name in modules:
            n += 1
            name = f"pytracee_user_signatures.{stem}_{n}"
        modules.add(name)
        try:
            sigs.extend(_load_python(Path(p), name))
        except UsageError as exc:
            errors.append(exc)
    if rego:
        from pytracee.detect.rego import load_rego_signatures

        found_r, errs = load_rego_signatures(rego)
        sigs.extend(found_r)
        errors.extend(errs)
    if yml:
        from pytracee.detect.cel import load_yaml_detectors

        found_y, errs_y = load_yaml_detectors(yml)
        sigs.extend(found_y)
        errors.extend(errs_y)
    return sigs, errors


def with_builtins(builtins: Sequence[Signature], user: Sequence[Signature]
                  ) -> tuple[list[Signature], list[tuple[Signature, Signature]]]:
    """The built-ins and the user's signatures: a user signature with a built-in's id
    replaces it. Also (user, built-in) for each replacement, for the caller to say so."""
    by_id = {s.metadata.id: s for s in builtins}
    replaced = [(u, by_id[u.metadata.id]) for u in user if u.metadata.id in by_id]
    gone = {u.metadata.id for u, _ in replaced}
    return [b for b in builtins if b.metadata.id not in gone] + list(user), replaced


def warn_replaced(replaced: Sequence[tuple[Signature, Signature]]) -> None:
    """One warning line per built-in a user signature replaces."""
    for user, _builtin in replaced:
        log.warning("signature %s from %s replaces the built-in one", user.metadata.id,
                    where_defined(user) or type(user).__qualname__)


def load_params(path: str | None) -> dict[str, dict[str, Any]]:
    """`--signatures-config FILE`: per signature id, its parameters:

        TRC-108:
          allowed_processes: [flanneld, kube-proxy, my-agent]
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read signature config: {exc.strerror}", where=path) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else path
        raise UsageError(f"invalid YAML: {exc.problem}", where=where) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise UsageError("a signature config maps signature ids to mappings of parameters",
                         where=path)
    return {str(k): v for k, v in doc.items()}
