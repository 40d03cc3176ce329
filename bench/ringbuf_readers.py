"""Ring buffer readers: mmap RingReader vs libbpf's callback ring_buffer.

    .venv/bin/python bench/ringbuf_readers.py [--records N] [--runs R]

A C "storm" calls syscall(SYS_getppid) N times per go-signal; the test program
(tests/kernel/bpf/ringbuf_test.bpf.c, target pid = the storm) writes one
16-byte record per call. Each reader decodes the u64 seq of every record.

  prefilled  the storm finishes first, then the reader alone drains the ring:
             pure reader cost, the figure that decides which reader we keep
  live       the reader drains while the storm runs (2 CPUs: one each)

Prints records/s (median of R runs, runs interleaved across readers) and the
ratio against libbpf's reader measured in the same run. Needs root.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pytracee.ebpf.libbpf import BpfObject, LibbpfRingBuffer, set_log_handler  # noqa: E402
from pytracee.ebpf.ringbuf import RingReader  # noqa: E402

BPF_SRC = ROOT / "tests" / "kernel" / "bpf" / "ringbuf_test.bpf.c"
RING_BYTES = 1 << 25  # 32 MiB: 1.4 M records of 24 bytes, so prefilled runs never drop

STORM_C = r"""
#include <sys/syscall.h>
#include <stdlib.h>
#include <unistd.h>
/* One byte on stdin = one burst of N getppid syscalls; one byte back when done. */
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    char c;
    while (read(0, &c, 1) == 1) {
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
        if (write(1, "d", 1) != 1)
            return 1;
    }
    return 0;
}
"""

U64 = struct.Struct("<Q")


def build(tmp: Path) -> tuple[Path, Path]:
    vmlinux = tmp / "vmlinux.h"
    with vmlinux.open("w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f, check=True)
    obj = tmp / "ringbuf_test.bpf.o"
    subprocess.run(
        ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", f"-I{tmp}", "-c", str(BPF_SRC), "-o", str(obj)],
        check=True,
    )
    (tmp / "storm.c").write_text(STORM_C)
    storm = tmp / "storm"
    subprocess.run(["cc", "-O2", "-o", str(storm), str(tmp / "storm.c")], check=True)
    return obj, storm


class Storm:
    """The traced process: bursts on demand."""

    def __init__(self, exe: Path, n: int) -> None:
        self.proc = subprocess.Popen([str(exe), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self.proc.stdin and self.proc.stdout
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.pid = self.proc.pid

    def go(self) -> None:
        self.stdin.write(b"g")

    def done(self, timeout: float) -> bool:
        if select.select([self.stdout], [], [], timeout)[0]:
            return self.stdout.read(1) == b"d"
        return False

    def stop(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=10)


def decode(data: memoryview | bytes, _unpack: Callable = U64.unpack_from) -> None:
    _unpack(data)  # the least work a real decoder does: read the first field


# A reader = (setup -> (consume_available, wait_then_consume, close)); every call returns records handled.
Reader = tuple[Callable[[], int], Callable[[], int], Callable[[], None]]


def ring_reader(fd: int) -> Reader:
    ring = RingReader(fd, RING_BYTES)

    def live() -> int:
        n = ring.drain(decode)
        if n == 0 and ring.wait(10):
            n = ring.drain(decode)
        return n

    return (lambda: ring.drain(decode)), live, ring.close


def ring_reader_batch(fd: int) -> Reader:
    ring = RingReader(fd, RING_BYTES)

    def step() -> int:
        batch = ring.drain_batch(1 << 16)
        for rec in batch:
            decode(rec)
        return len(batch)

    def drain_all() -> int:
        total = 0
        while n := step():
            total += n
        return total

    def live() -> int:
        n = step()
        if n == 0 and ring.wait(10):
            n = step()
        return n

    return drain_all, live, ring.close


def libbpf_reader(fd: int) -> Reader:
    rb = LibbpfRingBuffer(fd, decode)
    return rb.consume, (lambda: rb.poll(10)), rb.close


READERS: dict[str, Callable[[int], Reader]] = {
    "RingReader.drain (mmap)": ring_reader,
    "RingReader.drain_batch (mmap)": ring_reader_batch,
    "LibbpfRingBuffer (callbacks)": libbpf_reader,
}
BASELINE = "LibbpfRingBuffer (callbacks)"


def run_prefilled(storm: Storm, make: Callable[[int], Reader], fd: int, n: int) -> tuple[float, float]:
    """(reader records/s, storm records/s while nobody reads)."""
    consume, _, close = make(fd)
    try:
        t_go = time.perf_counter()
        storm.go()
        assert storm.done(60), "storm did not finish"
        t0 = time.perf_counter()
        got = 0
        while got < n:
            step = consume()
            assert step, f"ring ran dry after {got} of {n} records"
            got += step
        dt = time.perf_counter() - t0
    finally:
        close()
    assert got == n, (got, n)
    return n / dt, n / (t0 - t_go)


def run_live(storm: Storm, make: Callable[[int], Reader], fd: int, n: int) -> tuple[float, int]:
    consume, wait_consume, close = make(fd)
    try:
        finished = False
        got = 0
        t0 = time.perf_counter()
        storm.go()
        while got < n:
            step = wait_consume()
            got += step
            if not finished and storm.done(0):
                finished = True
            elif finished and step == 0:
                got += consume()
                break  # storm done, ring empty: the rest was dropped
        dt = time.perf_counter() - t0
        if not finished:
            assert storm.done(60), "storm did not finish"
    finally:
        close()
    return got / dt, n - got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ringbuf_readers.py needs root (BPF)")
    set_log_handler(None)  # keep libbpf quiet in the table output
    n = args.records
    with tempfile.TemporaryDirectory(prefix="pytracee-bench-") as tmp:
        obj_path, storm_exe = build(Path(tmp))
        storm = Storm(storm_exe, n)
        try:
            with BpfObject.open(obj_path) as obj:
                obj.set_global(".rodata", "cfg_target_pid", struct.pack("<I", storm.pid))
                obj.map("events").set_max_entries(RING_BYTES)
                obj.load()
                obj.program("on_sys_enter").attach_raw_tracepoint("sys_enter")
                fd = obj.map("events").fd
                pre: dict[str, list[float]] = {k: [] for k in READERS}
                live: dict[str, list[float]] = {k: [] for k in READERS}
                lost: dict[str, int] = {k: 0 for k in READERS}
                producer: list[float] = []
                run_prefilled(storm, ring_reader, fd, n)  # warm up caches, page tables
                for _ in range(args.runs):
                    for name, make in READERS.items():
                        rate, storm_rate = run_prefilled(storm, make, fd, n)
                        pre[name].append(rate)
                        producer.append(storm_rate)
                        rate, dropped = run_live(storm, make, fd, n)
                        live[name].append(rate)
                        lost[name] += dropped
        finally:
            storm.stop()

    base_pre, base_live = statistics.median(pre[BASELINE]), statistics.median(live[BASELINE])
    print(f"\nring buffer readers: {n:,} records of 16 B per run, median of {args.runs} runs, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    head = f"{'reader':<32}{'prefilled rec/s':>17}{'ratio':>8}{'live rec/s':>14}{'ratio':>8}{'lost':>8}"
    print(head)
    print("-" * len(head))
    for name in READERS:
        p, lv = statistics.median(pre[name]), statistics.median(live[name])
        print(f"{name:<32}{p:>17,.0f}{p / base_pre:>7.2f}x{lv:>14,.0f}{lv / base_live:>7.2f}x{lost[name]:>8,}")
    print(f"{'producer: traced storm, no reader':<32}{statistics.median(producer):>17,.0f}")
    print("\nratio = records/s relative to LibbpfRingBuffer in the same run; lost = records the program\n"
          "could not reserve (all runs). Live rates cannot exceed the producer line: a reader at that\n"
          "rate keeps up with the storm.")


if __name__ == "__main__":
    main()
