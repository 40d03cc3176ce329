"""The event table: one definition per event, with Tracee's ids, names, sets and args.

Syscall rows come from the generated module syscalls_x86_64 (Tracee's argument lists,
ids = x86_64 syscall numbers). The few kernel events are written out below with the
fields Tracee gives them (pkg/events/core.go), so output and filters use Tracee's names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pytracee.events.argkinds import (
    ARG_BYTES,
    ARG_INT,
    ARG_INT_PAIR,
    ARG_SOCKADDR,
    ARG_STR,
    ARG_STR_ARR,
)
from pytracee.events.syscalls_x86_64 import KERNEL_NAMES, SYSCALLS

# Event ids of the kernel events (Tracee's numbering; mirrored in bpf/common/event.h).
SYS_ENTER = 712
SYS_EXIT = 713
SCHED_PROCESS_FORK = 714
SCHED_PROCESS_EXEC = 715
SCHED_PROCESS_EXIT = 716
# Events made in user space (Tracee's 2000-2999 range; 2100+ are pytracee's own).
CGROUP_MKDIR = 729
CGROUP_RMDIR = 730
USER_EVENTS_START = 2000
CONTAINER_CREATE = 2017
CONTAINER_REMOVE = 2018
EXISTING_CONTAINER = 2019
HOOKED_SYSCALL = 2020
POLICY_RELOAD = 2100
# Internal kernel event for --capture write (Tracee's capture events are internal too).
CAPTURE_FILE_WRITE = 1001
CAPTURE_WRITE_SYSCALLS = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
# Events this kernel cannot produce (kernel modules are compiled out, so no module
# loads and no hooks to find); defined so signatures on them run on recorded events.
MODULE_LOAD = 2110
HOOKED_PROC_FOPS = 2111
NOT_ON_THIS_KERNEL = frozenset({HOOKED_SYSCALL, MODULE_LOAD, HOOKED_PROC_FOPS})
# Network: cgroup_skb sends every packet as NET_PACKET_BASE (internal, bpf/common/net.h);
# user space derives Tracee's packet and flow events from it (src/pytracee/net/).
# The other bases are the same record for one class of packets (the kernel classifies):
# DNS (port 53), for the DNS events and the DNS cache that names the ends of flows
# and TCP connects; HTTP (a payload that starts a request or response); flow (TCP
# SYN, FIN, RST); ICMP. An event that needs only a class makes the kernel send only it.
NET_PACKET_BASE, NET_PACKET_DNS_BASE, NET_PACKET_HTTP_BASE = 700, 701, 702
NET_PACKET_FLOW_BASE, NET_PACKET_ICMP_BASE = 703, 704
NET_BASES = (NET_PACKET_BASE, NET_PACKET_DNS_BASE, NET_PACKET_HTTP_BASE, NET_PACKET_FLOW_BASE,
             NET_PACKET_ICMP_BASE)
NET_EVENTS_START, NET_EVENTS_END = 2000, 2013  # net_packet_ipv4 .. net_flow_tcp_end
_NET_CLASS_BASES = {
    2004: (NET_PACKET_ICMP_BASE,), 2005: (NET_PACKET_ICMP_BASE,),
    2006: (NET_PACKET_DNS_BASE,), 2007: (NET_PACKET_DNS_BASE,), 2008: (NET_PACKET_DNS_BASE,),
    2009: (NET_PACKET_HTTP_BASE,), 2010: (NET_PACKET_HTTP_BASE,), 2011: (NET_PACKET_HTTP_BASE,),
    2012: (NET_PACKET_FLOW_BASE, NET_PACKET_DNS_BASE), 2013: (NET_PACKET_FLOW_BASE, NET_PACKET_DNS_BASE),
}
NET_TCP_CONNECT = 2015
SECURITY_SOCKET_CONNECT = 736
# Derived event -> the kernel event it is made from: selecting the first makes
# the kernel emit the second (for the same policies).
DERIVED_FROM = {CONTAINER_CREATE: CGROUP_MKDIR, CONTAINER_REMOVE: CGROUP_RMDIR}
# Event -> the events it is made from (derived events, signatures).
DEPENDS_ON: dict[int, tuple[int, ...]] = {k: (v,) for k, v in DERIVED_FROM.items()}
for _eid in range(NET_EVENTS_START, NET_EVENTS_END + 1):
    DEPENDS_ON[_eid] = _NET_CLASS_BASES.get(_eid, (NET_PACKET_BASE,))
DEPENDS_ON[NET_TCP_CONNECT] = (SECURITY_SOCKET_CONNECT, NET_PACKET_DNS_BASE)

MAX_SYSCALL_ARGS = 6

# Emitted at sys_enter: after a successful exec the old image (and its argv) is gone,
# and exit/rt_sigreturn never return to a sys_exit we could pair with.
SUBMIT_ON_ENTER = frozenset({"execve", "execveat", "exit", "exit_group", "rt_sigreturn"})

# Tracee type -> how the kernel fetches it. Anything absent is a plain register (ARG_INT).
_KIND_OF_TYPE = {
    "string": ARG_STR,
    "[]string": ARG_STR_ARR,
    "SockAddr": ARG_SOCKADDR,
    "[]byte": ARG_BYTES,
    "[2]int": ARG_INT_PAIR,
}
INT_TYPES = frozenset({
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "trace.Pointer", "time.Time",
})
# Tracee reads these through the pointer and converts (a timespec becomes float64
# seconds). The kernel side has no such fetch kind yet, so we ship the raw pointer and
# say so in the type rather than emit a pointer labelled float64.
_FETCHED_AS = {"float64": "trace.Pointer"}


@dataclass(frozen=True, slots=True)
class ArgDef:
    name: str
    type: str  # Tracee's type string: int32, uint64, string, []string, SockAddr, ...


@dataclass(frozen=True, slots=True)
class EventDef:
    id: int
    name: str
    sets: tuple[str, ...]
    args: tuple[ArgDef, ...]
    syscall: bool = False
    kernel_kinds: tuple[int, ...] = ()  # syscalls: fetch kind per arg position
    submit_on_enter: bool = False
    internal: bool = False
    # Security events: the syscalls the kernel builds them from at sys_exit.
    derived_from: tuple[str, ...] = ()
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Frozen dataclass: build the name index once, through object.__setattr__.
        object.__setattr__(self, "_index", {a.name: i for i, a in enumerate(self.args)})

    def arg_index(self, name: str) -> int | None:
        return self._index.get(name)


def _syscall(nr: int, name: str, sets: tuple[str, ...], fields: tuple[tuple[str, str], ...]) -> EventDef:
    if len(fields) > MAX_SYSCALL_ARGS:
        raise ValueError(f"{name}: {len(fields)} args, the kernel passes at most 6")
    args = []
    kinds = []
    for typ, argname in fields:
        typ = _FETCHED_AS.get(typ, typ)
        kind = _KIND_OF_TYPE.get(typ)
        if kind is None:
            if typ not in INT_TYPES:
                raise ValueError(f"{name}.{argname}: no fetch kind for type {typ!r}")
            kind = ARG_INT
        args.append(ArgDef(argname, typ))
        kinds.append(kind)
    return EventDef(
        id=nr,
        name=name,
        sets=sets,
        args=tuple(args),
        syscall=True,
        kernel_kinds=tuple(kinds),
        submit_on_enter=name in SUBMIT_ON_ENTER,
    )


def _event(eid: int, name: str, sets: tuple[str, ...], fields: str,
           derived_from: tuple[str, ...] = ()) -> EventDef:
    """A kernel event; fields written as Tracee lists them: 'type name; type name'."""
    args = tuple(ArgDef(n, t) for t, n in (f.rsplit(" ", 1) for f in fields.split("; ")))
    return EventDef(id=eid, name=name, sets=sets, args=args, derived_from=derived_from)


_KERNEL_EVENTS = (
    _event(SYS_ENTER, "sys_enter", (), "int32 syscall"),
    _event(SYS_EXIT, "sys_exit", (), "int32 syscall"),
    _event(
        SCHED_PROCESS_FORK, "sched_process_fork", (),
        "int32 parent_tid; int32 parent_ns_tid; int32 parent_pid; int32 parent_ns_pid; "
        "time.Time parent_start_time; int32 child_tid; int32 child_ns_tid; int32 child_pid; "
        "int32 child_ns_pid; time.Time start_time; int32 parent_process_tid; "
        "int32 parent_process_ns_tid; int32 parent_process_pid; int32 parent_process_ns_pid; "
        "time.Time parent_process_start_time; int32 leader_tid; int32 leader_ns_tid; "
        "int32 leader_pid; int32 leader_ns_pid; time.Time leader_start_time",
    ),
    _event(
        SCHED_PROCESS_EXEC, "sched_process_exec", ("default", "proc"),
        "string cmdpath; string pathname; uint32 dev; uint64 inode; uint64 ctime; "
        "uint16 inode_mode; string interpreter_pathname; uint32 interpreter_dev; "
        "uint64 interpreter_inode; uint64 interpreter_ctime; []string argv; string interp; "
        "uint16 stdin_type; string stdin_path; bool invoked_from_kernel; string prev_comm; "
        # sha256: filled in user space with -o option:exec-hash (the kernel sends 0-17)
        "[]string env; string pwd; string sha256",
    ),
    _event(
        SCHED_PROCESS_EXIT, "sched_process_exit", ("proc", "proc_life"),
        "int32 exit_code; int32 signal_code; bool process_group_exit",
    ),
    _event(728, "cgroup_attach_task", (), "string cgroup_path; string comm; int32 pid"),
    _event(729, "cgroup_mkdir", (), "uint64 cgroup_id; string cgroup_path; uint32 hierarchy_id"),
    _event(730, "cgroup_rmdir", (), "uint64 cgroup_id; string cgroup_path; uint32 hierarchy_id"),
    _event(767, "task_rename", ("proc",), "string old_name; string new_name"),
)


# Security events (Tracee's LSM-hook events), built from syscalls: bpf/common/security.h.
_SECURITY_EVENTS = (
    _event(727, "magic_write", (), "string pathname; []byte bytes; uint32 dev; uint64 inode",
           ("write", "pwrite64", "writev", "pwritev", "pwritev2", "sendfile", "splice",
            "copy_file_range")),
    _event(732, "security_file_open", ("lsm_hooks", "fs", "fs_file_ops"),
           "string pathname; int32 flags; uint32 dev; uint64 inode; uint64 ctime; "
           "string syscall_pathname", ("open", "openat", "openat2", "creat")),
    _event(734, "security_socket_create", ("lsm_hooks", "net", "net_sock"),
           "int32 family; int32 type; int32 protocol; int32 kern", ("socket",)),
    _event(735, "security_socket_listen", ("lsm_hooks", "net", "net_sock"),
           "int32 sockfd; SockAddr local_addr; int32 backlog", ("listen",)),
    _event(736, "security_socket_connect", ("default", "lsm_hooks", "net", "net_sock"),
           "int32 sockfd; int32 type; SockAddr remote_addr", ("connect",)),
    _event(737, "security_socket_accept", ("default", "lsm_hooks", "net", "net_sock"),
           "int32 sockfd; SockAddr local_addr", ("accept", "accept4")),
    _event(738, "security_socket_bind", ("default", "lsm_hooks", "net", "net_sock"),
           "int32 sockfd; SockAddr local_addr", ("bind",)),
    _event(749, "socket_dup", (), "int32 oldfd; int32 newfd; SockAddr remote_addr",
           ("dup", "dup2", "dup3")),
    _event(724, "mem_prot_alert", (),
           "uint32 alert; trace.Pointer addr; uint64 len; int32 prot; int32 prev_prot; "
           "string pathname; uint32 dev; uint64 inode; uint64 ctime",
           ("mmap", "mprotect", "pkey_mprotect")),
    _event(725, "commit_creds", (), "trace.SlimCred old_cred; trace.SlimCred new_cred",
           ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
            "setfsuid", "setfsgid", "capset")),
    _event(726, "switch_task_ns", (),
           "int32 pid; uint32 new_mnt; uint32 new_pid; uint32 new_uts; uint32 new_ipc; "
           "uint32 new_net; uint32 new_cgroup", ("setns", "unshare")),
    # The file is gone after unlink: inode, dev and ctime are not sent (yet).
    _event(733, "security_inode_unlink", ("default", "lsm_hooks", "fs", "fs_file_ops"),
           "string pathname; uint64 inode; uint32 dev; uint64 ctime", ("unlink", "unlinkat")),
    _event(744, "security_inode_mknod", ("lsm_hooks",), "string file_name; uint16 mode; uint32 dev",
           ("mknod", "mknodat")),
    _event(746, "security_inode_symlink", ("lsm_hooks", "fs", "fs_file_ops"),
           "string linkpath; string target", ("symlink", "symlinkat")),
    _event(768, "security_inode_rename", (), "string old_path; string new_path",
           ("rename", "renameat", "renameat2")),
    # Not one of Tracee's: a hard link gives a file a second name (e.g. to dodge a
    # path-based rule), so it is reported like a rename.
    _event(1000, "security_inode_link", ("lsm_hooks", "fs", "fs_file_ops"),
           "string old_path; string new_path", ("link", "linkat")),
    _event(740, "security_sb_mount", ("default", "lsm_hooks", "fs"),
           "string dev_name; string path; string type; uint64 flags", ("mount",)),
    _event(794, "security_sb_umount", ("default", "lsm_hooks", "fs"),
           "string mountpoint; string type; int32 flags", ("umount2",)),
    _event(779, "process_execute_failed", ("proc",),
           "int32 dirfd; int32 flags; string pathname; string binary.path; "
           "uint32 binary.device_id; uint64 binary.inode_number; uint64 binary.ctime; "
           "uint16 binary.inode_mode; string interpreter_path; uint16 stdin_type; "
           "string stdin_path; int32 kernel_invoked; []string argv; []string envp",
           ("execve", "execveat")),
)

_CONTAINER_ARGS = ("string runtime; string container_id; uint64 ctime; string container_image; "
                   "string container_image_digest; string container_name; string pod_name; "
                   "string pod_namespace; string pod_uid; bool pod_sandbox")
_USER_EVENTS = (
    # Derived from cgroup_mkdir/rmdir of a container's cgroup, and the start-up scan.
    _event(CONTAINER_CREATE, "container_create", ("default", "containers"), _CONTAINER_ARGS),
    _event(CONTAINER_REMOVE, "container_remove", ("default", "containers"),
           "string runtime; string container_id"),
    _event(EXISTING_CONTAINER, "existing_container", ("containers",), _CONTAINER_ARGS),
    _event(HOOKED_SYSCALL, "hooked_syscall", (),
           "string syscall; string address; string function; string owner"),
    _event(MODULE_LOAD, "module_load", (),
           "string name; string version; string src_version; string pathname; uint32 dev; "
           "uint64 inode; uint64 ctime"),
    _event(HOOKED_PROC_FOPS, "hooked_proc_fops", (), "[]trace.HookedSymbolData hooked_fops_pointers"),
    # Network events (Tracee's ids 2000-2013), derived from net_packet_base.
    _event(2000, "net_packet_ipv4", ("network_events",),
           "string src; string dst; trace.PacketMetadata metadata; trace.ProtoIPv4 proto_ipv4"),
    _event(2001, "net_packet_ipv6", ("network_events",),
           "string src; string dst; trace.PacketMetadata metadata; trace.ProtoIPv6 proto_ipv6"),
    _event(2002, "net_packet_tcp", ("network_events",),
           "string src; string dst; uint16 src_port; uint16 dst_port; "
           "trace.PacketMetadata metadata; trace.ProtoTCP proto_tcp"),
    _event(2003, "net_packet_udp", ("network_events",),
           "string src; string dst; uint16 src_port; uint16 dst_port; "
           "trace.PacketMetadata metadata; trace.ProtoUDP proto_udp"),
    _event(2004, "net_packet_icmp", ("default", "network_events"),
           "string src; string dst; trace.PacketMetadata metadata; trace.ProtoICMP proto_icmp"),
    _event(2005, "net_packet_icmpv6", ("default", "network_events"),
           "string src; string dst; trace.PacketMetadata metadata; "
           "trace.ProtoICMPv6 proto_icmpv6"),
    _event(2006, "net_packet_dns", ("network_events",),
           "string src; string dst; uint16 src_port; uint16 dst_port; "
           "trace.PacketMetadata metadata; trace.ProtoDNS proto_dns"),
    _event(2007, "net_packet_dns_request", ("default", "network_events"),
           "trace.PktMeta metadata; []trace.DnsQueryData dns_questions"),
    _event(2008, "net_packet_dns_response", ("default", "network_events"),
           "trace.PktMeta metadata; []trace.DnsResponseData dns_response"),
    _event(2009, "net_packet_http", ("network_events",),
           "trace.PacketMetadata metadata; trace.ProtoHTTP proto_http"),
    _event(2010, "net_packet_http_request", ("default", "network_events"),
           "trace.PktMeta metadata; trace.ProtoHTTPRequest http_request"),
    _event(2011, "net_packet_http_response", ("default", "network_events"),
           "trace.PktMeta metadata; trace.ProtoHTTPResponse http_response"),
    _event(2012, "net_flow_tcp_begin", ("network_events", "flows"),
           "string conn_direction; string src; string dst; uint16 src_port; uint16 dst_port; "
           "[]string src_dns; []string dst_dns"),
    _event(2013, "net_flow_tcp_end", ("network_events", "flows"),
           "string conn_direction; string src; string dst; uint16 src_port; uint16 dst_port; "
           "[]string src_dns; []string dst_dns"),
    # A TCP connect (from security_socket_connect), with the names the DNS cache knows.
    _event(NET_TCP_CONNECT, "net_tcp_connect", ("default", "flows"),
           "string dst; int32 dst_port; []string dst_dns"),
    # Every policy reload, applied or refused, so the output records what was active when.
    _event(POLICY_RELOAD, "policy_reload", ("pytracee",),
           "bool success; int32 version; []string policies; string error"),
)


# Events that only pytracee itself uses; users cannot select them.
_INTERNAL_EVENTS = (
    # The bytes a write syscall put into a regular file, in chunks (bpf/common/capture.h);
    # `truncated` (only on a last event without bytes): how many were not sent.
    replace(_event(CAPTURE_FILE_WRITE, "capture_file_write", (),
                   "uint32 dev; uint64 inode; string pathname; int64 offset; []byte bytes; "
                   "uint64 truncated"), internal=True),
    # A packet seen by cgroup_skb, with its owner's context (bpf/common/net.h): 1 when
    # it came in; its full length; its first bytes from the L3 header on.
    replace(_event(NET_PACKET_BASE, "net_packet_base", ("network_events",),
                   "int32 ingress; uint32 length; []byte data"), internal=True),
    *(replace(_event(eid, name, ("network_events",), "int32 ingress; uint32 length; []byte data"),
              internal=True)
      for eid, name in ((NET_PACKET_DNS_BASE, "net_packet_dns_base"),
                        (NET_PACKET_HTTP_BASE, "net_packet_http_base"),
                        (NET_PACKET_FLOW_BASE, "net_packet_flow_base"),
                        (NET_PACKET_ICMP_BASE, "net_packet_icmp_base"))),
)


def _build() -> dict[int, EventDef]:
    events: dict[int, EventDef] = {}
    for ev in (*(_syscall(*row) for row in SYSCALLS), *_KERNEL_EVENTS, *_SECURITY_EVENTS,
               *_USER_EVENTS, *_INTERNAL_EVENTS):
        if ev.id in events:
            raise ValueError(f"duplicate event id {ev.id}: {events[ev.id].name}, {ev.name}")
        events[ev.id] = ev
    return events


EVENTS: dict[int, EventDef] = _build()
BY_NAME: dict[str, EventDef] = {ev.name: ev for ev in EVENTS.values()}
# syscall id -> the security event built from it (one per syscall, by construction).
DERIVED_FROM_SYSCALL: dict[int, int] = {
    BY_NAME[sc].id: ev.id for ev in _SECURITY_EVENTS for sc in ev.derived_from}
# Syscalls whose security event the kernel builds at sys_exit from the call's result and
# its argument registers alone: nothing is saved at sys_enter for them (bpf:
# FETCH_AT_EXIT). Opens and mmaps are the most frequent calls a security policy selects;
# mprotect is not here: its event needs the protection from before the call.
AT_EXIT_SYSCALLS = frozenset(BY_NAME[n].id for n in ("open", "openat", "openat2", "creat", "mmap"))
# Kernel header spellings of syscalls Tracee renamed, accepted by lookup(). Not
# "afs_syscall": Tracee uses that name for the 32-bit-only syscall, which we lack.
_NOT_ALIASES = frozenset({"afs_syscall"})
_ALIASES: dict[str, str] = {
    kname: name for name, kname in KERNEL_NAMES.items() if kname not in _NOT_ALIASES
}

_BY_SET: dict[str, tuple[EventDef, ...]] = {}
for _ev in sorted(EVENTS.values(), key=lambda e: e.id):
    for _tag in _ev.sets:
        _BY_SET[_tag] = (*_BY_SET.get(_tag, ()), _ev)
del _ev, _tag


def lookup(name: str) -> EventDef | None:
    """Definition by Tracee's event name (kernel spellings of renamed syscalls work too)."""
    ev = BY_NAME.get(name)
    if ev is None and name in _ALIASES:
        ev = BY_NAME.get(_ALIASES[name])
    return ev


SIGNATURE_EVENTS_START = 6000  # Tracee's ids for findings of signatures


# Signature event id -> its threat (for `threat.*` selectors): severity 0-4,
# technique id (e.g. T1055.008), tactic, name.
SIGNATURE_THREATS: dict[int, dict[str, Any]] = {}


def register_signature_event(name: str, tags: tuple[str, ...], depends_on: tuple[int, ...],
                             threat: dict[str, Any] | None = None) -> EventDef:
    """An event for a signature's findings (ids from 6000, in load order), selectable
    by name, by `tag=signatures`, `tag=default` and by its tags. Selecting it makes the
    kernel send `depends_on` (resolved transitively for chained signatures).

    As in Tracee, every signature is in the `default` set: a run without --events or
    --policy detects out of the box."""
    existing = BY_NAME.get(name)
    if existing is not None:
        if existing.id < SIGNATURE_EVENTS_START:
            raise ValueError(f"signature event name {name!r} is already the name of an event")
        DEPENDS_ON[existing.id] = depends_on
        if threat is not None:
            SIGNATURE_THREATS[existing.id] = threat
        return existing
    eid = max((e for e in EVENTS if e >= SIGNATURE_EVENTS_START), default=SIGNATURE_EVENTS_START - 1) + 1
    sets = ("signatures", "default", *[t for t in tags if t not in ("signatures", "default")])
    ev = EventDef(id=eid, name=name, sets=sets, args=())
    EVENTS[eid] = ev
    BY_NAME[name] = ev
    for tag in sets:
        _BY_SET[tag] = (*_BY_SET.get(tag, ()), ev)
    DEPENDS_ON[eid] = depends_on
    if threat is not None:
        SIGNATURE_THREATS[eid] = threat
    return ev


def dependencies(eid: int) -> set[int]:
    """Every event the kernel must send for `eid` to be produced (transitively)."""
    out: set[int] = set()
    todo = list(DEPENDS_ON.get(eid, ()))
    while todo:
        dep = todo.pop()
        if dep not in out:
            out.add(dep)
            todo.extend(DEPENDS_ON.get(dep, ()))
    return out


def events_in_set(tag: str, *, include_internal: bool = False) -> list[EventDef]:
    """Events tagged with `tag`, by id. Internal events are left out unless asked for,
    because users cannot select them."""
    return [ev for ev in _BY_SET.get(tag, ()) if include_internal or not ev.internal]


def all_sets() -> set[str]:
    return set(_BY_SET)
