"""`--server`: Tracee's HTTP server flag, as far as pytracee serves it.

    --server http-address=HOST:PORT   listen there (default 127.0.0.1:3366)
    --server metrics                  serve /metrics (Prometheus text format)
    --server healthz                  serve /healthz
    --server allow-remote             permit a non-loopback address (see below)

Any `--server` value turns the server on. Naming `metrics` or `healthz` serves
only the endpoints named; `http-address=` alone serves both.

The endpoints have no authentication and /metrics tells whoever asks which
events and signatures fire on this host, how many processes and containers run
and whether events are being lost (an attacker's cue that evasion works). So
the server listens on loopback unless `allow-remote` says otherwise; an
address without a host (`:3366`, which Go would bind to every interface) also
means loopback here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from pytracee.errors import UsageError, closest

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3366
ALLOW_REMOTE = "allow-remote"
_UNSUPPORTED = ("grpc-address", "grpc", "pprof", "pyroscope")
_NAMES = {"http-address": True, "metrics": False, "healthz": False, ALLOW_REMOTE: False}


@dataclass(frozen=True)
class ServerOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    metrics: bool = True
    healthz: bool = True
    allow_remote: bool = False

    @property
    def address(self) -> str:
        return value_of(self.host, self.port)


def parse_server_options(values: Sequence[str]) -> ServerOptions | None:
    """The server to run, or None when no --server was given."""
    if not values:
        return None
    host, port = DEFAULT_HOST, DEFAULT_PORT
    endpoints: set[str] = set()
    allow_remote = False
    for raw in values:
        key, sep, value = raw.strip().partition("=")
        if key == "http-address" and sep:
            host, port = parse_address(value, raw)
        elif key in ("metrics", "healthz") and not sep:
            endpoints.add(key)
        elif key == ALLOW_REMOTE and not sep:
            allow_remote = True
        elif key in _UNSUPPORTED:
            raise UsageError(f"--server {key} is not supported by pytracee "
                             "(it serves http-address=, metrics and healthz)", token=raw)
        else:
            raise UsageError(f"unknown server option {raw!r}" + (_hint(key, sep, value) or
                             f" (expected http-address=HOST:PORT, metrics, healthz or "
                             f"{ALLOW_REMOTE})"), token=raw)
    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"--server http-address={value_of(host, port)} is not a loopback address: the "
            f"endpoints are unauthenticated and reveal what runs on this host; add --server "
            f"{ALLOW_REMOTE} to listen there anyway", token=host)
    return ServerOptions(host, port, metrics=not endpoints or "metrics" in endpoints,
                         healthz=not endpoints or "healthz" in endpoints,
                         allow_remote=allow_remote)


def _hint(key: str, sep: str, value: str) -> str:
    """' (did you mean 'metrics'?)' for a misspelt option name (its value kept)."""
    if key in _NAMES:
        return ""  # a known name with or without '=' by mistake: the list says which
    close = closest(key, _NAMES)
    if close is None:
        return ""
    return f" (did you mean '{close}{sep + value if _NAMES[close] and sep else ''}'?)"


def value_of(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(value: str, raw: str) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT or :PORT (loopback)."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise UsageError(f"http-address must be HOST:PORT or [IPV6]:PORT: {value!r}", token=raw)
        port_s = rest[1:]
    else:
        host, colon, port_s = value.rpartition(":")
        if not colon or ":" in host:
            raise UsageError(f"http-address must be HOST:PORT or [IPV6]:PORT: {value!r}", token=raw)
    if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
        raise UsageError(f"http-address port must be a number from 1 to 65535: {port_s!r}", token=raw)
    return host or DEFAULT_HOST, int(port_s)


def is_loopback(host: str) -> bool:
    """True when every address `host` stands for is a loopback one."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise UsageError(f"http-address host {host!r} does not resolve", token=host) from None
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback
                               for i in infos)
