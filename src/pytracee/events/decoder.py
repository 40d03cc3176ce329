"""Raw ring buffer record -> Event.

Hot path: one header unpack, the task context interned by its raw bytes, args
walked with precompiled structs and per-event converter tables built once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pytracee.events import wire
from pytracee.events.argvalues import decode_sockaddr, int_converter
from pytracee.events.definitions import EventDef
from pytracee.events.event import Event, TaskContext, text

_EVENT = wire.EVENT_PART.unpack_from
_TASK = wire.TASK_PART.unpack_from
_U16 = wire.U16.unpack_from
_U64 = wire.U64.unpack_from
_PAIR = wire.INT_PAIR.unpack_from
_TASK_START = wire.TASK_START
# Module globals, not wire.X attribute lookups, in the per-argument loop.
_ARG_INT, _ARG_STR, _ARG_STR_ARR, _ARG_STR_BLOB = wire.ARG_INT, wire.ARG_STR, wire.ARG_STR_ARR, wire.ARG_STR_BLOB
_ARG_SOCKADDR, _ARG_INT_PAIR = wire.ARG_SOCKADDR, wire.ARG_INT_PAIR
_RAW_KINDS = frozenset((wire.ARG_SOCKADDR, wire.ARG_BYTES, wire.ARG_INT_PAIR))
_HEADER_SIZE = wire.HEADER_SIZE
_CTX_CACHE_MAX = 8192
# Decoded args are kept by their raw bytes, per event: most file opens are of the same
# few files (libc, ld.so.cache, locales), and those events decode (and render) once.
# An event whose args rarely repeat (fork: new pids) stops being cached: when its cache
# fills up with fewer hits than entries since the last fill. Large args (argv, env) are
# not kept: they rarely repeat, and the cache (and the outputs' renderings of what it
# holds) would grow with them.
_ARGS_CACHE_MAX = 1024
_ARGS_KEY_MAX = 512  # bytes of raw args
_CACHED_RECORD_MAX = _HEADER_SIZE + _ARGS_KEY_MAX
_NOT_SEEN = object()
TRUNCATED_MARK = "...(truncated)"
_NO_ARGS: tuple[Any, ...] = ()


def _int_conv_or_raw(type_: str) -> Callable[[int], Any]:
    try:
        return int_converter(type_)
    except ValueError:
        return int  # strings, arrays, structs: sent in their own encodings


def _blob_strings(raw: bytes, truncated: bool) -> list[str]:
    """An argv/env area: NUL-separated strings, as the process laid them out."""
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    out = [text(s) for s in raw.split(b"\0")] if raw else []
    if truncated:
        out.append(TRUNCATED_MARK)
    return out


class Decoder:
    """Turns records into Events for the given definitions.

    `boot_offset` converts the kernel's boot-time nanoseconds into epoch
    nanoseconds (Tracee's legacy JSON timestamps are epoch based).
    """

    def __init__(self, definitions: Mapping[int, EventDef], boot_offset: int) -> None:
        self.definitions = definitions
        self.boot_offset = boot_offset
        self._contexts: dict[bytes, TaskContext] = {}
        self._int_conv: dict[int, list[Callable[[int], Any]]] = {}
        # event id -> raw args -> decoded args (None: that event is not cached)
        self._args: dict[int, dict[bytes, tuple[Any, ...]] | None] = {}
        self._hits: dict[int, int] = {}
        self.unknown_events = 0
        self.malformed = 0

    def _converters(self, d: EventDef) -> list[Callable[[int], Any]]:
        """Per argument, how a raw integer from the kernel becomes its value
        (arguments the kernel sends in other encodings never use theirs)."""
        conv = self._int_conv.get(d.id)
        if conv is None:
            conv = [_int_conv_or_raw(a.type) for a in d.args]
            self._int_conv[d.id] = conv
        return conv

    def _new_context(self, key: bytes) -> TaskContext:
        if len(self._contexts) >= _CTX_CACHE_MAX:
            self._contexts.clear()  # bounded: tasks come and go
        ctx = self._contexts[key] = TaskContext(_TASK(key, 0), self.boot_offset)
        return ctx

    def decode(self, view: memoryview) -> Event | None:
        """One record; None when it cannot be placed (counted, never raised)."""
        out = self.decode_batch((view,))
        return out[0] if out else None

    def decode_batch(self, views: Iterable[memoryview]) -> list[Event]:
        """Records -> Events, skipping (and counting) those that cannot be placed.
        One loop with everything bound locally: this is the pipeline's hot path."""
        out: list[Event] = []
        append = out.append
        definitions = self.definitions
        contexts = self._contexts
        new_context = self._new_context
        arg_caches = self._args
        hits = self._hits
        decode_args = self._decode_args
        boot = self.boot_offset
        for view in views:
            if len(view) < _HEADER_SIZE:
                self.malformed += 1
                continue
            ts, retval, matched, event_id, syscall, cpu, version, argnum, flags = _EVENT(view, 0)
            d = definitions.get(event_id)
            if d is None:
                self.unknown_events += 1
                continue
            key = view[_TASK_START:_HEADER_SIZE].tobytes()
            ctx = contexts.get(key) or new_context(key)
            raw = None
            if argnum:
                cache = arg_caches.get(event_id, _NOT_SEEN)
                if cache is _NOT_SEEN:
                    cache = arg_caches[event_id] = {}
                if cache is None or len(view) > _CACHED_RECORD_MAX:
                    args = decode_args(view, argnum, d)[0]
                else:
                    raw = view[_HEADER_SIZE:].tobytes()
                    args = cache.get(raw)  # type: ignore[union-attr]
                    if args is None:
                        args, whole = decode_args(view, argnum, d)
                        if whole:
                            self._keep(event_id, cache, raw, args)  # type: ignore[arg-type]
                        else:
                            raw = None
                    else:
                        hits[event_id] += 1
            else:
                args = _NO_ARGS if not d.args else (None,) * len(d.args)
            append(Event(ts + boot, retval, matched, event_id, syscall, cpu, version, flags, ctx, d,
                         args, raw))
        return out

    def _keep(self, event_id: int, cache: dict[bytes, tuple[Any, ...]], raw: bytes,
              args: tuple[Any, ...]) -> None:
        if len(cache) >= _ARGS_CACHE_MAX:
            if self._hits.get(event_id, 0) < len(cache):
                self._args[event_id] = None  # repeats too rarely to be worth it
                return
            cache.clear()
        if not cache:
            self._hits[event_id] = 0
        cache[raw] = args

    def _decode_args(self, view: memoryview, argnum: int, d: EventDef) -> tuple[tuple[Any, ...], bool]:
        """The args in the definition's order (None: not sent), and whether the record
        decoded whole (a malformed one keeps what could be decoded, and is counted)."""
        out: list[Any] = [None] * len(d.args)
        try:
            self._decode_into(view, argnum, d, out)
        except (IndexError, ValueError, struct.error):
            self.malformed += 1
            return tuple(out), False
        return tuple(out), True

    def _decode_into(self, view: memoryview, argnum: int, d: EventDef, out: list[Any]) -> None:
        conv = self._converters(d)
        nargs = len(out)
        off = _HEADER_SIZE
        for _ in range(argnum):
            idx = view[off]
            kind = view[off + 1]
            off += 2
            if kind == _ARG_INT:
                (raw,) = _U64(view, off)
                off += 8
                if idx < nargs:
                    out[idx] = conv[idx](raw)
            elif kind == _ARG_STR:
                (n,) = _U16(view, off)
                off += 2
                if idx < nargs:
                    out[idx] = str(view[off:off + n], "utf-8", "backslashreplace")
                off += n
            elif kind == _ARG_STR_ARR:
                count = view[off]
                truncated = view[off + 1]
                off += 2
                items = []
                for _i in range(count):
                    (n,) = _U16(view, off)
                    off += 2
                    items.append(str(view[off:off + n], "utf-8", "backslashreplace"))
                    off += n
                if truncated:
                    items.append(TRUNCATED_MARK)
                if idx < nargs:
                    out[idx] = items
            elif kind == _ARG_STR_BLOB:
                (n,) = _U16(view, off)
                truncated = view[off + 2]
                off += 3
                if idx < nargs:
                    out[idx] = _blob_strings(bytes(view[off:off + n]), bool(truncated))
                off += n
            elif kind in _RAW_KINDS:
                (n,) = _U16(view, off)
                off += 2
                raw_b = bytes(view[off:off + n])
                off += n
                if idx >= nargs:
                    continue
                if kind == _ARG_SOCKADDR:
                    out[idx] = decode_sockaddr(raw_b) if raw_b else {}
                elif d.args[idx].type == "trace.SlimCred" and n == wire.SLIM_CRED.size:
                    out[idx] = dict(zip(wire.SLIM_CRED_FIELDS, wire.SLIM_CRED.unpack(raw_b)))
                elif kind == _ARG_INT_PAIR:
                    out[idx] = list(_PAIR(raw_b, 0)) if n == 8 else []
                else:
                    out[idx] = raw_b
            else:
                raise ValueError(f"unknown arg kind {kind}")
        if off > len(view):
            raise ValueError("args run past the end of the record")
