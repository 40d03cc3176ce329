"""YAML+CEL detector throughput: evaluations per second of fileless_execution.

    .venv/bin/python bench/cel_eval.py [--n N] [--runs R]

Loads signatures/yaml/fileless_execution.yaml (TRC-105) and feeds it one
sched_process_exec event N times, per case; every figure is the MEDIAN of R runs.

  on_event             CelSignature.on_event: filter lookup, condition, and on a
                       match the output fields and the finding callback
  condition only       the compiled condition's eval() alone (the CEL cost)
  event_dict(ev)       what building the legacy JSON document of the event would
                       add per event, had the CEL view been built from it
                       (pytracee builds it from the Event instead)

Events: non-matching /usr/bin/ls, matching memfd:payload.

One more row for contrast: illegitimate_shell (TRC-1016, workload.process.name in
a string list + prev_comm in a literal list, three output fields) on_event, with
comm ls (non-matching) and comm sh after nginx (matching).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytracee.detect.cel import CelSignature, load_yaml_detectors  # noqa: E402
from pytracee.detect.legacy import event_dict  # noqa: E402
from pytracee.detect.signature import Finding, SignatureContext  # noqa: E402
from pytracee.events.event import Event  # noqa: E402
from tests.unit.signature_fixtures import exec_event  # noqa: E402


def rate(fn: Callable[[], object], n: int, runs: int) -> float:
    """Median calls/s over `runs` runs of `n` calls."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append(n / (time.perf_counter() - t0))
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="evaluations per run")
    ap.add_argument("--runs", type=int, default=3, help="runs per case (median)")
    a = ap.parse_args()

    sigs, errors = load_yaml_detectors([str(ROOT / "signatures/yaml")])
    if errors:
        sys.exit(f"cannot load the detectors: {errors}")
    by_event = {s.metadata.event_name: s for s in sigs}
    sig: CelSignature = by_event["fileless_execution"]
    shell: CelSignature = by_event["illegitimate_shell"]
    findings = 0

    def found(_f: Finding) -> None:
        nonlocal findings
        findings += 1

    sig.init(SignatureContext(found, {}))
    shell.init(SignatureContext(lambda _f: None, {}))
    cond = sig._conditions[0]  # the benchmark looks inside on purpose
    events = {"non-matching": exec_event("/usr/bin/ls", comm="ls"),
              "matching": exec_event("memfd:payload", comm="payload")}

    def condition(ev: Event) -> Callable[[], object]:
        def run() -> object:
            sig._ev = ev  # what on_event sets before evaluating
            return cond.eval(None, None).value()
        return run

    def on_event(ev: Event, target: CelSignature = sig) -> Callable[[], object]:
        return lambda: target.on_event(ev)

    def legacy(ev: Event) -> Callable[[], object]:
        return lambda: event_dict(ev)

    rows = [(name, {k: rate(make(ev), a.n, a.runs) for k, ev in events.items()})
            for name, make in (("on_event", on_event), ("condition only", condition),
                               ("event_dict(ev)", legacy))]
    shell_events = {"non-matching": exec_event("/bin/ls", comm="ls", prev_comm="nginx"),
                    "matching": exec_event("/bin/sh", comm="sh", prev_comm="nginx")}
    rows.append(("illegitimate_shell on_event",
                 {k: rate(on_event(ev, shell), a.n, a.runs) for k, ev in shell_events.items()}))
    assert findings == a.n * a.runs, (findings, a.n * a.runs)  # every matching call matched

    print(f"fileless_execution (TRC-105), {a.n} calls per run, median of {a.runs}, "
          f"Python {sys.version.split()[0]}")
    width = max(len(name) for name, _ in rows)
    print(f"{'case':<{width}} {'non-matching /s':>16} {'matching /s':>12}")
    for name, r in rows:
        print(f"{name:<{width}} {r['non-matching']:>16,.0f} {r['matching']:>12,.0f}")


if __name__ == "__main__":
    main()
