"""Finding signatures: the built-ins, and user files (Python, Rego, YAML+CEL)."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from pytracee.detect.signature import Signature
from pytracee.errors import UsageError

log = logging.getLogger(__name__)


def builtin_signatures() -> list[Signature]:
    from pytracee.detect.builtin import all_signatures

    return all_signatures()


def _python_signatures(module: ModuleType) -> list[Signature]:
    """Every concrete Signature subclass a module defines (not ones it imports)."""
    out = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if (issubclass(obj, Signature) and obj is not Signature and obj.__module__ == module.__name__
                and getattr(obj, "metadata", None) is not None):
            out.append(obj())
    return out


def _load_python(path: Path) -> list[Signature]:
    name = f"pytracee_user_signatures.{path.stem}"
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
    return _python_signatures(module)


def load_signature_dirs(dirs: Sequence[str]) -> tuple[list[Signature], list[UsageError]]:
    """Signatures from `--signatures-dir` directories (or files): *.py, *.rego,
    *.yaml/*.yml detectors. A bad file is an error in the list; the rest load."""
    sigs: list[Signature] = []
    errors: list[UsageError] = []
    paths: list[Path] = []
    for raw in dirs:
        p = Path(raw)
        if p.is_dir():
            paths.extend(sorted(q for q in p.iterdir() if q.is_file()))
        elif p.is_file():
            paths.append(p)
        else:
            errors.append(UsageError("no such file or directory", where=raw))
    py = [p for p in paths if p.suffix == ".py"]
    rego = [p for p in paths if p.suffix == ".rego"]
    yml = [p for p in paths if p.suffix in (".yaml", ".yml")]
    for p in py:
        try:
            sigs.extend(_load_python(p))
        except UsageError as exc:
            errors.append(exc)
    if rego:
        from pytracee.detect.rego import load_rego_signatures

        found, errs = load_rego_signatures(rego)
        sigs.extend(found)
        errors.extend(errs)
    if yml:
        from pytracee.detect.cel import load_yaml_detectors

        found_y, errs_y = load_yaml_detectors(yml)
        sigs.extend(found_y)
        errors.extend(errs_y)
    return sigs, errors


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
