"""The webhook destination against real HTTP(S) servers on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytracee.events.event import Event
from pytracee.sinks.destinations.webhook import (
    WebhookDestination,
    WebhookError,
    backoff_schedule,
    parse_duration,
)
from pytracee.sinks.json_sink import JsonRenderer
from tests.unit.signature_fixtures import exec_event, ptrace_event


def batch(n: int = 3) -> tuple[bytes, list[Event]]:
    events = [ptrace_event(0) if i % 2 else exec_event(f"/bin/p{i}", comm=f"p{i}")
              for i in range(n)]
    return JsonRenderer(lambda v: []).render_batch(events), events


class Receiver:
    """An HTTP/1.1 server (keep-alive) that records POSTs and answers from a script:
    `statuses` are used in order, then 200."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.bodies: list[bytes] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.statuses = list(statuses or [])
        self.answered: list[int] = []
        owner = self

        self.conns: list[socket.socket] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                owner.conns.append(self.request)
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = owner.statuses.pop(0) if owner.statuses else 200
                owner.requests.append((self.path, dict(self.headers)))
                owner.answered.append(status)
                if 200 <= status < 300:
                    owner.bodies.append(body)
                reply = b"ok" if status < 300 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed TLS handshakes: expected in the tests

        self.server = Server(("127.0.0.1", port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def records(self) -> list[dict[str, Any]]:
        return [r for body in self.bodies for r in json.loads(body)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for conn in self.conns:  # kept-alive connections go down with the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_batches_arrive_as_json_arrays_on_one_connection(receiver: Receiver) -> None:
    dest = WebhookDestination(f"http://127.0.0.1:{receiver.port}/ingest?x=1&timeout=2s")
    assert dest.name == f"webhook:http://127.0.0.1:{receiver.port}/ingest"
    assert dest.timeout_s == 2.0
    p1, e1 = batch(3)
    p2, e2 = batch(1)
    dest.send(p1, e1)
    dest.send(p2, e2)
    dest.close()
    lines1 = [line for line in p1.split(b"\n") if line]
    assert receiver.bodies == [b"[" + b",".join(lines1) + b"]", b"[" + p2.strip() + b"]"]
    recs = receiver.records()
    assert [r["eventName"] for r in recs] == ["sched_process_exec", "ptrace", "sched_process_exec",
                                              "sched_process_exec"]
    assert [r["timestamp"] for r in recs] == [e.timestamp for e in e1 + e2]
    # our options are stripped from the URL requested, the server's own are kept
    assert [path for path, _ in receiver.requests] == ["/ingest?x=1", "/ingest?x=1"]
    assert receiver.requests[0][1]["Content-Type"] == "application/json"
    assert (dest.posts, dest.retries, dest.failures, dest.events_sent) == (2, 0, 0, 4)
    assert dest.connects == 1  # keep-alive


def test_reconnects_after_the_server_drops_an_idle_connection() -> None:
    port = free_port()
    r = Receiver(port)
    dest = WebhookDestination(f"http://127.0.0.1:{port}/")
    p, e = batch(2)
    dest.send(p, e)
    r.stop()  # the kept-alive connection is gone with it
    r = Receiver(port)
    try:
        dest.send(p, e)
    finally:
        r.stop()
    assert len(r.bodies) == 1 and dest.retries == 0 and dest.events_sent == 4
    assert dest.connects == 2 and dest.posts == 3  # the stale try, then at once a new connection


def test_server_errors_are_retried_then_delivered_once() -> None:
    r = Receiver(statuses=[500, 503])
    try:
        slept: list[float] = []
        dest = WebhookDestination(f"http://127.0.0.1:{r.port}/", backoff_s=0.01)
        dest._sleep = slept.append
        p, e = batch(3)
        dest.send(p, e)
    finally:
        r.stop()
    assert r.answered == [500, 503, 200]
    assert len(r.bodies) == 1 and len(json.loads(r.bodies[0])) == 3
    assert (dest.posts, dest.retries, dest.failures, dest.events_sent) == (3, 2, 0, 3)
    assert slept == [0.01, 0.02]


def test_too_many_requests_is_retried() -> None:
    r = Receiver(statuses=[429])
    try:
        dest = WebhookDestination(f"http://127.0.0.1:{r.port}/", backoff_s=0.01)
        dest.send(*batch(1))
    finally:
        r.stop()
    assert r.answered == [429, 200] and dest.retries == 1


def test_client_error_raises_at_once() -> None:
    r = Receiver(statuses=[400])
    try:
        dest = WebhookDestination(f"http://127.0.0.1:{r.port}/", backoff_s=0.01)
        with pytest.raises(WebhookError) as exc:
            dest.send(*batch(2))
    finally:
        r.stop()
    assert exc.value.status == 400 and "400" in str(exc.value)
    assert isinstance(exc.value, OSError)
    assert r.answered == [400]
    assert (dest.posts, dest.retries, dest.failures, dest.events_sent) == (1, 0, 1, 0)


def test_connection_refused_until_the_server_starts() -> None:
    port = free_port()
    started: list[Receiver] = []

    def start_later() -> None:
        time.sleep(1.0)
        started.append(Receiver(port))

    t = threading.Thread(target=start_later)
    t.start()
    dest = WebhookDestination(f"http://127.0.0.1:{port}/", retries=10, backoff_s=0.1,
                              max_backoff_s=0.3)
    p, e = batch(2)
    t0 = time.monotonic()
    try:
        dest.send(p, e)
        t.join()
        assert started and len(started[0].records()) == 2
    finally:
        t.join()
        for r in started:
            r.stop()
    assert time.monotonic() - t0 >= 1.0
    assert dest.retries >= 3 and dest.failures == 0 and dest.events_sent == 2


def test_down_longer_than_the_retry_window_raises_and_counts() -> None:
    port = free_port()
    dest = WebhookDestination(f"http://127.0.0.1:{port}/?retries=3&backoff=10ms")
    with pytest.raises(OSError, match="not delivered after 4 attempts"):
        dest.send(*batch(2))
    assert (dest.posts, dest.retries, dest.failures, dest.events_sent) == (4, 3, 1, 0)
    # the next batch is tried afresh
    r = Receiver(port)
    try:
        dest.send(*batch(1))
    finally:
        r.stop()
    assert (dest.failures, dest.events_sent) == (1, 1)


def test_default_schedule_rides_out_a_ten_second_outage() -> None:
    """Defaults: waits 0.5, 1, 2, 4, 8, 10 s (25.5 s). The server is down for the first
    10 s (on the destination's clock) and then back: the batch goes through."""
    port = free_port()
    dest = WebhookDestination(f"http://127.0.0.1:{port}/")
    assert dest.schedule() == [0.5, 1, 2, 4, 8, 10] == backoff_schedule(6, 0.5, 10)
    assert sum(dest.schedule()) == 25.5
    clock = [0.0]
    servers: list[Receiver] = []

    def sleep(s: float) -> None:
        clock[0] += s
        if clock[0] >= 10 and not servers:
            servers.append(Receiver(port))

    dest._sleep = sleep
    try:
        dest.send(*batch(2))
    finally:
        for r in servers:
            r.stop()
    assert clock[0] == 15.5 and dest.retries == 5 and len(servers[0].records()) == 2


def test_durations_and_options() -> None:
    assert parse_duration("5s") == 5 and parse_duration("500ms") == 0.5
    assert parse_duration("1m30s") == 90 and parse_duration("2") == 2
    for bad in ("", "5x", "s", "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    d = WebhookDestination("https://u:p@siem.example:8443/in?retries=2&insecure=false&k=v")
    assert d.max_retries == 2 and d.verify_tls and d.path == "/in?k=v"
    assert d.name == "webhook:https://siem.example:8443/in"  # no credentials in the name
    assert d.headers["Authorization"] == "Basic dTpw"
    with pytest.raises(ValueError):
        WebhookDestination("ftp://x/")
    with pytest.raises(ValueError):
        WebhookDestination("http://x/?insecure=maybe")


def test_raw_payload_when_not_json_array(receiver: Receiver) -> None:
    dest = WebhookDestination(f"http://127.0.0.1:{receiver.port}/", json_array=False,
                              content_type="text/plain")
    dest.send(b"hello\nworld\n", [])
    assert receiver.bodies == [b"hello\nworld\n"]
    assert receiver.requests[0][1]["Content-Type"] == "text/plain"


# -- TLS

@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not found (needed to make a self-signed certificate)")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return crt, key


@pytest.fixture
def tls_receiver(cert: tuple[Path, Path]) -> Iterator[Receiver]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    r = Receiver(tls=ctx)
    yield r
    r.stop()


def test_tls_verification_is_on_by_default(tls_receiver: Receiver) -> None:
    dest = WebhookDestination(f"https://127.0.0.1:{tls_receiver.port}/", backoff_s=0.01)
    with pytest.raises(OSError, match="TLS verification failed"):
        dest.send(*batch(1))
    assert (dest.posts, dest.retries, dest.failures) == (1, 0, 1)  # not retried
    assert tls_receiver.bodies == []


def test_tls_with_the_ca(tls_receiver: Receiver, cert: tuple[Path, Path]) -> None:
    dest = WebhookDestination(f"https://127.0.0.1:{tls_receiver.port}/?ca={cert[0]}")
    dest.send(*batch(2))
    assert len(tls_receiver.records()) == 2


def test_tls_insecure_must_be_explicit(tls_receiver: Receiver) -> None:
    dest = WebhookDestination(f"https://127.0.0.1:{tls_receiver.port}/?insecure=true")
    dest.send(*batch(2))
    assert len(tls_receiver.records()) == 2
    dest2 = WebhookDestination(f"https://127.0.0.1:{tls_receiver.port}/", verify_tls=False)
    dest2.send(*batch(1))
    assert len(tls_receiver.records()) == 3
