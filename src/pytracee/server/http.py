"""The HTTP server behind `--server`: /metrics and /healthz on a thread of their own.

stdlib only (`http.server.ThreadingHTTPServer`). Scrapes are served one at a
time (a lock), and `stop()` waits for one in progress, so nothing reads the
kernel's maps after the tracer is closed.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from pytracee.errors import EnvironmentProblem
from pytracee.server.metrics import CONTENT_TYPE, Metric, render
from pytracee.server.options import ServerOptions

log = logging.getLogger(__name__)

# The pipeline's loop comes round at least every 100 ms (its ring wait) plus one
# bounded batch: a heartbeat older than this means the reader is stuck.
HEARTBEAT_STALE_S = 5.0
REQUEST_TIMEOUT_S = 10.0


def health(pipeline: Any, now: float | None = None,
           stale_s: float = HEARTBEAT_STALE_S) -> str | None:
    """None when healthy, else why not: the programs must be attached and the
    pipeline's reader loop must have run within `stale_s`."""
    tracer = pipeline.tracer
    if getattr(tracer, "obj", None) is None or getattr(tracer, "reader", None) is None:
        return "BPF programs are not attached"
    if pipeline.stop_event.is_set():
        return "stopping"
    last = getattr(pipeline, "last_tick", None)
    if last is None:
        return "the event reader has not started"
    age = (time.monotonic() if now is None else now) - last
    if age > stale_s:
        return f"the event reader last ran {age:.1f} s ago"
    return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: int, app: MetricsServer) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN (DNS): not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = REQUEST_TIMEOUT_S

    def version_string(self) -> str:
        return "pytracee"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        status, ctype, payload = self.server.app.respond(urlsplit(self.path).path)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer:
    """/metrics from `collect()`, /healthz from `health()` (None: healthy, else the
    reason); either may be None (endpoint off: 404)."""

    def __init__(self, opts: ServerOptions, collect: Callable[[], list[Metric]] | None,
                 health: Callable[[], str | None] | None) -> None:
        self.opts = opts
        self.collect = collect if opts.metrics else None
        self.health = health if opts.healthz else None
        self._lock = threading.Lock()
        self._closed = False
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._failed_once = False

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        text = "text/plain; charset=utf-8"
        if path == "/metrics" and self.collect is not None:
            with self._lock:
                if self._closed:
                    return HTTPStatus.SERVICE_UNAVAILABLE, text, b"stopping\n"
                try:
                    return HTTPStatus.OK, CONTENT_TYPE, render(self.collect()).encode()
                except Exception as exc:  # a bug of ours: the scrape fails, tracing goes on
                    if not self._failed_once:
                        self._failed_once = True
                        log.exception("collecting metrics failed")
                    return HTTPStatus.INTERNAL_SERVER_ERROR, text, f"{type(exc).__name__}: {exc}\n".encode()
        if path == "/healthz" and self.health is not None:
            with self._lock:
                reason = "stopping" if self._closed else self.health()
            if reason is None:
                return HTTPStatus.OK, text, b"OK"
            return HTTPStatus.SERVICE_UNAVAILABLE, text, f"{reason}\n".encode()
        return HTTPStatus.NOT_FOUND, text, b"not found\n"

    def start(self) -> None:
        """Listen (EnvironmentProblem when the address cannot be bound) and serve on a thread."""
        host, port = self.opts.host, self.opts.port
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._httpd = _HTTPServer((host, port), family, self)
        except OSError as exc:
            raise EnvironmentProblem(f"--server: cannot listen on {self.opts.address}: "
                                     f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="pytracee-http", daemon=True)
        self._thread.start()
        log.info("serving %s on http://%s", ", ".join(self.endpoints()), self.opts.address)

    def endpoints(self) -> list[str]:
        return [p for p, on in (("/metrics", self.collect), ("/healthz", self.health)) if on is not None]

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving; a scrape in progress finishes first, later ones get 503."""
        with self._lock:
            self._closed = True
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
