"""`forward`: events to a Fluentd / Fluent Bit peer over the Fluent Forward protocol v1.

    -o forward:tcp://fluentd:24224?tag=tracee
    -o forward:tcp://user:pass@fluentd:24224?tag=tracee&shared_key=secret

Each batch is one message in Forward mode, acknowledged by the peer:

    [tag, [[time, record], ...], {"chunk": <id>, "size": <n>}]   ->   {"ack": <id>}

`time` is the event's wall-clock time as an EventTime (msgpack ext type 0: seconds
and nanoseconds, big-endian uint32 each); `record` is the event's JSON document
(the payload's JSON lines, one per event). A batch counts as delivered only when
the ack with its chunk id arrives; a refused or dropped connection, a timeout or a
wrong ack is retried with the same chunk id (the peer may see a batch twice, never
zero times), with exponential backoff `backoff_s * 2**n` capped at `max_backoff_s`:
0.5, 1, 2, 4, 8, 10 s with the defaults (25.5 s over 7 attempts). Then OSError.

With a shared key (the `shared_key` argument or `?shared_key=`) or a user in the
URL, each connection starts with the handshake:

    server: ["HELO", {"nonce": n, "auth": auth_salt, "keepalive": bool}]
    client: ["PING", hostname, salt, sha512_hex(salt + hostname + n + shared_key),
             username, sha512_hex(auth_salt + username + password)]
    server: ["PONG", ok, reason, server_hostname,
             sha512_hex(salt + server_hostname + n + shared_key)]

and the server's digest is checked (so the peer knows the key too). A refused PING
or a wrong server digest raises at once: retrying with the same key cannot help.

As the webhook: `on_attempt` gets each attempt's outcome (None once acknowledged, the
reason of a failure that is retried) and `abort()` ends the retries at exit.

Not implemented: TLS transport, Message / PackedForward / CompressedPackedForward
modes (Forward mode is what we send; receivers accept all modes), the heartbeat.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import msgpack
import orjson

from pytracee.events.event import Event
from pytracee.sinks.destinations.webhook import RETRY_KEYS, backoff_schedule, retry_option

DEFAULT_PORT = 24224
DEFAULT_TAG = "pytracee"
_EVENT_TIME = struct.Struct(">II")


def event_time(ns: int) -> msgpack.ExtType:
    """Fluent's EventTime (ext type 0) for a wall-clock time in nanoseconds."""
    sec, nsec = divmod(ns, 1_000_000_000)
    return msgpack.ExtType(0, _EVENT_TIME.pack(sec & 0xFFFFFFFF, nsec))


def sha512_hex(*parts: bytes) -> str:
    h = hashlib.sha512()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def _bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if v is None:
        return b""
    raise ValueError(f"expected bytes or str, got {type(v).__name__}")


class ForwardError(OSError):
    """The batch was not delivered."""


class ForwardAuthError(ForwardError):
    """The handshake failed (wrong shared key, user or password): not retried."""


class _Retryable(Exception):
    pass


class ForwardDestination:
    def __init__(self, url: str, *, tag: str | None = None, shared_key: str | None = None,
                 timeout_s: float = 5.0, retries: int = 6, backoff_s: float = 0.5,
                 max_backoff_s: float = 10.0, hostname: str | None = None) -> None:
        parts = urlsplit(url if "://" in url else "tcp://" + url)
        if parts.scheme != "tcp":
            raise ValueError(f"forward URL must be tcp://host:port, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"forward URL has no host: {url!r}")
        retry: dict[str, float] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "tag":
                tag = value
            elif key == "shared_key":
                shared_key = value
            elif key in RETRY_KEYS:
                retry[key] = retry_option(key, value)
            else:
                raise ValueError(f"forward URL: unknown option {key!r} "
                                 "(tag, shared_key, timeout, retries, backoff)")
        timeout_s = retry.get("timeout", timeout_s)
        retries = int(retry.get("retries", retries))
        backoff_s = retry.get("backoff", backoff_s)
        if timeout_s <= 0:
            raise ValueError("forward timeout must be > 0")
        if retries < 0:
            raise ValueError("forward retries must be >= 0")
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORT
        self.tag = tag or DEFAULT_TAG
        self.username = unquote(parts.username) if parts.username is not None else ""
        self.password = unquote(parts.password) if parts.password is not None else ""
        self.shared_key = shared_key
        self.handshake = shared_key is not None or bool(self.username)
        self.hostname = hostname or socket.gethostname()
        netloc = self.host if ":" not in self.host else f"[{self.host}]"
        self.name = f"forward:tcp://{netloc}:{self.port}?tag={self.tag}"
        self.timeout_s = timeout_s
        self.max_retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sock: socket.socket | None = None
        self._unpacker: msgpack.Unpacker | None = None
        self._keepalive = True
        self._aborted = threading.Event()
        self._sleep: Callable[[float], object] = self._aborted.wait  # returns early on abort()
        self.on_attempt: Callable[[str | None], None] | None = None
        # Counters: messages sent (each try), retries, failures (batches given up),
        # batches and events acknowledged, connections opened (handshakes done).
        self.sends = 0
        self.retries = 0
        self.failures = 0
        self.batches_sent = 0
        self.events_sent = 0
        self.connects = 0

    def schedule(self) -> list[float]:
        """The waits before each retry of one batch (seconds)."""
        return backoff_schedule(self.max_retries, self.backoff_s, self.max_backoff_s)

    def retry_window_s(self) -> float:
        """How long a batch is retried (the waits, not the attempts) before it fails."""
        return sum(self.schedule())

    def abort(self) -> None:
        """Stop retrying (from another thread): the batch being sent fails now, later ones
        at once. The connection is shut down so that a send or a wait for the ack returns."""
        self._aborted.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- message building

    def entries(self, payload: bytes, events: list[Event]) -> list[list[Any]]:
        """[time, record] per event: the record is the event's JSON line, decoded."""
        out = []
        lines = [line for line in payload.split(b"\n") if line.strip()]
        for i, line in enumerate(lines):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = {"message": line.decode("utf-8", "replace")}
            if not isinstance(record, dict):
                record = {"message": record}
            if i < len(events):
                ns = events[i].timestamp
            elif isinstance(record.get("timestamp"), int):
                ns = record["timestamp"]
            else:
                ns = time.time_ns()
            out.append([event_time(ns), record])
        return out

    def message(self, entries: list[list[Any]], chunk: str) -> bytes:
        return msgpack.packb([self.tag, entries, {"chunk": chunk, "size": len(entries)}],
                             use_bin_type=True)

    # -- sending

    def send(self, payload: bytes, events: list[Event]) -> None:
        entries = self.entries(payload, events)
        if not entries:
            return
        chunk = base64.b64encode(os.urandom(16)).decode()
        data = self.message(entries, chunk)
        waits = self.schedule()
        attempt = 0
        while True:
            if self._aborted.is_set():
                self.failures += 1
                raise ForwardError(f"{self.name}: batch of {len(entries)} events not "
                                   "acknowledged: stopped waiting at exit")
            try:
                self._send_once(data, chunk)
            except _Retryable as e:
                if self._aborted.is_set():
                    self.failures += 1
                    raise ForwardError(f"{self.name}: batch of {len(entries)} events not "
                                       f"acknowledged after {attempt + 1} attempts (stopped "
                                       f"waiting at exit): {e}") from None
                if self.on_attempt is not None:
                    self.on_attempt(str(e))
                if attempt >= len(waits):
                    self.failures += 1
                    raise ForwardError(f"{self.name}: batch of {len(entries)} events not "
                                       f"acknowledged after {attempt + 1} attempts: {e}") from None
                self._sleep(waits[attempt])
                attempt += 1
                self.retries += 1
                continue
            except ForwardError:
                self.failures += 1
                raise
            self.batches_sent += 1
            self.events_sent += len(entries)
            if self.on_attempt is not None:
                self.on_attempt(None)
            return

    def _send_once(self, data: bytes, chunk: str) -> None:
        for fresh_try in (False, True):
            reused = self._sock is not None
            try:
                if self._sock is None:
                    self._open()
                assert self._sock is not None
                self.sends += 1
                self._sock.sendall(data)
                reply = self._read()
            except (ConnectionResetError, BrokenPipeError, EOFError) as e:
                self.close()
                if reused and not fresh_try:
                    continue  # the peer closed the idle connection: resend on a new one
                raise _Retryable(_describe(e)) from None
            except (ForwardError, _Retryable):
                self.close()
                raise
            except (OSError, ValueError, msgpack.UnpackException) as e:
                self.close()
                raise _Retryable(_describe(e)) from None
            if isinstance(reply, list) and reply and reply[0] == "HELO":
                self.close()
                raise ForwardAuthError(f"{self.name}: the peer requires the handshake "
                                       "(set shared_key)")
            if not isinstance(reply, dict) or reply.get("ack") != chunk:
                self.close()
                raise _Retryable(f"unexpected reply {reply!r} (expected the ack of the chunk)")
            if not self._keepalive:
                self.close()
            return
        raise AssertionError("unreachable")

    def _open(self) -> None:
        self.connects += 1
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=16 << 20)
        self._keepalive = True
        if self.handshake:
            self._handshake()

    def _read(self) -> Any:
        """The next msgpack object from the peer; EOFError when it closes first."""
        assert self._sock is not None and self._unpacker is not None
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            data = self._sock.recv(65536)
            if not data:
                raise EOFError("connection closed by the peer")
            self._unpacker.feed(data)

    def _handshake(self) -> None:
        assert self._sock is not None
        helo = self._read()
        if not (isinstance(helo, list) and len(helo) >= 2 and helo[0] == "HELO"
                and isinstance(helo[1], dict)):
            raise _Retryable(f"expected HELO, got {helo!r}")
        opts = helo[1]
        nonce = _bytes(opts.get("nonce"))
        auth_salt = _bytes(opts.get("auth"))
        self._keepalive = bool(opts.get("keepalive", True))
        key = (self.shared_key or "").encode()
        host = self.hostname.encode()
        salt = os.urandom(16).hex().encode()
        user = self.username.encode()
        password_digest = (sha512_hex(auth_salt, user, self.password.encode())
                           if auth_salt else "")
        ping = ["PING", self.hostname, salt.decode(), sha512_hex(salt, host, nonce, key),
                self.username if auth_salt else "", password_digest]
        self._sock.sendall(msgpack.packb(ping, use_bin_type=True))
        pong = self._read()
        if not (isinstance(pong, list) and len(pong) >= 5 and pong[0] == "PONG"):
            raise _Retryable(f"expected PONG, got {pong!r}")
        _, ok, reason, server_host, digest = pong[:5]
        if not ok:
            raise ForwardAuthError(f"{self.name}: handshake refused by the peer: {reason}")
        if digest != sha512_hex(salt, _bytes(server_host), nonce, key):
            raise ForwardAuthError(f"{self.name}: the peer's shared key digest does not match "
                                   "(it does not know the shared key)")

    def flush(self) -> None:
        pass  # every batch is sent and acknowledged by send()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._unpacker = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out waiting for the peer"
    return f"{type(e).__name__}: {e}"
