"""The network stage: packets (net_packet_*_base) become the events their policies
select, never themselves; security_socket_connect gives net_tcp_connect; counts."""

from __future__ import annotations

from pytracee.derive.network import NetworkStage
from pytracee.events import definitions as d
from pytracee.events.event import Event, TaskContext
from pytracee.server.metrics import network_metrics
from tests.unit import net_packets as np

CTX = TaskContext((1, 1, 1, 1, 42, 42, 1, 42, 42, 1, 0, 0, 1, 1, b"curl", b"h"), 0)
ID = {name: d.BY_NAME[name].id for name in ("net_packet_dns_request", "net_packet_dns_response",
                                            "net_packet_udp", "net_tcp_connect",
                                            "security_socket_connect")}


def base(data: bytes, matched: int, ingress: bool = False, eid: int = d.NET_PACKET_BASE) -> Event:
    return Event(1_000, 0, matched, eid, -1, 0, 3, 0, CTX, d.EVENTS[eid], [int(ingress), len(data), data])


def test_packets_become_the_events_each_policy_selects() -> None:
    # policy 0: DNS requests; policy 1: UDP packets.
    bits = {ID["net_packet_dns_request"]: 1, ID["net_packet_udp"]: 2}
    stage = NetworkStage(lambda v: bits if v == 3 else None)
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
    bits = {ID["net_tcp_connect"]: 1}
    stage = NetworkStage(lambda v: bits)
    reply = np.udp4("10.0.0.1", "10.0.0.2", 53, 40000, np.dns_cname_response(7))
    conn = Event(2_000, -115, 1, ID["security_socket_connect"], 42, 0, 3, 0, CTX,
                 d.EVENTS[ID["security_socket_connect"]],
                 [3, 1, {"sa_family": "AF_INET", "sin_port": "443", "sin_addr": "93.184.216.35"}])
    out = stage.process([base(reply, 1, ingress=True, eid=d.NET_PACKET_DNS_BASE), conn])
    assert [(e.name, e.args, e.retval) for e in out] == [
        ("net_tcp_connect", ["93.184.216.35", 443, ["www.example.com", "www.example.com.cdn.net"]],
         -115)]
    # UDP connects are not TCP connects; the security event itself goes on when selected.
    bits[ID["security_socket_connect"]] = 1
    udp = Event(3_000, 0, 1, conn.event_id, 42, 0, 3, 0, CTX, conn.definition,
                [4, 2, {"sa_family": "AF_INET", "sin_port": "53", "sin_addr": "10.0.0.1"}])
    assert [e.name for e in stage.process([udp])] == ["security_socket_connect"]


def test_undecodable_packets_are_counted_and_exported() -> None:
    stage = NetworkStage(lambda v: {ID["net_packet_udp"]: 1})
    assert stage.process([base(b"\x45\x00\x00", 1)]) == []
    metrics = {m.name: m.samples for m in network_metrics(stage)}
    assert metrics["pytracee_network_packets_total"] == [({}, 1)]
    assert ({"part": "packet"}, 1) in metrics["pytracee_network_undecodable_total"]
    assert stage.summary().startswith(", packets: 1 (undecodable parts: ")
