"""Rego evaluations per second, both engines side by side (median of 3 runs).

    .venv/bin/python bench/rego_eval.py [N]

Signature: signatures/rego/fileless_execution.rego; events: a sched_process_exec
of /usr/bin/ls (no match) and of memfd:x (match). Columns:
  eval      tracee_match evaluated, the event already the engine's input
  +input    the event's legacy document converted into the engine, then eval
  on_event  RegoSignature.on_event on a new event each time (event_dict too, findings)
regopy is optional (`pip install regopy==1.5.2`); it runs N/20 times, being slower.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytracee.detect.legacy import event_dict  # noqa: E402
from pytracee.detect.rego import RegoSignature, load_rego_signatures  # noqa: E402
from pytracee.detect.signature import SignatureContext  # noqa: E402
from pytracee.events.event import Event  # noqa: E402
from tests.unit.signature_fixtures import exec_event  # noqa: E402

SIGNATURE = ROOT / "signatures" / "rego" / "fileless_execution.rego"
EVENTS = {"no match": "/usr/bin/ls", "match": "memfd:x"}


def rate(fn: Callable[[int], object], n: int) -> float:
    """Median over 3 runs of n calls, per second."""
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        runs.append(n / (time.perf_counter() - t0))
    return statistics.median(runs)


def bench(engine: str, pathname: str, n: int) -> tuple[float, float, float]:
    sigs, errors = load_rego_signatures([SIGNATURE], engine=engine)
    assert not errors and len(sigs) == 1, errors
    sig: RegoSignature = sigs[0]
    found: list[object] = []
    sig.init(SignatureContext(found.append, {}))
    shared, ref = sig._shared, f"data.{sig.package}.tracee_match"
    doc = event_dict(exec_event(pathname))
    if shared.keys is not None:
        doc = {k: doc[k] for k in shared.keys if k in doc}
    shared.backend.set_input(doc)
    eval_only = rate(lambda i: shared.backend.eval(ref), n)

    def with_input(i: int) -> object:
        shared.backend.set_input(doc)
        return shared.backend.eval(ref)

    # New event objects (each is converted), of one task as in a trace: the task's
    # part of the JSON is rendered once per task.
    ev = exec_event(pathname)
    events = [Event(ev.timestamp + i, ev.retval, ev.matched, ev.event_id, ev.syscall, ev.cpu,
                    ev.version, ev.flags, ev.ctx, ev.definition, list(ev.args)) for i in range(n)]
    return eval_only, rate(with_input, n), rate(lambda i: sig.on_event(events[i]), n)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"{'engine':<8} {'event':<9} {'eval/s':>9} {'+input/s':>9} {'on_event/s':>10}")
    for engine, runs in (("regorus", n), ("regopy", max(n // 20, 100))):
        for label, pathname in EVENTS.items():
            try:
                e, i, o = bench(engine, pathname, runs)
            except ImportError:
                print(f"{engine:<8} not installed")
                break
            print(f"{engine:<8} {label:<9} {e:>9,.0f} {i:>9,.0f} {o:>10,.0f}")


if __name__ == "__main__":
    main()
