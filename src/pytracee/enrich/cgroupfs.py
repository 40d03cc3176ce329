"""The cgroup v2 hierarchy: where it is mounted, and cgroup id <-> path.

Events carry the task's v2 cgroup id (bpf_get_current_cgroup_id), which is the
inode number of the cgroup's directory in the v2 filesystem. On a hybrid
v1+v2 host the v2 tree is usually at /sys/fs/cgroup/unified, on a v2-only host
at /sys/fs/cgroup: read it from the mount table, never assume.
"""

from __future__ import annotations

import os


def v2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Mount point of the cgroup2 filesystem, or None when there is none. A mount of
    the hierarchy's root is preferred to one of a subtree (which would show, and
    carry programs attached to it for, that subtree only)."""
    found: list[tuple[bool, str]] = []
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    fields = left.split()
                    found.append((fields[3] != "/", fields[4].replace("\\040", " ")))
    except OSError:
        return None
    return min(found)[1] if found else None


def walk(root: str) -> dict[str, int]:
    """Every cgroup under the v2 root: path (as /proc/PID/cgroup spells it) -> id."""
    out: dict[str, int] = {}
    try:
        out["/"] = os.stat(root).st_ino
    except OSError:
        return out
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            try:
                out["/" + os.path.relpath(full, root)] = os.stat(full).st_ino
            except OSError:
                continue  # removed while we walked
    return out
