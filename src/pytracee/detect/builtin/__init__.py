"""pytracee's built-in signatures: Tracee's TRC detections, same ids and logic."""

from __future__ import annotations

import importlib
import pkgutil

from pytracee.detect.signature import Signature


def all_signatures() -> list[Signature]:
    """One instance of every built-in, ordered by id number."""
    out: list[Signature] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        out.extend(cls() for cls in getattr(module, "SIGNATURES", ()))
    return sorted(out, key=lambda s: int(s.metadata.id.split("-")[1]))
