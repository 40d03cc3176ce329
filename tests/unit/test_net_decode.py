"""derive(): Tracee's net_packet_* / net_flow_* events from packets built byte by byte.

Checksums in the expected values were cross-checked with tshark's validation.
"""

from __future__ import annotations

import random

import pytest

from pytracee.net import DNS_CACHE, NET_EVENTS, DecodeCounts, DnsCache, FlowTable, derive
from pytracee.net.decode import type_code, _ICMP4_TYPES, _ICMP6_TYPES
from tests.unit import net_packets as b
from tests.unit.net_packets import pkt

C, S = "10.0.0.2", "93.184.216.34"
C6, S6 = "2001:db8::2", "2606:2800:220:1:248:1893:25c8:1946"
ALL = NET_EVENTS


def run(p, wanted=ALL, dns=None, flows=None, stats=None):
    return derive(p, frozenset(wanted), dns, flows if flows is not None else FlowTable(),
                  stats if stats is not None else DecodeCounts())


def names(events):
    return [n for n, _ in events]


SYNACK = pkt(b.ipv4(S, C, 6, b.tcp(S, C, 80, 40001, flags="SA", seq=1, ack=1001, window=65535),
                    ttl=56, ident=0), ingress=True)


def test_ipv4_tcp_synack_all_fields():
    ev = run(SYNACK)
    assert names(ev) == ["net_packet_ipv4", "net_packet_tcp", "net_flow_tcp_begin"]
    assert ev[0][1] == {
        "src": S, "dst": C, "metadata": {"direction": "ingress"},
        "proto_ipv4": {"version": 4, "IHL": 5, "TOS": 0, "length": 40, "id": 0, "flags": 2,
                       "fragOffset": 0, "TTL": 56, "protocol": "TCP", "checksum": 756,
                       "srcIP": S, "dstIP": C}}
    assert ev[1][1] == {
        "src": S, "dst": C, "src_port": 80, "dst_port": 40001, "metadata": {"direction": "ingress"},
        "proto_tcp": {"srcPort": 80, "dstPort": 40001, "seq": 1, "ack": 1001, "dataOffset": 5,
                      "FIN": 0, "SYN": 1, "RST": 0, "PSH": 0, "ACK": 1, "URG": 0, "ECE": 0,
                      "CWR": 0, "NS": 0, "window": 65535, "checksum": 53114, "urgent": 0}}
    assert ev[2][1] == {"conn_direction": "outgoing", "src": C, "dst": S, "src_port": 40001,
                        "dst_port": 80, "src_dns": [], "dst_dns": []}


def test_ipv6_tcp_all_flags_and_arg_order():
    p = pkt(b.tcp6(C6, S6, 40002, 443, flags="PAEC", seq=7, ack=9, payload=b"hello", ns=True))
    ev = run(p)
    assert names(ev) == ["net_packet_ipv6", "net_packet_tcp"]
    assert ev[0][1] == {
        "src": C6, "dst": S6, "metadata": {"direction": "egress"},
        "proto_ipv6": {"version": 6, "trafficClass": 0, "flowLabel": 0, "length": 25,
                       "nextHeader": "TCP", "hopLimit": 64, "srcIP": C6, "dstIP": S6}}
    assert list(ev[1][1]) == ["src", "dst", "src_port", "dst_port", "metadata", "proto_tcp"]
    assert ev[1][1]["proto_tcp"] == {
        "srcPort": 40002, "dstPort": 443, "seq": 7, "ack": 9, "dataOffset": 5, "FIN": 0, "SYN": 0,
        "RST": 0, "PSH": 1, "ACK": 1, "URG": 0, "ECE": 1, "CWR": 1, "NS": 1, "window": 64240,
        "checksum": 63851, "urgent": 0}


def test_ipv6_traffic_class_flow_label_and_mapped_addresses():
    p = pkt(b.ipv6("::ffff:10.1.2.3", "::1.2.3.4", 17, b.udp("::ffff:10.1.2.3", "::1.2.3.4", 1, 2, b""),
                   tclass=0xB8, flow=0xABCDE, hop=3))
    ev = run(p, {"net_packet_ipv6"})
    # Go's net.IP.String(): v4-mapped prints as IPv4, v4-compatible in hex groups
    assert ev == [("net_packet_ipv6", {
        "src": "10.1.2.3", "dst": "::102:304", "metadata": {"direction": "egress"},
        "proto_ipv6": {"version": 6, "trafficClass": 0xB8, "flowLabel": 0xABCDE, "length": 8,
                       "nextHeader": "UDP", "hopLimit": 3, "srcIP": "10.1.2.3", "dstIP": "::102:304"}})]


def test_udp_dns_query():
    p = pkt(b.udp4(C, "8.8.8.8", 40000, 53, b.dns_query(0x1111, "www.example.com")))
    ev = run(p)
    assert names(ev) == ["net_packet_ipv4", "net_packet_udp", "net_packet_dns",
                         "net_packet_dns_request"]
    assert ev[1][1] == {"src": C, "dst": "8.8.8.8", "src_port": 40000, "dst_port": 53,
                        "metadata": {"direction": "egress"},
                        "proto_udp": {"srcPort": 40000, "dstPort": 53, "length": 41,
                                      "checksum": 60839}}
    assert ev[2][1] == {
        "src": C, "dst": "8.8.8.8", "src_port": 40000, "dst_port": 53,
        "metadata": {"direction": "egress"},
        "proto_dns": {"ID": 0x1111, "QR": 0, "opCode": "query", "AA": 0, "TC": 0, "RD": 1, "RA": 0,
                      "Z": 0, "responseCode": "no error", "QDCount": 1, "ANCount": 0, "NSCount": 0,
                      "ARCount": 0,
                      "questions": [{"name": "www.example.com", "type": "A", "class": "IN"}],
                      "answers": [], "authorities": [], "additionals": []}}
    assert ev[3][1] == {
        "metadata": {"src_ip": C, "dst_ip": "8.8.8.8", "src_port": 40000, "dst_port": 53,
                     "protocol": 17, "packet_len": 61, "iface": "any"},
        "dns_questions": [{"query": "www.example.com", "query_type": "A", "query_class": "IN"}]}


def test_udp_dns_response_cname_chain():
    cache = DnsCache()
    p = pkt(b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response()), ingress=True)
    ev = run(p, {"net_packet_dns_response", DNS_CACHE}, dns=cache)
    assert ev == [("net_packet_dns_response", {
        "metadata": {"src_ip": "8.8.8.8", "dst_ip": C, "src_port": 53, "dst_port": 40000,
                     "protocol": 17, "packet_len": 130, "iface": "any"},
        "dns_response": [{
            "query_data": {"query": "www.example.com", "query_type": "A", "query_class": "IN"},
            "dns_answer": [
                {"answer_type": "CNAME", "ttl": 300, "answer": "www.example.com.cdn.net"},
                {"answer_type": "A", "ttl": 60, "answer": "93.184.216.34"},
                {"answer_type": "A", "ttl": 60, "answer": "93.184.216.35"}]}]})]
    assert cache.names("93.184.216.35") == ["www.example.com", "www.example.com.cdn.net"]


def test_dns_response_record_shape_in_net_packet_dns():
    w = (b.DnsBuilder(9, qr=1, aa=1, ra=1).question("example.org", b.MX)
         .rr(1, "example.org", b.MX, 3600, target="mail.example.org", pre=b"\x00\x0a").build())
    ev = run(pkt(b.udp6("2001:4860:4860::8888", C6, 53, 5353, w), ingress=True), {"net_packet_dns"})
    (name, args), = ev
    assert args["proto_dns"]["AA"] == 1 and args["proto_dns"]["ANCount"] == 1
    assert args["proto_dns"]["answers"] == [{
        "name": "example.org", "type": "MX", "class": "IN", "TTL": 3600, "IP": "", "NS": "",
        "CNAME": "", "PTR": "", "TXTs": [],
        "SOA": {"MName": "", "RName": "", "serial": 0, "refresh": 0, "retry": 0, "expire": 0,
                "minimum": 0},
        "SRV": {"priority": 0, "weight": 0, "port": 0, "name": ""},
        "MX": {"preference": 10, "name": "mail.example.org"}, "OPT": [],
        "URI": {"priority": 0, "weight": 0, "target": ""}, "TXT": ""}]


def test_dns_over_tcp_with_length_prefix():
    q = b.dns_query(0x2222, "example.net", b.AAAA)
    p = pkt(b.tcp4(C, "9.9.9.9", 40010, 53, flags="PA", payload=len(q).to_bytes(2, "big") + q))
    ev = run(p, {"net_packet_dns_request"})
    assert ev == [("net_packet_dns_request", {
        "metadata": {"src_ip": C, "dst_ip": "9.9.9.9", "src_port": 40010, "dst_port": 53,
                     "protocol": 6, "packet_len": 71, "iface": "any"},
        "dns_questions": [{"query": "example.net", "query_type": "AAAA", "query_class": "IN"}]})]


def test_dns_not_on_port_53_is_not_dns():
    p = pkt(b.udp4(C, "8.8.8.8", 40000, 5353, b.dns_query(1, "x.local")))
    assert names(run(p)) == ["net_packet_ipv4", "net_packet_udp"]


def test_http_request_events():
    p = pkt(b.tcp4(C, S, 40001, 80, flags="PA", payload=b.HTTP_REQUEST))
    ev = run(p, {"net_packet_http", "net_packet_http_request", "net_packet_http_response"})
    headers = {"Accept": ["*/*"], "User-Agent": ["curl/8.5.0"]}
    assert ev == [
        ("net_packet_http", {
            "src": C, "dst": S, "src_port": 40001, "dst_port": 80,
            "metadata": {"direction": "egress"},
            "proto_http": {"direction": "request", "method": "GET", "protocol": "HTTP/1.1",
                           "host": "www.example.com", "uri_path": "/index.html", "status": "",
                           "status_code": 0, "headers": headers, "content_length": 0}}),
        ("net_packet_http_request", {
            "metadata": {"src_ip": C, "dst_ip": S, "src_port": 40001, "dst_port": 80,
                         "protocol": 6, "packet_len": 132, "iface": "any"},
            "http_request": {"method": "GET", "protocol": "HTTP/1.1", "host": "www.example.com",
                             "uri_path": "/index.html", "headers": headers,
                             "content_length": 0}})]


def test_http_response_event():
    p = pkt(b.tcp4(S, C, 80, 40001, flags="PA", payload=b.HTTP_RESPONSE), ingress=True)
    ev = run(p, {"net_packet_http_response"})
    assert ev == [("net_packet_http_response", {
        "metadata": {"src_ip": S, "dst_ip": C, "src_port": 80, "dst_port": 40001, "protocol": 6,
                     "packet_len": 194, "iface": "any"},
        "http_response": {"status": "200 OK", "status_code": 200, "protocol": "HTTP/1.1",
                          "headers": {"Content-Length": ["1256"],
                                      "Content-Type": ["text/html; charset=UTF-8"],
                                      "Server": ["ECS (dcb/7F84)"],
                                      "Set-Cookie": ["a=1", "b=2"]},
                          "content_length": 1256}})]


def test_http_needs_a_known_start():
    # Tracee's kernel only takes GET/POST/PUT/DELETE/HEAD and "HTTP/"
    for payload in (b"OPTIONS / HTTP/1.1\r\n\r\n", b"GET /", b"\x16\x03\x01\x02\x00\x01\x00"):
        p = pkt(b.tcp4(C, S, 40001, 80, flags="PA", payload=payload))
        assert run(p, {"net_packet_http", "net_packet_http_request"}) == []


def test_icmp_and_icmpv6():
    p = pkt(b.ipv4(C, "1.1.1.1", 1, b.icmp(8, 0, 7, 1, bytes(56))))
    assert run(p, {"net_packet_icmp", "net_packet_icmpv6"}) == [("net_packet_icmp", {
        "src": C, "dst": "1.1.1.1", "metadata": {"direction": "egress"},
        "proto_icmp": {"typeCode": "EchoRequest", "checksum": 63479, "id": 7, "seq": 1}})]
    p6 = pkt(b.ipv6("fe80::1", "ff02::1", 58, b.icmp6("fe80::1", "ff02::1", 135, 0, bytes(20))),
             ingress=True)
    assert run(p6, {"net_packet_icmp", "net_packet_icmpv6"}) == [("net_packet_icmpv6", {
        "src": "fe80::1", "dst": "ff02::1", "metadata": {"direction": "ingress"},
        "proto_icmpv6": {"typeCode": "NeighborSolicitation", "checksum": 31527}})]


def test_icmp_type_code_names_are_gopackets():
    assert type_code(_ICMP4_TYPES, 3, 3) == "DestinationUnreachable(Port)"
    assert type_code(_ICMP4_TYPES, 0, 0) == "EchoReply"
    assert type_code(_ICMP4_TYPES, 8, 4) == "EchoRequest(Code: 4)"
    assert type_code(_ICMP4_TYPES, 11, 9) == "TimeExceeded(Code: 9)"
    assert type_code(_ICMP4_TYPES, 42, 1) == "42(1)"
    assert type_code(_ICMP6_TYPES, 1, 4) == "DestinationUnreachable(PortUnreachable)"
    assert type_code(_ICMP6_TYPES, 129, 0) == "EchoReply"


def test_only_wanted_events_are_built():
    p = pkt(b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response()), ingress=True)
    assert names(run(p, {"net_packet_udp"})) == ["net_packet_udp"]
    assert names(run(p, {"net_packet_ipv6", "net_packet_tcp"})) == []
    assert run(p, set()) == []
    assert run(p, {"sched_process_exec"}) == []
    assert names(derive(p, {"net_packet_udp"}, None, FlowTable())) == ["net_packet_udp"]  # a set


def test_dns_payload_not_parsed_unless_needed():
    junk = pkt(b.udp4("8.8.8.8", C, 53, 40000, b"\x01\x02\x03"), ingress=True)
    st = DecodeCounts()
    assert names(run(junk, {"net_packet_udp"}, stats=st)) == ["net_packet_udp"]
    assert st.dns_errors == 0 and st.decode_errors == 0
    run(junk, {"net_packet_udp"}, dns=DnsCache(), stats=st)   # a cache not to be fed
    assert st.dns_errors == 0
    run(junk, {"net_packet_udp", DNS_CACHE}, dns=DnsCache(), stats=st)   # a cache to feed
    assert st.dns_errors == 1 and st.decode_errors == 1


def test_cache_fed_for_flows_or_when_asked():
    p = pkt(b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response()), ingress=True)
    for wanted in ({"net_flow_tcp_begin"}, {"net_flow_tcp_end"}, {DNS_CACHE}):
        cache = DnsCache()
        assert run(p, wanted, dns=cache) == []
        assert cache.names("93.184.216.34") == ["www.example.com", "www.example.com.cdn.net"]
    cache = DnsCache()
    assert names(run(p, {"net_packet_dns"}, dns=cache)) == ["net_packet_dns"]
    assert len(cache) == 0


def test_http_payload_not_parsed_unless_wanted():
    bad = pkt(b.tcp4(C, S, 40001, 80, flags="PA", payload=b"GET /%zz HTTP/1.1\r\n\r\n"))
    st = DecodeCounts()
    run(bad, {"net_packet_tcp"}, stats=st)
    assert st.http_errors == 0
    assert run(bad, {"net_packet_http_request"}, stats=st) == []
    assert st.http_errors == 1 and st.decode_errors == 1


# ---- flows

def test_flow_outgoing_begin_and_end_by_local_fin():
    flows, cache = FlowTable(), DnsCache()
    run(pkt(b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response()), ingress=True), {DNS_CACHE},
        cache)
    fl = {"net_flow_tcp_begin", "net_flow_tcp_end"}
    assert run(pkt(b.tcp4(C, S, 40001, 80, flags="S")), fl, cache, flows) == []
    ev = run(pkt(b.tcp4(S, C, 80, 40001, flags="SA"), ingress=True), fl, cache, flows)
    want = {"conn_direction": "outgoing", "src": C, "dst": S, "src_port": 40001, "dst_port": 80,
            "src_dns": [], "dst_dns": ["www.example.com", "www.example.com.cdn.net"]}
    assert ev == [("net_flow_tcp_begin", want)]
    assert run(pkt(b.tcp4(C, S, 40001, 80, flags="A")), fl, cache, flows) == []
    assert run(pkt(b.tcp4(C, S, 40001, 80, flags="FA")), fl, cache, flows) == [
        ("net_flow_tcp_end", want)]
    # the other side's FIN finds the flow gone
    assert run(pkt(b.tcp4(S, C, 80, 40001, flags="FA"), ingress=True), fl, cache, flows) == []
    assert len(flows) == 0


def test_flow_incoming_ended_by_remote_rst():
    flows = FlowTable()
    fl = {"net_flow_tcp_begin", "net_flow_tcp_end"}
    ev = run(pkt(b.tcp4(C, "198.51.100.7", 22, 51000, flags="SA")), fl, None, flows)
    want = {"conn_direction": "incoming", "src": "198.51.100.7", "dst": C, "src_port": 51000,
            "dst_port": 22, "src_dns": [], "dst_dns": []}
    assert ev == [("net_flow_tcp_begin", want)]
    ev = run(pkt(b.tcp4("198.51.100.7", C, 51000, 22, flags="R"), ingress=True), fl, None, flows)
    assert ev == [("net_flow_tcp_end", want)]


def test_flow_ended_by_the_responder_is_reported_initiator_first():
    flows = FlowTable()
    fl = {"net_flow_tcp_end"}      # the table is kept even when begin is not wanted
    assert run(SYNACK, fl, None, flows) == []
    ev = run(pkt(b.tcp4(S, C, 80, 40001, flags="FA"), ingress=True), fl, None, flows)
    assert ev == [("net_flow_tcp_end", {
        "conn_direction": "outgoing", "src": C, "dst": S, "src_port": 40001, "dst_port": 80,
        "src_dns": [], "dst_dns": []})]


def test_fin_of_unknown_flow_and_repeated_synack():
    flows = FlowTable()
    fl = {"net_flow_tcp_begin", "net_flow_tcp_end"}
    assert run(pkt(b.tcp4(C, S, 40009, 80, flags="FA")), fl, None, flows) == []
    assert names(run(SYNACK, fl, None, flows)) == ["net_flow_tcp_begin"]
    assert names(run(SYNACK, fl, None, flows)) == ["net_flow_tcp_begin"]   # as Tracee: each SYN+ACK
    assert len(flows) == 1


def test_flows_over_ipv6():
    flows = FlowTable()
    fl = {"net_flow_tcp_begin", "net_flow_tcp_end"}
    ev = run(pkt(b.tcp6(S6, C6, 443, 40002, flags="SA"), ingress=True), fl, None, flows)
    assert ev[0][1]["src"] == C6 and ev[0][1]["conn_direction"] == "outgoing"
    assert names(run(pkt(b.tcp6(C6, S6, 40002, 443, flags="R")), fl, None, flows)) == [
        "net_flow_tcp_end"]


# ---- damaged input

def test_truncated_headers_yield_what_they_can():
    st = DecodeCounts()
    full = b.tcp4(C, S, 40001, 80, flags="PA", payload=b.HTTP_REQUEST)
    assert names(run(pkt(full[:30], length=len(full)), stats=st)) == ["net_packet_ipv4"]
    assert st.truncated == 1 and st.decode_errors == 1
    assert run(pkt(full[:12], length=len(full)), stats=st) == []
    assert st.truncated == 2


def test_snap_cut_http_head_uses_complete_lines():
    st = DecodeCounts()
    full = b.tcp4(C, S, 40001, 80, flags="PA", payload=b.HTTP_REQUEST)
    cut = full[:full.index(b"User-Agent") + 5]
    ev = run(pkt(cut, length=len(full)), {"net_packet_http_request"}, stats=st)
    assert ev[0][1]["http_request"]["host"] == "www.example.com"
    assert ev[0][1]["http_request"]["headers"] == {}
    assert st.http_partial == 1 and st.decode_errors == 0


def test_snap_cut_dns_response_is_an_error_but_headers_still_come():
    st = DecodeCounts()
    cache = DnsCache()
    full = b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response())
    ev = run(pkt(full[:100], ingress=True, length=len(full)), dns=cache, stats=st)
    assert names(ev) == ["net_packet_ipv4", "net_packet_udp"]
    assert st.dns_errors == 1 and st.truncated == 1 and st.decode_errors == 1
    assert len(cache) == 0


def test_ip_fragments_have_no_transport_events():
    frag = pkt(b.ipv4(C, S, 17, b.udp(C, S, 1, 53, b"x" * 8), flags=1))   # MF
    assert names(run(frag)) == ["net_packet_ipv4"]
    later = pkt(b.ipv4(C, S, 17, b"x" * 16, frag=185))
    assert names(run(later)) == ["net_packet_ipv4"]


def test_ipv6_extension_headers_are_walked():
    hbh = bytes([17, 0, 5, 2, 0, 0, 1, 0])     # hop-by-hop with a router alert, then UDP
    p = pkt(b.ipv6(C6, S6, 0, hbh + b.udp(C6, S6, 1000, 2000, b"abc")))
    ev = run(p, {"net_packet_ipv6", "net_packet_udp"})
    assert ev[0][1]["proto_ipv6"]["nextHeader"] == "IPv6HopByHop"
    assert ev[1][1]["src_port"] == 1000 and ev[1][1]["dst_port"] == 2000


def test_not_ip():
    st = DecodeCounts()
    assert run(pkt(b"\x00" * 40), stats=st) == []
    assert run(pkt(b""), stats=st) == []
    assert st.not_ip == 2 and st.decode_errors == 2


def test_bad_lengths():
    st = DecodeCounts()
    bad_ihl = bytearray(b.tcp4(C, S, 1, 2))
    bad_ihl[0] = 0x44
    assert run(pkt(bytes(bad_ihl)), stats=st) == []
    bad_doff = bytearray(b.tcp4(C, S, 1, 2))
    bad_doff[32] = 0x40
    assert names(run(pkt(bytes(bad_doff)), stats=st)) == ["net_packet_ipv4"]
    assert st.decode_errors == 2 and st.internal_errors == 0


def test_memoryview_data_is_accepted():
    p = pkt(b.dns_query(1, "x"))
    p.data = memoryview(b.udp4(C, "8.8.8.8", 4000, 53, b.dns_query(1, "a.b")))
    assert names(run(p, {"net_packet_dns_request"})) == ["net_packet_dns_request"]


MIX = [SYNACK.data,
       b.tcp6(C6, S6, 40002, 443, flags="PA", payload=b"hello"),
       b.udp4(C, "8.8.8.8", 40000, 53, b.dns_query(0x1111, "www.example.com")),
       b.udp4("8.8.8.8", C, 53, 40000, b.dns_cname_response()),
       b.tcp4(C, S, 40001, 80, flags="PA", payload=b.HTTP_REQUEST),
       b.tcp4(S, C, 80, 40001, flags="PA", payload=b.HTTP_RESPONSE),
       b.ipv4(C, "1.1.1.1", 1, b.icmp(8, 0, 7, 1, bytes(56))),
       b.ipv6("fe80::1", "ff02::1", 58, b.icmp6("fe80::1", "ff02::1", 135, 0, bytes(20)))]


@pytest.mark.parametrize("i", range(len(MIX)))
def test_every_truncation_is_handled(i):
    data = MIX[i]
    st = DecodeCounts()
    for cut in range(len(data) + 1):
        run(pkt(data[:cut], length=len(data)), dns=DnsCache(), stats=st)
    assert st.internal_errors == 0


def test_random_corruption_never_raises():
    rnd = random.Random(7)
    st = DecodeCounts()
    cache, flows = DnsCache(), FlowTable()
    for _ in range(3000):
        data = bytearray(rnd.choice(MIX))
        for _ in range(rnd.randint(1, 6)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        derive(pkt(bytes(data[:rnd.randint(0, len(data))])), ALL, cache, flows, st)
    assert st.internal_errors == 0
    assert st.packets == 3000


@pytest.mark.skipif(__import__("shutil").which("tshark") is None, reason="tshark is not installed")
def test_fields_agree_with_tshark(tmp_path):
    import subprocess

    from pytracee.net.pcap import PcapWriter
    path = tmp_path / "mix.pcap"
    w = PcapWriter(path)
    for i, data in enumerate(MIX):
        w.write(i, data, len(data))
    w.close()
    fields = ["ip.src", "ipv6.src", "tcp.srcport", "udp.srcport", "tcp.flags", "dns.qry.name",
              "dns.cname", "dns.a", "http.request.method", "http.host", "http.response.code",
              "icmp.type", "icmpv6.type"]
    cmd = ["tshark", "-r", str(path), "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields",
           "-E", "separator=|", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    rows = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    for data, row in zip(MIX, rows):
        t = dict(zip(fields, row.split("|")))
        ev = dict(run(pkt(data), dns=DnsCache()))
        ip = ev.get("net_packet_ipv4") or ev["net_packet_ipv6"]
        assert ip["src"] == (t["ip.src"] or t["ipv6.src"])
        if "net_packet_tcp" in ev:
            tcp = ev["net_packet_tcp"]
            assert str(tcp["src_port"]) == t["tcp.srcport"]
            flags = sum(tcp["proto_tcp"][k] << i for i, k in enumerate(
                ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]))
            assert f"0x{flags:04x}" == t["tcp.flags"]
        if "net_packet_udp" in ev:
            assert str(ev["net_packet_udp"]["src_port"]) == t["udp.srcport"]
        if "net_packet_dns" in ev:
            dns = ev["net_packet_dns"]["proto_dns"]
            assert dns["questions"][0]["name"] == t["dns.qry.name"]
            assert ",".join(a["CNAME"] for a in dns["answers"] if a["type"] == "CNAME") == t["dns.cname"]
            assert ",".join(a["IP"] for a in dns["answers"] if a["type"] == "A") == t["dns.a"]
        if "net_packet_http" in ev:
            h = ev["net_packet_http"]["proto_http"]
            if h["direction"] == "request":
                assert (h["method"], h["host"]) == (t["http.request.method"], t["http.host"])
            else:
                assert str(h["status_code"]) == t["http.response.code"]
        if "net_packet_icmp" in ev:
            assert t["icmp.type"] == "8"
        if "net_packet_icmpv6" in ev:
            assert t["icmpv6.type"] == "135"
