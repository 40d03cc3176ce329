"""Syscall storm: what tracing costs the traced process, and how fast pytracee delivers.

    .venv/bin/python bench/syscall_storm.py [--calls N] [--runs R] [--ring-mib MIB] [--json]
    make bench

Workload: bench/progs/storm.c, compiled at start into a temp dir as `pt-storm` (so its comm
is "pt-storm"), calls syscall(SYS_getppid) exactly N times and reports the CLOCK_MONOTONIC
time around that loop. "storm calls/s" = N / loop time (the tracer's own start-up is not
counted, also for the peers that wrap the command).

Cases, each run R times; every figure printed is the MEDIAN of the R runs (runs are
interleaved across cases, so machine noise spreads over all of them):

  untraced                       the storm alone
  pytracee, getppid not selected `pytracee -e execve -o none`: hooks attached, the in-kernel
                                 filter drops every getppid (compare: empty-hook floor ~3.2 M/s)
  pytracee, getppid selected     `pytracee -e getppid -s comm=pt-storm -o json:/dev/null
                                 -b kernel.events=<pages>`: after the storm, wait until pytracee
                                 is idle (utime+stime unchanged for 3 polls 20 ms apart), SIGINT
                                 it, parse its summary. delivered/s = delivered / (storm start ->
                                 pytracee idle); CPU % over that same interval.
  bpftrace / perf trace / strace one event printed per syscall, output to /dev/null

Each run also checks (`bpftool prog list`) whether another process had BPF tracing programs
loaded while it ran (this kernel is shared: a foreign sys_enter hook alone takes the
untraced storm from ~5.9 to ~3.3 M/s) and names such runs under the table.
bpftrace reports its losses on stdout, which is /dev/null here, so its "lost" is unknown.

Needs root. Every child runs in its own session and is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTRACEE = ROOT / ".venv" / "bin" / "pytracee"
STORM_SRC = ROOT / "bench" / "progs" / "storm.c"
COMM = "pt-storm"

POLL_S = 0.020      # CPU-tick poll period
IDLE_POLLS = 3      # unchanged polls in a row = idle
CLK_TCK = os.sysconf("SC_CLK_TCK")
ATTACH_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
EMPTY_HOOK_FLOOR = 3.2e6   # platform.md, "Measured floors"
TARGET_DELIVERED = 300_000

PEER_TOOLS = {"bpftrace": ("bpftrace", "bpftrace"), "perf": ("perf", "linux-perf"),
              "strace": ("strace", "strace")}
BPFTRACE_PROG = ('tracepoint:syscalls:sys_enter_getppid /comm == "%s"/ '
                 '{ printf("%%d %%d\\n", pid, tid); }' % COMM)

SUMMARY_RE = re.compile(r"events delivered: (\d+), filtered in user space: (\d+), "
                        r"lost: (\d+) \(([^)]*)\)")


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

def prepare(needs: str) -> int | None:
    """What every bench checks first (root, the built tracer) and its signal
    handling: None to go on, else the exit code. SIGINT/SIGTERM/SIGHUP are handled
    (not ignored), so children start with the default disposition even when the
    bench itself was started with SIGINT ignored (e.g. `make bench &`)."""
    if os.geteuid() != 0:
        log(f"this bench needs root ({needs})")
        return 2
    if not os.access(PYTRACEE, os.X_OK):
        log(f"{PYTRACEE} not found: run `make setup` first")
        return 2

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    return None



# ---------------------------------------------------------------- children

class Children:
    """Every process the bench starts; each in its own session (pgid == pid), so a
    stop reaches a wrapper's child too, and nothing outlives the bench."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, sig: int = signal.SIGINT,
             timeout: float = STOP_TIMEOUT_S) -> None:
        """Signal p's process group, wait, then SIGKILL it if needed."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)
        else:  # the leader is gone; a straggler in its group may not be
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            try:
                self.stop(p, timeout=5)
            except Exception as exc:  # keep stopping the others
                log(f"warning: could not stop pid {p.pid}: {exc}")


CHILDREN = Children()


class LineCollector:
    """Reads a child's pipe on a thread (so the child never blocks on it); keeps lines."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._t.start()

    def _run(self, stream) -> None:
        for raw in stream:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(needle in ln for ln in self.lines):
                    return True
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))

    def finish(self, timeout: float = 5.0) -> list[str]:
        self._t.join(timeout)
        with self._cond:
            return list(self.lines)

    def tail(self, n: int = 5) -> str:
        with self._cond:
            return " | ".join(self.lines[-n:])


# ---------------------------------------------------------------- helpers

def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BenchError(f"pid {pid} gone ({exc.strerror})") from None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def wait_idle(pid: int, timeout: float, storm: subprocess.Popen | None = None
              ) -> tuple[int, int]:
    """Poll pid's CPU ticks every POLL_S until they have not changed for IDLE_POLLS polls
    in a row (and, with storm, until the storm has exited and IDLE_POLLS polls were taken
    after that). Returns (monotonic ns of the last poll that saw a change, ticks then):
    the idle detection window itself is not counted."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks(pid)
    last_change = time.monotonic_ns()
    unchanged = 0
    after_exit = 0
    while True:
        time.sleep(POLL_S)
        now = time.monotonic_ns()
        v = cpu_ticks(pid)
        if v != last:
            last, last_change, unchanged = v, now, 0
        else:
            unchanged += 1
        if storm is None or storm.poll() is not None:
            after_exit += 1
            if unchanged >= IDLE_POLLS and after_exit >= IDLE_POLLS:
                return last_change, last
        if time.monotonic() > deadline:
            raise BenchError(f"pid {pid} did not go idle within {timeout:.0f}s")


TRACING_PROG_TYPES = {"tracepoint", "raw_tracepoint", "raw_tracepoint_writable", "tracing",
                      "kprobe", "perf_event", "lsm"}


def tracing_prog_ids() -> set[int] | None:
    """Ids of the BPF tracing programs loaded right now (None: bpftool unusable)."""
    try:
        r = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, timeout=20)
        progs = json.loads(r.stdout or b"[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {p["id"] for p in progs if p.get("type") in TRACING_PROG_TYPES}


def held_prog_ids(pid: int) -> set[int]:
    """Program ids behind pid's bpf-prog and bpf_link fds."""
    ids: set[int] = set()
    fdinfo = f"/proc/{pid}/fdinfo"
    try:
        names = os.listdir(fdinfo)
    except OSError:
        return ids
    for fd in names:
        try:
            with open(f"{fdinfo}/{fd}") as f:
                ids.update(int(m) for m in re.findall(r"^prog_id:\s*(\d+)", f.read(), re.M))
        except OSError:
            pass
    return ids


class ForeignProbe:
    """Did another process have BPF tracing programs loaded while a case ran? Any of them
    on sys_enter slows every syscall of the storm, and other engineers' tests share this
    kernel. Snapshots: before the case (after our previous tracer's programs are freed),
    right after our tracer attached, right after the storm (our tracer still running)."""

    def __init__(self) -> None:
        self.before: set[int] | None = None
        self.attached: set[int] | None = None
        self.ours: set[int] = set()
        self.after: set[int] | None = None

    def start(self, timeout: float = 5.0) -> None:
        # The kernel frees a stopped tracer's programs a moment after it exits.
        deadline = time.monotonic() + timeout
        while True:
            self.before = tracing_prog_ids()
            if not self.before or time.monotonic() > deadline:
                break
            time.sleep(0.1)

    def tracer_attached(self, pid: int) -> None:
        self.attached = tracing_prog_ids()
        self.ours = held_prog_ids(pid)

    def storm_done(self, pid: int | None = None) -> None:
        if self.after is None:
            self.after = tracing_prog_ids()
            if pid is not None:
                self.ours |= held_prog_ids(pid)

    def foreign(self) -> int | None:
        if self.before is None:
            return None
        base = self.attached if self.attached is not None else self.before
        after = self.after if self.after is not None else base
        return len(self.before | (after - base - self.ours))


def storm_timeout(n: int, slowest_rate: float) -> float:
    return 60.0 + n / slowest_rate


def parse_storm(out: bytes, err: bytes, rc: int, what: str) -> tuple[int, int]:
    lines = out.decode(errors="replace").split()
    if rc != 0 or len(lines) < 2:
        detail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{what} exited {rc}: {' | '.join(detail) or 'no output'}")
    return int(lines[-2]), int(lines[-1])


def run_storm(prefix: list[str], storm: Path, n: int, timeout: float) -> dict:
    """Run [prefix...] pt-storm N to completion; its rate from its own loop timing."""
    t0 = time.monotonic_ns()
    p = CHILDREN.spawn(prefix + [str(storm), str(n)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"storm did not finish within {timeout:.0f}s") from None
    finally:
        CHILDREN.stop(p, signal.SIGKILL, 5)
    t1 = time.monotonic_ns()
    start, end = parse_storm(out, err, p.returncode, " ".join(prefix[:1]) or "storm")
    return {"storm_rate": n / ((end - start) / 1e9), "storm_loop_s": (end - start) / 1e9,
            "process_wall_s": (t1 - t0) / 1e9, "storm_start_ns": start, "storm_end_ns": end}


# ---------------------------------------------------------------- pytracee

def start_pytracee(args: list[str]) -> tuple[subprocess.Popen, LineCollector]:
    p = CHILDREN.spawn([str(PYTRACEE)] + args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    err = LineCollector(p.stderr)
    if not err.wait_for("tracing", ATTACH_TIMEOUT_S):
        CHILDREN.stop(p)
        raise BenchError(f"pytracee did not attach (exit {p.poll()}): {err.tail()}")
    return p, err


def interrupt(p: subprocess.Popen, name: str) -> None:
    """SIGINT to child `p`'s process group, and wait for it to exit (BenchError after
    STOP_TIMEOUT_S)."""
    os.killpg(p.pid, signal.SIGINT)
    try:
        p.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name} did not stop on SIGINT") from None


def stop_pytracee(p: subprocess.Popen, err: LineCollector) -> dict:
    os.kill(p.pid, signal.SIGINT)
    try:
        p.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        CHILDREN.stop(p)
        raise BenchError("pytracee did not exit within "
                         f"{STOP_TIMEOUT_S:.0f}s of SIGINT") from None
    CHILDREN.stop(p)
    lines = err.finish()
    for ln in reversed(lines):
        m = SUMMARY_RE.search(ln)
        if m:
            reasons = {k.strip(): int(v) for k, v in
                       (kv.split("=") for kv in m.group(4).split(",") if "=" in kv)}
            out = {"delivered": int(m.group(1)), "filtered": int(m.group(2)),
                   "lost": int(m.group(3)), "lost_by_reason": reasons}
            packets = re.search(r", packets: (\d+)", ln)
            if packets:  # network events (bench/net_load.py)
                out["packets"] = int(packets.group(1))
            return out
    raise BenchError(f"no summary line from pytracee (exit {p.returncode}): "
                     f"{' | '.join(lines[-5:])}")


def case_untraced(ctx: argparse.Namespace) -> dict:
    return run_storm([], ctx.storm, ctx.calls, storm_timeout(ctx.calls, 100_000))


def case_pt_not_selected(ctx: argparse.Namespace) -> dict:
    p, err = start_pytracee(["-e", "execve", "-o", "none"])
    try:
        ctx.probe.tracer_attached(p.pid)
        wait_idle(p.pid, 10)  # let start-up work settle before the baseline
        t0 = cpu_ticks(p.pid)
        r = run_storm([], ctx.storm, ctx.calls, storm_timeout(ctx.calls, 100_000))
        t1 = cpu_ticks(p.pid)
        ctx.probe.storm_done(p.pid)
        r["cpu_pct"] = (t1 - t0) / CLK_TCK / r["storm_loop_s"] * 100
        r.update(stop_pytracee(p, err))
    finally:
        CHILDREN.stop(p)
    return r


def case_pt_selected(ctx: argparse.Namespace) -> dict:
    n = ctx.calls
    p, err = start_pytracee(["-e", "getppid", "-s", f"comm={COMM}", "-o", "json:/dev/null",
                             "-b", f"kernel.events={ctx.ring_pages}"])
    try:
        ctx.probe.tracer_attached(p.pid)
        wait_idle(p.pid, 10)
        ticks0 = cpu_ticks(p.pid)
        storm = CHILDREN.spawn([str(ctx.storm), str(n)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        try:
            idle_ns, ticks1 = wait_idle(p.pid, storm_timeout(n, 10_000), storm)
            ctx.probe.storm_done(p.pid)
            out, serr = storm.communicate(timeout=10)
        finally:
            CHILDREN.stop(storm, signal.SIGKILL, 5)
        start, end = parse_storm(out, serr, storm.returncode, "storm")
        done_ns = max(idle_ns, end)
        elapsed = (done_ns - start) / 1e9
        r = {"storm_rate": n / ((end - start) / 1e9), "storm_loop_s": (end - start) / 1e9,
             "catch_up_s": (done_ns - end) / 1e9, "elapsed_s": elapsed,
             "cpu_pct": (ticks1 - ticks0) / CLK_TCK / elapsed * 100}
        r.update(stop_pytracee(p, err))
    finally:
        CHILDREN.stop(p)
    r["delivered_rate"] = r["delivered"] / elapsed
    r["check_ok"] = r["delivered"] + r["lost"] == n
    return r


# ---------------------------------------------------------------- peers

def bpftrace_attached(pid: int) -> bool:
    """bpftrace 0.17 prints "Attaching N probes..." on stdout, which goes to /dev/null
    here. Instead: the tracepoint is attached once the process holds a BPF program and
    a perf event that is not one of its output buffers (those sit in its epoll set), or a
    bpf_link."""
    fd_dir = f"/proc/{pid}/fd"
    perf, polled, prog = [], set(), False
    try:
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target == "anon_inode:[perf_event]":
                perf.append(int(fd))
            elif target == "anon_inode:bpf-prog":
                prog = True
            elif target == "anon_inode:bpf_link":
                return True
            elif target == "anon_inode:[eventpoll]":
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    polled.update(int(m) for m in re.findall(r"tfd:\s*(\d+)", f.read()))
    except OSError:
        return False
    return prog and any(fd not in polled for fd in perf)


def wait_bpftrace(p: subprocess.Popen, err: LineCollector) -> None:
    """Until bpftrace `p` has attached its first probe (BenchError if it exits or takes
    longer than ATTACH_TIMEOUT_S)."""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while not bpftrace_attached(p.pid):
        if p.poll() is not None:
            raise BenchError(f"bpftrace exited {p.returncode}: {err.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"bpftrace did not attach: {err.tail()}")
        time.sleep(0.05)


def case_bpftrace(ctx: argparse.Namespace) -> dict:
    p = CHILDREN.spawn(["bpftrace", "-e", BPFTRACE_PROG], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    err = LineCollector(p.stderr)
    try:
        wait_bpftrace(p, err)
        time.sleep(0.3)  # perf_event_open -> ioctl(SET_BPF, ENABLE) follow right after
        ctx.probe.tracer_attached(p.pid)
        r = run_storm([], ctx.storm, ctx.peer_calls, storm_timeout(ctx.peer_calls, 5_000))
        ctx.probe.storm_done(p.pid)
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    finally:
        CHILDREN.stop(p)
    lost = [int(m) for ln in err.finish() for m in re.findall(r"Lost (\d+) events", ln)]
    if lost:
        r["lost"] = sum(lost)
    return r


def case_perf(ctx: argparse.Namespace) -> dict:
    return run_storm(["perf", "trace", "-e", "getppid", "-o", "/dev/null", "--"], ctx.storm,
                     ctx.peer_calls, storm_timeout(ctx.peer_calls, 5_000))


def case_strace(ctx: argparse.Namespace) -> dict:
    return run_storm(["strace", "-f", "-e", "trace=getppid", "-o", "/dev/null"], ctx.storm,
                     ctx.peer_calls, storm_timeout(ctx.peer_calls, 5_000))


# (key, label, function, is_peer)
CASES: list[tuple[str, str, Callable[[argparse.Namespace], dict], bool]] = [
    ("untraced", "untraced", case_untraced, False),
    ("pt_not_selected", "pytracee, getppid not selected", case_pt_not_selected, False),
    ("pt_selected", "pytracee, getppid selected", case_pt_selected, False),
    ("bpftrace", "bpftrace printf", case_bpftrace, True),
    ("perf", "perf trace", case_perf, True),
    ("strace", "strace -f", case_strace, True),
]


# ---------------------------------------------------------------- report

def fmt_int(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def human(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e3 else f"{v:.0f}"


def span(m: dict, key: str) -> str:
    if f"{key}_min" not in m:
        return "-"
    return f"{human(m[key + '_min'])}..{human(m[key + '_max'])}"


def median_of(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if key in r and "error" not in r]
    return statistics.median(vals) if vals else None


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    keys = ("storm_rate", "delivered_rate", "delivered", "lost", "cpu_pct", "catch_up_s",
            "storm_loop_s", "process_wall_s")
    out = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        med = {k: median_of(ok, k) for k in keys}
        med = {k: v for k, v in med.items() if v is not None}
        rates = [r["storm_rate"] for r in ok if "storm_rate" in r]
        if rates:
            med["storm_rate_min"], med["storm_rate_max"] = min(rates), max(rates)
        drates = [r["delivered_rate"] for r in ok if "delivered_rate" in r]
        if drates:
            med["delivered_rate_min"], med["delivered_rate_max"] = min(drates), max(drates)
        med["ok_runs"] = len(ok)
        med["runs"] = len(runs)
        if any("check_ok" in r for r in ok):
            med["check_ok_runs"] = sum(1 for r in ok if r["check_ok"])
        if any(r.get("lost", 0) for r in ok):
            med["max_lost"] = max(r.get("lost", 0) for r in ok)
        errors = sorted({r["error"] for r in runs if "error" in r})
        if errors:
            med["errors"] = errors
        out[key] = med
    return out


def render(args: argparse.Namespace, medians: dict[str, dict], notes: list[str]) -> str:
    lines = []
    lines.append(f"syscall storm: kernel {platform.release()}, {os.cpu_count()} CPUs, "
                 f"N={args.calls:,} getppid calls"
                 + (f" (peers: {args.peer_calls:,})" if args.peer_calls != args.calls else "")
                 + f", runs={args.runs}, ring={args.ring_mib} MiB ({args.ring_pages} pages)")
    lines.append(f"every figure is the MEDIAN of {args.runs} runs (runs interleaved across cases);"
                 " storm calls/s = N / the storm's own loop time")
    for n in notes:
        lines.append(f"note: {n}")
    head = ["case", "storm calls/s", "(min..max)", "delivered/s", "(min..max)", "delivered", "lost",
            "delivered+lost==N", "pytracee CPU %", "runs ok"]
    rows = []
    for key, label, _, _ in CASES:
        if key not in medians:
            continue
        m = medians[key]
        if m["ok_runs"] == 0:
            rows.append([label, "ERROR: " + "; ".join(m.get("errors", ["?"]))[:110]]
                        + [""] * (len(head) - 2))
            continue
        check = "-"
        if "check_ok_runs" in m:
            bad = m["ok_runs"] - m["check_ok_runs"]
            check = f"OK {m['check_ok_runs']}/{m['ok_runs']}" if not bad else \
                f"MISMATCH {bad}/{m['ok_runs']}"
        lost = m.get("lost")
        if key == "bpftrace" and lost is None:
            lost_s = "? (on its stdout)"
        elif key in ("perf", "strace"):
            lost_s = "-" if key == "perf" else "0 (synchronous)"
        else:
            lost_s = fmt_int(lost)
            if m.get("max_lost") and key == "pt_selected":
                lost_s += f" (max {m['max_lost']:,})"
        cpu = m.get("cpu_pct")
        rows.append([label, fmt_int(m.get("storm_rate")), span(m, "storm_rate"),
                     fmt_int(m.get("delivered_rate")), span(m, "delivered_rate"),
                     fmt_int(m.get("delivered")) if key == "pt_selected" else "-",
                     lost_s if key != "untraced" else "-", check,
                     "-" if cpu is None else f"{cpu:.0f}",
                     f"{m['ok_runs']}/{m['runs']}"])
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    lines.append(line(head))
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.extend(line(r) for r in rows)
    for key, label, _, _ in CASES:
        m = medians.get(key)
        if m and m.get("errors") and m["ok_runs"]:
            lines.append(f"  {label}: {m['runs'] - m['ok_runs']} run(s) failed: "
                         + "; ".join(m["errors"]))

    lines.append("")
    lines.append("ratios (of medians):")
    for name, val in ratios(medians).items():
        lines.append(f"  {name:<58} {val:6.2f}x" if val is not None else f"  {name:<58}      -")
    sel = medians.get("pt_selected", {})
    if sel.get("ok_runs"):
        rate = sel.get("delivered_rate", 0)
        zero_lost = sel.get("max_lost", 0) == 0
        met = rate >= TARGET_DELIVERED and zero_lost
        lines.append("")
        lines.append(f"target >= {TARGET_DELIVERED:,} events/s delivered with 0 lost: "
                     f"{'MET' if met else 'NOT MET'} (median {rate:,.0f}/s, "
                     f"lost in worst run {sel.get('max_lost', 0):,})")
        if "catch_up_s" in sel:
            lines.append(f"pytracee needed a median {sel['catch_up_s']:.2f}s after the storm "
                         f"ended ({sel['storm_loop_s']:.2f}s) to drain the ring")
    return "\n".join(lines)


def ratios(medians: dict[str, dict]) -> dict[str, float | None]:
    def get(case: str, key: str) -> float | None:
        return medians.get(case, {}).get(key)

    out: dict[str, float | None] = {}
    un, ns = get("untraced", "storm_rate"), get("pt_not_selected", "storm_rate")
    if un is not None or ns is not None:
        out["storm rate, pytracee attached-not-selected / untraced"] = ns / un if un and ns else None
        out[f"storm rate, attached-not-selected / empty-hook floor {EMPTY_HOOK_FLOOR/1e6:.1f} M/s"] = \
            ns / EMPTY_HOOK_FLOOR if ns else None
    dr = get("pt_selected", "delivered_rate")
    for key, label, _, peer in CASES:
        if peer and key in medians:
            pr = get(key, "storm_rate")
            out[f"pytracee delivered/s / {label} storm calls/s"] = dr / pr if dr and pr else None
    return out


# ---------------------------------------------------------------- setup

TRACEFS = Path("/sys/kernel/tracing")


def ensure_tracefs(notes: list[str]) -> None:
    """bpftrace and perf trace find tracepoints in tracefs, which a fresh machine here
    does not mount: mount it (and say so) when it is missing, until the bench exits."""
    if (TRACEFS / "events").is_dir():
        return
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True,
                       text=True, timeout=30)
    if r.returncode == 0:  # the host is left as found: unmounted when the bench exits
        atexit.register(subprocess.run, ["umount", str(TRACEFS)], capture_output=True, timeout=30)
    notes.append(f"mounted tracefs on {TRACEFS} for the peers (unmounted at exit)"
                 if r.returncode == 0 else
                 f"could not mount tracefs on {TRACEFS} ({r.stderr.strip()}): peers may fail")


def ensure_peers(peers: list[str], notes: list[str]) -> None:
    if peers:
        ensure_tracefs(notes)
    missing = [PEER_TOOLS[p] for p in peers if not shutil.which(PEER_TOOLS[p][0])]
    if not missing:
        return
    pkgs = sorted({pkg for _, pkg in missing})
    log(f"installing missing peers: apt-get install -y {' '.join(pkgs)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq"] + pkgs
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=900)
        if r.returncode != 0:  # stale package lists: refresh once and retry
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            r = subprocess.run(cmd, env=env, capture_output=True, timeout=900)
        ok = r.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, r = False, None
        log(f"apt-get failed: {exc}")
    notes.append(f"installed {' '.join(pkgs)} with apt-get" if ok
                 else f"could not install {' '.join(pkgs)}; those rows will show the error")


def build_storm(tmp: Path) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise BenchError("gcc not found (apt-get install -y gcc)")
    exe = tmp / COMM
    r = subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(STORM_SRC)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"compiling {STORM_SRC} failed: {r.stderr.strip()}")
    return exe




def run_case(args: argparse.Namespace, fn: Callable[[argparse.Namespace], dict]) -> dict:
    """One measurement: its result (or the error), logged, with the foreign-BPF check."""
    t = time.monotonic()
    args.probe = ForeignProbe()
    args.probe.start()
    try:
        r = fn(args)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        r = {"error": str(exc) or type(exc).__name__}
        log(f"  error: {r['error']}")
    else:
        shown = {k: (round(v) if isinstance(v, float) and v > 100 else
                     round(v, 3) if isinstance(v, float) else v)
                 for k, v in r.items() if not k.endswith("_ns")}
        log(f"  {shown} ({time.monotonic() - t:.1f}s)")
    args.probe.storm_done()
    foreign = args.probe.foreign()
    r["foreign_bpf_progs"] = foreign
    if foreign:
        log(f"  warning: {foreign} BPF tracing program(s) of another process "
            "were loaded during this run")
    return r

def foreign_bpf_notes(results: dict[str, list[dict]]) -> list[str]:
    """Notes on runs during which another process had BPF tracing programs loaded."""
    tainted = [f"{key} run {i + 1}" for key, runs in results.items()
               for i, r in enumerate(runs) if r.get("foreign_bpf_progs")]
    if tainted:
        return ["BPF tracing programs of other processes were loaded during: "
                + ", ".join(tainted) + " (`bpftool prog list`); those runs may be slower"]
    if all(r.get("foreign_bpf_progs") is None for runs in results.values() for r in runs):
        return ["could not check for other processes' BPF programs (bpftool unusable)"]
    return []

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--calls", type=int, default=1_000_000, help="getppid calls per storm (N)")
    ap.add_argument("--runs", type=int, default=5, help="runs per case; the median is shown")
    ap.add_argument("--ring-mib", type=int, default=None,
                    help="pytracee ring buffer size, MiB (default: pytracee's own default, "
                         "1/128 of the host's memory from 16 to 256 MiB)")
    ap.add_argument("--peers", default="bpftrace,perf,strace",
                    help="comma list of peers to run (bpftrace, perf, strace); '' for none")
    ap.add_argument("--peer-calls", type=int, default=None,
                    help="N for the peer rows (default: --calls; strace runs ~19 k/s)")
    ap.add_argument("--json", action="store_true",
                    help="print the raw numbers as JSON on stdout (the table goes to stderr)")
    args = ap.parse_args()

    if args.calls <= 0 or args.runs <= 0:
        ap.error("--calls and --runs must be positive")
    if args.ring_mib is None:
        sys.path.insert(0, str(ROOT / "src"))
        from pytracee.ebpf.tracer import default_ring_bytes
        args.ring_mib = default_ring_bytes() >> 20
    pages = args.ring_mib * 256
    if args.ring_mib <= 0 or pages & (pages - 1):
        ap.error("--ring-mib must be a power of two")
    args.ring_pages = pages
    args.peer_calls = args.peer_calls or args.calls
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for p in peers:
        if p not in PEER_TOOLS:
            ap.error(f"unknown peer {p!r} (choose from {', '.join(PEER_TOOLS)})")
    code = prepare("BPF, bpftrace, perf")
    if code is not None:
        return code

    notes: list[str] = []
    cases = [c for c in CASES if not c[3] or c[0] in peers]
    results: dict[str, list[dict]] = {c[0]: [] for c in cases}
    try:
        ensure_peers(peers, notes)
        with tempfile.TemporaryDirectory(prefix="pt-storm-") as tmp:
            args.storm = build_storm(Path(tmp))
            for run in range(1, args.runs + 1):
                for key, label, fn, _ in cases:
                    log(f"run {run}/{args.runs}: {label} ...")
                    results[key].append(run_case(args, fn))
    except KeyboardInterrupt:
        log("interrupted: stopping children")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        CHILDREN.stop_all()

    notes.extend(foreign_bpf_notes(results))
    medians = summarize(results)
    table = render(args, medians, notes)
    if args.json:
        print(table, file=sys.stderr)
        json.dump({"kernel": platform.release(), "cpus": os.cpu_count(), "calls": args.calls,
                   "peer_calls": args.peer_calls, "runs": args.runs,
                   "ring_mib": args.ring_mib, "ring_pages": args.ring_pages, "notes": notes,
                   "median": medians, "ratios": ratios(medians), "raw": results},
                  sys.stdout, indent=2)
        print()
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
