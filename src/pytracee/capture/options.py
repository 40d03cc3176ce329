"""`--capture` (Tracee v0.24) and `--artifacts` (Tracee HEAD): what to copy, and where.

    --capture exec                 every executed binary, once per (dev, inode, ctime)
    --capture write                bytes written to regular files by traced processes
    --capture write=/tmp/*         ... only under these path prefixes (up to 3, '*' at the end,
                                   at most 250 bytes: the kernel filters on them)
    --capture mem                  memory regions that became executable (mem_prot_alert)
    --capture dir:/path            output directory (default /tmp/pytracee/out)
    --capture clear-dir            empty the output directory first

    --artifacts executable | file-write | file-write.filters=path=/tmp/* | memory-regions
                | dir.path=/path | dir.clear

A leading `artifact:` is accepted (Tracee's legacy spelling), so is a comma list in one value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytracee.errors import UsageError

DEFAULT_DIR = "/tmp/pytracee/out"
MAX_WRITE_PREFIXES = 3  # as Tracee
MAX_PREFIX_LEN = 250    # bytes: the kernel's pathname filter keys (Tracee allows 50)
_UNSUPPORTED = frozenset({
    "read", "module", "bpf", "network", "net", "pcap", "profile",                 # --capture
    "file-read", "kernel-modules", "bpf-programs",                                # --artifacts
})


@dataclass
class CaptureOptions:
    exec: bool = False
    write: bool = False
    write_prefixes: list[str] = field(default_factory=list)
    mem: bool = False
    dir: str = DEFAULT_DIR
    clear_dir: bool = False

    @property
    def enabled(self) -> bool:
        return self.exec or self.write or self.mem


def _prefix(value: str, token: str, opts: CaptureOptions) -> None:
    if not value.endswith("*") or len(value) < 2:
        raise UsageError("a write path filter is a prefix ending in '*' (e.g. /tmp/*)", token=token)
    prefix = value[:-1]
    if "*" in prefix:
        raise UsageError("a write path filter has one '*', at the end", token=token)
    if not prefix.startswith("/"):
        raise UsageError("a write path filter is an absolute path prefix", token=token)
    if len(prefix.encode()) > MAX_PREFIX_LEN:
        raise UsageError(f"a write path filter has at most {MAX_PREFIX_LEN} bytes", token=token)
    if prefix not in opts.write_prefixes:
        opts.write_prefixes.append(prefix)
    if len(opts.write_prefixes) > MAX_WRITE_PREFIXES:
        raise UsageError(f"at most {MAX_WRITE_PREFIXES} write path filters", token=token)
    opts.write = True


def _dir(value: str, token: str, opts: CaptureOptions) -> None:
    if not value:
        raise UsageError("the capture directory is empty", token=token)
    opts.dir = value


def _legacy(item: str, opts: CaptureOptions) -> None:
    """One --capture value (Tracee v0.24)."""
    body = item.removeprefix("artifact:")
    if body.startswith("dir:"):
        _dir(body[4:], item, opts)
    elif body == "clear-dir":
        opts.clear_dir = True
    elif body == "exec":
        opts.exec = True
    elif body == "mem":
        opts.mem = True
    elif body == "write":
        opts.write = True
    elif body.startswith("write="):
        _prefix(body[6:], item, opts)
    else:
        _unknown(body.split("=", 1)[0].split(":", 1)[0], item,
                 "exec, write, write=/prefix*, mem, dir:/path, clear-dir")


def _artifact(item: str, opts: CaptureOptions) -> None:
    """One --artifacts value (Tracee HEAD)."""
    if item.startswith("dir.path="):
        _dir(item[9:], item, opts)
    elif item == "dir.clear":
        opts.clear_dir = True
    elif item == "executable":
        opts.exec = True
    elif item == "memory-regions":
        opts.mem = True
    elif item == "file-write":
        opts.write = True
    elif item.startswith("file-write.filters="):
        flt = item[len("file-write.filters="):]
        if not flt.startswith("path="):
            raise UsageError("pytracee filters captured writes by path only "
                             "(file-write.filters=path=/prefix*)", token=item)
        _prefix(flt[5:], item, opts)
    else:
        _unknown(item.split("=", 1)[0].split(".", 1)[0], item,
                 "executable, file-write, file-write.filters=path=/prefix*, memory-regions, "
                 "dir.path=/path, dir.clear")


def _unknown(name: str, item: str, known: str) -> None:
    if name in _UNSUPPORTED:
        raise UsageError(f"capture of {name!r} is not supported by pytracee (supported: {known})",
                         token=item)
    raise UsageError(f"unknown capture option {item!r} (expected {known})", token=item)


def parse_capture(capture: Sequence[str] = (), artifacts: Sequence[str] = ()) -> CaptureOptions:
    """Both spellings into one set of options; UsageError names the first bad value."""
    opts = CaptureOptions()
    for values, parse in ((capture, _legacy), (artifacts, _artifact)):
        for raw in values:
            for item in raw.split(","):
                item = item.strip()
                if not item:
                    raise UsageError("empty capture option", token=raw)
                parse(item, opts)
    if opts.clear_dir and os.path.realpath(opts.dir) == "/":
        raise UsageError("refusing to clear '/' as the capture directory", token=opts.dir)
    return opts
