"""What pytracee's BPF programs cost in the kernel, per program, from bpf_stats.

    .venv/bin/python bench/bpf_cost.py [--runs R] [--against REV] [--set security|default]

Each round starts pytracee with the security events of bench/mixed_workload.py (--set
default: with no -e, Tracee's default events), JSON to /dev/null, with
kernel.bpf_stats_enabled on, and runs two loads:
  mixed   the mixed workload of bench/mixed_workload.py (gcc, cat, /bin/true);
  opens   100,000 open+close of one file by a Python child (security_file_open).
For each program the kernel's run_time_ns and run_cnt are read (bpftool prog show -j)
before and after the load. Figures are MEDIANS of R rounds: total ms of BPF time and
ns per run. bpf_stats times the program itself (plus its two clock reads), not the
tracepoint's dispatch: the floor any tracer pays is bench/mixed_workload.py's business.

Each round also runs the mixed workload under the empty hooks of bench/mixed_workload.py
(two programs that return at once): their ns per run is what bpf_stats itself and the
program call cost, the floor under every figure above it. And under bench/mixed_workload.py's
"lean opens" program (security_file_open's content for every successful open, nothing
else): what that content costs in the kernel, to set beside security_file_open's share.

--against REV also runs git revision REV, side by side: its tree is checked out in a
temporary worktree, its BPF object compiled there, and its Python run from there (this
tree's virtualenv, PYTHONPATH). Rounds alternate the builds, so machine noise spreads
over both.

Needs root, clang, bpftool and git.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mixed_workload as mw  # noqa: E402  (workload, security set, children)
from revision import Revision  # noqa: E402
import syscall_storm as storm  # noqa: E402  (prepare, stderr reader, summary)
from syscall_storm import BenchError, log  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
OPENS = 100_000
OPEN_LOOP = ("import os\n"
             f"for _ in range({OPENS}):\n"
             "    os.close(os.open('/etc/hostname', os.O_RDONLY))\n")
MIN_RUNS = 100  # programs that ran fewer times than this in a load are left out


def prog_stats() -> dict[int, tuple[str, int, int]]:
    """Program id -> (name, run_time_ns, run_cnt), for every loaded program."""
    r = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise BenchError(f"bpftool prog show failed: {r.stderr.strip()}")
    return {p["id"]: (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in json.loads(r.stdout)}


def program_deltas(before: dict[int, tuple[str, int, int]], after: dict[int, tuple[str, int, int]],
                   mine: set[int]) -> dict[str, tuple[float, int]]:
    """Program name -> (run_time_ns, run_cnt) over a load, for the programs in `mine`
    that ran at least MIN_RUNS times in it."""
    per: dict[str, tuple[float, int]] = {}
    for pid_, (name, t, c) in after.items():
        if pid_ not in mine:
            continue
        _, t0, c0 = before.get(pid_, (name, 0, 0))
        if c - c0 >= MIN_RUNS:
            per[name] = (t - t0, c - c0)
    return per


def one_round(src: Path, ctx: argparse.Namespace) -> dict[str, dict[str, tuple[float, int]]]:
    """For each load: program name -> (run_time_ns, run_cnt) of this build's programs."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    events = ["-e", mw.SECURITY_EVENTS] if ctx.set == "security" else []
    p = mw.CHILDREN.spawn([str(PYTHON), "-m", "pytracee", *events,
                           "-o", "json:/dev/null"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, cwd=str(ctx.tmp))
    err = storm.LineCollector(p.stderr)
    try:
        if not err.wait_for("pytracee: tracing", mw.ATTACH_TIMEOUT_S):
            raise BenchError(f"pytracee ({src}) did not attach: {err.tail()}")
        storm.wait_idle(p.pid, mw.SETTLE_TIMEOUT_S)
        mine = storm.held_prog_ids(p.pid)
        out = {}
        for load in ("mixed", "opens"):
            before = prog_stats()
            if load == "mixed":
                mw.run_workload(ctx)
            else:
                subprocess.run([sys.executable, "-c", OPEN_LOOP], check=True, timeout=300)
            out[load] = program_deltas(before, prog_stats(), mine)
        summary = storm.stop_pytracee(p, err)
        if summary["lost"]:
            log(f"  note: {summary['lost']} events lost in this round")
        return out
    finally:
        mw.CHILDREN.stop(p)


def empty_hooks_round(ctx: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """The mixed workload under the two empty hooks: program name -> (run_time_ns, run_cnt)."""
    with mw.empty_hooks(ctx.hooks_obj) as progs:
        before = [p.info() for p in progs]
        mw.run_workload(ctx)
        after = [p.info() for p in progs]
    return {p.name: (a.run_time_ns - b.run_time_ns, a.run_cnt - b.run_cnt)
            for p, b, a in zip(progs, before, after)}


def lean_round(ctx: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """The mixed workload under bench/progs/lean_open.bpf.c (security_file_open's content,
    nothing else): program name -> (run_time_ns, run_cnt)."""
    with mw.lean_opens(ctx.lean_obj) as (p, counts):
        storm.wait_idle(p.pid, mw.SETTLE_TIMEOUT_S)
        mine = storm.held_prog_ids(p.pid)
        before = prog_stats()
        mw.run_workload(ctx)
        per = program_deltas(before, prog_stats(), mine)
    if counts["lost"]:
        log(f"  note: lean opens lost {counts['lost']} records in this round")
    return per


def median_table(rounds: list[dict[str, dict[str, tuple[float, int]]]]
                 ) -> dict[str, dict[str, tuple[float, float]]]:
    """load -> program -> (median total ms, median ns per run); 'all' sums the programs."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for load in rounds[0]:
        names = sorted({n for r in rounds for n in r[load]})
        rows = {}
        for n in names:
            got = [r[load][n] for r in rounds if n in r[load]]
            rows[n] = (statistics.median(t for t, _ in got) / 1e6,
                       statistics.median(t / c for t, c in got))
        rows["all"] = (statistics.median(sum(t for t, _ in r[load].values()) for r in rounds) / 1e6,
                       float("nan"))
        out[load] = rows
    return out


def render(builds: list[str], tables: list[dict[str, dict[str, tuple[float, float]]]],
           runs: int, event_set: str) -> str:
    lines = [f"bpf_stats, pytracee with the {event_set} events; MEDIANS of {runs} rounds "
             f"(builds alternate); loads: mixed workload, {OPENS:,} open+close", ""]
    head = ["load", "program"] + [f"{b}: ms / ns per run" for b in builds]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for load in tables[0]:
        names = [n for n in tables[0][load] if n != "all"] + ["all"]
        for n in names:
            cells = [load, n]
            for t in tables:
                ms, ns = t.get(load, {}).get(n, (float("nan"), float("nan")))
                cells.append(f"{ms:.1f}" + ("" if ns != ns else f" / {ns:,.0f}"))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--against", metavar="REV", help="also measure git revision REV")
    ap.add_argument("--set", choices=("security", "default"), default="security",
                    help="pytracee's events: the security set, or Tracee's default set")
    ap.add_argument("--timeout", type=float, default=300.0, help="workload timeout, s")
    args = ap.parse_args()
    code = storm.prepare("BPF, bpf_stats")
    if code is not None:
        return code
    if not shutil.which("bpftool") or not shutil.which("clang"):
        log("bpftool and clang are needed")
        return 2
    old_stats = STATS.read_text().strip()
    with tempfile.TemporaryDirectory(prefix="pt-bpfcost-") as tmp_s:
        tmp = Path(tmp_s)
        args.tmp = tmp
        args.workload = mw.make_workload(tmp)
        args.hooks_obj = mw.build_hooks(tmp)
        args.lean_obj = mw.build_hooks(tmp, mw.LEAN_SRC)
        builds = [("this tree", ROOT / "src")]
        rev = Revision(args.against, tmp) if args.against else None
        try:
            if rev is not None:
                rev.__enter__()
                builds.append((args.against, rev.src))
            STATS.write_text("1")
            rounds: dict[str, list] = {name: [] for name, _ in builds}
            floor: list[dict[str, dict[str, tuple[float, int]]]] = []
            lean: list[dict[str, dict[str, tuple[float, int]]]] = []
            for i in range(args.runs):
                order = builds if i % 2 == 0 else builds[::-1]
                for name, src in order:
                    log(f"round {i + 1}/{args.runs}: {name} ...")
                    rounds[name].append(one_round(src, args))
                log(f"round {i + 1}/{args.runs}: empty hooks ...")
                floor.append({"mixed": empty_hooks_round(args)})
                log(f"round {i + 1}/{args.runs}: lean opens ...")
                lean.append({"mixed": lean_round(args)})
        except BenchError as exc:
            log(f"bench failed: {exc}")
            return 1
        finally:
            STATS.write_text(old_stats)
            mw.CHILDREN.stop_all()
            if rev is not None:
                rev.remove()
        print(render([n for n, _ in builds], [median_table(rounds[n]) for n, _ in builds],
                     args.runs, args.set))
        for label, got in (("empty hooks, mixed workload (the floor)", floor),
                           ("lean opens (bench/progs/lean_open.bpf.c), mixed workload", lean)):
            t = median_table(got)["mixed"]
            print(f"\n{label}: " + ", ".join(f"{n} {ms:.1f} ms / {ns:,.0f} ns per run"
                                             for n, (ms, ns) in t.items() if n != "all")
                  + f"; all {t['all'][0]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
