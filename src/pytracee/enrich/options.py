"""`--stores` and `--enrichment` (Tracee's flag names), parsed.

    --stores process                       the process tree (on by default)
    --stores process.max-processes=N       its bound (default 10000)
    --stores process.exited-ttl=SECONDS    how long exited processes stay (default 10)
    --stores none                          no process tree
    --stores dns.max-entries=N             the DNS cache's bound (default 5000)
    -E container                           container enrichment (on by default)
    -E container.docker.socket=PATH        also .podman.socket, .crio.socket
    -E container.wait=MS                   how long events wait for runtime data (default 2000)
    -E none                                no container enrichment
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pytracee.enrich.runtime_api import DEFAULT_SOCKETS
from pytracee.errors import UsageError, closest


@dataclass
class EnrichOptions:
    proctree: bool = True
    max_processes: int = 10_000
    exited_ttl_s: float = 10.0
    containers: bool = True
    sockets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SOCKETS))
    wait_s: float = 2.0
    dns_max_entries: int = 5000


def _number(raw: str, value: str, kind: type, low: float) -> float:
    try:
        n = kind(value)
    except ValueError:
        raise UsageError(f"{value!r} is not a number", token=raw) from None
    if n < low:
        raise UsageError(f"must be at least {low}", token=raw)
    return n


# Option names, and whether each takes "=VALUE" (for the did-you-mean hint).
_STORE_NAMES = {"process": False, "process.max-processes": True, "process.exited-ttl": True,
                "dns": False, "dns.max-entries": True, "none": False}
_ENRICH_NAMES = {"container": False, **{f"container.{r}.socket": True for r in DEFAULT_SOCKETS},
                 "container.wait": True, "none": False}


def _hint(raw: str, names: dict[str, bool]) -> str:
    """' (did you mean 'process.max-processes=5'?)' for a misspelt name; the value, if
    any, is kept. Nothing for a known name used with or without '=' by mistake."""
    key, eq, value = raw.partition("=")
    if key in names:
        return ""
    close = closest(key, names)
    if close is None:
        return ""
    takes = names[close]
    return f" (did you mean '{close}{'=' + value if takes and eq else ''}'?)"


def parse_enrich_options(stores: Sequence[str], enrichment: Sequence[str]) -> EnrichOptions:
    opts = EnrichOptions()
    for raw in stores:
        key, eq, value = raw.partition("=")
        if key == "none" and not eq:
            opts.proctree = False
        elif key == "process" and not eq:
            opts.proctree = True
        elif key == "process.max-processes" and eq:
            opts.max_processes = int(_number(raw, value, int, 1))
        elif key == "process.exited-ttl" and eq:
            opts.exited_ttl_s = _number(raw, value, float, 0)
        elif key == "dns" and not eq:
            pass  # the DNS cache is always on when network events need it
        elif key == "dns.max-entries" and eq:
            opts.dns_max_entries = int(_number(raw, value, int, 1))
        else:
            raise UsageError(f"unknown store option {raw!r}" + (_hint(raw, _STORE_NAMES) or
                             " (expected process, process.max-processes=N, "
                             "process.exited-ttl=SECONDS, dns, dns.max-entries=N or none)"),
                             token=raw)
    for raw in enrichment:
        key, eq, value = raw.partition("=")
        parts = key.split(".")
        if key == "none" and not eq:
            opts.containers = False
        elif key == "container" and not eq:
            opts.containers = True
        elif (len(parts) == 3 and parts[0] == "container" and parts[2] == "socket" and eq
              and parts[1] in DEFAULT_SOCKETS):
            opts.sockets[parts[1]] = value
        elif key == "container.wait" and eq:
            opts.wait_s = _number(raw, value, int, 0) / 1000
        elif len(parts) == 3 and parts[0] == "container" and parts[2] == "socket" and eq:
            close = closest(parts[1], DEFAULT_SOCKETS)
            raise UsageError(f"unknown container runtime {parts[1]!r} in {raw!r}"
                             + (f" (did you mean '{close}'?)" if close else
                                f" (known: {', '.join(DEFAULT_SOCKETS)})"), token=raw)
        else:
            runtimes = "|".join(DEFAULT_SOCKETS)
            raise UsageError(f"unknown enrichment option {raw!r}" + (_hint(raw, _ENRICH_NAMES) or
                             f" (expected container, container.{{{runtimes}}}.socket=PATH, "
                             "container.wait=MS or none)"), token=raw)
    return opts
