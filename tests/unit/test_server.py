"""--server without the kernel: option parsing, the exposition format, what collect()
reads, the health rule, and the HTTP endpoints served from fakes."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from pytracee.cli import main
from pytracee.config import load_config
from pytracee.detect.engine import EngineCounts, SignatureStats
from pytracee.enrich.containers import EnrichCounts
from pytracee.errors import UsageError
from pytracee.events.definitions import BY_NAME
from pytracee.pipeline import Counts
from pytracee.server.http import MetricsServer, health
from pytracee.server.metrics import (CONTENT_TYPE, Metric, collect, counter, escape_label_value,
                                     gauge, render)
from pytracee.server.options import ServerOptions, parse_server_options

# One sample line of the text format: name, optional {labels}, value.
_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? '
                     r'(\S+)\Z')


def parse_exposition(text: str) -> dict[str, Any]:
    """A strict reader of the text format: every line is HELP, TYPE or a sample of
    the family announced just before; returns {family: (type, help, {labels: value})}."""
    assert text.endswith("\n")
    families: dict[str, Any] = {}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert name not in families, f"{name} announced twice"
            families[name] = [None, help_, {}]
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and kind in ("counter", "gauge"), line
            families[name][0] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            assert m.group(1) == current and families[current][0] is not None, line
            labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            float(m.group(4).replace("Inf", "inf"))  # a number
            assert labels not in families[current][2], f"duplicate sample {line}"
            families[current][2][labels] = m.group(4)
    return families


# -- options -------------------------------------------------------------------

def test_no_server_flag_no_server() -> None:
    assert parse_server_options([]) is None


def test_address_alone_serves_both_endpoints_on_loopback_3366() -> None:
    assert parse_server_options(["metrics"]) == ServerOptions("127.0.0.1", 3366, True, False)
    assert parse_server_options(["http-address=127.0.0.1:9090"]) == ServerOptions("127.0.0.1", 9090)
    assert parse_server_options(["healthz", "http-address=:8080"]) == \
        ServerOptions("127.0.0.1", 8080, metrics=False, healthz=True)
    opts = parse_server_options(["http-address=[::1]:3366"])
    assert opts is not None and opts.host == "::1" and opts.address == "[::1]:3366"
    opts = parse_server_options(["http-address=localhost:3366"])
    assert opts is not None and opts.host == "localhost"


@pytest.mark.parametrize("addr", ["0.0.0.0:3366", "[::]:3366", "10.1.2.3:80", "192.168.1.1:3366"])
def test_non_loopback_needs_allow_remote(addr: str) -> None:
    with pytest.raises(UsageError, match="not a loopback address.*unauthenticated.*allow-remote"):
        parse_server_options([f"http-address={addr}"])
    opts = parse_server_options([f"http-address={addr}", "allow-remote"])
    assert opts is not None and opts.allow_remote


@pytest.mark.parametrize("raw,msg", [
    ("http-address=3366", "HOST:PORT"),
    ("http-address=127.0.0.1:0", "1 to 65535"),
    ("http-address=127.0.0.1:70000", "1 to 65535"),
    ("http-address=127.0.0.1:x", "1 to 65535"),
    ("http-address=[::1]", "HOST:PORT"),
    ("http-address=::1:80", "HOST:PORT"),
    ("grpc-address=tcp:4466", "not supported"),
    ("pprof", "not supported"),
    ("metrics=yes", "unknown server option"),
    ("bogus", "unknown server option"),
])
def test_bad_server_options(raw: str, msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        parse_server_options([raw])


def test_cli_refuses_a_remote_address_in_one_line_exit_2() -> None:
    res = CliRunner().invoke(main, ["--server", "http-address=0.0.0.0:3366", "-e", "getppid"])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "allow-remote" in res.output


def test_config_takes_a_list_or_tracees_mapping(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: [http-address=127.0.0.1:9000, metrics]\n")
    assert load_config(str(cfg)) == {"server": ["http-address=127.0.0.1:9000", "metrics"]}
    cfg.write_text("server:\n  http-address: 127.0.0.1:9000\n  metrics: true\n  healthz: false\n")
    assert load_config(str(cfg)) == {"server": ["http-address=127.0.0.1:9000", "metrics"]}


# -- exposition format ------------------------------------------------------------

def test_render_help_type_and_samples() -> None:
    text = render([
        counter("x_total", "Things.", 3),
        gauge("depth", "How deep.").add(1.5, stream="a").add(0, stream="b"),
        counter("empty_total", "No samples yet."),
    ])
    assert text == ("# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n"
                    "# HELP depth How deep.\n# TYPE depth gauge\n"
                    'depth{stream="a"} 1.5\ndepth{stream="b"} 0\n'
                    "# HELP empty_total No samples yet.\n# TYPE empty_total counter\n")
    parse_exposition(text)


def test_label_values_and_help_are_escaped() -> None:
    nasty = 'a\\b"c\nd}e,f="g'
    assert escape_label_value(nasty) == 'a\\\\b\\"c\\nd}e,f=\\"g'
    text = render([Metric("m_total", "counter", "line1\nback\\slash").add(1, sig=nasty, other="x")])
    assert "# HELP m_total line1\\nback\\\\slash\n" in text
    assert 'm_total{sig="a\\\\b\\"c\\nd}e,f=\\"g",other="x"} 1\n' in text
    fam = parse_exposition(text)
    assert list(fam["m_total"][2]) == [(("sig", 'a\\\\b\\"c\\nd}e,f=\\"g'), ("other", "x"))]


def test_special_values_and_bad_names() -> None:
    text = render([gauge("g", "x").add(float("nan"), k="a").add(float("inf"), k="b")
                   .add(float("-inf"), k="c").add(True, k="d")])
    assert 'g{k="a"} NaN' in text and 'g{k="b"} +Inf' in text and 'g{k="c"} -Inf' in text
    assert 'g{k="d"} 1' in text
    for bad in (Metric("1abc", "counter", ""), Metric("a-b", "gauge", ""),
                Metric("ok", "histogram", ""), Metric("ok", "gauge", "").add(1, **{"bad-label": "x"}),
                Metric("ok", "gauge", "").add(1, __reserved="x")):
        with pytest.raises(ValueError):
            render([bad])


# -- collect() ---------------------------------------------------------------------

class FakeStream:
    def __init__(self, name: str) -> None:
        self.name, self.queued, self.delivered, self.dropped, self.errors = name, 10, 7, 2, 1

    @property
    def depth(self) -> int:
        return 1


def fakes() -> tuple[Any, Any, Any]:
    counts = Counts()
    counts.delivered[BY_NAME["openat"].id] = 5
    counts.delivered[BY_NAME["getppid"].id] = 2
    counts.delivered[BY_NAME["anti_debugging"].id] = 1
    counts.filtered, counts.sink_errors, counts.pipeline_errors = 4, 3, 0
    pipeline = SimpleNamespace(
        counts=counts, lost=lambda: {"ring_full": 6, "submit_error": 0},
        skipped_runs=lambda: {"trace_sys_enter": 0, "trace_sys_exit": 3},
        decoder=SimpleNamespace(malformed=1, unknown_events=0),
        sinks=[object(), FakeStream('out "json"')])
    ec = EngineCounts(detections=1, chain_depth_exceeded=0,
                      by_signature={"TRC-102": SignatureStats(events=9, findings=1),
                                    "TRC-105": SignatureStats(events=3, errors=2, slow=1)})
    sig = lambda i, e: SimpleNamespace(metadata=SimpleNamespace(id=i, event_name=e))  # noqa: E731
    engine = SimpleNamespace(counts=ec, signatures=[sig("TRC-102", "anti_debugging"),
                                                   sig("TRC-105", "fileless_execution")])
    manager = SimpleNamespace(counts=EnrichCounts(lookups=8, errors=1, not_found=2, unsupported=0, late=3),
                              containers=lambda: [1, 2])
    tree = type("Tree", (), {"evicted": 4, "__len__": lambda self: 42})()
    return pipeline, SimpleNamespace(tree=tree, manager=manager), engine


def test_collect_reads_every_counter() -> None:
    pipeline, enrichment, engine = fakes()
    fam = parse_exposition(render(collect(pipeline, enrichment, engine)))
    samples = {name: f[2] for name, f in fam.items()}
    kinds = {name: f[0] for name, f in fam.items()}
    assert samples["pytracee_events_total"] == {(("event", "getppid"),): "2", (("event", "openat"),): "5",
                                                (("event", "anti_debugging"),): "1"}
    assert samples["pytracee_events_lost_total"] == {(("reason", "ring_full"),): "6",
                                                     (("reason", "submit_error"),): "0"}
    assert samples["pytracee_bpf_runs_skipped_total"] == {(("program", "trace_sys_enter"),): "0",
                                                          (("program", "trace_sys_exit"),): "3"}
    assert samples["pytracee_events_filtered_total"] == {(): "4"}
    assert samples["pytracee_output_errors_total"] == {(): "3"}
    assert samples["pytracee_events_undecodable_total"] == {(): "1"}
    assert samples["pytracee_detections_total"] == {
        (("signature", "TRC-102"), ("event", "anti_debugging")): "1",
        (("signature", "TRC-105"), ("event", "fileless_execution")): "0"}
    assert samples["pytracee_signature_errors_total"][(("signature", "TRC-105"),)] == "2"
    assert samples["pytracee_signature_events_total"][(("signature", "TRC-102"),)] == "9"
    assert samples["pytracee_proctree_processes"] == {(): "42"}
    assert kinds["pytracee_proctree_processes"] == "gauge"
    assert samples["pytracee_proctree_evicted_total"] == {(): "4"}
    assert samples["pytracee_containers"] == {(): "2"}
    assert samples["pytracee_enrichment_errors_total"] == {
        (("kind", "runtime"),): "1", (("kind", "not_found"),): "2",
        (("kind", "unsupported"),): "0", (("kind", "late"),): "3"}
    stream = (("stream", 'out \\"json\\"'),)
    assert samples["pytracee_stream_queue_depth"] == {stream: "1"}
    assert kinds["pytracee_stream_queue_depth"] == "gauge"
    assert samples["pytracee_stream_dropped_total"] == {stream: "2"}
    assert samples["pytracee_stream_errors_total"] == {stream: "1"}
    assert samples["pytracee_stream_delivered_total"] == {stream: "7"}
    for name, kind in kinds.items():
        assert name.startswith("pytracee_")
        assert name.endswith("_total") == (kind == "counter"), name


def test_collect_without_engine_enrichment_or_streams() -> None:
    pipeline, _, _ = fakes()
    pipeline.sinks = [object()]
    fam = parse_exposition(render(collect(pipeline)))
    assert not any(n.startswith(("pytracee_stream", "pytracee_detection", "pytracee_proctree",
                                 "pytracee_containers", "pytracee_enrichment")) for n in fam)


def test_collect_per_destination_delivered_failed_pending_up(tmp_path: Path) -> None:
    """Real streams to real files: one written, one on /dev/full (every write fails)."""
    from pytracee.sinks.destinations.file import FileDestination
    from pytracee.sinks.formats import JsonFormat
    from pytracee.sinks.stream import Stream
    from tests.unit.signature_fixtures import make_event

    ok = Stream("logs", [(FileDestination(str(tmp_path / "x.json")), JsonFormat(lambda v: []))])
    full = Stream("alerts", [(FileDestination("/dev/full"), JsonFormat(lambda v: []))])
    batch = [make_event("getppid", {}, ts=i) for i in range(3)]
    for s in (ok, full):
        s.write_batch(batch)
        s.flush()
    ok.write_batch(batch[:2])  # in the file's buffer: not delivered yet
    pipeline, _, _ = fakes()
    pipeline.sinks = [ok, full]
    fam = parse_exposition(render(collect(pipeline)))
    samples = {name: f[2] for name, f in fam.items()}
    kinds = {name: f[0] for name, f in fam.items()}
    a = (("stream", "logs"), ("destination", f"file:{tmp_path}/x.json"))
    b = (("stream", "alerts"), ("destination", "file:/dev/full"))
    assert samples["pytracee_destination_delivered_total"] == {a: "3", b: "0"}
    assert samples["pytracee_destination_failed_total"] == {a: "0", b: "3"}
    assert samples["pytracee_destination_pending"] == {a: "2", b: "0"}
    assert samples["pytracee_destination_up"] == {a: "1", b: "0"}
    assert (kinds["pytracee_destination_pending"], kinds["pytracee_destination_up"]) == ("gauge",) * 2
    assert samples["pytracee_stream_delivered_total"] == {(("stream", "logs"),): "3",
                                                          (("stream", "alerts"),): "0"}
    assert samples["pytracee_stream_errors_total"] == {(("stream", "logs"),): "0",
                                                       (("stream", "alerts"),): "3"}
    assert samples["pytracee_stream_dropped_total"] == {(("stream", "logs"),): "0",
                                                        (("stream", "alerts"),): "0"}
    for s in (ok, full):
        s.close()


# -- health ---------------------------------------------------------------------------

def fake_pipeline(last_tick: float | None, attached: bool = True) -> Any:
    tracer = SimpleNamespace(obj=object() if attached else None, reader=object() if attached else None)
    p = SimpleNamespace(tracer=tracer, stop_event=threading.Event())
    if last_tick is not None:
        p.last_tick = last_tick
    return p


def test_health_needs_attached_programs_and_a_fresh_heartbeat() -> None:
    now = time.monotonic()
    assert health(fake_pipeline(now - 0.1), now) is None
    assert health(fake_pipeline(now - 7.5), now) == "the event reader last ran 7.5 s ago"
    assert health(fake_pipeline(None), now) == "the event reader has not started"
    assert health(fake_pipeline(now, attached=False), now) == "BPF programs are not attached"
    p = fake_pipeline(now)
    p.stop_event.set()
    assert health(p, now) == "stopping"


# -- the HTTP server ------------------------------------------------------------------

def get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def serve(opts: ServerOptions, collect_fn: Any, health_fn: Any) -> tuple[MetricsServer, str]:
    server = MetricsServer(opts, collect_fn, health_fn)
    server.start()
    return server, f"http://127.0.0.1:{server.port}"


def test_endpoints_over_http() -> None:
    state: dict[str, Any] = {"reason": None, "n": 0}

    def collect_fn() -> list[Metric]:
        state["n"] += 1
        return [counter("pytracee_events_total", "Events.").add(state["n"], event="x")]

    server, base = serve(ServerOptions("127.0.0.1", 0), collect_fn, lambda: state["reason"])
    try:
        status, ctype, body = get(base + "/healthz")
        assert (status, body) == (200, b"OK") and ctype.startswith("text/plain")
        state["reason"] = "the event reader last ran 9.0 s ago"
        assert get(base + "/healthz")[::2] == (503, b"the event reader last ran 9.0 s ago\n")
        status, ctype, body = get(base + "/metrics")
        assert status == 200 and ctype == CONTENT_TYPE
        assert 'pytracee_events_total{event="x"} 1\n' in body.decode()
        # Read at scrape time: the next scrape sees the new value.
        assert 'pytracee_events_total{event="x"} 2\n' in get(base + "/metrics?x=1")[2].decode()
        assert get(base + "/metrics", "HEAD")[::2] == (200, b"")
        for path in ("/", "/metric", "/debug/pprof/", "/healthz/x"):
            assert get(base + path)[0] == 404, path
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        get(base + "/healthz")


def test_only_the_named_endpoints_are_served() -> None:
    server, base = serve(ServerOptions("127.0.0.1", 0, metrics=False, healthz=True),
                         lambda: [], lambda: None)
    try:
        assert get(base + "/metrics")[0] == 404
        assert get(base + "/healthz")[0] == 200
    finally:
        server.stop()


def test_a_failing_collect_is_a_500_and_the_server_goes_on() -> None:
    calls = [0]

    def collect_fn() -> list[Metric]:
        calls[0] += 1
        if calls[0] == 1:
            raise KeyError("boom")
        return [gauge("g", "x", 1)]

    server, base = serve(ServerOptions("127.0.0.1", 0), collect_fn, lambda: None)
    try:
        status, _, body = get(base + "/metrics")
        assert status == 500 and b"KeyError" in body
        assert get(base + "/metrics")[0] == 200
    finally:
        server.stop()


def test_address_in_use_is_an_environment_problem() -> None:
    from pytracee.errors import EnvironmentProblem

    first, _ = serve(ServerOptions("127.0.0.1", 0), lambda: [], lambda: None)
    try:
        with pytest.raises(EnvironmentProblem, match="cannot listen on 127.0.0.1:"):
            MetricsServer(ServerOptions("127.0.0.1", first.port), lambda: [], lambda: None).start()
    finally:
        first.stop()


def test_stop_waits_for_a_scrape_in_progress() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow() -> list[Metric]:
        entered.set()
        release.wait(5)
        return [gauge("g", "x", 1)]

    server, base = serve(ServerOptions("127.0.0.1", 0), slow, lambda: None)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(get(base + "/metrics")))
    t.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(0.2)
    assert stopper.is_alive()  # blocked on the scrape in progress
    release.set()
    stopper.join(5)
    t.join(5)
    assert not stopper.is_alive() and result[0][0] == 200
