"""`--output`: what to print, where, and through which streams (Tracee's syntax, both forms).

Tracee's destinations and streams (each `-o` gives one key):

    destinations.<name>.type=file|webhook|forward        (default file)
    destinations.<name>.format=json|table|template=/t.j2  (gotemplate=/t.j2 too; default:
                                                           table for file, json otherwise)
    destinations.<name>.path=/var/log/x.json              (file; default stdout; also stderr)
    destinations.<name>.rotate=10MB                       (file: rotate at this size; B/KB/MB/GB,
                                                           1 KB = 1024 B)
    destinations.<name>.rotate.keep=5                     (file: rotated files kept: x.1 .. x.5)
    destinations.<name>.url=https://siem/ingest?timeout=5s  (webhook; forward: tcp://host:24224?tag=x)
    streams.<name>.destinations=a,b
    streams.<name>.filters.events=execve,openat           (default: all events)
    streams.<name>.filters.policies=p1,p2                 (default: all policies)
    streams.<name>.buffer.mode=block|drop                 (default block)
    streams.<name>.buffer.size=1024                       (events)

A destination that no stream names gets a stream of its own (no filters, block,
1024). A destination may belong to one stream only (Tracee's rule).

Tracee's legacy form (v0.24), each one destination with its own stream:

    table  table:/path  table-verbose  json  json:/path  json:/a,/b
    gotemplate=/t.j2  gotemplate=/t.j2:/path  template:/t.j2  template:/t.j2:/path
    webhook:URL  (URL query gotemplate=/t.j2 and contentType=... are honoured)
    forward:tcp://host:port?tag=x
    none
    option:parse-arguments  option:exec-env  option:ancestry[=N]  option:exec-hash[=MODE]
    option:args=all|summary  (the table's ARGS: every argument, or (the default) a summary
                              for the common events; JSON has every argument either way)
    option:stack-addresses  option:sort-events  (accepted; see `warnings`)

A table on stdout that is a terminal is coloured (unless NO_COLOR) and fits the
terminal's width (each line cut with "…"); in files and pipes lines are whole.

Nothing given: a table on stdout. Every mistake is one UsageError naming the token.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pytracee.errors import UsageError, closest

if TYPE_CHECKING:
    from pytracee.sinks.stream import Stream

ANCESTRY_DEFAULT = 5
DEFAULT_BUFFER = 1024
MAX_BUFFER = 1 << 20
TYPES = ("file", "webhook", "forward")
FORMATS = ("json", "table", "template")
MODES = ("block", "drop")
EXEC_HASH_MODES = ("inode", "dev-inode", "digest-inode")
ARGS_MODES = ("summary", "all")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(I?B)?\Z", re.IGNORECASE)
_STD = {"stdout": "stdout", "-": "stdout", "/dev/stdout": "stdout",
        "stderr": "stderr", "/dev/stderr": "stderr"}


@dataclass
class DestinationSpec:
    name: str
    type: str = "file"
    format: str | None = None  # json | table | template; None: the type's default
    template: str | None = None  # the template file, for format "template"
    path: str | None = None  # file: None is stdout
    url: str | None = None  # webhook, forward
    rotate: int | None = None  # file: bytes
    keep: int = 5
    content_type: str | None = None  # webhook (legacy contentType= in the URL)
    token: str = ""  # the -o value that introduced it (for error messages)

    @property
    def fmt(self) -> str:
        return self.format or ("table" if self.type == "file" else "json")


@dataclass
class StreamSpec:
    name: str
    destinations: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    mode: str = "block"
    size: int = DEFAULT_BUFFER
    token: str = ""


@dataclass
class OutputConfig:
    destinations: dict[str, DestinationSpec] = field(default_factory=dict)
    streams: dict[str, StreamSpec] = field(default_factory=dict)
    none: bool = False  # `-o none`: no output at all
    parse_arguments: bool = False
    exec_env: bool = False
    ancestry: int = 0  # option:ancestry[=N]: N ancestors in JSON output
    exec_hash: str | None = None  # option:exec-hash[=MODE] ("" without a mode)
    all_args: bool = False  # option:args=all: the table prints every argument
    stack_addresses: bool = False
    sort_events: bool = False
    warnings: list[str] = field(default_factory=list)  # for the log, once


_OPTIONS = ("parse-arguments", "exec-env", "ancestry[=N]", "exec-hash[=MODE]", "args=all|summary",
            "stack-addresses", "sort-events")
_DEST_KEYS = ("type", "format", "path", "url", "rotate", "rotate.keep")
_STREAM_KEYS = ("destinations", "filters.events", "filters.policies", "buffer.mode", "buffer.size")
_EXPECTED = ("table, json, json:/path, gotemplate=/t.j2[:/path], template:/t.j2[:/path], "
             "webhook:URL, forward:URL, none, option:..., destinations.<name>.<key>=... "
             "or streams.<name>.<key>=...")


def parse_size(text: str, token: str) -> int:
    """'10MB' -> bytes (B, KB, MB, GB; also K/M/G and KiB/MiB/GiB; 1 KB = 1024 B)."""
    m = _SIZE.match(text.strip())
    if m is None or (m.group(3) and m.group(3).upper() == "IB" and not m.group(2)):
        raise UsageError(f"bad size {text!r} (a number with B, KB, MB or GB, e.g. 10MB)", token=token)
    n = int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]
    if n <= 0:
        raise UsageError("rotation size must be more than 0", token=token)
    return n


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_outputs(values: Sequence[str]) -> OutputConfig:
    cfg = OutputConfig()
    legacy: list[DestinationSpec] = []
    seen: dict[tuple[str, str, str], str] = {}  # (kind, name, key) -> token, to refuse repeats
    for raw in values:
        kind, sep, rest = raw.partition(":")
        if raw.startswith(("destinations.", "streams.")):
            _parse_key(cfg, raw, seen)
        elif kind == "option":
            _parse_option(cfg, rest, raw)
        elif raw == "sort-events":
            _parse_option(cfg, raw, raw)
        elif kind in ("table", "table-verbose", "json"):
            fmt = "json" if kind == "json" else "table"
            paths = _list(rest) if sep else [None]
            if sep and not paths:
                raise UsageError(f"{kind}: needs a path after the colon", token=raw)
            legacy.extend(DestinationSpec("", format=fmt, path=p, token=raw) for p in paths)
        elif raw == "none":
            cfg.none = True
        elif kind == "none":
            raise UsageError("output 'none' takes no path", token=raw)
        elif raw.startswith("gotemplate=") or kind == "template":
            body = raw[len("gotemplate="):] if raw.startswith("gotemplate=") else rest
            tmpl, _, out = body.partition(":")
            if not tmpl:
                raise UsageError("a template output needs the template file: gotemplate=/t.j2 "
                                 "or template:/t.j2[:/out/path]", token=raw)
            paths = _list(out) if out else [None]
            legacy.extend(DestinationSpec("", format="template", template=tmpl, path=p, token=raw)
                          for p in paths)
        elif kind in ("webhook", "forward"):
            if not rest:
                raise UsageError(f"{kind}: needs a URL ({kind}:"
                                 f"{'http://host:port/path' if kind == 'webhook' else 'tcp://host:24224'})",
                                 token=raw)
            spec = DestinationSpec("", type=kind, url=rest, token=raw)
            if kind == "webhook":
                _webhook_query(spec)
            legacy.append(spec)
        else:
            close = closest(kind, _OUTPUT_KINDS)
            if close:
                fixed = close + raw[len(kind):]
                raise UsageError(f"unknown output {raw!r} (did you mean {fixed!r}?)", token=raw)
            raise UsageError(f"unknown output {raw!r} (expected {_EXPECTED})", token=raw)
    _resolve(cfg, legacy)
    return cfg


# The output kinds of `-o KIND[:...]` (what a misspelt one is compared with).
_OUTPUT_KINDS = ("table", "json", "gotemplate", "template", "webhook", "forward", "none", "option")


def _parse_option(cfg: OutputConfig, rest: str, raw: str) -> None:
    name, eq, value = rest.partition("=")
    if name == "ancestry":
        if eq and not (value.isdigit() and 1 <= int(value) <= 64):
            raise UsageError("ancestry depth must be a number from 1 to 64", token=raw)
        cfg.ancestry = int(value) if eq else ANCESTRY_DEFAULT
    elif name == "exec-hash":
        if eq and value not in EXEC_HASH_MODES:
            raise UsageError(f"exec-hash mode must be one of {', '.join(EXEC_HASH_MODES)}", token=raw)
        cfg.exec_hash = value
    elif name == "args":
        if value not in ARGS_MODES:
            raise UsageError("option:args must be args=all (every argument in the table) or "
                             "args=summary (the default)", token=raw)
        cfg.all_args = value == "all"
    elif eq:
        raise UsageError(f"output option {name!r} takes no value", token=raw)
    elif name == "parse-arguments":
        cfg.parse_arguments = True
    elif name == "exec-env":
        cfg.exec_env = True
    elif name == "stack-addresses":
        if not cfg.stack_addresses:
            cfg.warnings.append("option:stack-addresses: stack addresses are not collected; "
                                "events carry none")
        cfg.stack_addresses = True
    elif name == "sort-events":
        if not cfg.sort_events:
            cfg.warnings.append("option:sort-events: events are written in the order they are "
                                "read (per CPU in time order), not re-sorted")
        cfg.sort_events = True
    else:
        close = closest(name, [o.split("[")[0].split("=")[0] for o in _OPTIONS])
        hint = f"did you mean 'option:{close}'?" if close else f"known: {', '.join(_OPTIONS)}"
        raise UsageError(f"unknown output option {rest!r} ({hint})", token=raw)


def _parse_key(cfg: OutputConfig, raw: str, seen: dict[tuple[str, str, str], str]) -> None:
    lhs, eq, value = raw.partition("=")
    kind, _, tail = lhs.partition(".")
    name, _, key = tail.partition(".")
    known = _DEST_KEYS if kind == "destinations" else _STREAM_KEYS
    if not eq or not name or not key:
        raise UsageError(f"expected {kind}.<name>.<key>=<value> (keys: {', '.join(known)})", token=raw)
    if not _NAME.match(name):
        raise UsageError(f"bad {kind[:-1]} name {name!r} (letters, digits, '_', '-')", token=raw)
    if key not in known:
        close = closest(key, known)
        hint = f"did you mean {close!r}?" if close else f"known: {', '.join(known)}"
        raise UsageError(f"unknown {kind[:-1]} key {key!r} ({hint})", token=raw)
    value = value.strip()
    if not value:
        raise UsageError(f"{lhs} needs a value", token=raw)
    if (kind, name, key) in seen:
        raise UsageError(f"{lhs} given twice (also {seen[kind, name, key]!r})", token=raw)
    seen[kind, name, key] = raw
    if kind == "destinations":
        d = cfg.destinations.get(name)
        if d is None:
            d = cfg.destinations[name] = DestinationSpec(name, token=raw)
        if key == "type":
            if value not in TYPES:
                raise UsageError(f"destination type must be one of {', '.join(TYPES)}", token=raw)
            d.type = value
        elif key == "format":
            fmt, _, tmpl = value.partition("=")
            if fmt == "gotemplate":
                fmt = "template"
            if fmt == "table-verbose":
                fmt = "table"
            if fmt not in FORMATS or (fmt == "template") != bool(tmpl):
                raise UsageError("format must be json, table or template=/path/to/template "
                                 "(gotemplate=/path too)", token=raw)
            d.format, d.template = fmt, tmpl or None
        elif key == "path":
            d.path = value
        elif key == "url":
            d.url = value
        elif key == "rotate":
            d.rotate = parse_size(value, raw)
        else:  # rotate.keep
            if not value.isdigit() or int(value) > 1000:
                raise UsageError("rotate.keep must be a number from 0 to 1000", token=raw)
            d.keep = int(value)
    else:
        s = cfg.streams.get(name)
        if s is None:
            s = cfg.streams[name] = StreamSpec(name, token=raw)
        if key == "destinations":
            s.destinations = _list(value)
        elif key == "filters.events":
            s.events = _list(value)
        elif key == "filters.policies":
            s.policies = _list(value)
        elif key == "buffer.mode":
            if value not in MODES:
                raise UsageError("buffer mode must be block or drop", token=raw)
            s.mode = value
        else:  # buffer.size
            if not value.isdigit() or not 1 <= int(value) <= MAX_BUFFER:
                raise UsageError(f"buffer size must be a number of events from 1 to {MAX_BUFFER}",
                                 token=raw)
            s.size = int(value)


def _webhook_query(d: DestinationSpec) -> None:
    """Tracee's legacy webhook URL options that are about the format, not the transport."""
    assert d.url is not None
    parts = urlsplit(d.url)
    kept = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k == "gotemplate" and d.format is None:
            if not v:
                raise UsageError("gotemplate= needs a template file", token=d.token)
            d.format, d.template = "template", v
        elif k in ("contentType", "content-type", "content_type"):
            d.content_type = v
        else:
            kept.append((k, v))
    d.url = urlunsplit(parts._replace(query=urlencode(kept)))


def _target(d: DestinationSpec) -> str:
    if d.path is None or d.path in _STD:
        return _STD.get(d.path or "stdout", "stdout")
    return os.path.abspath(d.path)


def _resolve(cfg: OutputConfig, legacy: list[DestinationSpec]) -> None:
    """Check the destinations and streams against each other; name the legacy ones
    and give every destination without a stream one of its own."""
    if cfg.none and (legacy or cfg.destinations):
        token = (legacy[0] if legacy else next(iter(cfg.destinations.values()))).token
        raise UsageError("output 'none' cannot be combined with other outputs", token=token)
    for d in cfg.destinations.values():
        if d.type == "webhook" and d.url is not None:
            _webhook_query(d)
    for d in legacy:
        base = d.type if d.type != "file" else d.fmt
        name, i = base, 1
        while name in cfg.destinations or name in cfg.streams:
            i += 1
            name = f"{base}-{i}"
        d.name = name
        cfg.destinations[name] = d
    if not cfg.destinations and not cfg.none:
        cfg.destinations["table"] = DestinationSpec("table", format="table", token="table")
    targets: dict[str, str] = {}
    for d in cfg.destinations.values():
        if d.type == "file":
            if d.url is not None:
                raise UsageError(f"destination {d.name}: a file takes path=, not url=", token=d.token)
            if d.rotate is not None and _target(d) in ("stdout", "stderr"):
                raise UsageError(f"destination {d.name}: rotate= needs a path (not stdout)",
                                 token=d.token)
            where = _target(d)
            if where in targets and where != "/dev/null":
                raise UsageError(f"two outputs write to {where}: {targets[where]} and {d.name}",
                                 token=d.token)
            targets[where] = d.name
        else:
            if d.url is None:
                raise UsageError(f"destination {d.name}: a {d.type} needs url=", token=d.token)
            if d.path is not None or d.rotate is not None:
                raise UsageError(f"destination {d.name}: a {d.type} takes url=, not path=/rotate=",
                                 token=d.token)
    owner: dict[str, str] = {}
    for s in cfg.streams.values():
        if not s.destinations:
            raise UsageError(f"stream {s.name} has no destinations (streams.{s.name}.destinations=...)",
                             token=s.token)
        for name in s.destinations:
            if name not in cfg.destinations:
                raise UsageError(f"stream {s.name}: no destination named {name!r}", token=name)
            if name in owner and owner[name] != s.name:
                raise UsageError(f"destination {name} is in two streams ({owner[name]} and {s.name}); "
                                 "a destination belongs to one stream", token=name)
            owner[name] = s.name
    for name, d in cfg.destinations.items():
        if name not in owner:
            sname, i = name, 1
            while sname in cfg.streams:
                i += 1
                sname = f"{name}-{i}"
            cfg.streams[sname] = StreamSpec(sname, destinations=[name], token=d.token)


def _terminal_table(spec: DestinationSpec, stdout: Any = None) -> bool:
    """A table on stdout, and stdout is a terminal."""
    if spec.fmt != "table" or spec.type != "file" or _target(spec) != "stdout":
        return False
    out = sys.stdout if stdout is None else stdout
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError, OSError):  # replaced, closed or detached stdout
        return False


def use_colour(spec: DestinationSpec, stdout: Any = None,
               environ: Mapping[str, str] | None = None) -> bool:
    """Colour only for a table on stdout that is a terminal, unless NO_COLOR is set
    (no-color.org: any non-empty value); never in files, webhooks or forwards."""
    if (os.environ if environ is None else environ).get("NO_COLOR"):
        return False
    return _terminal_table(spec, stdout)


def terminal_columns() -> int | None:
    """stdout's terminal's width now (COLUMNS when set, as shutil reads it); None when
    the terminal does not know its size (0 columns)."""
    cols = shutil.get_terminal_size((0, 0)).columns
    return cols if cols > 0 else None


def table_width(spec: DestinationSpec, stdout: Any = None) -> Callable[[], int | None] | None:
    """For a table on a terminal stdout: what says its width, asked for each batch (so
    a resized window is followed); None (whole lines) for files, pipes and the rest."""
    return terminal_columns if _terminal_table(spec, stdout) else None


def build_streams(cfg: OutputConfig, policy_names: Callable[[int], list[str]], *,
                  known_policies: Sequence[str] | None = None, containers: bool = False,
                  parent_comm: Any = None, ancestry: Any = None,
                  parent_chain: Any = None) -> list[Stream]:
    """Open the destinations, load the templates, make the streams (not started).
    UsageError for what cannot be opened or does not exist; nothing is left open then.
    `parent_chain(entity, depth)` gives a detection's ancestors in table output."""
    from pytracee.events import definitions
    from pytracee.sinks.formats import JsonFormat, TableFormat
    from pytracee.sinks.stream import Stream
    from pytracee.sinks.template import TemplateFormat

    opened: list[Any] = []
    streams: list[Stream] = []
    try:
        for s in cfg.streams.values():
            ids = []
            for name in s.events:
                d = definitions.lookup(name)
                if d is None:
                    raise UsageError(f"stream {s.name}: unknown event {name!r} in filters.events",
                                     token=name)
                ids.append(d.id)
            if known_policies is not None:
                for p in s.policies:
                    if p not in known_policies:
                        raise UsageError(f"stream {s.name}: no policy named {p!r} in filters.policies "
                                         f"(policies: {', '.join(known_policies)})", token=p)
            formats: dict[tuple[str, str | None, bool, bool], Any] = {}
            outputs = []
            for dname in s.destinations:
                spec = cfg.destinations[dname]
                colour = use_colour(spec)
                width = table_width(spec)
                # A terminal's table (coloured, cut to its width) is not a file's.
                key = (spec.fmt, spec.template, colour, width is not None)
                fmt = formats.get(key)
                if fmt is None:
                    if spec.fmt == "json":
                        fmt = JsonFormat(policy_names, cfg.parse_arguments, ancestry)
                    elif spec.fmt == "table":
                        fmt = TableFormat(containers, parent_comm, parent_chain, colour, width,
                                          cfg.all_args)
                    else:
                        assert spec.template is not None
                        fmt = TemplateFormat(spec.template, JsonFormat(
                            policy_names, cfg.parse_arguments, ancestry).renderer)
                    formats[key] = fmt
                dest = _open_destination(spec)
                opened.append(dest)
                outputs.append((dest, fmt))
            streams.append(Stream(s.name, outputs, event_ids=ids, policies=s.policies,
                                  policy_names=policy_names, size=s.size, mode=s.mode))
    except BaseException:
        for dest in opened:
            try:
                dest.close()
            except Exception:
                pass
        raise
    return streams


def _open_destination(spec: DestinationSpec) -> Any:
    if spec.type == "file":
        from pytracee.sinks.destinations.file import FileDestination

        try:
            return FileDestination(spec.path, rotate_bytes=spec.rotate, keep=spec.keep)
        except OSError as exc:
            raise UsageError(f"cannot open output {spec.path}: {exc.strerror}",
                             token=spec.path) from None
    assert spec.url is not None
    try:
        if spec.type == "webhook":
            from pytracee.sinks.destinations.webhook import WebhookDestination

            # JSON lines go out as one JSON array; a template's or table's output as it is
            # (Content-Type application/json, as Tracee's, unless contentType= says otherwise).
            kw: dict[str, Any] = {"json_array": spec.fmt == "json"}
            if spec.content_type:
                kw["content_type"] = spec.content_type
            return WebhookDestination(spec.url, **kw)
        from pytracee.sinks.destinations.forward import ForwardDestination

        return ForwardDestination(spec.url)
    except ImportError as exc:
        raise UsageError(f"{spec.type} outputs are not available: {exc}", token=spec.token) from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"destination {spec.name}: {exc}", token=spec.token) from None
