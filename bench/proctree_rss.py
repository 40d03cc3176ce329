"""Process-tree memory: pytracee's resident memory with N live processes it tracks.

    .venv/bin/python bench/proctree_rss.py [--procs N] [--runs R] [--json]
    make bench-rss

Workload: bench/progs/holder.c, compiled at start into a temp dir as `pt-holder`, forks N
children that each exec pt-holder again ("pt-holder hold <fd> child-<i> --tag=..."; a new
exe, comm and a distinct argv, as in real life) and pause(); it prints "ready" once all N
have exec'd. pytracee runs as `pytracee -o none -e sched_process_exec -s comm=pt-nothing
-E none [--stores none]`: no event matches, so nothing is printed, while the process
tree's fork/exec/exit signals still flow (the kernel sends them whatever the policies
select); -E none so a container runtime on the machine does not matter.

Cases, each run R times; runs interleave the cases and rotate their order every run;
every figure is the MEDIAN of the R runs, with min..max:

  no tree          `--stores none`; N processes spawned after pytracee attached
  tree, fed live   the default tree (max-processes 10000); N processes spawned after
                   pytracee attached, so the tree learns them from fork/exec signals
  tree, seeded     the default tree; pytracee started once N processes exist, so the
                   tree is seeded from /proc at start

Memory is read from /proc/<pid>/status: VmRSS (resident now) and VmHWM (peak resident).
"idle" is VmRSS once pytracee attached and went idle, before the spawn (the seeded case
has no such moment: its spawn comes first). "with N" is VmRSS after the holder is ready,
SETTLE_S seconds and pytracee being idle again (utime+stime unchanged for 3 polls 20 ms
apart: every signal handled). Then pytracee gets SIGINT, and its summary line gives
"processes tracked" (and "evicted live" when the bound pushed live processes out), then
the holder is stopped. "per process" = (with N - idle) / N; for the seeded case the idle
of "tree, fed live" (same configuration, nothing spawned) stands in. MB = 10^6 bytes.

No other tracer with a process tree runs here, so the rows compare pytracee
configurations with each other rather than with peers.

Needs root and gcc. Every child runs in its own session (the holder's children share its
process group) and is stopped on exit, error or Ctrl-C; the temp dir is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import syscall_storm as storm  # noqa: E402  (children, stderr reader, idle wait, summary)
from syscall_storm import BenchError, log  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTRACEE = ROOT / ".venv" / "bin" / "pytracee"
HOLDER_SRC = ROOT / "bench" / "progs" / "holder.c"
HOLDER = "pt-holder"
CHILDREN = storm.CHILDREN  # the one registry storm.stop_pytracee() also uses

PT_ARGS = ["-o", "none", "-e", "sched_process_exec", "-s", "comm=pt-nothing", "-E", "none"]
TARGET_PROCS = 10_000
TARGET_RSS_MB = 120.0          # issue: RSS <= 120 MB with 10 000 live processes
DEFAULT_MAX_PROCESSES = 10_000  # pytracee's default --stores process.max-processes
SETTLE_S = 2.0
IDLE_TIMEOUT_S = 60.0
ATTACH_TIMEOUT_S = 120.0
PID_HEADROOM = 2_000           # pids left for everything else on the machine

TRACKED_RE = re.compile(r"processes tracked: (\d+)")
EVICTED_RE = re.compile(r"evicted live: (\d+)")
STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


# ---------------------------------------------------------------- helpers

def mem_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and the Rss split of pid, in bytes."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                key, _, rest = ln.partition(":")
                if key in STATUS_KEYS:
                    out[key] = int(rest.split()[0]) * 1024  # the kernel's "kB" is KiB
    except OSError as exc:
        raise BenchError(f"pid {pid} gone ({exc.strerror})") from None
    missing = [k for k in STATUS_KEYS if k not in out]
    if missing:
        raise BenchError(f"/proc/{pid}/status lacks {', '.join(missing)}")
    return out


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is pgid (zombies included: they still hold a pid)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid:
            found.append(int(name))
    return found


def count_pids() -> int:
    return sum(1 for n in os.listdir("/proc") if n.isdigit())


def read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            v = f.read().strip()
    except OSError:
        return None
    return None if v == "max" else int(v)


def pids_cgroup_max() -> int | None:
    """pids.max of this process's cgroup (v2 or the v1 pids controller), if limited."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for ln in lines:
        hid, ctrls, path = ln.split(":", 2)
        if hid == "0" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            v = read_int(f"/sys/fs/cgroup{path}/pids.max")
        elif "pids" in ctrls.split(","):
            v = read_int(f"/sys/fs/cgroup/pids{path}/pids.max")
        else:
            continue
        if v is not None:
            return v
    return None


def check_limits(n: int) -> list[str]:
    """Refuse to start when N more processes cannot exist; the limits, as a note."""
    pid_max = read_int("/proc/sys/kernel/pid_max") or 0
    threads_max = read_int("/proc/sys/kernel/threads-max") or 0
    nproc_soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    cg = pids_cgroup_max()
    live = count_pids()
    need = live + n + PID_HEADROOM
    for name, limit in (("kernel.pid_max", pid_max), ("kernel.threads-max", threads_max),
                        ("the pids cgroup's pids.max", cg)):
        if limit is not None and limit < need:
            raise BenchError(f"{name} = {limit:,} leaves no room for {n:,} more processes "
                             f"({live:,} exist, {PID_HEADROOM:,} kept spare)")
    # Root (CAP_SYS_RESOURCE/CAP_SYS_ADMIN) is exempt from RLIMIT_NPROC.
    if os.geteuid() != 0 and nproc_soft != resource.RLIM_INFINITY and nproc_soft < need:
        raise BenchError(f"ulimit -u = {nproc_soft:,} is below {need:,}")
    nproc = "unlimited" if nproc_soft == resource.RLIM_INFINITY else f"{nproc_soft:,}"
    return [f"limits: pid_max {pid_max:,}, threads-max {threads_max:,}, ulimit -u {nproc}, "
            f"pids cgroup {'unlimited' if cg is None else f'{cg:,}'}; {live:,} processes "
            "existed at start"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for ln in f:
                if ln.startswith("MemTotal:"):
                    return int(ln.split()[1]) / 2**20
    except OSError:
        pass
    return None


def build_holder(tmp: Path) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise BenchError("gcc not found (apt-get install -y gcc)")
    exe = tmp / HOLDER
    r = subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(HOLDER_SRC)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"compiling {HOLDER_SRC} failed: {r.stderr.strip()}")
    return exe


# ---------------------------------------------------------------- holder

class Holder:
    """pt-holder N in its own session; its children share the session's process group."""

    def __init__(self, exe: Path, n: int) -> None:
        self.n = n
        t0 = time.monotonic()
        self.p = CHILDREN.spawn([str(exe), str(n)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.out = storm.LineCollector(self.p.stdout)
        self.err = storm.LineCollector(self.p.stderr)
        try:
            timeout = 60.0 + n / 100  # ~2.5 k/s untraced here; a tracer slows forks down
            if not self.out.wait_for("ready", timeout):
                raise BenchError(f"holder not ready within {timeout:.0f}s (exit "
                                 f"{self.p.poll()}): {self.err.tail() or self.out.tail()}")
            # "ready N ms": the holder's own fork+exec time for all N
            ready = next(ln for ln in self.out.lines if ln.startswith("ready"))
            self.spawn_s = int(ready.split()[2]) / 1000
        except BaseException:
            self.stop()
            raise
        self.wall_s = time.monotonic() - t0

    def stop(self) -> None:
        """SIGTERM the group (children die, the holder reaps them), SIGKILL what is left,
        then wait until no pid of the group remains, so the next case starts clean."""
        CHILDREN.stop(self.p, signal.SIGTERM, timeout=60)
        deadline = time.monotonic() + 30
        while (left := group_members(self.p.pid)):
            if time.monotonic() > deadline:
                log(f"warning: {len(left)} process(es) of holder group {self.p.pid} remain")
                break
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.1)


# ---------------------------------------------------------------- pytracee

def start_pytracee(args: list[str]) -> tuple[subprocess.Popen, storm.LineCollector, float]:
    """Start pytracee; return once it printed "pytracee: tracing" (after its /proc seed)."""
    t0 = time.monotonic()
    p = CHILDREN.spawn([str(PYTRACEE)] + args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    err = storm.LineCollector(p.stderr)
    if not err.wait_for("pytracee: tracing", ATTACH_TIMEOUT_S):
        CHILDREN.stop(p)
        raise BenchError(f"pytracee did not attach (exit {p.poll()}): {err.tail()}")
    return p, err, time.monotonic() - t0


def settle(pid: int) -> None:
    time.sleep(SETTLE_S)
    storm.wait_idle(pid, IDLE_TIMEOUT_S)


def stop_with_summary(p: subprocess.Popen, err: storm.LineCollector) -> dict:
    r = storm.stop_pytracee(p, err)
    lines = err.finish()
    for ln in reversed(lines):
        m = TRACKED_RE.search(ln)
        if m:
            r["tracked"] = int(m.group(1))
            e = EVICTED_RE.search(ln)
            r["evicted_live"] = int(e.group(1)) if e else 0
            break
    return r


def case_spawn_after(tree: bool) -> Callable[[argparse.Namespace], dict]:
    def case(ctx: argparse.Namespace) -> dict:
        p, err, attach_s = start_pytracee(PT_ARGS + ([] if tree else ["--stores", "none"]))
        holder: Holder | None = None
        try:
            storm.wait_idle(p.pid, IDLE_TIMEOUT_S)
            idle = mem_status(p.pid)
            holder = Holder(ctx.holder, ctx.procs)
            settle(p.pid)
            live = mem_status(p.pid)
            r = {"attach_s": attach_s, "idle_rss": idle["VmRSS"], "rss": live["VmRSS"],
                 "hwm": live["VmHWM"], "rss_anon": live["RssAnon"],
                 "rss_file": live["RssFile"], "rss_shmem": live["RssShmem"],
                 "spawn_s": holder.spawn_s}
            # Stop pytracee before the holder: its summary then counts live processes.
            r.update(stop_with_summary(p, err))
        finally:
            if p in CHILDREN.procs:  # not yet stopped by stop_with_summary()
                CHILDREN.stop(p)
            if holder is not None:
                holder.stop()
        return r
    return case


def case_seeded(ctx: argparse.Namespace) -> dict:
    holder = Holder(ctx.holder, ctx.procs)
    p: subprocess.Popen | None = None
    try:
        p, err, attach_s = start_pytracee(PT_ARGS)
        settle(p.pid)
        live = mem_status(p.pid)
        r = {"attach_s": attach_s, "rss": live["VmRSS"], "hwm": live["VmHWM"],
             "rss_anon": live["RssAnon"], "rss_file": live["RssFile"],
             "rss_shmem": live["RssShmem"], "spawn_s": holder.spawn_s}
        r.update(stop_with_summary(p, err))
    finally:
        if p is not None and p in CHILDREN.procs:
            CHILDREN.stop(p)
        holder.stop()
    return r


# (key, label, function, process tree on)
CASES: list[tuple[str, str, Callable[[argparse.Namespace], dict], bool]] = [
    ("no_tree", "no tree (--stores none)", case_spawn_after(False), False),
    ("tree_live", "tree, fed live (spawn after start)", case_spawn_after(True), True),
    ("tree_seeded", "tree, seeded (start after spawn)", case_seeded, True),
]


def run_case(fn: Callable[[argparse.Namespace], dict], args: argparse.Namespace) -> dict:
    t = time.monotonic()
    try:
        r = fn(args)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        r = {"error": str(exc) or type(exc).__name__}
        log(f"  error: {r['error']}")
    else:
        shown = {k: (f"{v / 1e6:.1f}MB" if k.startswith(("rss", "idle", "hwm")) else
                     round(v, 2) if isinstance(v, float) else v)
                 for k, v in r.items() if k != "lost_by_reason"}
        log(f"  {shown}")
    r["case_s"] = time.monotonic() - t
    return r


# ---------------------------------------------------------------- report

NUM_KEYS = ("idle_rss", "rss", "hwm", "rss_anon", "rss_file", "rss_shmem", "tracked",
            "evicted_live", "spawn_s", "attach_s", "case_s", "lost")


def summarize(results: dict[str, list[dict]], procs: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        m: dict = {"runs": len(runs), "ok_runs": len(ok)}
        for k in NUM_KEYS:
            vals = [r[k] for r in ok if k in r]
            if vals:
                m[k] = statistics.median(vals)
                m[k + "_min"], m[k + "_max"] = min(vals), max(vals)
        errors = sorted({r["error"] for r in runs if "error" in r})
        if errors:
            m["errors"] = errors
        out[key] = m
    # The seeded case has no idle of its own: the same configuration's idle stands in.
    for key, m in out.items():
        base = m.get("idle_rss", out.get("tree_live", {}).get("idle_rss"))
        if "rss" in m and base is not None:
            m["delta"] = m["rss"] - base
            m["per_proc"] = m["delta"] / procs
            m["delta_base"] = "own idle" if "idle_rss" in m else "tree_live idle"
    return out


def mb(v: float) -> str:
    return f"{v / 1e6:.1f}"


def render(args: argparse.Namespace, med: dict[str, dict], notes: list[str]) -> str:
    mem = mem_total_gib()
    lines = [f"process-tree RSS: kernel {platform.release()}, {os.cpu_count()} CPUs "
             f"({cpu_model()})" + (f", {mem:.0f} GiB RAM" if mem else "")
             + f", N={args.procs:,} live processes, runs={args.runs}",
             f"every figure is the MEDIAN of {args.runs} runs (interleaved, order rotated "
             "every run), min..max in brackets; MB = 10^6 bytes; pytracee "
             + " ".join(PT_ARGS),
             "no other tracer with a process tree runs here: the rows are pytracee "
             "configurations, compared with each other (not peers)"]
    lines += [f"note: {n}" for n in notes]
    head = ["case", "idle RSS MB", f"RSS with {args.procs:,} MB", "(min..max)",
            "VmHWM MB", "RSS - idle MB", "per process", "tracked", "evicted live",
            "spawn s", "runs ok"]
    rows = []
    for key, label, _, tree in CASES:
        m = med.get(key)
        if m is None:
            continue
        if not m["ok_runs"]:
            rows.append([label, "ERROR: " + "; ".join(m.get("errors", ["?"]))[:110]]
                        + [""] * (len(head) - 2))
            continue
        per = m.get("per_proc")
        star = "*" if m.get("delta_base") == "tree_live idle" else ""
        rows.append([
            label,
            mb(m["idle_rss"]) if "idle_rss" in m else "- (spawn first)",
            mb(m["rss"]), f"{mb(m['rss_min'])}..{mb(m['rss_max'])}",
            mb(m["hwm"]),
            f"{m['delta'] / 1e6:+.1f}{star}" if "delta" in m else "-",
            f"{per:,.0f} B{star}" if per is not None else "-",
            f"{m['tracked']:,.0f}" if tree and "tracked" in m else "-",
            f"{m['evicted_live']:,.0f}" if tree and "evicted_live" in m else "-",
            f"{m['spawn_s']:.1f}", f"{m['ok_runs']}/{m['runs']}"])
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    lines.append(line(head))
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [line(r) for r in rows]
    for key, label, _, _ in CASES:
        m = med.get(key)
        if m and m.get("errors") and m["ok_runs"]:
            lines.append(f"  {label}: {m['runs'] - m['ok_runs']} run(s) failed: "
                         + "; ".join(m["errors"]))
    if any(m.get("delta_base") == "tree_live idle" for m in med.values()):
        lines.append("  * against the idle RSS of \"tree, fed live\" (same configuration, "
                     "nothing spawned yet)")
    lines.append("  spawn s: the holder's own time to fork+exec all N (pytracee already "
                 "attached in the first two cases)")
    split = [f"{label}: anon {mb(m['rss_anon'])}, file {mb(m['rss_file'])}, "
             f"shmem {mb(m['rss_shmem'])}"
             for key, label, _, _ in CASES if (m := med.get(key)) and "rss_anon" in m]
    if split:
        lines.append("")
        lines.append("RSS split with N live (MB): " + "; ".join(split))
    lines.append("")
    lines += target_lines(args, med)
    return "\n".join(lines)


def target_lines(args: argparse.Namespace, med: dict[str, dict]) -> list[str]:
    out = []
    expect = min(args.procs, DEFAULT_MAX_PROCESSES)
    scope = "" if args.procs >= TARGET_PROCS else \
        f" [ran with {args.procs:,} processes, not {TARGET_PROCS:,}]"
    for key, label, _, tree in CASES:
        if not tree:
            continue
        m = med.get(key, {})
        head = (f"target RSS <= {TARGET_RSS_MB:.0f} MB with {TARGET_PROCS:,} live processes "
                f"tracked, {label}: ")
        if not m.get("ok_runs") or "rss" not in m:
            out.append(head + "-")
            continue
        worst = m["rss_max"] / 1e6
        full = m.get("tracked_min", 0) >= expect
        met = worst <= TARGET_RSS_MB and full and args.procs >= TARGET_PROCS
        detail = (f"median {m['rss'] / 1e6:.1f} MB, worst run {worst:.1f} MB, peak VmHWM "
                  f"{m['hwm_max'] / 1e6:.1f} MB; tracked {m.get('tracked', 0):,.0f}")
        if not full:
            detail += f", fewer than {expect:,} in some run"
        verdict = "NOT EVALUATED" if scope else "MET" if met else "NOT MET"
        out.append(head + verdict + f" ({detail}){scope}")
    return out


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--procs", type=int, default=TARGET_PROCS,
                    help="live processes to hold (N)")
    ap.add_argument("--runs", type=int, default=3, help="runs per case; the median is shown")
    ap.add_argument("--json", action="store_true",
                    help="print the raw numbers as JSON on stdout (the table goes to stderr)")
    args = ap.parse_args()
    if args.procs <= 0 or args.runs <= 0:
        ap.error("--procs and --runs must be positive")
    code = storm.prepare("BPF")
    if code is not None:
        return code

    notes: list[str] = []
    results: dict[str, list[dict]] = {key: [] for key, _, _, _ in CASES}
    t_start = time.monotonic()
    try:
        notes += check_limits(args.procs)
        with open("/proc/loadavg") as f:
            notes.append(f"load average at start: {' '.join(f.read().split()[:3])}")
        with tempfile.TemporaryDirectory(prefix="pt-rss-") as tmp:
            args.holder = build_holder(Path(tmp))
            for run in range(args.runs):
                shift = run % len(CASES)
                for key, label, fn, _ in CASES[shift:] + CASES[:shift]:
                    log(f"run {run + 1}/{args.runs}: {label} ...")
                    results[key].append(run_case(fn, args))
    except KeyboardInterrupt:
        log("interrupted: stopping children")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        CHILDREN.stop_all()
    elapsed = time.monotonic() - t_start
    notes.append(f"bench run time {elapsed:.0f}s")

    med = summarize(results, args.procs)
    table = render(args, med, notes)
    if args.json:
        print(table, file=sys.stderr)
        json.dump({"kernel": platform.release(), "cpus": os.cpu_count(), "cpu": cpu_model(),
                   "procs": args.procs, "runs": args.runs, "pytracee_args": PT_ARGS,
                   "target_rss_mb": TARGET_RSS_MB, "notes": notes, "median": med,
                   "raw": results}, sys.stdout, indent=2)
        print()
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
