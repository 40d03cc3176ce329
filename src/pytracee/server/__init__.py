"""`--server`: /metrics (Prometheus) and /healthz over HTTP, loopback by default."""

from __future__ import annotations

from typing import Any

from pytracee.server.http import MetricsServer, health
from pytracee.server.metrics import collect
from pytracee.server.options import ServerOptions, parse_server_options


def start_server(opts: ServerOptions, pipeline: Any, enrichment: Any = None,
                 engine: Any = None) -> MetricsServer:
    """Serve the pipeline's (and its enrichment's and engine's) counters and health;
    call after the programs are attached, `stop()` before the tracer is closed."""
    server = MetricsServer(opts, lambda: collect(pipeline, enrichment, engine),
                           lambda: health(pipeline))
    server.start()
    return server


__all__ = ["MetricsServer", "ServerOptions", "parse_server_options", "start_server"]
