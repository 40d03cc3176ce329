"""What the built-in signatures share: metadata in Tracee's shape, flag tests."""

from __future__ import annotations

import os
from typing import Any

from pytracee.detect.signature import EventSelector, SignatureMetadata
from pytracee.events.event import Event

O_ACCMODE = 3
O_WRONLY = 1
O_RDWR = 2
O_CREAT = 0o100
O_TRUNC = 0o1000


def meta(sig_id: str, name: str, event_name: str, severity: int, technique: str,
         technique_name: str, category: str, description: str, **extra: Any) -> SignatureMetadata:
    """Tracee's metadata: Severity 0-4 and the MITRE ATT&CK fields in Properties."""
    return SignatureMetadata(
        id=sig_id, name=name, event_name=event_name, version="1", description=description,
        tags=("linux", "container"),
        properties={"Severity": severity, "Category": category, "Technique": technique_name,
                    "external_id": technique, "MITRE ATT&CK": f"{category}: {technique_name}",
                    **extra})


def select(*names: str, origin: str = "*") -> tuple[EventSelector, ...]:
    return tuple(EventSelector(n, origin) for n in names)


def file_open(*, prefixes: tuple[str, ...] = (), suffixes: tuple[str, ...] = (),
              contains: tuple[str, ...] = (), write: bool = False,
              origin: str = "*") -> EventSelector:
    """security_file_open, prefiltered by the engine on the path (and write mode):
    the union of what the signature's own test can accept."""
    return EventSelector("security_file_open", origin, field="pathname", prefixes=prefixes,
                         suffixes=suffixes, contains=contains, write_only=write)


def renamed(field: str, *, prefixes: tuple[str, ...] = (), suffixes: tuple[str, ...] = (),
            origin: str = "*") -> EventSelector:
    """security_inode_rename prefiltered on `old_path` or `new_path`."""
    return EventSelector("security_inode_rename", origin, field=field, prefixes=prefixes,
                         suffixes=suffixes)


def is_write(flags: int | None) -> bool:
    return flags is not None and flags & O_ACCMODE in (O_WRONLY, O_RDWR)


def is_read(flags: int | None) -> bool:
    return flags is not None and flags & O_ACCMODE in (0, O_RDWR)


def started_container(ev: Event) -> bool:
    return ev.ctx.container is not None and bool(ev.ctx.container_started)


def basename(path: str) -> str:
    return os.path.basename(path)
