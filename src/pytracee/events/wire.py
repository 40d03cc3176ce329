"""The kernel's record layout (bpf/common/event.h), in one place.

tests/unit/test_wire_layout.py compares these offsets with the BTF of the
compiled BPF object, so the two cannot drift silently.
"""

from __future__ import annotations

import struct

# struct event_header, field by field (name, struct code).
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "Q"),
    ("retval", "q"),
    ("matched_policies", "Q"),
    ("event_id", "I"),
    ("syscall", "i"),
    ("cpu", "H"),
    ("policies_version", "H"),
    ("argnum", "H"),
    ("flags", "H"),
    ("start_time", "Q"),
    ("leader_start_time", "Q"),
    ("parent_start_time", "Q"),
    ("cgroup_id", "Q"),
    ("pid", "I"),
    ("tid", "I"),
    ("ppid", "I"),
    ("host_pid", "I"),
    ("host_tid", "I"),
    ("host_ppid", "I"),
    ("uid", "I"),
    ("gid", "I"),
    ("mnt_ns", "I"),
    ("pid_ns", "I"),
    ("comm", "16s"),
    ("uts", "64s"),
)

HEADER = struct.Struct("<" + "".join(code for _, code in HEADER_FIELDS))
HEADER_SIZE = HEADER.size  # 192

# The per-event part: ts, retval, matched, event_id, syscall, cpu, policies_version,
# argnum, flags.
EVENT_PART = struct.Struct("<QqQIiHHHH")
# The task context span [TASK_START, HEADER_SIZE): identical for every event of
# one task until it execs, changes ids or namespaces.
TASK_START = EVENT_PART.size  # 40
TASK_PART = struct.Struct("<QQQQIIIIIIIIII16s64s")

EV_FLAG_ARGS_TRUNCATED = 1
EV_FLAG_SIGNAL = 2  # sent for pytracee's own state; matched may be 0

# enum arg_kind
ARG_INT = 0
ARG_STR = 1
ARG_STR_ARR = 2
ARG_SOCKADDR = 3
ARG_BYTES = 4
ARG_INT_PAIR = 5
ARG_STR_BLOB = 6
ARG_NONE = 255

U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U64 = struct.Struct("<Q")
INT_PAIR = struct.Struct("<ii")

# struct event_fetch { u8 arg_kinds[6]; u8 submit_on_enter; u8 flags; u32 derived; }
EVENT_FETCH = struct.Struct("<6BBBI")
FETCH_CAPTURE, FETCH_AT_EXIT = 1, 2  # event_fetch.flags
POLICY_SLOTS = 2  # policy-dependent maps have two slots: slot = version & 1

# enum stat_kind; stats key = kind * MAX_EVENT_ID + event_id
MAX_EVENT_ID = 1024
MAX_POLICIES = 64
STAT_SUBMITTED = 0
STAT_LOST_RING_FULL = 1
STAT_LOST_OTHER = 2
STAT_NAMES = {STAT_LOST_RING_FULL: "ring_full", STAT_LOST_OTHER: "submit_error"}
STAT_NUM = 3

# struct slim_cred, and the names Tracee's SlimCred has in JSON.
SLIM_CRED = struct.Struct("<10I5Q")
SLIM_CRED_FIELDS = ("Uid", "Gid", "Suid", "Sgid", "Euid", "Egid", "Fsuid", "Fsgid",
                    "UserNamespace", "SecureBits", "CapInheritable", "CapPermitted",
                    "CapEffective", "CapBounding", "CapAmbient")
