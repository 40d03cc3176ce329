"""Loader and reader of bench/progs/lean_open.bpf.c, the "lean opens" case of
bench/mixed_workload.py (run by it as a child):

    .venv/bin/python bench/lean_open.py OBJECT

Loads the object with pytracee's libbpf binding, attaches its two programs, writes
"lean: attached" to stderr, then reads the ring (the reader pytracee uses, waking as
pytracee does: wait, drain, let records gather for COALESCE_S) and looks at each record's
two length fields, until SIGINT or SIGTERM. It then prints one line to stdout:
"records R bytes B sent S lost L" (S and L from the program's counters). It decodes
nothing else: the user-space side of a tracer at its cheapest.
"""

from __future__ import annotations

import signal
import struct
import sys
import time
from pathlib import Path

try:
    import pytracee  # noqa: F401
except ImportError:  # not run with .venv/bin/python: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from pytracee.ebpf.libbpf import BpfObject  # noqa: E402
from pytracee.ebpf.ringbuf import RingReader  # noqa: E402
from pytracee.events import wire  # noqa: E402
from pytracee.events.definitions import BY_NAME  # noqa: E402
from pytracee.pipeline import COALESCE_S  # noqa: E402

RING_BYTES = 16 << 20
LENS = struct.Struct("<HH")
LENS_AT = 40  # offsetof(struct lean_rec, user_len)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    obj = BpfObject.open(Path(sys.argv[1]))
    try:
        obj.map("events").set_max_entries(RING_BYTES)
        obj.load()
        links = [obj.program(name).attach() for name in ("lean_sys_enter", "lean_sys_exit")]
        reader = RingReader(obj.map("events").fd)
        records = nbytes = 0

        def batch(views: list[memoryview]) -> None:
            nonlocal records, nbytes
            unpack = LENS.unpack_from
            for v in views:
                user_len, path_len = unpack(v, LENS_AT)
                nbytes += user_len + path_len
            records += len(views)

        print("lean: attached", file=sys.stderr, flush=True)
        while not stop:
            if reader.wait(100) and reader.drain_batches(batch):
                time.sleep(COALESCE_S)
        reader.drain_batches(batch)
        stats, file_open = obj.map("stats"), BY_NAME["security_file_open"].id
        sent, lost = (sum(int.from_bytes(c, "little") for c in stats.lookup_percpu(
                          (kind * wire.MAX_EVENT_ID + file_open).to_bytes(4, "little")))
                      for kind in (wire.STAT_SUBMITTED, wire.STAT_LOST_RING_FULL))
        print(f"records {records} bytes {nbytes} sent {sent} lost {lost}", flush=True)
        reader.close()
        del links
    finally:
        obj.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
