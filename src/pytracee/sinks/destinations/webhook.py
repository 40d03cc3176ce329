"""`webhook`: each batch is one HTTP POST of a JSON array.

    -o webhook:https://siem.example/ingest?timeout=5s&retries=6&ca=/etc/ssl/siem.pem

The stream calls `send` from its own worker thread, so a blocking retry only
stalls that stream (its buffer fills; the stream's mode decides what happens then).

Delivery:
  * 2xx: delivered.
  * 5xx, 429, a refused or dropped connection, a timeout: retried with exponential
    backoff, `backoff_s * 2**n` capped at `max_backoff_s` (a `Retry-After` in
    seconds lengthens a wait up to that cap). With the defaults (retries=6,
    backoff 0.5 s, cap 10 s) the waits are 0.5, 1, 2, 4, 8, 10 s: 25.5 s of
    waiting over 7 attempts, so a receiver down for 10-25 s loses nothing.
    After the last retry `send` raises OSError and the stream counts the batch.
  * other 4xx: the server refuses the batch; raised at once, no retry.
  * a certificate that fails verification: raised at once (retrying cannot fix it).

Each attempt's outcome goes to `on_attempt` when set (the stream sets it: it logs
the first failed attempt of an outage at once, and the recovery): None after a 2xx,
the reason after a failure that is retried. `abort()` (another thread, at exit)
ends the wait for a retry and the request in progress: that batch raises at once,
and so does any later one.

TLS verification is on by default; `insecure=true` in the URL (or
verify_tls=False) turns it off, `ca=/path.pem` trusts that CA (only it).

One connection is kept alive between batches; it is reopened after any error. A
request that fails on a reused connection before any response (the server closed
the idle connection) is resent at once on a new connection, without backoff.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pytracee.events.event import Event

# Go-style durations as Tracee writes them: "5s", "500ms", "1m30s"; a bare number is seconds.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Query parameters this destination reads (and strips from the URL it requests).
OPTIONS = ("timeout", "retries", "backoff", "insecure", "ca")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration ("5s", "500ms", "1m30s") or a bare number of seconds."""
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        pos, value = 0, 0.0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNIT_S[m.group(2)]
            pos = m.end()
        if pos != len(s) or not s:
            raise ValueError(f"invalid duration {text!r} (use e.g. 5s, 500ms)") from None
    if value < 0:
        raise ValueError(f"invalid duration {text!r}: negative")
    return value


RETRY_KEYS = ("timeout", "retries", "backoff")


def retry_option(key: str, value: str) -> float:
    """A timeout=, retries= or backoff= URL option, which both network destinations take."""
    if key == "retries":
        if not value.strip().isdigit():
            raise ValueError(f"invalid retries={value!r} (a number >= 0)")
        return int(value)
    return parse_duration(value)


def parse_bool(name: str, text: str) -> bool:
    v = text.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"invalid {name}={text!r} (use true or false)")


def backoff_schedule(retries: int, backoff_s: float, max_backoff_s: float) -> list[float]:
    """The waits before each retry: backoff_s * 2**n, capped at max_backoff_s."""
    return [min(backoff_s * (2 ** n), max_backoff_s) for n in range(retries)]


class WebhookError(OSError):
    """The batch was not delivered. `status` is the last HTTP status (0: no response)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class WebhookDestination:
    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 6,
                 backoff_s: float = 0.5, max_backoff_s: float = 10.0, verify_tls: bool = True,
                 ca_file: str | None = None, headers: dict[str, str] | None = None,
                 json_array: bool = True, content_type: str = "application/json") -> None:
        """`json_array`: the payload is JSON lines and goes out as one JSON array; when
        False (e.g. a template's output) the payload is POSTed as it is."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http:// or https://, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"webhook URL has no host: {url!r}")
        kept: list[tuple[str, str]] = []
        retry: dict[str, float] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in RETRY_KEYS:
                retry[key] = retry_option(key, value)
            elif key == "insecure":
                verify_tls = not parse_bool("insecure", value)
            elif key == "ca":
                ca_file = value
            else:
                kept.append((key, value))
        timeout_s = retry.get("timeout", timeout_s)
        retries = int(retry.get("retries", retries))
        backoff_s = retry.get("backoff", backoff_s)
        if timeout_s <= 0:
            raise ValueError("webhook timeout must be > 0")
        if retries < 0:
            raise ValueError("webhook retries must be >= 0")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        netloc = self.host if ":" not in self.host else f"[{self.host}]"
        if parts.port:
            netloc += f":{parts.port}"
        self.path = urlunsplit(("", "", parts.path or "/", urlencode(kept), ""))
        # Credentials never appear in the name (it goes to logs and metrics).
        self.name = "webhook:" + urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self.timeout_s = timeout_s
        self.retries = 0  # counter (see below); the limit is max_retries
        self.max_retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.json_array = json_array
        self.headers = {"Content-Type": content_type, "User-Agent": "pytracee",
                        **(headers or {})}
        if parts.username is not None and "Authorization" not in self.headers:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        self._ssl: ssl.SSLContext | None = self._context() if self.https else None
        self._conn: http.client.HTTPConnection | None = None
        self._aborted = threading.Event()
        self._sleep: Callable[[float], object] = self._aborted.wait  # returns early on abort()
        self.on_attempt: Callable[[str | None], None] | None = None
        # Counters: POST attempts (each try, including ones that could not connect),
        # retries (attempts after the first of a batch), failures (batches given up),
        # batches and events delivered, connections opened.
        self.posts = 0
        self.failures = 0
        self.batches_sent = 0
        self.events_sent = 0
        self.connects = 0

    def _context(self) -> ssl.SSLContext:
        if not self.verify_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"webhook ca={self.ca_file}: {e}") from None

    def schedule(self) -> list[float]:
        """The waits before each retry of one batch (seconds)."""
        return backoff_schedule(self.max_retries, self.backoff_s, self.max_backoff_s)

    def retry_window_s(self) -> float:
        """How long a batch is retried (the waits, not the attempts) before it fails."""
        return sum(self.schedule())

    def abort(self) -> None:
        """Stop retrying (from another thread): the batch being sent fails now, later ones
        at once. The connection is shut down so that a request in progress returns."""
        self._aborted.set()
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _report(self, reason: str | None) -> None:
        if self.on_attempt is not None:
            self.on_attempt(reason)

    def body(self, payload: bytes) -> bytes:
        if not self.json_array:
            return payload
        return b"[" + b",".join(line for line in payload.split(b"\n") if line.strip()) + b"]"

    def send(self, payload: bytes, events: list[Event]) -> None:
        if not payload.strip():
            return
        body = self.body(payload)
        waits = self.schedule()
        attempt = 0
        while True:
            if self._aborted.is_set():
                self.failures += 1
                raise WebhookError(f"{self.name}: batch of {len(events)} events not delivered: "
                                   "stopped waiting at exit")
            try:
                self._post(body)
            except _Retryable as e:
                if self._aborted.is_set():
                    self.failures += 1
                    raise WebhookError(f"{self.name}: batch of {len(events)} events not delivered "
                                       f"after {attempt + 1} attempts (stopped waiting at exit): "
                                       f"{e}") from None
                self._report(str(e))
                if attempt >= len(waits):
                    self.failures += 1
                    raise WebhookError(f"{self.name}: batch of {len(events)} events not delivered "
                                       f"after {attempt + 1} attempts: {e}") from None
                wait = waits[attempt]
                if e.retry_after is not None:
                    wait = max(wait, min(e.retry_after, self.max_backoff_s))
                attempt += 1
                self.retries += 1
                self._sleep(wait)
                continue
            except WebhookError:
                self.failures += 1
                raise
            self.batches_sent += 1
            self.events_sent += len(events)
            self._report(None)
            return

    def _connect(self) -> http.client.HTTPConnection:
        self.connects += 1
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                               context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _post(self, body: bytes) -> None:
        """One attempt (plus an immediate resend when a kept-alive connection turns out closed)."""
        for fresh_try in (False, True):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            self.posts += 1
            try:
                conn.request("POST", self.path, body=body, headers=self.headers)
                resp = conn.getresponse()
                data = resp.read()
            except ssl.SSLCertVerificationError as e:
                self.close()
                raise WebhookError(f"{self.name}: TLS verification failed: {e.verify_message} "
                                   "(ca=/path to trust a CA, insecure=true to skip)") from None
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError) as e:
                self.close()
                if reused and not fresh_try:
                    continue  # the server closed the idle connection: resend on a new one
                raise _Retryable(f"connection lost: {e}") from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise _Retryable(f"{type(e).__name__}: {e}") from None
            if resp.will_close:
                self.close()
            status = resp.status
            if 200 <= status < 300:
                return
            reason = f"HTTP {status} {resp.reason}".strip()
            snippet = data[:200].decode("utf-8", "replace").strip()
            if snippet:
                reason += f": {snippet}"
            if status >= 500 or status == 429:
                raise _Retryable(reason, _retry_after(resp.getheader("Retry-After")))
            raise WebhookError(f"{self.name}: batch refused: {reason}", status)
        raise AssertionError("unreachable")

    def flush(self) -> None:
        pass  # every batch is sent by send()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: use the backoff
