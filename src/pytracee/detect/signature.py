"""What a signature is, whatever language it is written in.

The model is Tracee's legacy signature interface (tracee-compat §4.3): metadata,
the events it selects, init/on_event/on_signal/close, findings reported through
a callback. Python signatures subclass `Signature`; Rego and YAML+CEL files are
loaded into adapters that implement the same class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
