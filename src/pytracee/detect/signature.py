"""What a signature is, whatever language it is written in.

The model is Tracee's legacy signature interface (tracee-compat §4.3): metadata,
the events it selects, init/on_event/on_signal/close, findings reported through
a callback. Python signatures subclass `Signature`; Rego and YAML+CEL files are
loaded into adapters that implement the same class.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytracee.errors import UsageError

if TYPE_CHECKING:
    from pytracee.events.event import Event

SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")  # Severity 0..4


@dataclass(frozen=True)
class SignatureMetadata:
    id: str                 # e.g. "TRC-105"
    name: str               # human name, e.g. "Fileless execution detected"
    event_name: str         # the event its findings become, e.g. "fileless_execution"
    version: str = "1"
    description: str = ""
    tags: tuple[str, ...] = ()
    # Tracee's Properties: "Severity" (0-4), "Category", "Technique", "id" (MITRE
    # technique id, e.g. "attack-pattern--..."), "external_id" (e.g. "T1620"), ...
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> int:
        return int(self.properties.get("Severity", 0))


@dataclass(frozen=True)
class EventSelector:
    name: str            # an event name (or another signature's event_name: chaining)
    origin: str = "*"    # "host", "container" or "*"
    source: str = "tracee"
    # An optional prefilter the engine applies before calling the signature, with
    # C-speed string methods: only events whose string argument `field` starts with
    # one of `prefixes`, ends with one of `suffixes` or contains one of `contains`.
    # It must let through everything the signature could match (it is an
    # optimisation: most file opens concern no signature).
    field: str = ""
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    contains: tuple[str, ...] = ()
    write_only: bool = False  # security_file_open: only opens for writing (flags)

    def accepts(self, value: Any, flags: Any) -> bool:
        if self.write_only and not (isinstance(flags, int) and flags & 3 in (1, 2)):
            return False
        if not self.field:
            return True
        if not isinstance(value, str):
            return False
        return (value.startswith(self.prefixes) or value.endswith(self.suffixes)
                or any(c in value for c in self.contains))


@dataclass
class Finding:
    data: dict[str, Any]        # becomes the detection's args (name -> value)
    event: Event                # what triggered it
    signature: SignatureMetadata


@dataclass
class SignatureContext:
    """What the engine gives a signature at init."""

    callback: Callable[[Finding], None]   # report a finding
    params: Mapping[str, Any]             # this signature's section of the config file
    # Datastores (None when switched off): the process tree's ancestry and the
    # container table; see pytracee.detect.engine.DataStores.
    stores: Any = None


class Signature:
    """Subclass and set `metadata` and `selected_events`; override `on_event`.

    `on_event` gets pytracee's Event (`ev.name`, `ev.arg("pathname")`,
    `ev.ctx.comm`, `ev.ctx.container`, `ev.ctx.proc`, `ev.context_value(...)`).
    Call `self.match(ev, **data)` to report a finding."""

    metadata: SignatureMetadata
    selected_events: tuple[EventSelector, ...] = ()
    # Kernel builds that cannot produce the selected events (e.g. no kernel
    # modules): `list signatures` says so; the logic still runs on recorded events.
    kernel_can_trigger: bool = True
    # Where it is defined, "file:line" (the line of its id): set by the loaders of
    # --signatures-dir files; for other classes (built-ins) see where_defined().
    defined_at: str | None = None

    def __init__(self) -> None:
        self.ctx: SignatureContext | None = None

    def init(self, ctx: SignatureContext) -> None:
        self.ctx = ctx

    def on_event(self, event: Event) -> None:
        raise NotImplementedError

    def on_signal(self, signal: Any) -> None:
        """Engine signals (e.g. "source_complete" at the end of an analyze run)."""

    def close(self) -> None:
        pass

    # -- helpers for subclasses ------------------------------------------------

    @property
    def params(self) -> Mapping[str, Any]:
        return self.ctx.params if self.ctx is not None else {}

    def match(self, event: Event, **data: Any) -> None:
        assert self.ctx is not None, "init() was not called"
        self.ctx.callback(Finding(dict(data), event, self.metadata))


def where_defined(sig: Signature) -> str | None:
    """"file:line" of a signature's definition, for messages: what its loader recorded,
    else, for a Python class, the line of its id in the class (or the class statement).
    None for a class that has no source (made with type(), or from a .pyc alone)."""
    if sig.defined_at is not None:
        return sig.defined_at
    cls = type(sig)
    try:  # inspect parses the module: only called when a message needs it
        path = inspect.getsourcefile(cls)
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    if path is None:
        return None
    quoted = re.compile(r"""(['"])%s\1""" % re.escape(sig.metadata.id))
    line = next((start + i for i, text in enumerate(lines) if quoted.search(text)), start)
    return f"{path}:{line}"


class SignatureSetError(ValueError):
    """Signatures that cannot run together (the engine's register() says why). str() is
    for programs; `usage` is the one line for the user, at the file and line concerned."""

    def __init__(self, text: str, usage: UsageError) -> None:
        super().__init__(text)
        self.usage = usage


def duplicate_id(first: Signature, second: Signature) -> SignatureSetError:
    """Two signatures with one id: the error names where both are defined (a class
    without source by its name)."""
    sig_id = second.metadata.id
    here, there = where_defined(second), where_defined(first)
    other = f"at {there}" if there else f"by {type(first).__module__}.{type(first).__qualname__}"
    places = f" ({here or type(second).__qualname__}, {there or type(first).__qualname__})"
    return SignatureSetError(f"two signatures with id {sig_id}{places}",
                             UsageError(f"signature id {sig_id} is also defined {other}",
                                        where=here))
