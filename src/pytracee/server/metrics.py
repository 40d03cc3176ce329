"""/metrics: the counters pytracee keeps anyway, read when Prometheus scrapes.

Nothing is incremented per event for the sake of metrics: the pipeline,
the kernel's stats map, the process tree, the container manager and the
signature engine already count what they do, and `collect()` reads those
counters at scrape time. The text is Prometheus' exposition format 0.0.4.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pytracee.events.definitions import EVENTS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

Labels = Mapping[str, str]
T = TypeVar("T")


@dataclass
class Metric:
    """One metric family: a name, counter or gauge, and its samples."""

    name: str
    kind: str  # "counter" | "gauge"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, value))
        return self


def counter(name: str, help: str, value: float | None = None) -> Metric:
    m = Metric(name, "counter", help)
    return m.add(value) if value is not None else m


def gauge(name: str, help: str, value: float | None = None) -> Metric:
    m = Metric(name, "gauge", help)
    return m.add(value) if value is not None else m


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text: HELP and TYPE lines, then one line per sample."""
    lines: list[str] = []
    for m in metrics:
        if not _NAME.match(m.name):
            raise ValueError(f"invalid metric name {m.name!r}")
        if m.kind not in ("counter", "gauge"):
            raise ValueError(f"metric {m.name}: unknown type {m.kind!r}")
        lines.append(f"# HELP {m.name} {escape_help(m.help)}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            if labels:
                for key in labels:
                    if not _LABEL.match(key) or key.startswith("__"):
                        raise ValueError(f"metric {m.name}: invalid label name {key!r}")
                body = ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in labels.items())
                lines.append(f"{m.name}{{{body}}} {format_value(value)}")
            else:
                lines.append(f"{m.name} {format_value(value)}")
    return "\n".join(lines) + "\n"


def _event_name(eid: int) -> str:
    d = EVENTS.get(eid)
    return d.name if d is not None else str(eid)


def collect(pipeline: Any, enrichment: Any = None, engine: Any = None) -> list[Metric]:
    """Every metric, read now from the objects that keep the counts.

    Runs on the server's thread while the pipeline runs on its own: it only
    reads, copies lists and dicts before walking them (a copy is one atomic
    operation under the GIL), and the kernel counters are map lookups.
    """
    out: list[Metric] = []
    counts = pipeline.counts
    delivered = list(counts.delivered)
    events = counter("pytracee_events_total",
                     "Events that passed every filter and went to the outputs, by event (what "
                     "each output delivered: pytracee_destination_delivered_total).")
    for eid, n in enumerate(delivered):
        if n:
            events.add(n, event=_event_name(eid))
    out.append(events)
    lost = counter("pytracee_events_lost_total",
                   "Events the kernel could not submit, by reason (ring_full: the ring buffer "
                   "was full; submit_error: any other failure).")
    for reason, n in _retrying(pipeline.lost).items():
        lost.add(n, reason=reason)
    out.append(lost)
    skipped = counter("pytracee_bpf_runs_skipped_total",
                      "Runs of a BPF program the kernel skipped because the program was "
                      "already running on that CPU; an event of such a run is in no other "
                      "counter.")
    for prog, n in pipeline.skipped_runs().items():
        skipped.add(n, program=prog)
    out.append(skipped)
    out.append(counter("pytracee_events_filtered_total",
                       "Events dropped by filters evaluated in user space.", counts.filtered))
    out.append(counter("pytracee_output_errors_total",
                       "Failed writes or flushes to an output.", counts.sink_errors))
    out.append(counter("pytracee_internal_errors_total",
                       "Events lost to a fault in pytracee itself (each one is logged).",
                       counts.pipeline_errors))
    decoder = getattr(pipeline, "decoder", None)
    if decoder is not None:
        out.append(counter("pytracee_events_undecodable_total",
                           "Kernel records that could not be decoded (malformed or unknown event).",
                           getattr(decoder, "malformed", 0) + getattr(decoder, "unknown_events", 0)))
    out.extend(stream_metrics(list(pipeline.sinks)))
    network = getattr(pipeline, "network", None)
    if network is not None:
        out.extend(network_metrics(network))
    if engine is not None:
        out.extend(engine_metrics(engine))
    if enrichment is not None:
        out.extend(enrichment_metrics(enrichment))
    return out


def network_metrics(network: Any) -> list[Metric]:
    """Packets read from the kernel, parts of them that could not be decoded, pcap output."""
    c = network.counts
    out = [counter("pytracee_network_packets_total",
                   "Packets read from the kernel (cgroup_skb), before any network event.",
                   network.packets)]
    undecodable = counter("pytracee_network_undecodable_total",
                          "Packets (or their DNS/HTTP payloads) that could not be decoded, by part.")
    for part, n in (("packet", c.decode_errors), ("dns", c.dns_errors), ("http", c.http_errors)):
        undecodable.add(n, part=part)
    out.append(undecodable)
    pcap = network.pcap
    if pcap is not None:
        out.append(counter("pytracee_network_capture_packets_total",
                           "Packets written to pcap files (--capture network).", pcap.packets))
        out.append(counter("pytracee_network_capture_errors_total",
                           "Failed writes to pcap files.", pcap.write_errors))
    return out


def stream_metrics(sinks: Sequence[Any]) -> list[Metric]:
    """Per stream: queue depth, events queued, delivered, dropped and failed; per
    destination of a stream (those with `delivery()`): delivered, failed, pending, up.
    Plain outputs have none of these."""
    streams = [s for s in sinks if hasattr(s, "depth") and hasattr(s, "dropped")]
    if not streams:
        return []
    depth = gauge("pytracee_stream_queue_depth", "Events waiting in a stream's queue.")
    queued = counter("pytracee_stream_queued_total", "Events queued to a stream.")
    sent = counter("pytracee_stream_delivered_total",
                   "Events every destination of a stream acknowledged (written to the file, "
                   "a 2xx from the webhook, acked by Fluent Forward).")
    dropped = counter("pytracee_stream_dropped_total",
                      "Events a stream dropped without sending them: its buffer was full (drop "
                      "mode), or they were still queued when pytracee stopped waiting at exit.")
    errors = counter("pytracee_stream_errors_total",
                     "Events a stream did not deliver to every destination (one gave up after "
                     "its retries, refused them or failed to write them, or the format failed).")
    families = (depth, queued, sent, dropped, errors)
    d_sent = counter("pytracee_destination_delivered_total",
                     "Events a destination acknowledged (written, 2xx, acked).")
    d_failed = counter("pytracee_destination_failed_total",
                       "Events a destination did not take: it gave up after its retries, refused "
                       "them, a write failed, the format failed, or it was closed.")
    d_pending = gauge("pytracee_destination_pending",
                      "Events given to a destination's stream and not yet acknowledged by it "
                      "(queued, being sent, or in its buffer).")
    d_up = gauge("pytracee_destination_up",
                 "0 from a destination's failed attempt until it delivers again, else 1.")
    for i, s in enumerate(streams):
        name = str(getattr(s, "name", "") or f"stream{i}")
        for metric, attr in ((depth, "depth"), (queued, "queued"), (sent, "delivered"),
                             (dropped, "dropped"), (errors, "errors")):
            value = getattr(s, attr, None)
            if callable(value):
                value = value()
            if isinstance(value, (int, float)):
                metric.add(value, stream=name)
        delivery = getattr(s, "delivery", None)
        for row in (delivery() if callable(delivery) else ()):
            labels = {"stream": name, "destination": row.destination}
            d_sent.add(row.delivered, **labels)
            d_failed.add(row.failed, **labels)
            d_pending.add(row.pending, **labels)
            d_up.add(int(row.up), **labels)
    return [m for m in (*families, d_sent, d_failed, d_pending, d_up) if m.samples]


def engine_metrics(engine: Any) -> list[Metric]:
    c = engine.counts
    by_sig = dict(c.by_signature)
    event_of = {s.metadata.id: s.metadata.event_name for s in list(engine.signatures)}
    detections = counter("pytracee_detections_total",
                         "Findings of each signature (before policy and output filters).")
    processed = counter("pytracee_signature_events_total", "Events given to each signature.")
    errors = counter("pytracee_signature_errors_total", "Calls of a signature that raised.")
    slow = counter("pytracee_signature_slow_calls_total",
                   "Sampled calls of a signature that took longer than the slow threshold.")
    for sid in sorted(by_sig):
        st = by_sig[sid]
        detections.add(st.findings, signature=sid, event=event_of.get(sid, ""))
        processed.add(st.events, signature=sid)
        errors.add(st.errors, signature=sid)
        slow.add(st.slow, signature=sid)
    return [detections, processed, errors, slow,
            counter("pytracee_detection_chain_depth_exceeded_total",
                    "Detections not passed on to other signatures because the chain was too deep.",
                    c.chain_depth_exceeded)]


def enrichment_metrics(enrichment: Any) -> list[Metric]:
    out: list[Metric] = []
    tree = enrichment.tree
    if tree is not None:
        out.append(gauge("pytracee_proctree_processes", "Processes in the process tree.", len(tree)))
        out.append(counter("pytracee_proctree_evicted_total",
                           "Live processes pushed out of the process tree by its size bound.",
                           tree.evicted))
    manager = enrichment.manager
    if manager is not None:
        c = manager.counts
        out.append(gauge("pytracee_containers", "Containers known.",
                         _retrying(lambda: len(manager.containers()))))
        out.append(counter("pytracee_enrichment_lookups_total",
                           "Queries made to container runtimes.", c.lookups))
        errors = counter("pytracee_enrichment_errors_total",
                         "Container enrichment failures, by kind (runtime: the runtime was "
                         "unavailable; not_found: it did not know the container; unsupported: "
                         "no client for its runtime; late: events sent without runtime data "
                         "after the wait).")
        for kind, n in (("runtime", c.errors), ("not_found", c.not_found),
                        ("unsupported", c.unsupported), ("late", c.late)):
            errors.add(n, kind=kind)
        out.append(errors)
    return out


def _retrying(read: Callable[[], T], attempts: int = 5) -> T:
    """A reading that walks a dict the event thread may resize meanwhile (a policy
    reload, a new container)."""
    for _ in range(attempts - 1):
        try:
            return read()
        except RuntimeError:  # dictionary changed size during iteration
            continue
    return read()
