"""The Fluent Forward destination against a small Forward receiver on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import orjson
import pytest

from pytracee.events.event import Event
from pytracee.sinks.destinations.forward import (
    ForwardAuthError,
    ForwardDestination,
    ForwardError,
    event_time,
)
from pytracee.sinks.json_sink import JsonRenderer
from tests.unit.signature_fixtures import exec_event, make_event, ptrace_event


def batch(n: int = 3) -> tuple[bytes, list[Event]]:
    events = [ptrace_event(0) if i % 2 else
              make_event("sched_process_exit", {"exit_code": i}, ts=1_000_000 + i * 1_234_567)
              for i in range(n)]
    events.append(exec_event("/usr/bin/env", comm="env"))
    return JsonRenderer(lambda v: []).render_batch(events), events


def sha512_hex(*parts: bytes) -> str:
    return hashlib.sha512(b"".join(parts)).hexdigest()


def _ext(code: int, data: bytes) -> Any:
    if code == 0:
        return struct.unpack(">II", data)  # EventTime -> (sec, nsec)
    return msgpack.ExtType(code, data)


def _b(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


class Receiver:
    """The server side of Forward protocol v1 (what in_forward does), small:
    the optional HELO/PING/PONG handshake, then Message and Forward mode messages,
    each acknowledged with {"ack": chunk} when it carries a chunk option.

    `drop_acks`: that many messages get no ack; `close_instead_of_ack`: the
    connection is closed instead of the ack; `rogue_key`: answers every PING as
    accepted but digests with this key (a peer that does not know the key)."""

    def __init__(self, port: int = 0, shared_key: str | None = None,
                 users: dict[str, str] | None = None, drop_acks: int = 0,
                 close_instead_of_ack: int = 0, wrong_ack: int = 0,
                 rogue_key: str | None = None) -> None:
        self.shared_key = shared_key
        self.users = users or {}
        self.drop_acks = drop_acks
        self.close_instead_of_ack = close_instead_of_ack
        self.wrong_ack = wrong_ack
        self.rogue_key = rogue_key
        self.messages: list[tuple[str, list[Any], dict[str, Any]]] = []  # all received
        self.acked: list[str] = []
        self.pings: list[list[Any]] = []
        self.auth_failures: list[str] = []
        self.conns: list[socket.socket] = []
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner.conns.append(self.request)
                self.request.settimeout(10)
                unpacker = msgpack.Unpacker(raw=False, ext_hook=_ext, strict_map_key=False)
                if owner.shared_key is not None or owner.rogue_key is not None:
                    if not owner.handshake(self.request, unpacker):
                        return
                for msg in self.messages(unpacker):
                    if not owner.accept(self.request, msg):
                        return

            def messages(self, unpacker: msgpack.Unpacker) -> Iterator[Any]:
                while True:
                    for obj in unpacker:
                        yield obj
                    try:
                        data = self.request.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    unpacker.feed(data)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @staticmethod
    def _next(sock: socket.socket, unpacker: msgpack.Unpacker) -> Any:
        while True:
            try:
                return next(unpacker)
            except StopIteration:
                pass
            data = sock.recv(65536)
            if not data:
                raise EOFError
            unpacker.feed(data)

    def handshake(self, sock: socket.socket, unpacker: msgpack.Unpacker) -> bool:
        nonce = os.urandom(16)
        auth_salt = os.urandom(16) if self.users else b""
        sock.sendall(msgpack.packb(["HELO", {"nonce": nonce, "auth": auth_salt,
                                             "keepalive": True}], use_bin_type=True))
        try:
            ping = self._next(sock, unpacker)
        except (EOFError, OSError):
            return False
        if not (isinstance(ping, list) and len(ping) == 6 and ping[0] == "PING"):
            self.auth_failures.append("not a PING")
            sock.close()
            return False
        self.pings.append(ping)
        _, host, salt, digest, user, pw_digest = ping
        key = (self.rogue_key if self.rogue_key is not None else self.shared_key or "").encode()
        ok, reason = True, ""
        if self.rogue_key is None:
            if digest != sha512_hex(_b(salt), _b(host), nonce, key):
                ok, reason = False, "shared key mismatch"
            elif self.users and (user not in self.users or pw_digest != sha512_hex(
                    auth_salt, _b(user), self.users[user].encode())):
                ok, reason = False, "username/password mismatch"
        server_host = "receiver"
        sock.sendall(msgpack.packb(["PONG", ok, reason, server_host,
                                    sha512_hex(_b(salt), server_host.encode(), nonce, key)],
                                   use_bin_type=True))
        if not ok:
            self.auth_failures.append(reason)
            sock.close()
        return ok

    def accept(self, sock: socket.socket, msg: Any) -> bool:
        """One event message; False: close the connection."""
        if not isinstance(msg, list) or len(msg) < 2 or not isinstance(msg[0], str):
            sock.close()
            return False
        tag = msg[0]
        if isinstance(msg[1], list):                       # Forward: [tag, entries, option?]
            entries, option = msg[1], msg[2] if len(msg) > 2 else {}
        else:                                             # Message: [tag, time, record, option?]
            entries, option = [[msg[1], msg[2]]], msg[3] if len(msg) > 3 else {}
        self.messages.append((tag, entries, option))
        chunk = option.get("chunk") if isinstance(option, dict) else None
        if chunk is None:
            return True
        if self.close_instead_of_ack > 0:
            self.close_instead_of_ack -= 1
            sock.close()
            return False
        if self.drop_acks > 0:
            self.drop_acks -= 1
            return True
        if self.wrong_ack > 0:
            self.wrong_ack -= 1
            sock.sendall(msgpack.packb({"ack": "not-" + chunk}))
            return True
        self.acked.append(chunk)
        sock.sendall(msgpack.packb({"ack": chunk}))
        return True

    def delivered(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """(tag, time, record) of acknowledged messages, once per chunk."""
        out, seen = [], set()
        for tag, entries, option in self.messages:
            chunk = option.get("chunk")
            if chunk in self.acked and chunk not in seen:
                seen.add(chunk)
                out += [(tag, t, r) for t, r in entries]
        return out

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for conn in self.conns:
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


def expected(payload: bytes, events: list[Event], tag: str) -> list[tuple[str, Any, Any]]:
    lines = [line for line in payload.split(b"\n") if line]
    return [(tag, divmod(e.timestamp, 1_000_000_000), orjson.loads(line))
            for e, line in zip(events, lines, strict=True)]


def test_events_arrive_with_tag_times_and_records(receiver: Receiver) -> None:
    dest = ForwardDestination(f"tcp://127.0.0.1:{receiver.port}?tag=tracee.events")
    assert dest.name == f"forward:tcp://127.0.0.1:{receiver.port}?tag=tracee.events"
    p1, e1 = batch(3)
    p2, e2 = batch(1)
    dest.send(p1, e1)
    dest.send(p2, e2)
    dest.close()
    assert receiver.delivered() == expected(p1, e1, "tracee.events") + expected(p2, e2,
                                                                               "tracee.events")
    # nanoseconds survive (EventTime), and the records are Tracee's JSON documents
    times = [t for _, t, _ in receiver.delivered()]
    assert len(set(times)) > 1 and any(t[1] % 1000 for t in times)
    recs = [r for _, _, r in receiver.delivered()]
    assert recs[0]["eventName"] == "sched_process_exit" and recs[-1]["eventName"] == \
        "sched_process_exec"
    assert [len(entries) for _, entries, _ in receiver.messages] == [4, 2]  # one message a batch
    assert [o["size"] for _, _, o in receiver.messages] == [4, 2]
    assert (dest.sends, dest.retries, dest.failures, dest.events_sent) == (2, 0, 0, 6)
    assert dest.connects == 1


def test_default_tag_and_constructor_options(receiver: Receiver) -> None:
    dest = ForwardDestination(f"127.0.0.1:{receiver.port}")
    assert dest.tag == "pytracee" and dest.schedule() == [0.5, 1, 2, 4, 8, 10]
    dest.send(*batch(1))
    assert {tag for tag, _, _ in receiver.delivered()} == {"pytracee"}
    assert ForwardDestination("tcp://h", tag="a").tag == "a"
    assert ForwardDestination("tcp://h?tag=b", tag="a").tag == "b"  # the URL's wins
    assert ForwardDestination("tcp://h").port == 24224
    for bad in ("udp://h:1", "tcp://h:1?bogus=1", "tcp://h:1?retries=x"):
        with pytest.raises(ValueError):
            ForwardDestination(bad)


def test_event_time_encoding() -> None:
    t = event_time(1_700_000_123_456_789_012)
    assert t.code == 0 and struct.unpack(">II", t.data) == (1_700_000_123, 456_789_012)


def test_missing_ack_is_retried_with_the_same_chunk() -> None:
    r = Receiver(drop_acks=1)
    try:
        dest = ForwardDestination(f"tcp://127.0.0.1:{r.port}?tag=t", timeout_s=0.3,
                                  backoff_s=0.01)
        p, e = batch(2)
        dest.send(p, e)
    finally:
        r.stop()
    assert len(r.messages) == 2 and r.messages[0] == r.messages[1]  # resent as it was
    assert r.delivered() == expected(p, e, "t")
    assert (dest.sends, dest.retries, dest.failures, dest.events_sent) == (2, 1, 0, 3)


def test_connection_closed_before_the_ack_or_a_wrong_ack_is_retried() -> None:
    r = Receiver(close_instead_of_ack=1, wrong_ack=1)
    try:
        dest = ForwardDestination(f"tcp://127.0.0.1:{r.port}", backoff_s=0.01)
        p, e = batch(1)
        dest.send(p, e)
    finally:
        r.stop()
    assert len(r.messages) == 3 and r.delivered() == expected(p, e, "pytracee")
    assert (dest.retries, dest.failures, dest.events_sent, dest.connects) == (2, 0, 2, 3)


def test_peer_down_then_back() -> None:
    port = free_port()
    started: list[Receiver] = []

    def start_later() -> None:
        time.sleep(1.0)
        started.append(Receiver(port))

    t = threading.Thread(target=start_later)
    t.start()
    dest = ForwardDestination(f"tcp://127.0.0.1:{port}", retries=10, backoff_s=0.1,
                              max_backoff_s=0.3)
    p, e = batch(2)
    try:
        dest.send(p, e)
        t.join()
        assert started[0].delivered() == expected(p, e, "pytracee")
    finally:
        t.join()
        for r in started:
            r.stop()
    assert dest.retries >= 3 and dest.failures == 0


def test_peer_down_for_the_whole_window_raises_and_counts() -> None:
    dest = ForwardDestination(f"tcp://127.0.0.1:{free_port()}?retries=2&backoff=10ms")
    with pytest.raises(ForwardError, match="after 3 attempts"):
        dest.send(*batch(1))
    assert (dest.sends, dest.retries, dest.failures, dest.events_sent) == (0, 2, 1, 0)


def test_reconnects_after_the_peer_drops_an_idle_connection() -> None:
    port = free_port()
    r = Receiver(port)
    dest = ForwardDestination(f"tcp://127.0.0.1:{port}")
    dest.send(*batch(1))
    r.stop()
    r = Receiver(port)
    try:
        p, e = batch(1)
        dest.send(p, e)
    finally:
        r.stop()
    assert r.delivered() == expected(p, e, "pytracee")
    assert dest.retries == 0 and dest.connects == 2


def test_shared_key_and_user_handshake() -> None:
    r = Receiver(shared_key="s3cret", users={"alice": "pw"})
    try:
        dest = ForwardDestination(f"tcp://alice:pw@127.0.0.1:{r.port}?tag=sec",
                                  shared_key="s3cret", hostname="sensor-1")
        p, e = batch(2)
        dest.send(p, e)
        dest.send(p, e)  # same connection, no second handshake
    finally:
        r.stop()
    assert r.delivered() == expected(p, e, "sec") * 2
    assert len(r.pings) == 1 and r.pings[0][1] == "sensor-1" and r.pings[0][4] == "alice"
    assert r.auth_failures == []


def test_shared_key_from_the_url() -> None:
    r = Receiver(shared_key="k")
    try:
        dest = ForwardDestination(f"tcp://127.0.0.1:{r.port}?shared_key=k")
        dest.send(*batch(1))
    finally:
        r.stop()
    assert len(r.delivered()) == 2


def test_wrong_shared_key_raises_and_nothing_is_accepted() -> None:
    r = Receiver(shared_key="right")
    try:
        dest = ForwardDestination(f"tcp://127.0.0.1:{r.port}", shared_key="wrong",
                                  backoff_s=0.01)
        with pytest.raises(ForwardAuthError, match="shared key mismatch"):
            dest.send(*batch(2))
    finally:
        r.stop()
    assert r.auth_failures == ["shared key mismatch"] and r.messages == []
    assert (dest.sends, dest.retries, dest.failures, dest.events_sent) == (0, 0, 1, 0)


def test_wrong_password_raises() -> None:
    r = Receiver(shared_key="k", users={"alice": "pw"})
    try:
        dest = ForwardDestination(f"tcp://alice:nope@127.0.0.1:{r.port}", shared_key="k")
        with pytest.raises(ForwardAuthError, match="password"):
            dest.send(*batch(1))
    finally:
        r.stop()
    assert r.messages == []


def test_peer_that_does_not_know_the_key_is_refused() -> None:
    r = Receiver(rogue_key="guess")
    try:
        dest = ForwardDestination(f"tcp://127.0.0.1:{r.port}", shared_key="k")
        with pytest.raises(ForwardAuthError, match="digest does not match"):
            dest.send(*batch(1))
    finally:
        r.stop()
    assert r.messages == []  # nothing was sent to it


def test_peer_requiring_a_handshake_without_a_key() -> None:
    r = Receiver(shared_key="k")
    try:
        dest = ForwardDestination(f"tcp://127.0.0.1:{r.port}", backoff_s=0.01)
        with pytest.raises(ForwardAuthError, match="requires the handshake"):
            dest.send(*batch(1))
    finally:
        r.stop()
    assert r.acked == [] and dest.retries == 0
