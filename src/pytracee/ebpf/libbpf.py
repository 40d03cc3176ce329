"""ctypes binding over the system libbpf.so.1 (the role libbpfgo plays for Tracee).

Only what pytracee needs: open/load/close an object, find maps and programs,
attach programs, map CRUD by fd, read-only config through the object's BTF,
libbpf's log routed to `logging`, and libbpf's ring buffer callback API (kept
so it can be measured against the mmap reader in ringbuf.py).

Every foreign function used here is declared with restype/argtypes in one
table below: a pointer returned as the default `c_int` is truncated to 32 bits
and the next call through it crashes the process.

libbpf >= 1.0 reports errors as a negative errno from int functions and as
NULL + errno from pointer functions; both become BpfError("<operation>: <reason>").
"""

from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import struct
from collections.abc import Iterator, Mapping
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable, NamedTuple

__all__ = [
    "BpfError",
    "BpfObject",
    "LibbpfRingBuffer",
    "Link",
    "Map",
    "MapType",
    "Program",
    "ProgramInfo",
    "num_possible_cpus",
    "set_log_handler",
]

log = logging.getLogger("pytracee.libbpf")


class BpfError(OSError):
    """A libbpf/kernel call failed. str() is "<operation>: <reason>"; .errno is set."""

    def __init__(self, op: str, err: int, detail: str | None = None) -> None:
        err = abs(err) or _errno.EINVAL
        super().__init__(err, os.strerror(err))
        self.op = op
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.op}: {self.detail or self.strerror}"


class MapType(IntEnum):
    """enum bpf_map_type (uapi linux/bpf.h); the ones pytracee names."""

    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    PERCPU_CGROUP_STORAGE = 21
    RINGBUF = 27


_PERCPU_TYPES = frozenset(
    {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE}
)
_BTF_KIND_VAR = 14
_BTF_KIND_DATASEC = 15
_BTF_TYPE = struct.Struct("<III")  # struct btf_type {name_off, info, size|type}
_BTF_SECINFO = struct.Struct("<III")  # struct btf_var_secinfo {type, offset, size}


class _UprobeOpts(Structure):
    # struct bpf_uprobe_opts (libbpf 1.1): sz first so libbpf can tell versions apart.
    _fields_ = [
        ("sz", c_size_t),
        ("ref_ctr_offset", c_size_t),
        ("bpf_cookie", c_uint64),
        ("retprobe", c_bool),
        ("func_name", c_char_p),
    ]


class _BpfProgInfo(Structure):
    """struct bpf_prog_info (uapi/linux/bpf.h) up to recursion_misses: the kernel
    fills at most the length given and only grows the struct at its end. Pointer and
    count fields stay 0, so the kernel copies out no arrays."""

    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", c_uint32), ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64), ("name", ctypes.c_char * 16), ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32), ("netns_dev", c_uint64), ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64), ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32), ("func_info_rec_size", c_uint32), ("func_info", c_uint64),
        ("nr_func_info", c_uint32), ("nr_line_info", c_uint32), ("line_info", c_uint64),
        ("jited_line_info", c_uint64), ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64), ("run_cnt", c_uint64), ("recursion_misses", c_uint64),
    ]


class _TestRunOpts(Structure):
    """libbpf's struct bpf_test_run_opts."""

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p), ("data_out", c_void_p),
        ("data_size_in", c_uint32), ("data_size_out", c_uint32),
        ("ctx_in", c_void_p), ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32), ("ctx_size_out", c_uint32),
        ("retval", c_uint32), ("repeat", c_int), ("duration", c_uint32),
        ("flags", c_uint32), ("cpu", c_uint32), ("batch_size", c_uint32),
    ]


class ProgramInfo(NamedTuple):
    """What the kernel counts of a loaded program. run_time_ns and run_cnt grow only
    while kernel.bpf_stats_enabled is 1; recursion_misses always: runs the kernel
    skipped because the program was already running on that CPU."""

    id: int
    name: str
    run_time_ns: int
    run_cnt: int
    recursion_misses: int


# int (*)(enum libbpf_print_level, const char *fmt, va_list ap). va_list is an
# array type on x86_64, so it arrives as a pointer and can be handed on as one.
_PRINT_FN = CFUNCTYPE(c_int, c_int, c_void_p, c_void_p)
# int (*)(void *ctx, void *data, size_t size)
_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

_lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
_libc = ctypes.CDLL(None, use_errno=True)

_vp, _cp, _i, _u32 = c_void_p, c_char_p, c_int, c_uint32
# name: (restype, argtypes). Pointer results are c_void_p, never the default int.
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (_vp, [_cp, _vp]),
    "bpf_object__load": (_i, [_vp]),
    "bpf_object__close": (None, [_vp]),
    "bpf_object__name": (_cp, [_vp]),
    "bpf_object__btf": (_vp, [_vp]),
    "bpf_object__find_map_by_name": (_vp, [_vp, _cp]),
    "bpf_object__find_program_by_name": (_vp, [_vp, _cp]),
    "bpf_object__next_program": (_vp, [_vp, _vp]),
    "bpf_object__next_map": (_vp, [_vp, _vp]),
    "bpf_program__name": (_cp, [_vp]),
    "bpf_program__section_name": (_cp, [_vp]),
    "bpf_program__fd": (_i, [_vp]),
    "bpf_program__set_autoload": (_i, [_vp, c_bool]),
    "bpf_obj_get_info_by_fd": (_i, [_i, _vp, POINTER(_u32)]),
    "bpf_prog_test_run_opts": (_i, [_i, POINTER(_TestRunOpts)]),
    "bpf_program__autoload": (c_bool, [_vp]),
    "bpf_program__attach": (_vp, [_vp]),
    "bpf_program__attach_raw_tracepoint": (_vp, [_vp, _cp]),
    "bpf_program__attach_tracepoint": (_vp, [_vp, _cp, _cp]),
    "bpf_program__attach_uprobe_opts": (_vp, [_vp, _i, _cp, c_size_t, POINTER(_UprobeOpts)]),
    "bpf_program__attach_cgroup": (_vp, [_vp, _i]),
    "bpf_link__destroy": (_i, [_vp]),
    "bpf_map__name": (_cp, [_vp]),
    "bpf_map__fd": (_i, [_vp]),
    "bpf_map__type": (_i, [_vp]),
    "bpf_map__key_size": (_u32, [_vp]),
    "bpf_map__value_size": (_u32, [_vp]),
    "bpf_map__max_entries": (_u32, [_vp]),
    "bpf_map__set_max_entries": (_i, [_vp, _u32]),
    "bpf_map__initial_value": (_vp, [_vp, POINTER(c_size_t)]),
    "bpf_map__set_initial_value": (_i, [_vp, _vp, c_size_t]),
    "bpf_map_lookup_elem": (_i, [_i, _vp, _vp]),
    "bpf_map_update_elem": (_i, [_i, _vp, _vp, c_uint64]),
    "bpf_map_delete_elem": (_i, [_i, _vp]),
    "bpf_map_get_next_key": (_i, [_i, _vp, _vp]),
    "btf__find_by_name_kind": (c_int32, [_vp, _cp, _u32]),
    "btf__type_by_id": (_vp, [_vp, _u32]),
    "btf__name_by_offset": (_cp, [_vp, _u32]),
    "libbpf_set_print": (_vp, [_vp]),
    "libbpf_num_possible_cpus": (_i, []),
    "libbpf_major_version": (_u32, []),
    "libbpf_minor_version": (_u32, []),
    "ring_buffer__new": (_vp, [_i, _SAMPLE_FN, _vp, _vp]),
    "ring_buffer__poll": (_i, [_vp, _i]),
    "ring_buffer__consume": (_i, [_vp]),
    "ring_buffer__epoll_fd": (_i, [_vp]),
    "ring_buffer__free": (None, [_vp]),
}


class _Lib:
    """Attribute access to the declared libbpf functions only (typos fail at import)."""

    def __init__(self, dll: ctypes.CDLL, signatures: Mapping[str, tuple[Any, list[Any]]]) -> None:
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def __getattr__(self, name: str) -> Any:  # only reached for undeclared names
        raise AttributeError(f"libbpf function {name} used without a declared signature")


_L: Any = _Lib(_lib, _SIGNATURES)
_C: Any = _Lib(
    _libc,
    {
        "vsnprintf": (c_int, [_vp, c_size_t, _vp, _vp]),
        "malloc": (_vp, [c_size_t]),
        "free": (None, [_vp]),
    },
)


def _check(op: str, rc: int, detail: str | None = None) -> int:
    """int-returning libbpf calls: negative errno on failure."""
    if rc < 0:
        raise BpfError(op, -rc, detail)
    return rc


def _check_ptr(op: str, ptr: int | None) -> int:
    """pointer-returning libbpf calls: NULL and errno on failure."""
    if not ptr:
        raise BpfError(op, ctypes.get_errno())
    return ptr


def _str(raw: bytes | None) -> str:
    return raw.decode(errors="replace") if raw is not None else ""


# ---------------------------------------------------------------- logging

# The verifier log is printed as one "%s" and may be up to 16 MiB; malloc'd
# per call (lazily faulted pages, no shared buffer: reentrant from signal handlers).
_LOG_BUF_SIZE = (16 << 20) + (64 << 10)
_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # LIBBPF_WARN, _INFO, _DEBUG
_print_state: dict[str, Any] = {"cb": None, "installed": False}


def set_log_handler(logger: logging.Logger | None = log) -> None:
    """Route libbpf's messages to `logger` (default "pytracee.libbpf"); None silences libbpf.

    Levels: LIBBPF_WARN -> WARNING, LIBBPF_INFO -> INFO, LIBBPF_DEBUG -> DEBUG.
    A message is only formatted when the logger is enabled for its level.
    """
    if logger is None:
        _L.libbpf_set_print(None)
        _print_state.update(cb=None, installed=True)
        return

    def on_print(level: int, fmt: int | None, ap: int | None) -> int:
        try:
            pylevel = _LEVELS[level] if 0 <= level < 3 else logging.DEBUG
            if not logger.isEnabledFor(pylevel) or not fmt:
                return 0
            buf = _C.malloc(_LOG_BUF_SIZE)
            if not buf:
                return 0
            try:
                n = _C.vsnprintf(buf, _LOG_BUF_SIZE, fmt, ap)
                text = ctypes.string_at(buf, max(0, min(n, _LOG_BUF_SIZE - 1)))
            finally:
                _C.free(buf)
            logger.log(pylevel, "%s", text.decode(errors="replace").rstrip("\n"))
            return n
        except BaseException:  # an exception must never unwind into C
            return 0

    cb = _PRINT_FN(on_print)
    _print_state.update(cb=cb, installed=True)  # keep the thunk alive for libbpf
    _L.libbpf_set_print(ctypes.cast(cb, c_void_p))


def _ensure_log_handler() -> None:
    # Until someone chooses, libbpf would print to stderr; route it to logging.
    if not _print_state["installed"]:
        set_log_handler()


_ncpus: list[int] = []


def libbpf_version() -> str:
    """The version of the libbpf shared library in use, e.g. '1.1'."""
    return f"{_L.libbpf_major_version()}.{_L.libbpf_minor_version()}"


def num_possible_cpus() -> int:
    """Possible CPUs (what per-CPU map values are sized by), cached."""
    if not _ncpus:
        _ncpus.append(_check("libbpf_num_possible_cpus", _L.libbpf_num_possible_cpus()))
    return _ncpus[0]


# ---------------------------------------------------------------- objects


class Link:
    """An attachment. destroy() detaches; safe to call more than once."""

    __slots__ = ("_ptr", "_owner", "description")

    def __init__(self, ptr: int, owner: BpfObject, description: str) -> None:
        self._ptr: int | None = ptr
        self._owner = owner
        self.description = description

    @property
    def active(self) -> bool:
        return self._ptr is not None

    def destroy(self) -> None:
        # Take the pointer before the call so a re-entrant destroy (signal
        # handler) sees None and never destroys the same link twice.
        ptr, self._ptr = self._ptr, None
        if ptr:
            _L.bpf_link__destroy(ptr)
            try:
                self._owner._links.remove(self)
            except ValueError:
                pass

    def __repr__(self) -> str:
        return f"<Link {self.description}{'' if self.active else ' (destroyed)'}>"


class Program:
    """A program of a BpfObject; valid until the object is closed."""

    __slots__ = ("_ptr", "_owner", "name")

    def __init__(self, ptr: int, owner: BpfObject) -> None:
        self._ptr = ptr
        self._owner = owner
        self.name = _str(_L.bpf_program__name(ptr))

    def _p(self) -> int:
        self._owner._live()
        return self._ptr

    @property
    def section(self) -> str:
        return _str(_L.bpf_program__section_name(self._p()))

    @property
    def fd(self) -> int:
        return _L.bpf_program__fd(self._p())

    @property
    def autoload(self) -> bool:
        return bool(_L.bpf_program__autoload(self._p()))

    def info(self) -> ProgramInfo:
        """The kernel's counters of this program (loaded only)."""
        fd = self.fd
        if fd < 0:
            raise BpfError(f"info of program {self.name}", _errno.EBADF, "not loaded")
        raw = _BpfProgInfo()
        size = c_uint32(ctypes.sizeof(raw))
        _check(f"info of program {self.name}",
               _L.bpf_obj_get_info_by_fd(fd, ctypes.byref(raw), ctypes.byref(size)))
        return ProgramInfo(raw.id, _str(raw.name), raw.run_time_ns, raw.run_cnt,
                           raw.recursion_misses)

    def test_run(self, ctx: bytes) -> int:
        """Run the (loaded) program once in this thread with `ctx` as its context
        (BPF_PROG_TEST_RUN; for a raw tracepoint program, its u64 arguments); its
        return value."""
        buf = ctypes.create_string_buffer(ctx, len(ctx))
        opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), ctx_in=ctypes.addressof(buf),
                            ctx_size_in=len(ctx))
        _check(f"test run of program {self.name}", _L.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts)))
        return int(opts.retval)

    def set_autoload(self, on: bool) -> None:
        """Include (True) or skip (False) this program at load; before load only."""
        _check(f"set autoload of program {self.name}", _L.bpf_program__set_autoload(self._p(), on))

    def _link(self, what: str, ptr: int | None) -> Link:
        link = Link(_check_ptr(f"attach {what} (program {self.name})", ptr), self._owner, what)
        self._owner._links.append(link)
        return link

    def attach_raw_tracepoint(self, tp: str) -> Link:
        return self._link(f"raw_tracepoint {tp}", _L.bpf_program__attach_raw_tracepoint(self._p(), tp.encode()))

    def attach_tracepoint(self, category: str, name: str) -> Link:
        ptr = _L.bpf_program__attach_tracepoint(self._p(), category.encode(), name.encode())
        return self._link(f"tracepoint {category}:{name}", ptr)

    def attach_uprobe(
        self,
        binary: str,
        offset: int = 0,
        *,
        func_name: str | None = None,
        pid: int = -1,
        retprobe: bool = False,
    ) -> Link:
        """Attach at `binary`+offset, or at `func_name` (+offset into it). pid -1 = all."""
        opts = _UprobeOpts(sz=ctypes.sizeof(_UprobeOpts), retprobe=retprobe)
        fname = func_name.encode() if func_name else None
        opts.func_name = fname  # `fname` stays referenced for the call's duration
        kind = "uretprobe" if retprobe else "uprobe"
        target = f"{binary}:{func_name}" if func_name else binary
        if offset:
            target += f"+{offset:#x}"
        ptr = _L.bpf_program__attach_uprobe_opts(self._p(), pid, binary.encode(), offset, ctypes.byref(opts))
        return self._link(f"{kind} {target}", ptr)

    def attach_cgroup(self, cgroup_path: str) -> Link:
        what = f"cgroup {cgroup_path}"
        try:
            fd = os.open(cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise BpfError(f"attach {what} (program {self.name})", e.errno or _errno.EINVAL) from e
        try:  # the link holds its own cgroup reference; our fd can go
            return self._link(what, _L.bpf_program__attach_cgroup(self._p(), fd))
        finally:
            os.close(fd)

    def attach(self) -> Link:
        """Attach as the SEC() name says (e.g. "raw_tracepoint/sys_enter")."""
        return self._link(f"auto ({self.section})", _L.bpf_program__attach(self._p()))

    def __repr__(self) -> str:
        return f"<Program {self.name}>"


class Map:
    """A map of a BpfObject. key/value size and type are fixed at open; max_entries is read live."""

    __slots__ = ("_ptr", "_owner", "name", "key_size", "value_size", "type", "_fd")

    def __init__(self, ptr: int, owner: BpfObject) -> None:
        self._ptr = ptr
        self._owner = owner
        self.name = _str(_L.bpf_map__name(ptr))
        self.key_size: int = _L.bpf_map__key_size(ptr)
        self.value_size: int = _L.bpf_map__value_size(ptr)
        self.type: int = _L.bpf_map__type(ptr)
        self._fd = -1

    @property
    def fd(self) -> int:
        """The kernel map fd (valid after load; -1 before)."""
        if self._fd < 0:
            fd = _L.bpf_map__fd(self._p())
            if fd < 0:
                return -1
            self._fd = fd
        self._owner._live()
        return self._fd

    @property
    def max_entries(self) -> int:
        return _L.bpf_map__max_entries(self._p())

    def _p(self) -> int:
        self._owner._live()
        return self._ptr

    def _loaded_fd(self, op: str) -> int:
        fd = self.fd
        if fd < 0:
            raise BpfError(f"{op} map {self.name}", _errno.EBADF, "object not loaded")
        return fd

    def _key(self, op: str, key: bytes) -> bytes:
        # The kernel copies key_size bytes from our pointer: a short key would leak memory.
        if len(key) != self.key_size:
            raise BpfError(f"{op} map {self.name}", _errno.EINVAL, f"key is {len(key)} bytes, map wants {self.key_size}")
        return key

    def _percpu_stride(self) -> int:
        return (self.value_size + 7) & ~7

    def _value_len(self) -> int:
        if self.type in _PERCPU_TYPES:
            return self._percpu_stride() * num_possible_cpus()
        return self.value_size

    def set_max_entries(self, n: int) -> None:
        """Resize before load (EBUSY after)."""
        _check(f"set max_entries of map {self.name} to {n}", _L.bpf_map__set_max_entries(self._p(), n))

    def lookup(self, key: bytes) -> bytes | None:
        """Value for `key`, or None when absent. Per-CPU maps: use lookup_percpu."""
        if self.type in _PERCPU_TYPES:
            raise BpfError(f"lookup map {self.name}", _errno.EINVAL, "per-CPU map: use lookup_percpu()")
        fd = self._loaded_fd("lookup")
        buf = ctypes.create_string_buffer(self.value_size or 1)
        rc = _L.bpf_map_lookup_elem(fd, self._key("lookup", key), buf)
        if rc < 0:
            if -rc == _errno.ENOENT:
                return None
            raise BpfError(f"lookup map {self.name}", -rc)
        return buf.raw[: self.value_size]

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        """One value per possible CPU (empty list when the key is absent)."""
        if self.type not in _PERCPU_TYPES:
            raise BpfError(f"lookup_percpu map {self.name}", _errno.EINVAL, "not a per-CPU map")
        fd = self._loaded_fd("lookup_percpu")
        stride, ncpu = self._percpu_stride(), num_possible_cpus()
        buf = ctypes.create_string_buffer(stride * ncpu)
        rc = _L.bpf_map_lookup_elem(fd, self._key("lookup_percpu", key), buf)
        if rc < 0:
            if -rc == _errno.ENOENT:
                return []
            raise BpfError(f"lookup_percpu map {self.name}", -rc)
        raw, vs = buf.raw, self.value_size
        return [raw[i * stride : i * stride + vs] for i in range(ncpu)]

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        """Insert or replace (flags: BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2).

        Per-CPU maps take the whole per-CPU array: 8-byte-aligned values x possible CPUs.
        """
        want = self._value_len()
        if len(value) != want:
            raise BpfError(f"update map {self.name}", _errno.EINVAL, f"value is {len(value)} bytes, map wants {want}")
        fd = self._loaded_fd("update")
        _check(f"update map {self.name}", _L.bpf_map_update_elem(fd, self._key("update", key), value, flags))

    def delete(self, key: bytes) -> bool:
        """Remove `key`; False when it was not there."""
        fd = self._loaded_fd("delete")
        rc = _L.bpf_map_delete_elem(fd, self._key("delete", key))
        if rc < 0:
            if -rc == _errno.ENOENT:
                return False
            raise BpfError(f"delete from map {self.name}", -rc)
        return True

    def keys(self) -> Iterator[bytes]:
        """Iterate keys (kernel order). Deleting while iterating a hash may restart it."""
        fd = self._loaded_fd("iterate")
        nxt = ctypes.create_string_buffer(self.key_size or 1)
        cur: bytes | None = None
        while True:
            rc = _L.bpf_map_get_next_key(fd, cur, nxt)
            if rc < 0:
                if -rc == _errno.ENOENT:
                    return
                raise BpfError(f"iterate map {self.name}", -rc)
            cur = nxt.raw[: self.key_size]
            yield cur

    def __repr__(self) -> str:
        return f"<Map {self.name} type={self.type} key={self.key_size} value={self.value_size}>"


class BpfObject:
    """An opened (then loaded) BPF ELF object: owns its maps, programs and links.

    Programs/maps/links keep the object alive; when the last reference goes (or
    on close()) every link it made is destroyed, then libbpf frees the object.
    Map fds handed to RingReader stay valid there (it holds its own dup).
    """

    def __init__(self, ptr: int, path: str) -> None:
        self._ptr: int | None = ptr
        self.path = path
        self.name = _str(_L.bpf_object__name(ptr))
        self._links: list[Link] = []
        self._maps: dict[str, Map] = {}
        self._progs: dict[str, Program] = {}
        self.loaded = False

    @classmethod
    def open(cls, path: str | Path) -> BpfObject:
        _ensure_log_handler()
        path = str(path)
        return cls(_check_ptr(f"open BPF object {path}", _L.bpf_object__open_file(path.encode(), None)), path)

    # -- lifetime

    def _live(self) -> int:
        if not self._ptr:
            raise BpfError(f"use of BPF object {self.name}", _errno.EBADF, "object is closed")
        return self._ptr

    def load(self) -> None:
        """Create maps, load (verify) programs. Failures name the object; the verifier
        log goes to the "pytracee.libbpf" logger at WARNING."""
        _check(f"load BPF object {self.name}", _L.bpf_object__load(self._live()))
        self.loaded = True

    def close(self) -> None:
        """Destroy our links, then the object. Idempotent and reentrant (signal handlers)."""
        while self._links:
            try:
                link = self._links.pop()
            except IndexError:  # emptied by a re-entrant close
                break
            link.destroy()
        ptr, self._ptr = self._ptr, None
        if ptr:
            _L.bpf_object__close(ptr)

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def links(self) -> list[Link]:
        return list(self._links)

    # -- lookup

    def map(self, name: str) -> Map:
        """Map by name; internal maps by section: ".rodata", ".data", ".bss"."""
        m = self._maps.get(name)
        if m is None:
            ptr = _L.bpf_object__find_map_by_name(self._live(), name.encode())
            if not ptr:
                known = ", ".join(self._map_names())
                raise BpfError(f"find map {name!r} in {self.name}", _errno.ENOENT, f"no such map (maps: {known})")
            m = self._maps[name] = Map(ptr, self)
        return m

    def program(self, name: str) -> Program:
        p = self._progs.get(name)
        if p is None:
            ptr = _L.bpf_object__find_program_by_name(self._live(), name.encode())
            if not ptr:
                known = ", ".join(p.name for p in self.programs())
                raise BpfError(
                    f"find program {name!r} in {self.name}", _errno.ENOENT, f"no such program (programs: {known})"
                )
            p = self._progs[name] = Program(ptr, self)
        return p

    def programs(self) -> list[Program]:
        out, ptr = [], _L.bpf_object__next_program(self._live(), None)
        while ptr:
            prog = Program(ptr, self)
            out.append(self._progs.setdefault(prog.name, prog))
            ptr = _L.bpf_object__next_program(self._ptr, ptr)
        return out

    def _map_names(self) -> list[str]:
        names, ptr = [], _L.bpf_object__next_map(self._live(), None)
        while ptr:
            names.append(_str(_L.bpf_map__name(ptr)))
            ptr = _L.bpf_object__next_map(self._ptr, ptr)
        return names

    def maps(self) -> list[Map]:
        return [self.map(n) for n in self._map_names()]

    # -- globals (read-only config) through BTF

    def globals(self, section: str = ".rodata") -> dict[str, tuple[int, int]]:
        """name -> (offset, size) of the variables of a data section, from the object's BTF."""
        btf = _L.bpf_object__btf(self._live())
        if not btf:
            raise BpfError(f"read BTF of {self.name}", _errno.ENOENT, "object has no BTF (compile with -g)")
        tid = _L.btf__find_by_name_kind(btf, section.encode(), _BTF_KIND_DATASEC)
        if tid < 0:
            raise BpfError(f"find section {section} in BTF of {self.name}", -tid, "no such data section")
        t = _check_ptr(f"read BTF type {tid}", _L.btf__type_by_id(btf, tid))
        _, info, _ = _BTF_TYPE.unpack(ctypes.string_at(t, _BTF_TYPE.size))
        vlen = info & 0xFFFF
        # The btf_var_secinfo array follows the btf_type header directly.
        raw = ctypes.string_at(t + _BTF_TYPE.size, vlen * _BTF_SECINFO.size)
        out: dict[str, tuple[int, int]] = {}
        for var_id, offset, size in _BTF_SECINFO.iter_unpack(raw):
            vt = _L.btf__type_by_id(btf, var_id)
            if not vt:
                continue
            name_off, vinfo, _ = _BTF_TYPE.unpack(ctypes.string_at(vt, _BTF_TYPE.size))
            if (vinfo >> 24) & 0x1F == _BTF_KIND_VAR:
                out[_str(_L.btf__name_by_offset(btf, name_off))] = (offset, size)
        return out

    def set_global(self, section: str, symbol: str, value: bytes) -> None:
        """Set a global's initial value before load, e.g. a `const volatile` in .rodata."""
        op = f"set {section} {symbol}"
        if self.loaded:
            raise BpfError(op, _errno.EBUSY, "object already loaded")
        layout = self.globals(section)
        if symbol not in layout:
            raise BpfError(op, _errno.ENOENT, f"unknown symbol (known: {', '.join(sorted(layout)) or 'none'})")
        offset, size = layout[symbol]
        if len(value) != size:
            raise BpfError(op, _errno.EINVAL, f"value is {len(value)} bytes, {symbol} is {size}")
        m = self.map(section)
        psize = c_size_t(0)
        cur = _check_ptr(f"{op}: read initial value", _L.bpf_map__initial_value(m._p(), ctypes.byref(psize)))
        data = bytearray(ctypes.string_at(cur, psize.value))
        if offset + size > len(data):
            raise BpfError(op, _errno.EINVAL, f"offset {offset}+{size} beyond section size {len(data)}")
        data[offset : offset + size] = value
        # Copy-in through libbpf (refuses after load) rather than writing its mmap directly.
        _check(op, _L.bpf_map__set_initial_value(m._p(), bytes(data), len(data)))

    def set_rodata(self, symbol_values: Mapping[str, bytes]) -> None:
        """Several `const volatile` config values at once, before load."""
        for name, value in symbol_values.items():
            self.set_global(".rodata", name, value)

    def __repr__(self) -> str:
        state = "closed" if not self._ptr else ("loaded" if self.loaded else "open")
        return f"<BpfObject {self.name} {state}>"


# ---------------------------------------------------------------- ring buffer (libbpf callbacks)


class LibbpfRingBuffer:
    """libbpf's ring_buffer__* reader: one C->Python callback per record.

    `callback(data)` receives a bytes copy of the record; an exception raised by it
    stops the batch and is re-raised from poll()/consume().
    """

    def __init__(self, map_fd: int, callback: Callable[[bytes], object]) -> None:
        self._exc: BaseException | None = None
        string_at = ctypes.string_at

        def sample(_ctx: int | None, data: int, size: int) -> int:
            try:
                callback(string_at(data, size))
            except BaseException as e:  # cannot unwind through C: park it, stop the batch
                self._exc = e
                return -1
            return 0

        self._thunk = _SAMPLE_FN(sample)  # must outlive the ring_buffer
        self._ptr: int | None = _check_ptr(
            f"create ring buffer on map fd {map_fd}", _L.ring_buffer__new(map_fd, self._thunk, None, None)
        )

    def _done(self, op: str, rc: int) -> int:
        if self._exc is not None:
            exc, self._exc = self._exc, None
            raise exc
        if rc == -_errno.EINTR:  # a signal: return so Python can run its handler
            return 0
        return _check(op, rc)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms for data and consume it; returns records handled."""
        return self._done("poll ring buffer", _L.ring_buffer__poll(self._live(), timeout_ms))

    def consume(self) -> int:
        """Consume whatever is there without waiting."""
        return self._done("consume ring buffer", _L.ring_buffer__consume(self._live()))

    def fileno(self) -> int:
        return _L.ring_buffer__epoll_fd(self._live())

    def _live(self) -> int:
        if not self._ptr:
            raise BpfError("use ring buffer", _errno.EBADF, "ring buffer is closed")
        return self._ptr

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr:
            _L.ring_buffer__free(ptr)

    def __enter__(self) -> LibbpfRingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
