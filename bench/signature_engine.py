"""Signature engine: events/s through the detection engine, Rego and YAML+CEL
evaluations/s, and live detection latency (syscall -> detection printed).

    .venv/bin/python bench/signature_engine.py [--runs R] [--min-events N] [--json] ...
    make bench-detect

Stream: recorded at start with the real tracer, system-wide, into a temp dir:
`pytracee -o json:<tmp>/stream.json -e tag=default -e <RECORD_EXTRA>` while a mixed
workload runs (gcc -O0 -c, cat of many small files, ls, /bin/true execs, TCP connects on
127.0.0.1) plus a few real triggers: ptrace(PTRACE_TRACEME) in forked children (TRC-102),
a socket dup'ed onto stdout (TRC-101), a W+X mapping locked to R+X (TRC-104), exec of a
copy of /bin/true from /dev/shm (TRC-105). Rounds of the workload run until at least
--min-events lines are recorded (other processes on the machine add to it: a mixed
stream). Every line is converted with event_from_json once, before any timing.

Throughput cases, each run R times (interleaved, order rotated every run); a fresh
Engine per run, built outside the timing; one untimed warm-up pass per case first.
Timed: engine.process(batch) over the stream cut in batches of --batch (256, as the
pipeline hands them). Figures are MEDIANS of the R runs, min..max in brackets.

  python all     every built-in (builtin_signatures()) over the whole stream: events/s
  route only     one signature selecting an event absent from the stream: the pure
                 routing cost of an event no signature selected
  no-op sigs     a no-op signature in place of each built-in (same selected events):
                 the engine's own cost per on_event call, without the signatures' logic
  python sel     the built-ins over only the events they select (replicated to at least
                 --min-evals on_event calls): evaluations/s
  rego           signatures/rego/*.rego (pytracee.detect.rego), likewise: evaluations/s
  yaml+cel       signatures/yaml/*.yaml (pytracee.detect.cel), likewise: evaluations/s
An evaluation is one on_event call (the engine's per-signature count); its rate counts
the engine's routing of those events too. Rego / YAML+CEL rows say "not available" when
their module or directory is missing or does not load.

Live latency: `pytracee -o json -e anti_debugging -e getppid -s comm=pt-detload`; a
load generator (pt-detload load, C, compiled at start) calls getppid at --load-rate/s
(paced per ms) and a trigger (pt-detload trigger) forks --trigger-rate children/s that
each call ptrace(PTRACE_TRACEME), for --latency-seconds. The bench reads pytracee's
stdout with os.read as it arrives; per anti_debugging line, latency = time.time_ns() when
read - the detection's "timestamp" (the ptrace event's epoch ns). The same run without
the load shows what the output policy costs at a low rate. Also shown: latency of the
busy getppid lines, and how output arrived (reads: median interval and size).

Peers: no other signature engine runs here (Tracee's Go engine is not installed), so
there are no peer rows.

Needs root, gcc. Every child runs in its own session and is stopped on exit, error or
Ctrl-C; the temp dir is removed.
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib.util
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import syscall_storm as storm  # noqa: E402  (children, stderr reader, summary)
from syscall_storm import BenchError, log  # noqa: E402

try:
    import orjson
    from pytracee.detect.engine import Engine, register
except ImportError:  # not run with .venv/bin/python: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import orjson
    from pytracee.detect.engine import Engine, register
from pytracee.detect.loader import builtin_signatures, load_signature_dirs  # noqa: E402
from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata  # noqa: E402
from pytracee.events.event import Event  # noqa: E402
from pytracee.events.from_json import BadEvent, event_from_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTRACEE = ROOT / ".venv" / "bin" / "pytracee"
REGO_DIR = ROOT / "signatures" / "rego"
YAML_DIR = ROOT / "signatures" / "yaml"
CHILDREN = storm.CHILDREN  # the registry storm.stop_pytracee() uses too
COMM = "pt-detload"

RECORD_EXTRA = ("security_file_open,magic_write,security_socket_connect,sched_process_fork,"
                "sched_process_exit,socket_dup,mem_prot_alert,ptrace")
# Candidates for the "route only" signature: the first absent from the stream is used.
ABSENT_CANDIDATES = ("init_module", "finit_module", "move_mount", "process_vm_writev",
                     "process_vm_readv", "setfsuid", "setfsgid", "fchown", "lchown")
TARGET_DISPATCH = 1_000_000     # events/s, Python built-ins, whole stream
TARGET_REGO = 50_000            # evaluations/s
TARGET_P99_MS = 20.0            # detection latency at TARGET_LOAD events/s
MIN_DETECTIONS = 150
ATTACH_TIMEOUT_S = 90.0
MAX_ROUNDS = 8

N_SOURCES, N_FILES, N_LS, N_EXECS = 30, 2500, 100, 200

WORKLOAD_SH = f"""\
set -eu
D=$1
PY=$2
for f in "$D"/src/*.c; do
    gcc -O0 -c "$f" -o "$D/obj/$(basename "$f" .c).o"
done
for f in "$D"/files/*; do
    cat "$f"
done > /dev/null
i=0
while [ $i -lt {N_LS} ]; do
    ls -la /usr/bin /etc "$D/obj" > /dev/null
    i=$((i + 1))
done
i=0
while [ $i -lt {N_EXECS} ]; do
    /bin/true
    i=$((i + 1))
done
"$PY" "$D/triggers.py"
for i in 1 2 3; do
    cp /bin/true /dev/shm/pt-bench-true-$$
    /dev/shm/pt-bench-true-$$ || true
    rm -f /dev/shm/pt-bench-true-$$
done
"""

TRIGGERS_PY = """\
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
for _ in range(5):  # TRC-102: PTRACE_TRACEME, each in its own child
    pid = os.fork()
    if pid == 0:
        libc.ptrace(0, 0, None, None)
        os._exit(0)
    os.waitpid(pid, 0)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
for _ in range(20):  # plain connects: selected by TRC-101, no finding
    c = socket.create_connection(srv.getsockname())
    a, _ = srv.accept()
    c.sendall(b"x"); a.recv(1); c.close(); a.close()
c = socket.create_connection(srv.getsockname())
pid = os.fork()
if pid == 0:  # TRC-101: a TCP socket as stdout
    os.dup2(c.fileno(), 1)
    os._exit(0)
os.waitpid(pid, 0)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for _ in range(3):  # TRC-104: W+X mapping, write removed
    p = libc.mmap(None, 4096, 7, 0x22, -1, 0)
    libc.mprotect(p, 4096, 5)
"""

C_TEMPLATE = """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct r{n} {{ int id; char name[32]; }};
static int cmp{n}(const void *a, const void *b)
{{ return ((const struct r{n} *)a)->id - ((const struct r{n} *)b)->id; }}
int unit{n}(void)
{{
    struct r{n} r[8];
    for (int k = 0; k < 8; k++) {{ r[k].id = (k * {n}) % 7; snprintf(r[k].name, 32, "%d", k); }}
    qsort(r, 8, sizeof r[0], cmp{n});
    return r[0].id + (int)strlen(r[7].name);
}}
"""

# pt-detload load RATE SECONDS: getppid at RATE/s, paced every ms; prints the count.
# pt-detload trigger RATE SECONDS: RATE forks/s, each child calls ptrace(PTRACE_TRACEME)
# and exits; prints "<child pid> <CLOCK_REALTIME ns before the fork>" per child.
DETLOAD_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s load|trigger RATE SECONDS\n", argv[0]);
        return 2;
    }
    int trigger = strcmp(argv[1], "trigger") == 0;
    double rate = atof(argv[2]), secs = atof(argv[3]);
    long long t0 = now_ns(CLOCK_MONOTONIC), end = t0 + (long long)(secs * 1e9);
    long long step = trigger ? (long long)(1e9 / rate) : 1000000LL, next = t0;
    long done = 0;
    struct timespec ts;
    for (;;) {
        long long now = now_ns(CLOCK_MONOTONIC);
        if (now >= end)
            break;
        if (trigger) {
            long long before = now_ns(CLOCK_REALTIME);
            pid_t pid = fork();
            if (pid == 0) {
                ptrace(PTRACE_TRACEME, 0, NULL, NULL);
                _exit(0);
            }
            if (pid > 0) {
                waitpid(pid, NULL, 0);
                printf("%d %lld\n", (int)pid, before);
                done++;
            }
        } else {
            long target = (long)((double)(now - t0) * rate / 1e9);
            while (done < target) {
                syscall(SYS_getppid);
                done++;
            }
        }
        next += step;
        ts.tv_sec = next / 1000000000LL;
        ts.tv_nsec = next % 1000000000LL;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    if (!trigger)
        printf("%ld\n", done);
    return 0;
}
"""


# ---------------------------------------------------------------- set-up

def make_workload(tmp: Path) -> Path:
    d = tmp / "workload"
    for sub in ("src", "obj", "files"):
        (d / sub).mkdir(parents=True)
    for n in range(1, N_SOURCES + 1):
        (d / "src" / f"unit{n:02d}.c").write_text(C_TEMPLATE.format(n=n))
    for n in range(1, N_FILES + 1):
        (d / "files" / f"f{n:04d}.txt").write_text(f"file {n}\n")
    (d / "run.sh").write_text(WORKLOAD_SH)
    (d / "triggers.py").write_text(TRIGGERS_PY)
    return d


def build_detload(tmp: Path) -> Path:
    src, exe = tmp / "detload.c", tmp / COMM
    src.write_text(DETLOAD_C)
    r = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"compiling pt-detload failed: {r.stderr.strip()}")
    return exe


def start_pytracee(args: list[str], stdout: Any = subprocess.DEVNULL
                   ) -> tuple[subprocess.Popen, storm.LineCollector]:
    p = CHILDREN.spawn([str(PYTRACEE)] + args, stdout=stdout, stderr=subprocess.PIPE)
    err = storm.LineCollector(p.stderr)
    if not err.wait_for("pytracee: tracing", ATTACH_TIMEOUT_S):
        CHILDREN.stop(p)
        raise BenchError(f"pytracee did not attach (exit {p.poll()}): {err.tail()}")
    return p, err


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def record_stream(tmp: Path, min_events: int, timeout: float) -> tuple[Path, dict]:
    """The recorded stream: pytracee system-wide while rounds of the workload run."""
    workload = make_workload(tmp)
    out = tmp / "stream.json"
    t0 = time.monotonic()
    p, err = start_pytracee(["-o", f"json:{out}", "-e", "tag=default", "-e", RECORD_EXTRA])
    rounds = 0
    try:
        storm.wait_idle(p.pid, 15)
        while rounds < MAX_ROUNDS:
            rounds += 1
            log(f"recording: workload round {rounds} ...")
            w = CHILDREN.spawn(["bash", str(workload / "run.sh"), str(workload), sys.executable],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _, werr = w.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BenchError(f"workload did not finish within {timeout:.0f}s") from None
            finally:
                CHILDREN.stop(w, signal.SIGKILL, 5)
            if w.returncode != 0:
                tail = " | ".join(werr.decode(errors="replace").strip().splitlines()[-3:])
                raise BenchError(f"workload exited {w.returncode}: {tail or 'no output'}")
            # pytracee's output buffer (1 MiB) lags: this undercounts a little
            if count_lines(out) >= min_events:
                break
        summary = storm.stop_pytracee(p, err)
    finally:
        CHILDREN.stop(p)
    summary.update(rounds=rounds, record_s=time.monotonic() - t0)
    return out, summary


def load_stream(path: Path) -> tuple[list[Event], int]:
    """Every recorded line as an Event (lines that are not events are counted, skipped)."""
    events: list[Event] = []
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                events.append(event_from_json(orjson.loads(line)))
            except (orjson.JSONDecodeError, BadEvent):
                bad += 1
    return events, bad


# ---------------------------------------------------------------- throughput cases

class AbsentSignature(Signature):
    """Selects one event the stream does not have: routing cost only."""

    def __init__(self, event: str) -> None:
        super().__init__()
        self.metadata = SignatureMetadata(id="BENCH-1", name="bench: absent event",
                                          event_name="bench_absent_event")
        self.selected_events = (EventSelector(event),)

    def on_event(self, event: Event) -> None:
        pass


class NoopSignature(Signature):
    """A built-in's metadata and selected events, no logic: the engine's own cost."""

    def __init__(self, like: Signature) -> None:
        super().__init__()
        self.metadata = like.metadata
        self.selected_events = like.selected_events

    def on_event(self, event: Event) -> None:
        pass


@dataclass
class Case:
    key: str
    label: str
    factory: Callable[[], list[Signature]] | None   # fresh signatures per run
    events: list[Event] = field(default_factory=list)
    unavailable: str = ""                            # why it cannot run here
    per_eval: bool = False                           # rate reported per on_event call


def batches(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i:i + size] for i in range(0, len(events), size)]


def replicate(events: list[Event], evals_per_pass: int, min_evals: int) -> list[Event]:
    if not events or evals_per_pass <= 0:
        return []
    k = max(1, -(-min_evals // evals_per_pass))
    return events * k


def selected_by(sigs: list[Signature], stream: list[Event]) -> tuple[list[Event], int]:
    """The stream's events some signature selects, and the on_event calls they make."""
    eng = Engine(sigs)
    ids = eng.selected_ids
    sel = [ev for ev in stream if ev.event_id in ids]
    eng.process(sel)
    return sel, sum(s.events for s in eng.counts.by_signature.values())


def optional_factory(module: str, directory: Path, suffixes: tuple[str, ...]
                     ) -> tuple[Callable[[], list[Signature]] | None, str]:
    """Signatures of `directory` loaded by `module`, or why that is not possible."""
    if importlib.util.find_spec(module) is None:
        return None, f"{module} not present"
    files = sorted(str(p) for p in directory.glob("*") if p.suffix in suffixes) \
        if directory.is_dir() else []
    if not files:
        return None, f"no {'/'.join(suffixes)} files in {directory.relative_to(ROOT)}"

    def factory() -> list[Signature]:
        sigs, errors = load_signature_dirs(files)
        if errors:
            raise BenchError("; ".join(str(e) for e in errors[:3]))
        return sigs
    try:
        if not factory():
            return None, "no signatures loaded"
    except Exception as exc:  # a module in progress may fail in any way
        return None, f"does not load: {type(exc).__name__}: {exc}"
    return factory, ""


def make_cases(stream: list[Event], min_evals: int) -> tuple[list[Case], dict]:
    info: dict[str, Any] = {}
    builtins = builtin_signatures()
    register(builtins)
    eng = Engine(builtins)
    info["builtins"] = len(builtins)
    info["selected"] = sum(1 for ev in stream if ev.event_id in eng.selected_ids)
    present = {ev.name for ev in stream}
    absent = next((n for n in ABSENT_CANDIDATES if n not in present), None)
    cases = [Case("py_all", "python built-ins, whole stream", builtin_signatures, stream)]
    if absent is None:
        cases.append(Case("route", "route only (no signature selects)", None,
                          unavailable="every candidate event is in the stream"))
    else:
        info["absent_event"] = absent
        cases.append(Case("route", "route only (no signature selects)",
                          lambda: [AbsentSignature(absent)], stream))
    cases.append(Case("noop", "no-op sigs, built-ins' selections",
                      lambda: [NoopSignature(s) for s in builtin_signatures()], stream))
    sel, evals = selected_by(builtin_signatures(), stream)
    info["builtin_evals"] = evals
    kinds = collections.Counter(ev.name for ev in stream)
    info["fan_out"] = {name: sum(1 for s in builtins
                                 if any(e.name == name for e in s.selected_events))
                       for name, _ in kinds.most_common(4)}
    cases.append(Case("py_sel", "python built-ins, selected events", builtin_signatures,
                      replicate(sel, evals, min_evals), per_eval=True))
    for key, label, module, directory, suffixes in (
            ("rego", "rego, selected events", "pytracee.detect.rego", REGO_DIR, (".rego",)),
            ("cel", "yaml+cel, selected events", "pytracee.detect.cel", YAML_DIR,
             (".yaml", ".yml"))):
        factory, why = optional_factory(module, directory, suffixes)
        if factory is None:
            cases.append(Case(key, label, None, unavailable=why, per_eval=True))
            continue
        sel, evals = selected_by(factory(), stream)
        c = Case(key, label, factory, replicate(sel, evals, min_evals), per_eval=True)
        if not c.events:
            c.unavailable = "the stream has no event these signatures select"
        cases.append(c)
    return cases, info


def run_throughput(case: Case, batch: int) -> dict:
    sigs = case.factory() if case.factory else []
    eng = Engine(sigs)
    parts = batches(case.events, batch)
    process = eng.process
    gc.collect()
    t0 = time.perf_counter_ns()
    for b in parts:
        process(b)
    elapsed = (time.perf_counter_ns() - t0) / 1e9
    stats = eng.counts.by_signature.values()
    evals = sum(s.events for s in stats)
    return {"events": len(case.events), "evals": evals, "elapsed_s": elapsed,
            "events_rate": len(case.events) / elapsed, "evals_rate": evals / elapsed,
            "ns_per_event": elapsed * 1e9 / len(case.events),
            "detections": eng.counts.detections, "signatures": len(sigs),
            "sig_errors": sum(s.errors for s in stats), "slow_calls": sum(s.slow for s in stats)}


def throughput_case(case: Case, batch: int) -> dict:
    t = time.monotonic()
    try:
        r = run_throughput(case, batch)
    except Exception as exc:  # report, keep the other cases going
        r = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"  error: {r['error']}")
    else:
        log(f"  {r['events']:,} events, {r['evals']:,} on_event calls in "
            f"{r['elapsed_s']:.3f}s ({time.monotonic() - t:.1f}s)")
    return r


# ---------------------------------------------------------------- live latency

class StdoutReader:
    """pytracee's stdout read as it arrives (os.read): each line stamped with
    time.time_ns() of the read that completed it."""

    DET_KEY = b'"eventName":"anti_debugging"'
    TS_KEY = b'"timestamp":'

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.detections: list[tuple[int, bytes]] = []   # (read ns, line)
        self.busy_lat_ns: list[int] = []                  # read ns - timestamp, other lines
        self.reads: list[tuple[int, int]] = []            # (read ns, bytes)
        self.other = 0
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        rest = b""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                break
            now = time.time_ns()
            if not chunk:
                break
            self.reads.append((now, len(chunk)))
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for ln in lines:
                if self.DET_KEY in ln:
                    self.detections.append((now, ln))
                    continue
                i = ln.find(self.TS_KEY)
                if i < 0:
                    self.other += 1
                    continue
                i += len(self.TS_KEY)
                j = ln.find(b",", i)
                try:
                    self.busy_lat_ns.append(now - int(ln[i:j]))
                except ValueError:
                    self.other += 1

    def join(self, timeout: float) -> None:
        self._t.join(timeout)


def pct(vals: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def lat_stats(ns: list[int]) -> dict:
    if not ns:
        return {"n": 0}
    ms = [v / 1e6 for v in ns]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms),
            "min_ms": min(ms)}


def live_latency(ctx: argparse.Namespace, with_load: bool) -> dict:
    """One live run: pytracee, (the load,) the trigger; latencies from its stdout."""
    secs = ctx.latency_seconds
    p, err = start_pytracee(["-o", "json", "-e", "anti_debugging", "-e", "getppid",
                             "-s", f"comm={COMM}"], stdout=subprocess.PIPE)
    reader = StdoutReader(p.stdout.fileno())
    load = trig = None
    try:
        storm.wait_idle(p.pid, 15)
        load_start = time.time_ns()
        if with_load:  # runs 1 s before and after the trigger window
            load = CHILDREN.spawn([str(ctx.detload), "load", str(ctx.load_rate), str(secs + 2)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1.0)
        trig = CHILDREN.spawn([str(ctx.detload), "trigger", str(ctx.trigger_rate), str(secs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        tout, terr = trig.communicate(timeout=secs + 30)
        if trig.returncode != 0:
            raise BenchError(f"trigger exited {trig.returncode}: {terr.decode().strip()}")
        calls = {int(a): int(b) for a, b in (ln.split() for ln in tout.decode().splitlines())}
        load_calls = None
        if load is not None:
            lout, lerr = load.communicate(timeout=secs + 30)
            if load.returncode != 0:
                raise BenchError(f"load exited {load.returncode}: {lerr.decode().strip()}")
            load_calls = int(lout.split()[-1])
        load_end = time.time_ns()
        deadline = time.monotonic() + 3.0  # the last detections: the idle flush
        while len(reader.detections) < len(calls) and time.monotonic() < deadline:
            time.sleep(0.05)
        summary = storm.stop_pytracee(p, err)
    finally:
        for c in (trig, load):
            if c is not None:
                CHILDREN.stop(c, signal.SIGKILL, 5)
        CHILDREN.stop(p)
    reader.join(5)

    lat, e2e, kernel_off = [], [], []
    for read_ns, line in reader.detections:
        doc = orjson.loads(line)
        ts = doc["timestamp"]
        lat.append(read_ns - ts)
        before = calls.get(doc.get("hostProcessId"))
        if before is not None:
            e2e.append(read_ns - before)
            kernel_off.append(ts - before)
    busy_reads = [(t, n) for t, n in reader.reads if load_start <= t <= load_end]
    gaps = [(b[0] - a[0]) / 1e6 for a, b in zip(busy_reads, busy_reads[1:])]
    r: dict[str, Any] = {
        "with_load": with_load, "triggers": len(calls), "detections": len(reader.detections),
        "latency": lat_stats(lat), "syscall_to_read": lat_stats(e2e),
        "clock_check_us": statistics.median(kernel_off) / 1e3 if kernel_off else None,
        "busy_lines": len(reader.busy_lat_ns), "busy_latency": lat_stats(reader.busy_lat_ns),
        "reads": len(busy_reads),
        "read_gap_ms_p50": statistics.median(gaps) if gaps else None,
        "read_kib_p50": statistics.median(n for _, n in busy_reads) / 1024 if busy_reads else None,
        "delivered": summary["delivered"], "lost": summary["lost"]}
    if load_calls is not None:
        r["load_calls"] = load_calls
        r["load_rate"] = len(reader.busy_lat_ns) / (secs + 2)  # busy lines printed per s
        r["load_generated_rate"] = load_calls / (secs + 2)
    return r


# ---------------------------------------------------------------- report

def human(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.0f}"


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        m: dict[str, Any] = {"runs": len(runs), "ok_runs": len(ok)}
        for k in ("events_rate", "evals_rate", "ns_per_event", "elapsed_s"):
            vals = [r[k] for r in ok]
            if vals:
                m[k] = statistics.median(vals)
                m[k + "_min"], m[k + "_max"] = min(vals), max(vals)
        for k in ("events", "evals", "detections", "signatures"):
            if ok:
                m[k] = ok[0][k]
        for k in ("sig_errors", "slow_calls"):
            if ok:
                m[k] = max(r[k] for r in ok)
        errors = sorted({r["error"] for r in runs if "error" in r})
        if errors:
            m["errors"] = errors
        out[key] = m
    return out


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + \
        [line(r) for r in rows]


def render(args: argparse.Namespace, cases: list[Case], med: dict[str, dict],
           live: dict[str, dict], notes: list[str]) -> str:
    lines = [f"signature engine: kernel {platform.release()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}, runs={args.runs}, batch={args.batch}",
             f"every throughput figure is the MEDIAN of {args.runs} runs (interleaved, order "
             "rotated every run), min..max in brackets"]
    lines += [f"note: {n}" for n in notes]
    head = ["case", "sigs", "events in", "on_event calls", "events/s", "(min..max)",
            "evals/s", "(min..max)", "ns/event", "detections", "runs ok"]
    rows = []
    for c in cases:
        m = med.get(c.key)
        if c.unavailable or m is None:
            rows.append([c.label, "not available: " + (c.unavailable or "?")]
                        + [""] * (len(head) - 2))
            continue
        if not m["ok_runs"]:
            rows.append([c.label, "ERROR: " + "; ".join(m.get("errors", ["?"]))[:110]]
                        + [""] * (len(head) - 2))
            continue
        ev_rate = human(m["events_rate"])
        ev_span = f"{human(m['events_rate_min'])}..{human(m['events_rate_max'])}"
        e_rate, e_span = "-", "-"
        if m["evals"]:
            e_rate = human(m["evals_rate"])
            e_span = f"{human(m['evals_rate_min'])}..{human(m['evals_rate_max'])}"
        rows.append([c.label, str(m["signatures"]), f"{m['events']:,}", f"{m['evals']:,}",
                     ev_rate, ev_span, e_rate, e_span, f"{m['ns_per_event']:,.0f}",
                     f"{m['detections']:,}", f"{m['ok_runs']}/{m['runs']}"])
    lines += table(head, rows)
    for c in cases:
        m = med.get(c.key, {})
        if m.get("errors") and m.get("ok_runs"):
            lines.append(f"  {c.label}: {m['runs'] - m['ok_runs']} run(s) failed: "
                         + "; ".join(m["errors"]))
        if m.get("sig_errors") or m.get("slow_calls"):
            lines.append(f"  {c.label}: signature errors {m.get('sig_errors', 0)}, on_event "
                         f"calls over 5 ms {m.get('slow_calls', 0)} (worst run)")
    spreads = [((m["events_rate_max"] - m["events_rate_min"]) / m["events_rate"] * 100, c.label)
               for c in cases if (m := med.get(c.key, {})).get("ok_runs", 0) >= 2]
    if spreads:
        worst, label = max(spreads)
        lines.append(f"run-to-run spread: up to {worst:.0f} % of the median ({label}; max-min "
                     "over median); this kernel and its CPUs are shared, so slow outliers are "
                     "other load")
    lines.append("peers: none; no other signature engine runs here (Tracee's Go engine is "
                 "not installed)")

    if live:
        lines.append("")
        lines.append(f"live detection latency: pytracee -o json -e anti_debugging -e getppid "
                     f"-s comm={COMM}; trigger: {args.trigger_rate} PTRACE_TRACEME/s for "
                     f"{args.latency_seconds:g} s; latency = read by the bench - detection "
                     "timestamp (ms)")
        head = ["run", "busy lines/s", "detections", "p50", "p99", "max",
                "busy lines p50", "p99", "output reads", "read gap p50", "read size p50",
                "lost"]
        rows = []
        for key, label in (("busy", f"load {args.load_rate:,}/s getppid"),
                           ("idle", "no load")):
            r = live.get(key)
            if r is None:
                continue
            if "error" in r:
                rows.append([label, "ERROR: " + r["error"][:110]] + [""] * (len(head) - 2))
                continue
            la, bl = r["latency"], r["busy_latency"]
            rows.append([
                label, f"{r['load_rate']:,.0f}" if "load_rate" in r else "-",
                f"{r['detections']}/{r['triggers']}",
                *(f"{la[k]:.1f}" if la["n"] else "-" for k in ("p50_ms", "p99_ms", "max_ms")),
                f"{bl['p50_ms']:.1f}" if bl["n"] else "-",
                f"{bl['p99_ms']:.1f}" if bl["n"] else "-",
                f"{r['reads']:,}",
                f"{r['read_gap_ms_p50']:.1f} ms" if r["read_gap_ms_p50"] is not None else "-",
                f"{r['read_kib_p50']:.1f} KiB" if r["read_kib_p50"] is not None else "-",
                f"{r['lost']:,}"])
        lines += table(head, rows)
        for key in ("busy", "idle"):
            r = live.get(key)
            if r and "error" not in r and r.get("clock_check_us") is not None:
                lines.append(f"  {key}: detection timestamp - trigger's CLOCK_REALTIME before "
                             f"fork: median {r['clock_check_us']:.0f} us (clock check); "
                             f"syscall -> read p50/p99 "
                             f"{r['syscall_to_read']['p50_ms']:.1f}/"
                             f"{r['syscall_to_read']['p99_ms']:.1f} ms")

    lines.append("")
    m = med.get("py_all", {})
    if m.get("ok_runs"):
        rate = m["events_rate"]
        lines.append(f"target >= {TARGET_DISPATCH:,} events/s dispatched, Python built-ins, "
                     f"whole stream: {'MET' if rate >= TARGET_DISPATCH else 'NOT MET'} "
                     f"(median {rate:,.0f}/s)")
    r_m = med.get("rego", {})
    rego_case = next(c for c in cases if c.key == "rego")
    if rego_case.unavailable:
        lines.append(f"target >= {TARGET_REGO:,} Rego evaluations/s: not available "
                     f"({rego_case.unavailable})")
    elif r_m.get("ok_runs"):
        rate = r_m["evals_rate"]
        lines.append(f"target >= {TARGET_REGO:,} Rego evaluations/s: "
                     f"{'MET' if rate >= TARGET_REGO else 'NOT MET'} (median {rate:,.0f}/s)")
    busy = live.get("busy")
    if busy and "error" not in busy and busy["latency"]["n"]:
        p99 = busy["latency"]["p99_ms"]
        enough = busy["detections"] >= MIN_DETECTIONS
        lines.append(f"target p99 <= {TARGET_P99_MS:.0f} ms detection latency at "
                     f"{args.load_rate:,} events/s: "
                     f"{'MET' if p99 <= TARGET_P99_MS else 'NOT MET'} (p99 {p99:.1f} ms over "
                     f"{busy['detections']} detections"
                     + ("" if enough else f"; fewer than {MIN_DETECTIONS}") + ")")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--runs", type=int, default=5, help="runs per case; the median is shown")
    ap.add_argument("--batch", type=int, default=256, help="events per engine.process call")
    ap.add_argument("--min-events", type=int, default=50_000,
                    help="record workload rounds until the stream has this many events")
    ap.add_argument("--min-evals", type=int, default=20_000,
                    help="selected-events cases: replicate until this many on_event calls")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per workload round")
    ap.add_argument("--latency-seconds", type=float, default=10.0, help="trigger window")
    ap.add_argument("--load-rate", type=int, default=10_000, help="getppid/s of the load")
    ap.add_argument("--trigger-rate", type=int, default=20, help="PTRACE_TRACEME/s")
    ap.add_argument("--no-live", action="store_true", help="skip the live latency runs")
    ap.add_argument("--json", action="store_true",
                    help="print the raw numbers as JSON on stdout (the table goes to stderr)")
    args = ap.parse_args()
    if min(args.runs, args.batch, args.min_events, args.min_evals, args.load_rate,
           args.trigger_rate) <= 0 or args.latency_seconds <= 0 or args.timeout <= 0:
        ap.error("every number must be positive")
    if not shutil.which("gcc"):
        log("gcc not found (apt-get install -y gcc)")
        return 2
    code = storm.prepare("BPF")
    if code is not None:
        return code
    # slow-call warnings are counted in the table instead
    logging.getLogger("pytracee.detect.engine").setLevel(logging.ERROR)

    t_start = time.monotonic()
    notes: list[str] = []
    live: dict[str, dict] = {}
    stream_info: dict[str, Any] = {}
    try:
        with open("/proc/loadavg") as f:
            notes.append(f"load average at start: {' '.join(f.read().split()[:3])}")
    except OSError:
        pass
    try:
        with tempfile.TemporaryDirectory(prefix="pt-detect-") as tmp:
            path, rec = record_stream(Path(tmp), args.min_events, args.timeout)
            register(builtin_signatures())  # signature events known before decoding
            t = time.monotonic()
            stream, bad = load_stream(path)
            kinds = collections.Counter(ev.name for ev in stream)
            stream_info = {"events": len(stream), "not_events": bad, "record": rec,
                           "decode_s": time.monotonic() - t, "kinds": dict(kinds)}
            if not stream:
                raise BenchError("the recording has no events")
            cases, info = make_cases(stream, args.min_evals)
            stream_info.update(info)
            top = ", ".join(f"{n} {c:,}" for n, c in kinds.most_common(6))
            notes.append(f"stream: {len(stream):,} events recorded system-wide in "
                         f"{rec['record_s']:.1f} s ({rec['rounds']} workload round(s), "
                         f"lost {rec['lost']:,}), decoded once in "
                         f"{stream_info['decode_s']:.1f} s; {len(kinds)} kinds, most: {top}")
            notes.append(f"{info['builtins']} built-in signatures; they select "
                         f"{info['selected']:,} of the {len(stream):,} events "
                         f"({info['selected'] / len(stream) * 100:.1f} %), "
                         f"{info['builtin_evals'] / len(stream):.1f} on_event calls per event "
                         "on average; built-ins selecting the most frequent kinds: "
                         + ", ".join(f"{k} {n}" for k, n in info["fan_out"].items()))
            if "absent_event" in info:
                notes.append(f"route only: one signature selecting {info['absent_event']} "
                             "(not in the stream)")
            runnable = [c for c in cases if not c.unavailable]
            results: dict[str, list[dict]] = {c.key: [] for c in runnable}
            for c in runnable:
                log(f"warm-up: {c.label} ...")
                throughput_case(c, args.batch)
            for run in range(args.runs):
                shift = run % len(runnable)
                for c in runnable[shift:] + runnable[:shift]:
                    log(f"run {run + 1}/{args.runs}: {c.label} ...")
                    results[c.key].append(throughput_case(c, args.batch))
            if not args.no_live:
                args.detload = build_detload(Path(tmp))
                for key, with_load in (("busy", True), ("idle", False)):
                    log(f"live latency: {'with' if with_load else 'without'} load ...")
                    try:
                        live[key] = live_latency(args, with_load)
                    except (BenchError, OSError, subprocess.SubprocessError) as exc:
                        live[key] = {"error": str(exc) or type(exc).__name__}
                        log(f"  error: {live[key]['error']}")
                    else:
                        log(f"  {live[key]['detections']} detections, latency "
                            f"{live[key]['latency']}")
    except KeyboardInterrupt:
        log("interrupted: stopping children")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        CHILDREN.stop_all()

    med = summarize(results)
    try:
        with open("/proc/loadavg") as f:
            notes.append(f"load average at end: {' '.join(f.read().split()[:3])}")
    except OSError:
        pass
    notes.append(f"bench run time {time.monotonic() - t_start:.0f} s")
    text = render(args, cases, med, live, notes)
    if args.json:
        print(text, file=sys.stderr)
        json.dump({"kernel": platform.release(), "cpus": os.cpu_count(), "runs": args.runs,
                   "batch": args.batch, "stream": stream_info, "notes": notes,
                   "unavailable": {c.key: c.unavailable for c in cases if c.unavailable},
                   "targets": {"dispatch_events_s": TARGET_DISPATCH,
                               "rego_evals_s": TARGET_REGO, "p99_ms": TARGET_P99_MS},
                   "median": med, "raw": results, "live": live}, sys.stdout, indent=2)
        print()
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
