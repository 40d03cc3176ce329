"""The network stage: packets (net_packet_*_base) become the events their policies
select, never themselves; security_socket_connect gives net_tcp_connect; counts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pytracee.derive.network import NetworkStage
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext
from pytracee.server.metrics import network_metrics
from tests.unit import net_packets as np

CTX = TaskContext((1, 1, 1, 1, 42, 42, 1, 42, 42, 1, 0, 0, 1, 1, b"curl", b"h"), 0)
ID = {name: d.BY_NAME[name].id for name in ("net_packet_dns_request", "net_packet_dns_response",
                                            "net_packet_udp", "net_tcp_connect",
                                            "security_socket_connect")}


def runtime(event_bits: dict[int, int], kernel_extra: dict[int, int] | None = None,
            userland: dict[int, Any] | None = None, version: int = 3) -> SimpleNamespace:
    """What the stage reads of a policy set."""
    kbits = dict(event_bits)
    for eid, bits in (kernel_extra or {}).items():
        kbits[eid] = kbits.get(eid, 0) | bits
    return SimpleNamespace(version=version, event_bits=event_bits, kernel_bits=kbits,
                           userland_scopes=userland or {})


def base(data: bytes, matched: int, ingress: bool = False, eid: int = d.NET_PACKET_BASE) -> Event:
    return Event(1_000, 0, matched, eid, -1, 0, 3, 0, CTX, d.EVENTS[eid], [int(ingress), len(data), data])


def test_packets_become_the_events_each_policy_selects() -> None:
    # policy 0: DNS requests; policy 1: UDP packets.
    rt = runtime({ID["net_packet_dns_request"]: 1, ID["net_packet_udp"]: 2})
    stage = NetworkStage(lambda v: rt if v == 3 else None)
    query = np.udp4("10.0.0.2", "10.0.0.1", 40000, 53, np.dns_query(7, "www.example.com"))
    out = stage.process([base(query, 0b11)])
    assert [(e.name, e.matched, e.ctx.host_pid, e.timestamp) for e in out] == [
        ("net_packet_udp", 2, 42, 1_000), ("net_packet_dns_request", 1, 42, 1_000)]
    assert out[1].arg("dns_questions") == [
        {"query": "www.example.com", "query_type": "A", "query_class": "IN"}]
    # Only policy 1's bit: no DNS event; a base of a class is read the same way.
    out = stage.process([base(query, 0b10, eid=d.NET_PACKET_DNS_BASE)])
    assert [e.name for e in out] == ["net_packet_udp"]
    assert stage.packets == 2


def test_tcp_connect_is_named_from_the_dns_cache_and_its_base_stops_here() -> None:
    sets = {3: runtime({ID["net_tcp_connect"]: 1}),
            4: runtime({ID["net_tcp_connect"]: 1, ID["security_socket_connect"]: 1}, version=4)}
    stage = NetworkStage(sets.get)
    reply = np.udp4("10.0.0.1", "10.0.0.2", 53, 40000, np.dns_cname_response(7))
    conn = Event(2_000, -115, 1, ID["security_socket_connect"], 42, 0, 3, 0, CTX,
                 d.EVENTS[ID["security_socket_connect"]],
                 [3, 1, {"sa_family": "AF_INET", "sin_port": "443", "sin_addr": "93.184.216.35"}])
    out = stage.process([base(reply, 1, ingress=True, eid=d.NET_PACKET_DNS_BASE), conn])
    assert [(e.name, e.args, e.retval) for e in out] == [
        ("net_tcp_connect", ["93.184.216.35", 443, ["www.example.com", "www.example.com.cdn.net"]],
         -115)]
    # UDP connects are not TCP connects; the security event itself goes on when selected.
    udp = Event(3_000, 0, 1, conn.event_id, 42, 0, 4, 0, CTX, conn.definition,
                [4, 2, {"sa_family": "AF_INET", "sin_port": "53", "sin_addr": "10.0.0.1"}])
    assert [e.name for e in stage.process([udp])] == ["security_socket_connect"]


def test_undecodable_packets_are_counted_and_exported() -> None:
    stage = NetworkStage(lambda v: runtime({ID["net_packet_udp"]: 1}))
    assert stage.process([base(b"\x45\x00\x00", 1)]) == []
    metrics = {m.name: m.samples for m in network_metrics(stage)}
    assert metrics["pytracee_network_packets_total"] == [({}, 1)]
    assert ({"part": "packet"}, 1) in metrics["pytracee_network_undecodable_total"]
    assert stage.summary().startswith(", packets: 1 (undecodable parts: ")


def test_events_a_signature_is_built_on_are_derived_and_kept_for_it() -> None:
    """A signature on net_packet_dns_request, or one on security_socket_connect, in a
    policy next to one that selects net_tcp_connect: the kernel bits say what to derive
    and keep (the pipeline strips them after detection)."""
    rt = runtime({ID["net_tcp_connect"]: 1, 6001: 2},
                 kernel_extra={ID["net_packet_dns_request"]: 2, ID["security_socket_connect"]: 3})
    stage = NetworkStage(lambda v: rt)
    query = np.udp4("10.0.0.2", "10.0.0.1", 40000, 53, np.dns_query(7, "www.example.com"))
    assert [(e.name, e.matched) for e in stage.process([base(query, 0b10)])] == [
        ("net_packet_dns_request", 2)]


def test_forgotten_policy_sets_and_userland_scopes() -> None:
    query = np.udp4("10.0.0.2", "10.0.0.1", 40000, 53, np.dns_query(7, "www.example.com"))
    stage = NetworkStage(lambda v: None)
    assert stage.process([base(query, 1)]) == []
    assert (stage.packets, stage.unplaced) == (1, 1)
    # policy 0's user-space scope refuses the task: only policy 1 is left.
    no = SimpleNamespace(matches=lambda ctx: False)
    rt = runtime({ID["net_packet_udp"]: 0b11}, userland={0: no})
    stage = NetworkStage(lambda v: rt)
    assert [(e.name, e.matched) for e in stage.process([base(query, 0b11)])] == [
        ("net_packet_udp", 0b10)]
