#!/usr/bin/env python3
"""Generate src/pytracee/events/syscalls_x86_64.py: one row per native x86_64 syscall.

Sources, in order of preference:
  * numbers: the `#define __NR_<name> <nr>` lines of the kernel UAPI header unistd_64.h
    (event id of a syscall = its x86_64 number, as in Tracee);
  * argument names, types and sets: Tracee's event definitions (tracee-events.tsv),
    minus the trailing `returnValue` field, which is the event's return value;
  * for syscalls Tracee does not define: the kernel's tracepoint format
    <tracefs>/events/syscalls/sys_enter_<name>/format, with C types mapped to Tracee's
    type names, and sets ("syscalls",).

The output is sorted by number and depends only on those inputs, so running the tool
again rewrites the same file. `--check` exits 1 when the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
DEFAULT_TSV = Path("/work/shared/reference/tracee-events.tsv")
DEFAULT_TRACEFS = Path("/sys/kernel/tracing")
DEFAULT_OUT = REPO / "src" / "pytracee" / "events" / "syscalls_x86_64.py"

# Tracee names two syscalls differently from the kernel header; keep Tracee's names so
# users can select them as they do with Tracee.
KERNEL_TO_TRACEE = {"_sysctl": "sysctl", "afs_syscall": "afs"}

# Tracee set that marks 32-bit-only syscalls (ids of their own, not x86_64 numbers).
SET_32BIT_ONLY = "32bit_unique"

_NR_LINE = re.compile(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$")
_FIELD_LINE = re.compile(r"^\s*field:(?P<decl>[^;]+);\s*offset:")

# C scalar types seen in syscall tracepoint formats -> Tracee type names.
_SCALARS = {
    "int": "int32", "pid_t": "int32", "uid_t": "int32", "gid_t": "int32",
    "clockid_t": "int32", "timer_t": "int32", "mqd_t": "int32", "key_t": "int32",
    "key_serial_t": "int32", "qid_t": "int32", "rwf_t": "int32", "__s32": "int32", "s32": "int32",
    "unsigned int": "uint32", "unsigned": "uint32", "u32": "uint32", "__u32": "uint32",
    "uint32_t": "uint32",
    "long": "int64", "loff_t": "int64", "off_t": "int64", "ssize_t": "int64",
    "s64": "int64", "__s64": "int64", "time_t": "int64",
    "unsigned long": "uint64", "size_t": "uint64", "u64": "uint64", "__u64": "uint64",
    "uint64_t": "uint64", "aio_context_t": "uint64",
    "umode_t": "uint16", "unsigned short": "uint16", "u16": "uint16",
}
# Typedefs that hide a pointer.
_POINTER_TYPEDEFS = {"cap_user_header_t", "cap_user_data_t"}
# `const char *` arguments that are NUL-terminated paths or names (read as strings).
_STRING_NAMES = {"specialfile", "library", "target", "source", "dev_name", "type"}


@dataclass(frozen=True)
class Row:
    nr: int
    name: str
    sets: tuple[str, ...]
    args: tuple[tuple[str, str], ...]  # (type, name)
    from_tracepoint: bool
    kernel_name: str


def read_unistd(path: Path) -> list[tuple[int, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = _NR_LINE.match(line)
        if m:
            out.append((int(m.group(2)), m.group(1)))
    if not out:
        raise SystemExit(f"{path}: no __NR_ lines found")
    return sorted(out)


def read_tracee(path: Path) -> dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """Native syscalls of Tracee's table: name -> (sets, args without returnValue)."""
    out = {}
    rows = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    header = rows[0].split("\t")
    col = {h: i for i, h in enumerate(header)}
    for line in rows[1:]:
        f = line.split("\t")
        if f[col["kind"]] != "syscall":
            continue
        sets = tuple(s for s in f[col["sets"]].split(",") if s)
        if SET_32BIT_ONLY in sets:
            continue
        args = []
        for field in (x for x in f[col["fields"]].split("; ") if x):
            typ, _, name = field.rpartition(" ")
            if name != "returnValue":
                args.append((typ, name))
        out[f[col["name"]]] = (sets, tuple(args))
    return out


def tracee_type(ctype: str, name: str) -> str:
    """Map a C type from a tracepoint format to the Tracee type name."""
    words = ctype.replace("__user", "").replace("*", " * ").split()
    if "*" in words:
        base = " ".join(words[: words.index("*")])
        is_name = name in _STRING_NAMES or name.endswith(("name", "path"))
        if base in ("const char", "char") and is_name:
            return "string"
        return "trace.Pointer"
    # Qualifiers do not change the value's width or signedness.
    t = " ".join(w for w in words if w not in ("const", "volatile"))
    if t in _POINTER_TYPEDEFS:
        return "trace.Pointer"
    if t.startswith("enum "):
        return "int32"  # C enums are int-sized
    try:
        return _SCALARS[t]
    except KeyError:
        raise SystemExit(f"no Tracee type for C type {t!r} (arg {name!r}); extend _SCALARS") from None


def ensure_tracefs(tracefs: Path) -> None:
    if (tracefs / "events").is_dir():
        return
    if tracefs == DEFAULT_TRACEFS and os.geteuid() == 0:
        # Not mounted yet (common in containers/VMs): mount it where the kernel expects.
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(tracefs)], check=False)


def read_format(tracefs: Path, name: str) -> tuple[tuple[str, str], ...] | None:
    path = tracefs / "events" / "syscalls" / f"sys_enter_{name}" / "format"
    try:
        text = path.read_text()
    except OSError:
        return None
    args = []
    for line in text.splitlines():
        m = _FIELD_LINE.match(line)
        if not m:
            continue
        decl = m.group("decl").strip()
        ctype, _, argname = decl.rpartition(" ")
        # "char * name" keeps the '*' with the type; "char *name" would glue it to the name.
        while argname.startswith("*"):
            ctype, argname = ctype + " *", argname[1:]
        if argname.startswith("common_") or argname == "__syscall_nr":
            continue
        args.append((tracee_type(ctype, argname), argname))
    return tuple(args)


def build(unistd: Path, tsv: Path, tracefs: Path) -> list[Row]:
    tracee = read_tracee(tsv)
    rows = []
    missing = []
    for nr, kname in read_unistd(unistd):
        name = KERNEL_TO_TRACEE.get(kname, kname)
        if name in tracee:
            sets, args = tracee[name]
            if "syscalls" not in sets:
                sets = ("syscalls", *sets)
            rows.append(Row(nr, name, sets, args, False, kname))
            continue
        ensure_tracefs(tracefs)
        args = read_format(tracefs, kname)
        if args is None:
            missing.append(kname)
            continue
        rows.append(Row(nr, name, ("syscalls",), args, True, kname))
    if missing:
        raise SystemExit(
            "neither Tracee nor the tracepoint formats describe: " + ", ".join(missing)
            + f" (is tracefs mounted at {tracefs}?)"
        )
    return rows


def render(rows: list[Row], unistd: Path, tsv: Path, tracefs: Path) -> str:
    tp = [r.name for r in rows if r.from_tracepoint]
    renamed = {r.name: r.kernel_name for r in rows if r.name != r.kernel_name}
    lines = [
        "# Generated by tools/gen_syscalls.py; do not edit by hand.",
        f"# Numbers: {unistd} ({len(rows)} syscalls).",
        f"# Args, types and sets: Tracee's definitions ({tsv.name}) for {len(rows) - len(tp)};",
        f"# the kernel's tracepoint formats ({tracefs}/events/syscalls/sys_enter_*/format)",
        f"# for the {len(tp)} that Tracee does not define. returnValue is not an argument.",
        "# ruff: noqa: E501",
        '"""x86_64 syscall table: (nr, name, sets, ((type, name), ...)) sorted by nr."""',
        "",
        "Row = tuple[int, str, tuple[str, ...], tuple[tuple[str, str], ...]]",
        "",
        "SYSCALLS: tuple[Row, ...] = (",
    ]
    for r in rows:
        lines.append(f"    ({r.nr}, {_lit(r.name)}, {_lit(r.sets)}, {_lit(r.args)}),")
    lines += [
        ")",
        "",
        "# Syscalls whose args came from the kernel's tracepoint format, not from Tracee.",
        f"FROM_TRACEPOINT: frozenset[str] = frozenset({_lit(tuple(tp))})",
        "",
        "# Tracee's name -> the kernel header's name, where they differ.",
        f"KERNEL_NAMES: dict[str, str] = {_lit(renamed)}",
        "",
    ]
    return "\n".join(lines)


def _lit(obj: object) -> str:
    """Python literal with double-quoted strings (the repo's style), stable across runs."""
    if isinstance(obj, str):
        return json.dumps(obj)
    if isinstance(obj, tuple):
        inner = ", ".join(_lit(x) for x in obj)
        return f"({inner},)" if len(obj) == 1 else f"({inner})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in sorted(obj.items())) + "}"
    return repr(obj)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unistd", type=Path, default=DEFAULT_UNISTD)
    ap.add_argument("--tsv", type=Path, default=DEFAULT_TSV)
    ap.add_argument("--tracefs", type=Path, default=DEFAULT_TRACEFS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="fail if --out is not up to date")
    a = ap.parse_args(argv)

    rows = build(a.unistd, a.tsv, a.tracefs)
    text = render(rows, a.unistd, a.tsv, a.tracefs)
    if a.check:
        current = a.out.read_text() if a.out.exists() else ""
        if current != text:
            print(f"{a.out} is stale; run tools/gen_syscalls.py", file=sys.stderr)
            return 1
        return 0
    a.out.write_text(text)
    tp = sorted(r.name for r in rows if r.from_tracepoint)
    print(f"wrote {a.out}: {len(rows)} syscalls, {len(rows) - len(tp)} from Tracee, "
          f"{len(tp)} from tracepoint formats ({', '.join(tp) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
