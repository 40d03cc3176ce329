"""Turn raw argument values into output values.

Hot path: everything is looked up once per (event, arg) and returned as a plain
function; calls do no dict building. Three pieces:

* int_converter(type): raw u64 (a register or a kernel-filled field) -> typed value.
* decode_sockaddr(raw): struct sockaddr bytes -> Tracee's string map.
* arg_parser(event, arg): the `--output option:parse-arguments` decoders (flags,
  enums) -> string. Renderings follow Tracee's (pkg/events/parsers); the ones Tracee
  does not decode are marked as pytracee extras and can be switched off with
  tracee_only=True.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from pytracee.events.definitions import EVENTS, EventDef

Converter = Callable[[int], object]
Parser = Callable[[int], str | None]

_M8 = 0xFF
_M16 = 0xFFFF
_M32 = 0xFFFF_FFFF
_M64 = 0xFFFF_FFFF_FFFF_FFFF
_S32 = 0x8000_0000
_S64 = 0x8000_0000_0000_0000


# --- integer conversion ---------------------------------------------------------------

def _int8(v: int) -> int:
    return ((v & _M8) ^ 0x80) - 0x80


def _int16(v: int) -> int:
    return ((v & _M16) ^ 0x8000) - 0x8000


def _int32(v: int) -> int:
    # Registers carry garbage or sign-extension above bit 31; only the low half counts.
    return ((v & _M32) ^ _S32) - _S32


def _int64(v: int) -> int:
    return ((v & _M64) ^ _S64) - _S64


def _uint8(v: int) -> int:
    return v & _M8


def _uint16(v: int) -> int:
    return v & _M16


def _uint32(v: int) -> int:
    return v & _M32


def _uint64(v: int) -> int:
    return v & _M64


def _bool(v: int) -> bool:
    return v != 0


def _pointer(v: int) -> str:
    # Tracee's legacy JSON prints pointers as lowercase hex strings ("0x0" for NULL).
    return hex(v & _M64)


_CONVERTERS: dict[str, Converter] = {
    "int8": _int8,
    "int16": _int16,
    "int32": _int32,
    "int64": _int64,
    "uint8": _uint8,
    "uint16": _uint16,
    "uint32": _uint32,
    "uint64": _uint64,
    "bool": _bool,
    "trace.Pointer": _pointer,
    "time.Time": _uint64,  # nanoseconds, kept as an int
}


def int_converter(type: str) -> Converter:  # noqa: A002 - the brief's parameter name
    """Converter from a raw u64 to the value of Tracee type `type`.

    Raises ValueError for types that are not integers (string, SockAddr, ...)."""
    try:
        return _CONVERTERS[type]
    except KeyError:
        raise ValueError(f"not an integer type: {type!r}") from None


_EVENT_CONVERTERS: dict[int, tuple[Converter | None, ...]] = {}


def event_converters(ev: EventDef) -> tuple[Converter | None, ...]:
    """Per-arg converters of an event (None where the arg is not an integer), cached."""
    convs = _EVENT_CONVERTERS.get(ev.id)
    if convs is None or len(convs) != len(ev.args):
        convs = tuple(_CONVERTERS.get(a.type) for a in ev.args)
        _EVENT_CONVERTERS[ev.id] = convs
    return convs


# --- sockaddr -------------------------------------------------------------------------

# Address family names by number (linux/socket.h), as Tracee prints them.
_AF_NAMES = (
    "AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_AX25", "AF_IPX", "AF_APPLETALK", "AF_NETROM",
    "AF_BRIDGE", "AF_ATMPVC", "AF_X25", "AF_INET6", "AF_ROSE", "AF_DECnet", "AF_NETBEUI",
    "AF_SECURITY", "AF_KEY", "AF_NETLINK", "AF_PACKET", "AF_ASH", "AF_ECONET", "AF_ATMSVC",
    "AF_RDS", "AF_SNA", "AF_IRDA", "AF_PPPOX", "AF_WANPIPE", "AF_LLC", "AF_IB", "AF_MPLS",
    "AF_CAN", "AF_TIPC", "AF_BLUETOOTH", "AF_IUCV", "AF_RXRPC", "AF_ISDN", "AF_PHONET",
    "AF_IEEE802154", "AF_CAIF", "AF_ALG", "AF_NFC", "AF_VSOCK", "AF_KCM", "AF_QIPCRTR",
    "AF_SMC", "AF_XDP", "AF_MCTP",
)
_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def _family_name(family: int) -> str:
    return _AF_NAMES[family] if 0 <= family < len(_AF_NAMES) else str(family)


def decode_sockaddr(raw: bytes) -> dict[str, str]:
    """Tracee's map form of a struct sockaddr (all values are strings).

    AF_INET  -> sa_family, sin_port, sin_addr
    AF_INET6 -> sa_family, sin6_port, sin6_flowinfo, sin6_addr, sin6_scopeid
    AF_UNIX  -> sa_family, sun_path ('@' + name for an abstract socket)
    others   -> sa_family only (its AF_ name, or the number if unknown).
    Truncated input yields only the fields that fit.
    """
    if len(raw) < 2:
        return {}
    family = raw[0] | raw[1] << 8  # sa_family_t, host (little-endian) order
    out = {"sa_family": _family_name(family)}
    if family == 2:
        if len(raw) >= 8:
            out["sin_port"] = str(raw[2] << 8 | raw[3])
            out["sin_addr"] = "%d.%d.%d.%d" % (raw[4], raw[5], raw[6], raw[7])
    elif family == 10:
        if len(raw) >= 24:
            port, flowinfo = struct.unpack_from("!HI", raw, 2)
            out["sin6_port"] = str(port)
            out["sin6_flowinfo"] = str(flowinfo)
            out["sin6_addr"] = _ipv6_text(raw[8:24])
            # scope_id is a host-order u32 (Tracee reads it big-endian; we print the
            # interface index the kernel actually holds).
            scope = struct.unpack_from("<I", raw, 24)[0] if len(raw) >= 28 else 0
            out["sin6_scopeid"] = str(scope)
    elif family == 1:
        out["sun_path"] = _sun_path(raw[2:110])
    return out


def _ipv6_text(addr: bytes) -> str:
    # Go's net.IP.String() (Tracee) prints v4-mapped addresses as dotted quads.
    if addr[:12] == _V4_MAPPED:
        return "%d.%d.%d.%d" % (addr[12], addr[13], addr[14], addr[15])
    return socket.inet_ntop(socket.AF_INET6, addr)


def _sun_path(path: bytes) -> str:
    if not path:
        return ""
    if path[0] == 0:
        # Abstract namespace: a leading NUL, then the name (shown up to the next NUL).
        name = path[1:].split(b"\0", 1)[0]
        return "@" + name.decode("utf-8", "replace") if name else ""
    return path.split(b"\0", 1)[0].decode("utf-8", "replace")


# --- flag and enum parsers (parse-arguments) ------------------------------------------
#
# Each parser takes the raw u64 (or the already-converted int; both work because the
# parsers mask to the argument's width) and returns the string to print. A parser may
# return None to mean "leave the value as it is" (dirfd that is not AT_FDCWD).

def _bits_parser(
    flags: tuple[tuple[int, str], ...],
    *,
    width: int = _M32,
    zero: str = "",
    none_matched: str = "decimal",
    leftover: bool = False,
    prefix: Callable[[int], tuple[str | None, int]] | None = None,
) -> Parser:
    """Bitmask -> 'A|B|C' in table order. An entry matches when all its bits are set.

    zero: text for value 0. none_matched: 'decimal' prints the number when nothing
    matched (Tracee's fallback), 'empty' prints ''. leftover: append unknown bits as hex
    (pytracee extras). prefix: splits off a leading non-bit field (access mode, type).
    """

    def parse(v: int) -> str:
        v &= width
        if v == 0 and prefix is None:
            return zero
        parts: list[str] = []
        rest = v
        if prefix is not None:
            head, rest = prefix(v)
            if head is not None:
                parts.append(head)
        known = 0
        for bit, name in flags:
            if v & bit == bit and bit:
                parts.append(name)
                known |= bit
        if leftover and rest & ~known:
            parts.append(hex(rest & ~known))
        if not parts:
            return str(v) if none_matched == "decimal" else ""
        return "|".join(parts)

    return parse


def _enum_parser(names: dict[int, str] | tuple[str, ...], *, width: int = _M32) -> Parser:
    """Value -> its name, or the decimal value when unknown (Tracee's fallback)."""
    table = dict(enumerate(names)) if isinstance(names, tuple) else names
    get = table.get

    def parse(v: int) -> str:
        v &= width
        name = get(v)
        return name if name is not None else str(v)

    return parse


# open(2) flags, in Tracee's order. O_SYNC includes the O_DSYNC bit, so both show.
_OPEN_FLAGS = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"),
    (0o4010000, "O_SYNC"), (0o20000, "FASYNC"), (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
)


def _open_access_mode(v: int) -> tuple[str, int]:
    acc = v & 3
    name = "O_WRONLY" if acc & 1 else "O_RDWR" if acc & 2 else "O_RDONLY"
    return name, v & ~3


_parse_open_flags = _bits_parser(_OPEN_FLAGS, prefix=_open_access_mode)

# Inode mode: file type, then permission bits per class (rwx of a class folds to S_IRWX?).
_S_IFMT = 0o170000
_FILE_TYPES = {
    0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG", 0o060000: "S_IFBLK",
    0o040000: "S_IFDIR", 0o020000: "S_IFCHR", 0o010000: "S_IFIFO",
}
_PERM_CLASSES = (
    (0o700, "S_IRWXU", ((0o400, "S_IRUSR"), (0o200, "S_IWUSR"), (0o100, "S_IXUSR"))),
    (0o070, "S_IRWXG", ((0o040, "S_IRGRP"), (0o020, "S_IWGRP"), (0o010, "S_IXGRP"))),
    (0o007, "S_IRWXO", ((0o004, "S_IROTH"), (0o002, "S_IWOTH"), (0o001, "S_IXOTH"))),
)


def _parse_inode_mode(v: int) -> str:
    v &= _M32
    parts = []
    ftype = _FILE_TYPES.get(v & _S_IFMT)
    if ftype:
        parts.append(ftype)
    for mask, all_name, bits in _PERM_CLASSES:
        if v & mask == mask:
            parts.append(all_name)
        else:
            parts.extend(name for bit, name in bits if v & bit)
    return "|".join(parts)


def _parse_octal_mode(v: int) -> str:
    # pytracee extra for open/creat/mkdir modes (Tracee leaves them as numbers):
    # C-style octal, e.g. "0644", "04755".
    return "0%03o" % (v & 0o7777)


_parse_access_mode = _bits_parser(((1, "X_OK"), (2, "W_OK"), (4, "R_OK")), zero="F_OK")

_PROT_FLAGS = (
    (0x1, "PROT_READ"), (0x2, "PROT_WRITE"), (0x4, "PROT_EXEC"), (0x8, "PROT_SEM"),
    (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP"),
)
_parse_prot = _bits_parser(_PROT_FLAGS, zero="PROT_NONE", none_matched="empty")

_MAP_TYPES = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
_MAP_FLAGS = (
    (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"),
)
_MAP_HUGETLB = 0x40000
_MAP_HUGE_SHIFT = 26


def _parse_mmap_flags(v: int) -> str:
    # pytracee extra: mapping type first, then flags; with MAP_HUGETLB the top bits are
    # the page size (MAP_HUGE_2MB ...), otherwise bit 26 is MAP_UNINITIALIZED.
    v &= _M32
    parts = [_MAP_TYPES.get(v & 0xF, hex(v & 0xF))] if v & 0xF else []
    known = 0xF
    for bit, name in _MAP_FLAGS:
        if v & bit:
            parts.append(name)
            known |= bit
    high_mask = 0x3F << _MAP_HUGE_SHIFT
    high = (v & high_mask) >> _MAP_HUGE_SHIFT
    if high:
        if v & _MAP_HUGETLB:
            parts.append(_huge_size(high))
        elif high == 1:
            parts.append("MAP_UNINITIALIZED")
        else:
            parts.append(hex(v & high_mask))
        known |= high_mask
    if v & ~known:
        parts.append(hex(v & ~known))
    return "|".join(parts) if parts else "0"


def _huge_size(log2: int) -> str:
    size, unit = 1 << log2, "B"
    for u in ("KB", "MB", "GB"):
        if size >= 1024 and size % 1024 == 0:
            size, unit = size // 1024, u
    return f"MAP_HUGE_{size}{unit}"


_CLONE_FLAGS = (
    (0x00000100, "CLONE_VM"), (0x00000200, "CLONE_FS"), (0x00000400, "CLONE_FILES"),
    (0x00000800, "CLONE_SIGHAND"), (0x00001000, "CLONE_PIDFD"), (0x00002000, "CLONE_PTRACE"),
    (0x00004000, "CLONE_VFORK"), (0x00008000, "CLONE_PARENT"), (0x00010000, "CLONE_THREAD"),
    (0x00020000, "CLONE_NEWNS"), (0x00040000, "CLONE_SYSVSEM"), (0x00080000, "CLONE_SETTLS"),
    (0x00100000, "CLONE_PARENT_SETTID"), (0x00200000, "CLONE_CHILD_CLEARTID"),
    (0x00400000, "CLONE_DETACHED"), (0x00800000, "CLONE_UNTRACED"),
    (0x01000000, "CLONE_CHILD_SETTID"), (0x02000000, "CLONE_NEWCGROUP"),
    (0x04000000, "CLONE_NEWUTS"), (0x08000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"),
)
_CSIGNAL = 0xFF

# Signal names by number (x86_64).
_SIGNALS = (
    "0", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
    "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
    "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
    "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
)
_SIGRTMIN = 32
_SIGRTMAX = 64


def _signal_name(sig: int) -> str:
    if 0 <= sig < len(_SIGNALS):
        return _SIGNALS[sig]
    if sig == _SIGRTMIN:
        return "SIGRTMIN"
    if _SIGRTMIN < sig <= _SIGRTMAX:
        return f"SIGRTMIN+{sig - _SIGRTMIN}"
    return str(sig)


def _parse_signal(v: int) -> str:
    # pytracee extra (kill/tgkill/... sig).
    return _signal_name(_int32(v))


_clone_bits = _bits_parser(_CLONE_FLAGS, width=_M64)


def _parse_clone_flags(v: int) -> str:
    """Tracee's CLONE_* rendering, plus the exit signal held in the low byte
    (a pytracee addition: Tracee drops it, and prints a bare number for fork's SIGCHLD)."""
    v &= _M64
    flags = v & ~_CSIGNAL
    sig = v & _CSIGNAL
    text = _clone_bits(flags) if flags else ""
    if text.isdigit():  # no known flag matched: keep the number, as Tracee does
        return str(v)
    if sig:
        text = f"{text}|{_signal_name(sig)}" if text else _signal_name(sig)
    return text


_parse_unshare_flags = _bits_parser(_CLONE_FLAGS, zero="0", leftover=True)
_NS_TYPES = {
    0: "0", 0x00020000: "CLONE_NEWNS", 0x02000000: "CLONE_NEWCGROUP",
    0x04000000: "CLONE_NEWUTS", 0x08000000: "CLONE_NEWIPC", 0x10000000: "CLONE_NEWUSER",
    0x20000000: "CLONE_NEWPID", 0x40000000: "CLONE_NEWNET", 0x00000080: "CLONE_NEWTIME",
}
_parse_nstype = _enum_parser(_NS_TYPES)

_PTRACE_REQUESTS = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSER",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSER", 7: "PTRACE_CONT",
    8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
    18: "PTRACE_GETFPXREGS", 19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL",
    25: "PTRACE_GET_THREAD_AREA", 26: "PTRACE_SET_THREAD_AREA", 30: "PTRACE_ARCH_PRCTL",
    31: "PTRACE_SYSEMU", 32: "PTRACE_SYSEMU_SINGLESTEP", 33: "PTRACE_SINGLEBLOCK",
    0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG", 0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT", 0x4208: "PTRACE_LISTEN",
    0x4209: "PTRACE_PEEKSIGINFO", 0x420A: "PTRACE_GETSIGMASK", 0x420B: "PTRACE_SETSIGMASK",
    0x420C: "PTRACE_SECCOMP_GET_FILTER", 0x420D: "PTRACE_SECCOMP_GET_METADATA",
    0x420E: "PTRACE_GET_SYSCALL_INFO", 0x420F: "PTRACE_GET_RSEQ_CONFIGURATION",
    0x4210: "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG",
    0x4211: "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG",
}
_parse_ptrace_request = _enum_parser(_PTRACE_REQUESTS, width=_M64)

_PRCTL_OPTIONS = {
    1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
    5: "PR_GET_UNALIGN", 6: "PR_SET_UNALIGN", 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS",
    9: "PR_GET_FPEMU", 10: "PR_SET_FPEMU", 11: "PR_GET_FPEXC", 12: "PR_SET_FPEXC",
    13: "PR_GET_TIMING", 14: "PR_SET_TIMING", 15: "PR_SET_NAME", 16: "PR_GET_NAME",
    19: "PR_GET_ENDIAN", 20: "PR_SET_ENDIAN", 21: "PR_GET_SECCOMP", 22: "PR_SET_SECCOMP",
    23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 25: "PR_GET_TSC", 26: "PR_SET_TSC",
    27: "PR_GET_SECUREBITS", 28: "PR_SET_SECUREBITS", 29: "PR_SET_TIMERSLACK",
    30: "PR_GET_TIMERSLACK", 31: "PR_TASK_PERF_EVENTS_DISABLE",
    32: "PR_TASK_PERF_EVENTS_ENABLE", 33: "PR_MCE_KILL", 34: "PR_MCE_KILL_GET",
    35: "PR_SET_MM", 0x59616D61: "PR_SET_PTRACER", 36: "PR_SET_CHILD_SUBREAPER",
    37: "PR_GET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS",
    40: "PR_GET_TID_ADDRESS", 41: "PR_SET_THP_DISABLE", 42: "PR_GET_THP_DISABLE",
    43: "PR_MPX_ENABLE_MANAGEMENT", 44: "PR_MPX_DISABLE_MANAGEMENT", 45: "PR_SET_FP_MODE",
    46: "PR_GET_FP_MODE", 47: "PR_CAP_AMBIENT", 50: "PR_SVE_SET_VL", 51: "PR_SVE_GET_VL",
    52: "PR_GET_SPECULATION_CTRL", 53: "PR_SET_SPECULATION_CTRL", 54: "PR_PAC_RESET_KEYS",
    55: "PR_SET_TAGGED_ADDR_CTRL", 56: "PR_GET_TAGGED_ADDR_CTRL", 57: "PR_SET_IO_FLUSHER",
    58: "PR_GET_IO_FLUSHER", 59: "PR_SET_SYSCALL_USER_DISPATCH",
    60: "PR_PAC_SET_ENABLED_KEYS", 61: "PR_PAC_GET_ENABLED_KEYS", 62: "PR_SCHED_CORE",
    63: "PR_SME_SET_VL", 64: "PR_SME_GET_VL", 65: "PR_SET_MDWE", 66: "PR_GET_MDWE",
    0x53564D41: "PR_SET_VMA", 0x41555856: "PR_GET_AUXV", 67: "PR_SET_MEMORY_MERGE",
    68: "PR_GET_MEMORY_MERGE",
}
_parse_prctl_option = _enum_parser(_PRCTL_OPTIONS)

_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_parse_capability = _enum_parser(_CAPABILITIES)

_BPF_CMDS = (
    "BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_OBJ_PIN", "BPF_OBJ_GET", "BPF_PROG_ATTACH",
    "BPF_PROG_DETACH", "BPF_PROG_TEST_RUN", "BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID",
    "BPF_PROG_GET_FD_BY_ID", "BPF_MAP_GET_FD_BY_ID", "BPF_OBJ_GET_INFO_BY_FD",
    "BPF_PROG_QUERY", "BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD", "BPF_BTF_GET_FD_BY_ID",
    "BPF_TASK_FD_QUERY", "BPF_MAP_LOOKUP_AND_DELETE_ELEM", "BPF_MAP_FREEZE",
    "BPF_BTF_GET_NEXT_ID", "BPF_MAP_LOOKUP_BATCH", "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
    "BPF_MAP_UPDATE_BATCH", "BPF_MAP_DELETE_BATCH", "BPF_LINK_CREATE", "BPF_LINK_UPDATE",
    "BPF_LINK_GET_FD_BY_ID", "BPF_LINK_GET_NEXT_ID", "BPF_ENABLE_STATS", "BPF_ITER_CREATE",
    "BPF_LINK_DETACH", "BPF_PROG_BIND_MAP", "BPF_TOKEN_CREATE",
)
_parse_bpf_cmd = _enum_parser(_BPF_CMDS)

_parse_socket_domain = _enum_parser(_AF_NAMES)

_SOCK_TYPES = {
    1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
    6: "SOCK_DCCP", 10: "SOCK_PACKET",
}
_SOCK_NONBLOCK = 0o4000
_SOCK_CLOEXEC = 0o2000000


def _parse_socket_type(v: int) -> str:
    v &= _M32
    base = _SOCK_TYPES.get(v & 0xF)
    parts = [base if base is not None else str(v)]
    if v & _SOCK_NONBLOCK:
        parts.append("SOCK_NONBLOCK")
    if v & _SOCK_CLOEXEC:
        parts.append("SOCK_CLOEXEC")
    return "|".join(parts)


_AT_FDCWD = -100


def _parse_dirfd(v: int) -> str | None:
    return "AT_FDCWD" if _int32(v) == _AT_FDCWD else None


# *at() flags. Tracee decodes three syscalls, and prints '' for 0.
_AT_SYMLINK_NOFOLLOW = (0x100, "AT_SYMLINK_NOFOLLOW")
_AT_EACCESS = (0x200, "AT_EACCESS")
_AT_REMOVEDIR = (0x200, "AT_REMOVEDIR")
_AT_SYMLINK_FOLLOW = (0x400, "AT_SYMLINK_FOLLOW")
_AT_NO_AUTOMOUNT = (0x800, "AT_NO_AUTOMOUNT")
_AT_EMPTY_PATH = (0x1000, "AT_EMPTY_PATH")
_AT_STATX_FORCE_SYNC = (0x2000, "AT_STATX_FORCE_SYNC")
_AT_STATX_DONT_SYNC = (0x4000, "AT_STATX_DONT_SYNC")
_AT_RECURSIVE = (0x8000, "AT_RECURSIVE")

_parse_faccessat_flags = _bits_parser((_AT_EACCESS, _AT_EMPTY_PATH, _AT_SYMLINK_NOFOLLOW))
_parse_fchmodat_flags = _bits_parser((_AT_SYMLINK_NOFOLLOW,))
_parse_execveat_flags = _bits_parser((_AT_SYMLINK_NOFOLLOW, _AT_EMPTY_PATH))


def _at_flags(*flags: tuple[int, str]) -> Parser:
    # pytracee extras: '0' for none, unknown bits kept as hex.
    return _bits_parser(flags, zero="0", leftover=True)


_parse_at_stat_flags = _at_flags(
    _AT_SYMLINK_NOFOLLOW, _AT_NO_AUTOMOUNT, _AT_EMPTY_PATH, _AT_STATX_FORCE_SYNC,
    _AT_STATX_DONT_SYNC,
)
_parse_at_nofollow_empty = _at_flags(_AT_SYMLINK_NOFOLLOW, _AT_EMPTY_PATH)
_parse_at_follow_empty = _at_flags(_AT_SYMLINK_FOLLOW, _AT_EMPTY_PATH)
_parse_unlinkat_flags = _at_flags(_AT_REMOVEDIR)
_parse_open_tree_flags = _at_flags(
    (1, "OPEN_TREE_CLONE"), _AT_SYMLINK_NOFOLLOW, _AT_NO_AUTOMOUNT, _AT_EMPTY_PATH,
    _AT_RECURSIVE, (0o2000000, "OPEN_TREE_CLOEXEC"),
)

_parse_whence = _enum_parser(
    {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
)

_FCNTL_CMDS = {
    0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
    6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG",
    11: "F_GETSIG", 15: "F_SETOWN_EX", 16: "F_GETOWN_EX", 17: "F_GETOWNER_UIDS",
    36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 1024: "F_SETLEASE",
    1025: "F_GETLEASE", 1026: "F_NOTIFY", 1027: "F_DUPFD_QUERY", 1028: "F_CREATED_QUERY",
    1029: "F_CANCELLK", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ",
    1033: "F_ADD_SEALS", 1034: "F_GET_SEALS", 1035: "F_GET_RW_HINT", 1036: "F_SET_RW_HINT",
    1037: "F_GET_FILE_RW_HINT", 1038: "F_SET_FILE_RW_HINT",
}
_parse_fcntl_cmd = _enum_parser(_FCNTL_CMDS)


def _parse_syscall_id(v: int) -> str:
    # sys_enter/sys_exit carry a syscall number; Tracee prints the syscall's name.
    nr = _int32(v)
    ev = EVENTS.get(nr)
    return ev.name if ev is not None and ev.syscall else str(nr)


# (events, arg, parser, decoded by Tracee too?)
_RULES: tuple[tuple[tuple[str, ...], str, Parser, bool], ...] = (
    (("open", "openat", "security_file_open"), "flags", _parse_open_flags, True),
    (("open", "openat", "creat", "mkdir", "mkdirat"), "mode", _parse_octal_mode, False),
    (("access", "faccessat", "faccessat2"), "mode", _parse_access_mode, True),
    (("faccessat",), "flags", _parse_faccessat_flags, True),
    (("faccessat2",), "flag", _parse_faccessat_flags, False),
    (("mknod", "mknodat", "security_inode_mknod", "chmod", "fchmod", "fchmodat",
      "chmod_common"), "mode", _parse_inode_mode, True),
    (("sched_process_exec",), "stdin_type", _parse_inode_mode, True),
    (("dirty_pipe_splice",), "in_file_type", _parse_inode_mode, True),
    (("fchmodat",), "flags", _parse_fchmodat_flags, True),
    (("execveat",), "flags", _parse_execveat_flags, True),
    (("mmap", "mprotect", "pkey_mprotect", "security_file_mprotect", "mem_prot_alert",
      "security_mmap_file", "do_mmap"), "prot", _parse_prot, True),
    (("security_file_mprotect", "mem_prot_alert"), "prev_prot", _parse_prot, True),
    (("mmap",), "flags", _parse_mmap_flags, False),
    (("security_mmap_file", "do_mmap"), "mmap_flags", _parse_mmap_flags, False),
    (("socket",), "domain", _parse_socket_domain, True),
    (("socket",), "type", _parse_socket_type, True),
    (("security_socket_create",), "family", _parse_socket_domain, True),
    (("security_socket_create", "security_socket_connect"), "type", _parse_socket_type, True),
    (("socketpair",), "domain", _parse_socket_domain, False),
    (("socketpair",), "type", _parse_socket_type, False),
    (("ptrace",), "request", _parse_ptrace_request, True),
    (("clone",), "flags", _parse_clone_flags, True),
    (("unshare",), "flags", _parse_unshare_flags, False),
    (("setns",), "nstype", _parse_nstype, False),
    (("prctl", "security_task_prctl"), "option", _parse_prctl_option, True),
    (("cap_capable",), "cap", _parse_capability, True),
    (("bpf", "security_bpf"), "cmd", _parse_bpf_cmd, True),
    (("sys_enter", "sys_exit"), "syscall", _parse_syscall_id, True),
    (("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
      "pidfd_send_signal"), "sig", _parse_signal, False),
    (("rt_sigaction",), "signum", _parse_signal, False),
    (("lseek",), "whence", _parse_whence, False),
    (("fcntl",), "cmd", _parse_fcntl_cmd, False),
    (("newfstatat", "statx"), "flags", _parse_at_stat_flags, False),
    (("fchownat", "utimensat"), "flags", _parse_at_nofollow_empty, False),
    (("linkat", "name_to_handle_at"), "flags", _parse_at_follow_empty, False),
    (("unlinkat",), "flags", _parse_unlinkat_flags, False),
    (("open_tree",), "flags", _parse_open_tree_flags, False),
)

# Decoded whatever the event: Tracee turns AT_FDCWD into its name for any `dirfd`.
_ANY_EVENT: dict[str, tuple[Parser, bool]] = {
    "dirfd": (_parse_dirfd, True),
    "olddirfd": (_parse_dirfd, False),
    "newdirfd": (_parse_dirfd, False),
    "dfd": (_parse_dirfd, False),
    "from_dfd": (_parse_dirfd, False),
    "to_dfd": (_parse_dirfd, False),
}

_MISS = object()
_MEMO_MAX = 4096


def _memo(fn: Parser) -> Parser:
    """Remember results: an argument takes few distinct values (the same open flags
    again and again), and a dict hit is several times cheaper than re-rendering."""
    cache: dict[int, str | None] = {}
    get = cache.get

    def parse(v: int) -> str | None:
        r = get(v, _MISS)
        if r is _MISS:
            r = fn(v)
            if len(cache) < _MEMO_MAX:
                cache[v] = r
        return r  # type: ignore[return-value]

    return parse


_MEMOS: dict[Parser, Parser] = {}
for _events, _arg, _fn, _ in _RULES:
    _MEMOS.setdefault(_fn, _memo(_fn))
for _fn, _ in _ANY_EVENT.values():
    _MEMOS.setdefault(_fn, _memo(_fn))

_BY_EVENT_ARG: dict[tuple[str, str], tuple[Parser, bool]] = {
    (event, arg): (_MEMOS[parser], in_tracee)
    for events, arg, parser, in_tracee in _RULES
    for event in events
}
_ANY_EVENT = {arg: (_MEMOS[fn], in_tracee) for arg, (fn, in_tracee) in _ANY_EVENT.items()}
del _events, _arg, _fn


def arg_parser(event_name: str, arg_name: str, *, tracee_only: bool = False) -> Parser | None:
    """The parse-arguments decoder of one event argument, or None if it is not decoded.

    The decoder takes the raw u64 (or the converted int) and returns the text to print,
    or None to keep the value unchanged (a dirfd other than AT_FDCWD). Renderings:

    * open/openat flags: access mode then flags, 'O_WRONLY|O_CREAT|O_APPEND'; 0 is
      'O_RDONLY'. Unknown bits are dropped (as Tracee does).
    * chmod/fchmod/fchmodat/mknod/mknodat mode, stdin_type: 'S_IFREG|S_IRWXU|S_IRGRP'
      (a full rwx class folds into S_IRWX?); 0 is ''.
    * open/openat/creat/mkdir/mkdirat mode (extra; Tracee prints the number): C octal,
      '0644'.
    * access/faccessat mode: 'R_OK|W_OK' style, 0 is 'F_OK'.
    * mmap/mprotect prot: 'PROT_READ|PROT_WRITE', 0 is 'PROT_NONE'.
    * mmap flags (extra): 'MAP_PRIVATE|MAP_ANONYMOUS', unknown bits as hex.
    * socket domain 'AF_INET'; type 'SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC'.
    * ptrace request, prctl option, bpf cmd, cap_capable cap, sys_enter syscall: the
      name; unknown values print as the decimal number (Tracee's fallback).
    * clone flags: 'CLONE_VM|CLONE_FS|...' and, unlike Tracee, the exit signal from
      the low byte ('CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD').
    * dirfd: 'AT_FDCWD' for -100, else unchanged.
    * extras: kill/tgkill/... sig ('SIGKILL'), lseek whence ('SEEK_END'), fcntl cmd
      ('F_SETFL'), setns nstype, unshare flags, *at() flags ('AT_SYMLINK_NOFOLLOW|
      AT_EMPTY_PATH'; 0 is '0', unknown bits as hex).

    tracee_only=True returns only the decoders Tracee itself applies, so output matches
    Tracee's parse-arguments argument for argument. capset/capget are not decoded: their
    arguments are pointers to structs the kernel side does not read.
    """
    hit = _BY_EVENT_ARG.get((event_name, arg_name)) or _ANY_EVENT.get(arg_name)
    if hit is None or (tracee_only and not hit[1]):
        return None
    return hit[0]


# -- back from parse-arguments text (pytracee analyze over such a recording) --------

# Values whose renderings name every token a parser prints: the small numbers enums
# use (fcntl commands reach 1031, ptrace's PTRACE_SEIZE family 0x4206), each bit alone
# and next to a low value that names itself (SOCK_STREAM|SOCK_CLOEXEC), AT_FDCWD.
_PROBES = (*range(1100), *range(0x4200, 0x4220), *(1 << i for i in range(11, 64)),
           *((1 << i) | low for i in range(2, 64) for low in (1, 2)), -100)
_TOKENS: dict[Parser, dict[str, int]] = {}


def _tokens(parse: Parser) -> dict[str, int]:
    """Token -> value, learnt from the parser's own renderings: a rendering of one
    token names that value; one with a single token not yet known names the value
    minus the known ones (O_RDONLY|O_CREAT: O_CREAT is 0o100)."""
    known = _TOKENS.get(parse)
    if known is not None:
        return known
    known = {}
    for v in _PROBES:
        text = parse(v)
        if not text:
            continue
        parts = text.split("|")
        if any(t.lstrip("-").isdigit() for t in parts):
            continue  # a fallback number stands for more than its token
        hexes = [t for t in parts if t.startswith("0x")]  # unknown bits or a field, as hex
        new = [t for t in parts if t not in known and t not in hexes]
        if len(new) == 1:
            rest = 0
            for t in hexes:
                rest |= int(t, 16)
            for t in parts:
                if t in known:
                    rest |= known[t]
            known[new[0]] = v & ~rest if rest & v == rest else v
    _TOKENS[parse] = known
    return known


def unparse(event_name: str, arg_name: str, text: str) -> int | None:
    """The number an argument had before parse-arguments printed it as `text`, or None
    when it cannot be told (the parser does not print that text for any number)."""
    parse = arg_parser(event_name, arg_name)
    if parse is None:
        return None
    if "|" not in text and (text.lstrip("-").isdigit() or text.startswith("0x")):  # a number
        for base in (10, 8, 16):  # an enum's decimal fallback, C octal modes, hex
            try:
                value = int(text, base)
            except ValueError:
                continue
            if parse(value) == text:
                return value
        return None
    known = _tokens(parse)
    value = 0
    for t in text.split("|"):
        if t in known:
            value |= known[t]
        elif t.startswith("0x"):  # unknown bits, printed as hex
            value |= int(t, 16)
        elif t.isdigit():         # a field printed as its number
            value |= int(t)
        else:
            return None
    return value if parse(value) == text else None
