"""Packets to Tracee's network events (pkg/events/derive/net_packet*.go, net_flow.go).

    derive(pkt, wanted, dns, flows) -> [(event name, args dict), ...]

One call per captured packet. Only the `wanted` events are built and only the
layers they need are read: with no DNS event wanted and no cache to feed (a flow
event or DNS_CACHE in `wanted`) the DNS payload is not parsed, with no HTTP
event wanted the TCP payload is not looked at.

Args dicts hold Tracee's argument names in Tracee's order and JSON-shaped values
(types/trace/network_trace.go field names); treat them as read-only, as the
events of one packet may share sub-dicts.

What decides which events a packet yields is Tracee's kernel side
(pkg/ebpf/c/tracee.bpf.c cgroup_skb handlers), done here instead:
  - DNS: UDP or TCP with min(src port, dst port) == 53 (TCP: 2-byte length prefix);
  - HTTP: a TCP payload of 7+ bytes starting "HTTP/" (response) or
    "GET ", "POST ", "PUT ", "DELETE ", "HEAD " (request), when not DNS;
  - flow begin: a TCP SYN+ACK; the flow's initiator is the packet's destination
    (ingress SYN+ACK: "outgoing", egress: "incoming");
  - flow end: the first FIN or RST of a flow the table knows, seen from either side.

A malformed or truncated packet yields the events its intact layers allow and
is counted in STATS (plain ints); nothing raises out of derive().
"""

from __future__ import annotations

import logging
import socket
import struct

from pytracee.net import dns as dnswire
from pytracee.net import http as httpwire
from pytracee.net.dnscache import DnsCache
from pytracee.net.flows import FlowTable
from pytracee.net.packet import Packet

log = logging.getLogger(__name__)

# Not an event: in `wanted`, asks derive() to feed the DNS cache from DNS responses
# (for net_tcp_connect's dst_dns) when no DNS or flow event is wanted.
DNS_CACHE = "dns_cache"

NET_EVENTS = frozenset({
    "net_packet_ipv4", "net_packet_ipv6", "net_packet_tcp", "net_packet_udp",
    "net_packet_icmp", "net_packet_icmpv6", "net_packet_dns", "net_packet_dns_request",
    "net_packet_dns_response", "net_packet_http", "net_packet_http_request",
    "net_packet_http_response", "net_flow_tcp_begin", "net_flow_tcp_end",
})


class DecodeCounts:
    """Counters, read at scrape time. decode_errors counts packets with a layer
    that was needed and could not be read (the detail is in the other counters)."""

    __slots__ = ("packets", "events", "decode_errors", "truncated", "not_ip",
                 "dns_errors", "http_errors", "http_partial", "internal_errors")

    def __init__(self) -> None:
        self.packets = 0          # packets given to derive() with something to do
        self.events = 0           # events returned
        self.decode_errors = 0
        self.truncated = 0        # a needed header or message ran past the captured data
        self.not_ip = 0           # neither IPv4 nor IPv6
        self.dns_errors = 0       # DNS payload that is not a whole DNS message
        self.http_errors = 0      # looked like HTTP (by its first bytes), head malformed
        self.http_partial = 0     # HTTP head cut short: complete header lines used
        self.internal_errors = 0  # a bug met an odd packet: logged once, counted

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


STATS = DecodeCounts()

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_ICMP4 = struct.Struct("!BBHHH")
_ICMP6 = struct.Struct("!BBH")

_TCP_PROTO, _UDP_PROTO, _ICMP_PROTO, _ICMP6_PROTO = 6, 17, 1, 58
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_IP6_EXT = frozenset({0, 43, 60})     # hop-by-hop, routing, destination options
_IP6_FRAGMENT = 44
_DNS_PORT = 53

# gopacket's IPProtocol names (IPv4 "protocol", IPv6 "nextHeader")
_PROTO_NAMES = {0: "IPv6HopByHop", 1: "ICMPv4", 2: "IGMP", 4: "IPv4", 6: "TCP", 17: "UDP",
                27: "RUDP", 41: "IPv6", 43: "IPv6Routing", 44: "IPv6Fragment", 47: "GRE",
                50: "IPSecESP", 51: "IPSecAH", 58: "ICMPv6", 59: "NoNextHeader",
                60: "IPv6Destination", 89: "OSPF", 94: "IPIP", 97: "EtherIP", 112: "VRRP",
                132: "SCTP", 136: "UDPLite", 137: "MPLSInIP"}

# gopacket's ICMPv4TypeCode / ICMPv6TypeCode names: type -> (name, {code: name} or None)
_ICMP4_TYPES: dict[int, tuple[str, dict[int, str] | None]] = {
    0: ("EchoReply", None),
    3: ("DestinationUnreachable", {0: "Net", 1: "Host", 2: "Protocol", 3: "Port",
                                   4: "FragmentationNeeded", 5: "SourceRoutingFailed",
                                   6: "NetUnknown", 7: "HostUnknown", 8: "SourceIsolated",
                                   9: "NetAdminProhibited", 10: "HostAdminProhibited",
                                   11: "NetTOS", 12: "HostTOS", 13: "CommAdminProhibited",
                                   14: "HostPrecedence", 15: "PrecedenceCutoff"}),
    4: ("SourceQuench", None),
    5: ("Redirect", {0: "Net", 1: "Host", 2: "TOS+Net", 3: "TOS+Host"}),
    8: ("EchoRequest", None),
    9: ("RouterAdvertisement", None),
    10: ("RouterSolicitation", None),
    11: ("TimeExceeded", {0: "TTLExceeded", 1: "FragmentReassemblyTimeExceeded"}),
    12: ("ParameterProblem", {0: "PointerIndicatesError", 1: "MissingOption", 2: "BadLength"}),
    13: ("TimestampRequest", None),
    14: ("TimestampReply", None),
    15: ("InfoRequest", None),
    16: ("InfoReply", None),
    17: ("AddressMaskRequest", None),
    18: ("AddressMaskReply", None),
}
_ICMP6_TYPES: dict[int, tuple[str, dict[int, str] | None]] = {
    1: ("DestinationUnreachable", {0: "NoRouteToDst", 1: "AdminProhibited", 2: "BeyondScopeOfSrc",
                                   3: "AddressUnreachable", 4: "PortUnreachable",
                                   5: "SrcAddressFailedPolicy", 6: "RejectRouteToDst"}),
    2: ("PacketTooBig", None),
    3: ("TimeExceeded", {0: "HopLimitExceeded", 1: "FragmentReassemblyTimeExceeded"}),
    4: ("ParameterProblem", {0: "ErroneousHeaderField", 1: "UnrecognizedNextHeader",
                             2: "UnrecognizedIPv6Option"}),
    128: ("EchoRequest", None),
    129: ("EchoReply", None),
    133: ("RouterSolicitation", None),
    134: ("RouterAdvertisement", None),
    135: ("NeighborSolicitation", None),
    136: ("NeighborAdvertisement", None),
    137: ("Redirect", None),
}


def type_code(table: dict[int, tuple[str, dict[int, str] | None]], t: int, c: int) -> str:
    info = table.get(t)
    if info is None:
        return f"{t}({c})"
    name, codes = info
    if codes is None:
        return name if c == 0 else f"{name}(Code: {c})"
    code = codes.get(c)
    return f"{name}({code})" if code is not None else f"{name}(Code: {c})"


class _Plan:
    """What one `wanted` set needs, computed once per distinct set."""

    __slots__ = ("any", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "dns", "dns_req",
                 "dns_resp", "dns_any", "http", "http_req", "http_resp", "http_any",
                 "flow_begin", "flow_end", "flow_any", "tcp_layer", "feed_cache")

    def __init__(self, wanted: frozenset[str]) -> None:
        w = wanted
        self.ipv4 = "net_packet_ipv4" in w
        self.ipv6 = "net_packet_ipv6" in w
        self.tcp = "net_packet_tcp" in w
        self.udp = "net_packet_udp" in w
        self.icmp = "net_packet_icmp" in w
        self.icmpv6 = "net_packet_icmpv6" in w
        self.dns = "net_packet_dns" in w
        self.dns_req = "net_packet_dns_request" in w
        self.dns_resp = "net_packet_dns_response" in w
        self.dns_any = self.dns or self.dns_req or self.dns_resp
        self.http = "net_packet_http" in w
        self.http_req = "net_packet_http_request" in w
        self.http_resp = "net_packet_http_response" in w
        self.http_any = self.http or self.http_req or self.http_resp
        self.flow_begin = "net_flow_tcp_begin" in w
        self.flow_end = "net_flow_tcp_end" in w
        self.flow_any = self.flow_begin or self.flow_end
        self.tcp_layer = self.tcp or self.flow_any or self.http_any
        # the cache names flow ends (and net_tcp_connect's destinations, by DNS_CACHE)
        self.feed_cache = self.flow_any or DNS_CACHE in w
        self.any = bool(w & NET_EVENTS) or self.feed_cache


_PLANS: dict[frozenset[str], _Plan] = {}
_logged_internal = False


def _plan(wanted: frozenset[str]) -> _Plan:
    p = _PLANS.get(wanted)
    if p is None:
        if len(_PLANS) > 64:   # policies reloaded many times: start over
            _PLANS.clear()
        p = _PLANS[wanted] = _Plan(wanted)
    return p


def derive(pkt: Packet, wanted: frozenset[str], dns: DnsCache | None, flows: FlowTable,
           stats: DecodeCounts = STATS) -> list[tuple[str, dict]]:
    """The selected network events of one packet, in Tracee's argument shapes.

    `dns`, when given, names the flow ends and is fed from the DNS responses
    seen when a flow event or DNS_CACHE is in `wanted` (DNS events or not);
    `flows` keeps TCP flows between their SYN+ACK and their first FIN/RST."""
    if type(wanted) is not frozenset:
        wanted = frozenset(wanted)
    plan = _PLANS.get(wanted) or _plan(wanted)
    if not plan.any:
        return []
    out: list[tuple[str, dict]] = []
    try:
        _derive(pkt, plan, dns, flows, stats, out)
    except Exception:   # never let an odd packet stop the pipeline
        global _logged_internal
        stats.internal_errors += 1
        stats.decode_errors += 1
        if not _logged_internal:
            _logged_internal = True
            log.exception("net: decoding a packet failed (logged once, counted in internal_errors)")
    stats.events += len(out)
    return out


def _derive(pkt: Packet, plan: _Plan, cache: DnsCache | None, flows: FlowTable,
            stats: DecodeCounts, out: list[tuple[str, dict]]) -> None:
    stats.packets += 1
    cache_in = cache if plan.feed_cache else None     # the cache is fed from DNS responses
    data = pkt.data
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    direction = "ingress" if pkt.ingress else "egress"
    version = data[0] >> 4 if n else 0

    # ---- layer 3
    if version == 4:
        if n < 20:
            _cut(stats)
            return
        vihl, tos, length, ident, frag, ttl, proto, csum, sb, db = _IP4.unpack_from(data)
        hl = (vihl & 15) << 2
        if hl < 20 or n < hl:
            stats.decode_errors += 1
            if n < hl:
                stats.truncated += 1
            return
        if length == 0:
            length = max(pkt.length, n)   # TSO/BIG TCP super-packets leave it 0
        elif length < hl:
            stats.decode_errors += 1
            return
        src = socket.inet_ntoa(sb)
        dst = socket.inet_ntoa(db)
        if plan.ipv4:
            out.append(("net_packet_ipv4", {
                "src": src, "dst": dst, "metadata": {"direction": direction},
                "proto_ipv4": {
                    "version": 4, "IHL": vihl & 15, "TOS": tos, "length": length, "id": ident,
                    "flags": frag >> 13, "fragOffset": frag & 0x1FFF, "TTL": ttl,
                    "protocol": _PROTO_NAMES.get(proto, "UnknownIPProtocol"),
                    "checksum": csum, "srcIP": src, "dstIP": dst}}))
        if frag & 0x3FFF:
            return      # a fragment: its transport header is not here (or not whole)
        l4 = hl
        full = length
        end = length if length < n else n
        if proto == _ICMP_PROTO:
            if plan.icmp:
                if end - l4 < 8:
                    _cut(stats)
                    return
                t, c, ck, ident, seq = _ICMP4.unpack_from(data, l4)
                out.append(("net_packet_icmp", {
                    "src": src, "dst": dst, "metadata": {"direction": direction},
                    "proto_icmp": {"typeCode": type_code(_ICMP4_TYPES, t, c), "checksum": ck,
                                   "id": ident, "seq": seq}}))
            return
    elif version == 6:
        if n < 40:
            _cut(stats)
            return
        vtf, length, nh, hop, sb, db = _IP6.unpack_from(data)
        src = dnswire.ip_string(sb)
        dst = dnswire.ip_string(db)
        if plan.ipv6:
            out.append(("net_packet_ipv6", {
                "src": src, "dst": dst, "metadata": {"direction": direction},
                "proto_ipv6": {
                    "version": 6, "trafficClass": (vtf >> 20) & 0xFF, "flowLabel": vtf & 0xFFFFF,
                    "length": length, "nextHeader": _PROTO_NAMES.get(nh, "UnknownIPProtocol"),
                    "hopLimit": hop, "srcIP": src, "dstIP": dst}}))
        full = 40 + length
        end = full if length and full < n else n
        proto = nh
        l4 = 40
        while proto in _IP6_EXT:
            if l4 + 2 > end:
                _cut(stats)
                return
            proto = data[l4]
            l4 += (data[l4 + 1] + 1) << 3
        if proto == _IP6_FRAGMENT:
            return
        if proto == _ICMP6_PROTO:
            if plan.icmpv6:
                if end - l4 < 4:
                    _cut(stats)
                    return
                t, c, ck = _ICMP6.unpack_from(data, l4)
                out.append(("net_packet_icmpv6", {
                    "src": src, "dst": dst, "metadata": {"direction": direction},
                    "proto_icmpv6": {"typeCode": type_code(_ICMP6_TYPES, t, c), "checksum": ck}}))
            return
    else:
        stats.not_ip += 1
        stats.decode_errors += 1
        return

    # ---- layer 4
    if proto == _TCP_PROTO:
        dns_here = plan.dns_any or cache_in is not None
        if not (plan.tcp_layer or dns_here):
            return
        if end - l4 < 20:
            _cut(stats)
            return
        sport, dport, seq, ack, offb, flags, win, ck, urg = _TCP.unpack_from(data, l4)
        doff = offb >> 4
        if doff < 5:
            stats.decode_errors += 1
            return
        if plan.tcp:
            out.append(("net_packet_tcp", {
                "src": src, "dst": dst, "src_port": sport, "dst_port": dport,
                "metadata": {"direction": direction},
                "proto_tcp": {
                    "srcPort": sport, "dstPort": dport, "seq": seq, "ack": ack, "dataOffset": doff,
                    "FIN": flags & 1, "SYN": (flags >> 1) & 1, "RST": (flags >> 2) & 1,
                    "PSH": (flags >> 3) & 1, "ACK": (flags >> 4) & 1, "URG": (flags >> 5) & 1,
                    "ECE": (flags >> 6) & 1, "CWR": flags >> 7, "NS": offb & 1,
                    "window": win, "checksum": ck, "urgent": urg}}))
        if plan.flow_any and flags & (_SYN | _FIN | _RST):
            _flow(pkt.ingress, flags, src, dst, sport, dport, plan, cache, flows, out)
        pay = l4 + (doff << 2)
        if pay >= end:
            if pay > end and n < full:
                stats.truncated += 1   # options cut by the snap length: payload unknown
            return
        if dns_here and (sport if sport < dport else dport) == _DNS_PORT:
            _dns(data[pay:end], True, src, dst, sport, dport, direction, length, n < full,
                 plan, cache_in, stats, out)
        elif plan.http_any and end - pay >= httpwire.HTTP_MIN_LEN:
            _http(data[pay:end], src, dst, sport, dport, direction, length, plan, stats, out)
    elif proto == _UDP_PROTO:
        dns_here = plan.dns_any or cache_in is not None
        if not (plan.udp or dns_here):
            return
        if end - l4 < 8:
            _cut(stats)
            return
        sport, dport, ulen, ck = _UDP.unpack_from(data, l4)
        if plan.udp:
            out.append(("net_packet_udp", {
                "src": src, "dst": dst, "src_port": sport, "dst_port": dport,
                "metadata": {"direction": direction},
                "proto_udp": {"srcPort": sport, "dstPort": dport, "length": ulen, "checksum": ck}}))
        if dns_here and (sport if sport < dport else dport) == _DNS_PORT and end - l4 > 8:
            _dns(data[l4 + 8:end], False, src, dst, sport, dport, direction, length, n < full,
                 plan, cache_in, stats, out)


def _cut(stats: DecodeCounts) -> None:
    stats.truncated += 1
    stats.decode_errors += 1


def _pkt_meta(src: str, dst: str, sport: int, dport: int, proto: int, length: int) -> dict:
    """trace.PktMeta (packet_len is the IP header's length field, as Tracee reports it)."""
    return {"src_ip": src, "dst_ip": dst, "src_port": sport, "dst_port": dport,
            "protocol": proto, "packet_len": length, "iface": "any"}


def _flow(ingress: bool, flags: int, src: str, dst: str, sport: int, dport: int, plan: _Plan,
          cache: DnsCache | None, flows: FlowTable, out: list[tuple[str, dict]]) -> None:
    if flags & (_SYN | _ACK) == (_SYN | _ACK):
        # SYN+ACK comes from the responder: the initiator is this packet's destination.
        conn = "outgoing" if ingress else "incoming"
        flows.begin(dst, dport, src, sport, conn)
        if plan.flow_begin:
            out.append(("net_flow_tcp_begin", _flow_args(conn, dst, src, dport, sport, cache)))
    if flags & (_FIN | _RST):
        src_initiated = flows.end(src, sport, dst, dport)
        if src_initiated is None:
            return      # not a flow we saw begin, or its other side already ended it
        if plan.flow_end:
            conn = "incoming" if src_initiated == ingress else "outgoing"
            if src_initiated:
                args = _flow_args(conn, src, dst, sport, dport, cache)
            else:
                args = _flow_args(conn, dst, src, dport, sport, cache)
            out.append(("net_flow_tcp_end", args))


def _flow_args(conn: str, src: str, dst: str, sport: int, dport: int,
               cache: DnsCache | None) -> dict:
    return {"conn_direction": conn, "src": src, "dst": dst, "src_port": sport, "dst_port": dport,
            "src_dns": cache.names(src) if cache is not None else [],
            "dst_dns": cache.names(dst) if cache is not None else []}


def _dns(payload: bytes, over_tcp: bool, src: str, dst: str, sport: int, dport: int,
         direction: str, length: int, cut: bool, plan: _Plan, cache: DnsCache | None,
         stats: DecodeCounts, out: list[tuple[str, dict]]) -> None:
    try:
        msg = dnswire.parse_tcp(payload) if over_tcp else dnswire.parse(payload)
    except dnswire.DnsError:
        stats.dns_errors += 1
        stats.decode_errors += 1
        if cut:
            stats.truncated += 1
        return
    one_question = len(msg.questions) == 1
    if cache is not None and msg.qr == 1 and msg.answers and one_question:
        cache.add_message(msg)
    if plan.dns:
        out.append(("net_packet_dns", {
            "src": src, "dst": dst, "src_port": sport, "dst_port": dport,
            "metadata": {"direction": direction}, "proto_dns": dnswire.proto_dns(msg)}))
    if not one_question:
        return
    proto = _TCP_PROTO if over_tcp else _UDP_PROTO
    if msg.qr == 0:
        if plan.dns_req and msg.qdcount == 1:
            out.append(("net_packet_dns_request", {
                "metadata": _pkt_meta(src, dst, sport, dport, proto, length),
                "dns_questions": dnswire.query_data(msg)}))
    elif plan.dns_resp:
        out.append(("net_packet_dns_response", {
            "metadata": _pkt_meta(src, dst, sport, dport, proto, length),
            "dns_response": dnswire.response_data(msg)}))


def _http(payload: bytes, src: str, dst: str, sport: int, dport: int, direction: str,
          length: int, plan: _Plan, stats: DecodeCounts, out: list[tuple[str, dict]]) -> None:
    k = httpwire.kind(payload)
    if not k:
        return
    try:
        if k == httpwire.REQUEST:
            msg, complete = httpwire.parse_request(payload)
        else:
            msg, complete = httpwire.parse_response(payload)
    except httpwire.HttpError:
        stats.http_errors += 1
        stats.decode_errors += 1
        return
    if not complete:
        stats.http_partial += 1
    if plan.http:
        proto = (httpwire.proto_http_from_request(msg) if k == httpwire.REQUEST
                 else httpwire.proto_http_from_response(msg))
        out.append(("net_packet_http", {
            "src": src, "dst": dst, "src_port": sport, "dst_port": dport,
            "metadata": {"direction": direction}, "proto_http": proto}))
    if k == httpwire.REQUEST:
        if plan.http_req:
            out.append(("net_packet_http_request", {
                "metadata": _pkt_meta(src, dst, sport, dport, _TCP_PROTO, length),
                "http_request": msg}))
    elif plan.http_resp:
        out.append(("net_packet_http_response", {
            "metadata": _pkt_meta(src, dst, sport, dport, _TCP_PROTO, length),
            "http_response": msg}))
