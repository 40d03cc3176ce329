"""What `-o option:exec-hash` costs: pytracee's CPU for a burst of execs, with and without it.

    .venv/bin/python bench/exec_hash.py [--execs N] [--runs R]

Workload: a shell loop that runs `pt-true` (a copy of /bin/true, or one of K copies) N times.
pytracee traces `-e sched_process_exec -s comm=pt-true -o json:/dev/null`, with or without
`-o option:exec-hash` (and, in the last case, `--capture exec`). Printed: the workload's wall
time, pytracee's CPU seconds from the workload's start until it is idle, and the exec-hash
counters of its summary line (hashes computed on the event thread, time spent, cache hits).
Every figure is the median of R runs. Needs root.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTRACEE = ROOT / ".venv" / "bin" / "pytracee"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_idle(pid: int) -> float:
    last, same = cpu_s(pid), 0
    while same < 5:
        time.sleep(0.05)
        now = cpu_s(pid)
        same = same + 1 if now == last else 0
        last = now
    return last


def run_case(extra: list[str], binaries: list[Path], execs: int, out_dir: Path) -> dict[str, object]:
    shutil.rmtree(out_dir, ignore_errors=True)
    args = [str(PYTRACEE), "-e", "sched_process_exec", "-s", "comm=pt-true", "-o", "json:/dev/null",
            *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        while line.startswith("pytracee: WARNING"):
            line = proc.stderr.readline().decode()
        assert line.startswith("pytracee: tracing"), line
        before = wait_idle(proc.pid)
        script = "i=0; while [ $i -lt %d ]; do for b in %s; do \"$b\"; i=$((i+1)); done; done" % (
            execs, " ".join(str(b) for b in binaries))
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", script], check=True)
        wall = time.perf_counter() - t0
        cpu = wait_idle(proc.pid) - before
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = err.decode()
    m = re.search(r"exec-hash: computed (\d+) \(([\d.]+) ms\), cached (\d+), failed (\d+)", summary)
    delivered = int(re.search(r"events delivered: (\d+)", summary).group(1))  # type: ignore[union-attr]
    out: dict[str, object] = {"wall_s": wall, "cpu_s": cpu, "delivered": delivered}
    if m:
        out.update(computed=int(m.group(1)), hash_ms=float(m.group(2)), cached=int(m.group(3)),
                   failed=int(m.group(4)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--execs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--copies", type=int, default=50, help="distinct binaries in the last case")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pt-exec-hash-"))
    try:
        one = [tmp / "one" / "pt-true"]
        many = [tmp / f"c{i}" / "pt-true" for i in range(a.copies)]
        for b in (*one, *many):
            b.parent.mkdir()
            shutil.copy("/bin/true", b)
            with open(b, "ab") as f:  # distinct contents, so distinct hashes
                f.write(str(b).encode())
        out_dir = tmp / "out"
        cases = [
            ("no exec-hash, 1 binary", [], one),
            ("exec-hash, 1 binary", ["-o", "option:exec-hash"], one),
            (f"exec-hash, {a.copies} binaries", ["-o", "option:exec-hash"], many),
            ("exec-hash + capture exec, 1 binary",
             ["-o", "option:exec-hash", "--capture", "exec", "--capture", f"dir:{out_dir}"], one),
        ]
        results: dict[str, list[dict[str, object]]] = {name: [] for name, _, _ in cases}
        for r in range(a.runs):
            for name, extra, bins in cases:
                res = run_case(extra, bins, a.execs, out_dir)
                print(f"run {r + 1}/{a.runs} {name}: {res}", flush=True)
                results[name].append(res)
        print(f"\nexec-hash cost: {a.execs} execs per run, median of {a.runs} runs")
        print("| case | workload s | pytracee CPU s | CPU ms per exec | hashes computed | hash ms | cache hits |")
        print("|---|---|---|---|---|---|---|")
        base = None
        for name, _, _ in cases:
            rs = results[name]

            def med(key: str, rs: list[dict[str, object]] = rs) -> float:
                return statistics.median(float(x.get(key, 0)) for x in rs)  # type: ignore[arg-type]
            cpu = med("cpu_s")
            base = cpu if base is None else base
            print(f"| {name} | {med('wall_s'):.2f} | {cpu:.3f} | {cpu / a.execs * 1000:.3f} | "
                  f"{med('computed'):.0f} | {med('hash_ms'):.1f} | {med('cached'):.0f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
