"""How the kernel side fetches each syscall argument.

The values are part of the wire format: they must equal `enum arg_kind` in
bpf/common/event.h (tests/unit/test_definitions.py parses the header and compares).
"""

from typing import Final

ARG_INT: Final = 0       # raw u64 register value: every integer and trace.Pointer
ARG_STR: Final = 1       # user-space C string read from the pointer
ARG_STR_ARR: Final = 2   # NULL-terminated array of user strings (argv, envp)
ARG_SOCKADDR: Final = 3  # struct sockaddr read from the pointer
ARG_BYTES: Final = 4     # raw bytes read from the pointer
ARG_INT_PAIR: Final = 5  # two s32 read from the user pointer (pipe/socketpair fds)
ARG_STR_BLOB: Final = 6  # NUL-separated strings copied as one area (a task's argv/env)
ARG_NONE: Final = 255    # no argument at this position (padding in event_config)

KIND_NAMES: Final[dict[int, str]] = {
    ARG_INT: "ARG_INT",
    ARG_STR: "ARG_STR",
    ARG_STR_ARR: "ARG_STR_ARR",
    ARG_SOCKADDR: "ARG_SOCKADDR",
    ARG_BYTES: "ARG_BYTES",
    ARG_INT_PAIR: "ARG_INT_PAIR",
    ARG_STR_BLOB: "ARG_STR_BLOB",
    ARG_NONE: "ARG_NONE",
}
