"""`--capture` (Tracee v0.24) and `--artifacts` (Tracee HEAD): what to copy, and where.

    --capture exec                 every executed binary, once per (dev, inode, ctime)
    --capture write                bytes written to regular files by traced processes
    --capture write=/tmp/*         ... only under these path prefixes (up to 3, '*' at the end,
                                   at most 250 bytes: the kernel filters on them)
    --capture mem                  memory regions that became executable (mem_prot_alert)
    --capture network              packets of traced processes into pcap files (out/pcap/)
    --capture pcap:single|process|container|command   how the pcap files are split
    --capture pcap-snaplen:default|headers|max|256b|2kb   bytes kept of each packet
    --capture dir:/path            output directory (default /tmp/pytracee/out)
    --capture clear-dir            empty the output directory first

    --artifacts executable | file-write | file-write.filters=path=/tmp/* | memory-regions
                | network | network.pcap.split=... | network.pcap.snaplen=...
                | dir.path=/path | dir.clear

A leading `artifact:` is accepted (Tracee's legacy spelling), so is a comma list in one value.
A misspelt name gets a did-you-mean, also a name of the other flag (`-a exec`: 'executable').
`dir:` or `clear-dir` with nothing to capture is accepted, as Tracee does, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pytracee.errors import UsageError, closest

log = logging.getLogger("pytracee.capture")
DEFAULT_DIR = "/tmp/pytracee/out"
MAX_WRITE_PREFIXES = 3  # as Tracee
MAX_PREFIX_LEN = 250    # bytes: the kernel's pathname filter keys (Tracee allows 50)
_UNSUPPORTED = frozenset({
    "read", "module", "bpf", "profile",                                           # --capture
    "file-read", "kernel-modules", "bpf-programs",                                # --artifacts
})
PCAP_SPLITS = ("single", "process", "container", "command")
# Tracee's snaplen words, in payload bytes kept past the IP and transport headers:
# "headers" keeps none, "max" all the kernel sends (None; bpf: NET_SNAP_MAX = 4096
# bytes of each packet, headers included).
SNAPLEN_DEFAULT, SNAPLEN_HEADERS, SNAPLEN_MAX = 96, 0, None
MAX_SNAPLEN_BYTES = 4096


@dataclass
class CaptureOptions:
    exec: bool = False
    write: bool = False
    write_prefixes: list[str] = field(default_factory=list)
    mem: bool = False
    network: bool = False
    pcap_split: tuple[str, ...] = ("single",)  # layouts written (Tracee allows several)
    _split_given: bool = field(default=False, repr=False)
    pcap_snaplen: int | None = SNAPLEN_DEFAULT  # payload bytes kept; None: all
    dir: str = DEFAULT_DIR
    clear_dir: bool = False

    @property
    def enabled(self) -> bool:
        return self.exec or self.write or self.mem or self.network


def _split(value: str, token: str, opts: CaptureOptions) -> None:
    """One layout; several (pcap:process,command) are all written."""
    if value not in PCAP_SPLITS:
        close = closest(value, PCAP_SPLITS)
        raise UsageError(f"unknown pcap split {value!r}" + (f" (did you mean '{close}'?)"
                         if close else f" (expected {', '.join(PCAP_SPLITS)})"), token=token)
    if not opts._split_given:
        opts.pcap_split = ()
        opts._split_given = True
    if value not in opts.pcap_split:
        opts.pcap_split += (value,)
    opts.network = True


def _pcap_options(value: str, token: str, opts: CaptureOptions) -> None:
    if value != "none":
        raise UsageError(f"pcap options {value!r} are not supported: pytracee captures every "
                         "packet of the traced processes (none)", token=token)
    opts.network = True


def _snaplen(value: str, token: str, opts: CaptureOptions) -> None:
    words: dict[str, int | None] = {"default": SNAPLEN_DEFAULT, "headers": SNAPLEN_HEADERS,
                                    "max": SNAPLEN_MAX}
    if value in words:
        opts.pcap_snaplen = words[value]
    else:
        low = value.lower()
        scale, digits = (1024, low[:-2]) if low.endswith("kb") else (1, low[:-1]) \
            if low.endswith("b") else (0, "")
        if not digits.isdigit() or not 0 < int(digits) * scale <= MAX_SNAPLEN_BYTES:
            raise UsageError(f"a pcap snaplen is default, headers, max or a size from 1b to "
                             f"{MAX_SNAPLEN_BYTES // 1024}kb (e.g. 256b, 1kb)", token=token)
        opts.pcap_snaplen = int(digits) * scale
    opts.network = True

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


def _write_filter(value: str, token: str, opts: CaptureOptions) -> None:
    if not value.startswith("path="):
        raise UsageError("pytracee filters captured writes by path only "
                         "(file-write.filters=path=/prefix*)", token=token)
    _prefix(value[5:], token, opts)


_Setter = Callable[[str, str, CaptureOptions], None]


@dataclass(frozen=True)
class _Spelling:
    """One flag's words: bare words that switch an option on (-> attribute), and
    prefixes whose value a setter takes."""

    flags: dict[str, str]
    values: tuple[tuple[str, _Setter], ...]
    known: str  # for the error message
    name_end: str  # what ends an option's name in an unknown value ("." or ":")
    flag: str  # the flag, as the warnings name it
    enable: str  # the options that capture something, for the warnings
    where: tuple[str, ...]  # the options that only say where artifacts go
    # The other flag's names -> this one's: (bare word, prefix a value follows), None
    # where there is no such form.
    other: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    bare_splits: bool = False  # pcap:process,command: later layouts come bare

    def parse(self, item: str, body: str, opts: CaptureOptions) -> None:
        attr = self.flags.get(body)
        if attr is not None:
            setattr(opts, attr, True)
            return
        for prefix, setter in self.values:
            if body.startswith(prefix):
                setter(body[len(prefix):], item, opts)
                return
        if self.bare_splits and body in PCAP_SPLITS and opts._split_given:
            _split(body, item, opts)
            return
        _unknown(body.split("=", 1)[0].split(self.name_end, 1)[0], item, self.known,
                 self.suggest(body))

    def names(self) -> dict[str, tuple[str | None, str | None]]:
        """Every option name -> (its bare word, its prefix for a value): "write" ->
        ("write", "write="), "dir" -> (None, "dir:"); the other flag's names included."""
        out = dict(self.other)
        for name in self.flags:
            out[name] = (name, None)
        for prefix, _ in self.values:
            name = prefix.rstrip(":=")
            out[name] = (out[name][0] if name in self.flags else None, prefix)
        return out

    def suggest(self, body: str) -> str | None:
        """The option the user probably meant, written whole (value kept), or None."""
        cut = min((i for i in (body.find(":"), body.find("=")) if i >= 0), default=len(body))
        key, value = body[:cut], body[cut + 1:]
        names = self.names()
        close = key if key in names else closest(key, names)
        if close is None:
            return None
        bare, prefix = names[close]
        if prefix is not None and (cut < len(body) or bare is None):
            if close == "file-write.filters":  # path=/prefix* -> write=/prefix*
                value = value.removeprefix("path=")
            out = prefix + (value or "...")
        else:
            out = bare or ""
        return out if out != body else None


_LEGACY = _Spelling(  # --capture (Tracee v0.24); "artifact:" may lead
    {"clear-dir": "clear_dir", "exec": "exec", "mem": "mem", "write": "write",
     "network": "network", "net": "network"},
    (("dir:", _dir), ("write=", _prefix), ("pcap:", _split), ("pcap-snaplen:", _snaplen),
     ("pcap-options:", _pcap_options)),
    "exec, write, write=/prefix*, mem, network, pcap:SPLIT, pcap-snaplen:N, dir:/path, clear-dir",
    ":", "--capture", "exec, write, mem, network", ("dir:", "clear-dir"),
    {"executable": ("exec", None), "memory-regions": ("mem", None),
     "file-write": ("write", None), "file-write.filters": (None, "write="),
     "dir.path": (None, "dir:"), "dir.clear": ("clear-dir", None),
     "network.pcap.split": (None, "pcap:"), "network.pcap.snaplen": (None, "pcap-snaplen:"),
     "network.pcap.options": (None, "pcap-options:")},
    bare_splits=True)
_ARTIFACTS = _Spelling(  # --artifacts (Tracee HEAD)
    {"dir.clear": "clear_dir", "executable": "exec", "memory-regions": "mem",
     "file-write": "write", "network": "network"},
    (("dir.path=", _dir), ("file-write.filters=", _write_filter),
     ("network.pcap.split=", _split), ("network.pcap.snaplen=", _snaplen),
     ("network.pcap.options=", _pcap_options)),
    "executable, file-write, file-write.filters=path=/prefix*, memory-regions, network, "
    "network.pcap.split=SPLIT, network.pcap.snaplen=N, dir.path=/path, dir.clear",
    ".", "--artifacts", "executable, file-write, memory-regions, network",
    ("dir.path=", "dir.clear"),
    {"exec": ("executable", None), "mem": ("memory-regions", None),
     "write": ("file-write", "file-write.filters=path="), "net": ("network", None),
     "dir": (None, "dir.path="), "clear-dir": ("dir.clear", None),
     "pcap": (None, "network.pcap.split="), "pcap-snaplen": (None, "network.pcap.snaplen="),
     "pcap-options": (None, "network.pcap.options=")})


def _unknown(name: str, item: str, known: str, suggestion: str | None = None) -> None:
    if name in _UNSUPPORTED:
        raise UsageError(f"capture of {name!r} is not supported by pytracee (supported: {known})",
                         token=item)
    hint = f" (did you mean {suggestion!r}?)" if suggestion else f" (expected {known})"
    raise UsageError(f"unknown capture option {item!r}{hint}", token=item)


def parse_capture(capture: Sequence[str] = (), artifacts: Sequence[str] = ()) -> CaptureOptions:
    """Both spellings into one set of options; UsageError names the first bad value."""
    opts = CaptureOptions()
    where: list[tuple[_Spelling, str]] = []  # options that only say where artifacts go
    for values, spelling in ((capture, _LEGACY), (artifacts, _ARTIFACTS)):
        for raw in values:
            for item in raw.split(","):
                item = item.strip()
                if not item:
                    raise UsageError("empty capture option", token=raw)
                body = item.removeprefix("artifact:") if spelling is _LEGACY else item
                spelling.parse(item, body, opts)
                if body in spelling.where or body.startswith(spelling.where):
                    where.append((spelling, item))
    if opts.clear_dir and os.path.realpath(opts.dir) == "/":
        raise UsageError("refusing to clear '/' as the capture directory", token=opts.dir)
    if where and not opts.enabled:
        log.warning(_nothing_to_capture(where))
    return opts


def _nothing_to_capture(where: Sequence[tuple[_Spelling, str]]) -> str:
    """Tracee accepts a capture directory with nothing to capture; so do we, but say so."""
    given = " ".join(f"{s.flag} {item}" for s, item in where)
    clear_only = all(s.flags.get(item) == "clear_dir" for s, item in where)
    does = ("would empty the artifacts directory" if clear_only else
            "sets where artifacts go" if len(where) == 1 else "set where artifacts go")
    return f"{given} {does}, but no capture is enabled ({where[0][0].enable})"
