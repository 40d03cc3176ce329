"""Packet parsing for the net_* events: pytracee.net against dpkt, dnspython and scapy.

    .venv/bin/python bench/net_parse.py [--n N] [--runs R]

Every figure is packets (or messages) per second, the MEDIAN of R runs of N
rounds over the same mix; "x" is the ratio to pytracee.net in the same run.
A peer that is not installed is listed as such (pip install dpkt dnspython scapy).

  headers   IPv4/IPv6 + TCP/UDP headers of 6 packets (SYN+ACK, ACK with TCP
            options, IPv6 data, UDP, DNS over UDP, HTTP): addresses as text,
            ports, TCP flags, what net_packet_ipv4/ipv6/tcp/udp need
  dns       6 DNS messages (A/AAAA queries; responses with CNAME chains and A
            answers, AAAA + EDNS OPT, MX + NS with compressed names, NXDOMAIN
            with SOA), to (owner, type, ttl, value) for every record: what
            net_packet_dns_response and the DNS cache need
  http      one request and one response head to method/path/host/status and
            the header map (dpkt.http.Response raises NeedData when the body goes
            on past the segment, as it does on the wire: it is given the head with
            Content-Length: 0 here so that it runs at all)
  derive    pytracee.net.derive() on the whole mix (DNS, HTTP, ICMP, flows
            included), with every net event wanted / with Tracee's default set
            (icmp, icmpv6, dns_request/response, http_request/response)
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytracee.net import dns as pdns  # noqa: E402
from pytracee.net import http as phttp  # noqa: E402
from pytracee.net.decode import NET_EVENTS, DecodeCounts, derive  # noqa: E402
from pytracee.net.dnscache import DnsCache  # noqa: E402
from pytracee.net.flows import FlowTable  # noqa: E402
from tests.unit import net_packets as b  # noqa: E402

C, S = "10.0.0.2", "93.184.216.34"
C6, S6 = "2001:db8::2", "2606:2800:220:1:248:1893:25c8:1946"
TS_OPTS = b"\x01\x01\x08\x0a\x00\x01\xe2\x40\x00\x00\x00\x00"

DNS_MSGS = [
    b.dns_query(0x1111, "www.example.com"),
    b.dns_query(0x1112, "www.example.com", b.AAAA),
    b.dns_cname_response(),
    (b.DnsBuilder(0x2222, qr=1, ra=1).question("ipv6.google.com", b.AAAA)
     .answer("ipv6.google.com", b.CNAME, 21599, "ipv6.l.google.com")
     .answer("ipv6.l.google.com", b.AAAA, 300, "2a00:1450:4001:82b::200e")
     .opt(1232).build()),
    (b.DnsBuilder(0x3333, qr=1, ra=1).question("example.org", b.MX)
     .rr(1, "example.org", b.MX, 3600, target="mail.example.org", pre=b"\x00\x0a")
     .rr(2, "example.org", b.NS, 3600, target="a.iana-servers.net")
     .rr(2, "example.org", b.NS, 3600, target="b.iana-servers.net")
     .build()),
    (b.DnsBuilder(0x4444, qr=1, ra=1, rcode=3).question("nx.example.com")
     .rr(2, "example.com", b.SOA, 900,
         b.DnsBuilder(0).name("ns.icann.org") + b.DnsBuilder(0).name("noc.dns.icann.org")
         + bytes(20))
     .build()),
]

HEADER_PKTS = [
    b.tcp4(S, C, 80, 40001, flags="SA", seq=1, ack=1001),
    b.tcp4(C, S, 40001, 80, flags="A", seq=1001, ack=2, options=TS_OPTS),
    b.tcp6(C6, S6, 40002, 443, flags="PA", payload=b"\x17\x03\x03" + bytes(200)),
    b.udp4(C, "10.0.0.9", 5000, 6000, b"x" * 64),
    b.udp4("8.8.8.8", C, 53, 40000, DNS_MSGS[2]),
    b.tcp4(C, S, 40001, 80, flags="PA", payload=b.HTTP_REQUEST),
]

MIX = [b.pkt(p, ingress=i % 2 == 0) for i, p in enumerate(HEADER_PKTS)] + [
    b.pkt(b.udp4(C, "8.8.8.8", 40000, 53, DNS_MSGS[0])),
    b.pkt(b.udp6("2001:4860:4860::8888", C6, 53, 40003, DNS_MSGS[3]), ingress=True),
    b.pkt(b.tcp4(S, C, 80, 40001, flags="PA", payload=b.HTTP_RESPONSE), ingress=True),
    b.pkt(b.ipv4(C, "1.1.1.1", 1, b.icmp(8, 0, 7, 1, bytes(56)))),
    b.pkt(b.tcp4(C, S, 40001, 80, flags="FA", seq=1100, ack=3)),
]

DEFAULT_SET = frozenset({"net_packet_icmp", "net_packet_icmpv6", "net_packet_dns_request",
                         "net_packet_dns_response", "net_packet_http_request",
                         "net_packet_http_response"})
HEADER_SET = frozenset({"net_packet_ipv4", "net_packet_ipv6", "net_packet_tcp", "net_packet_udp"})


def rate(fn: Callable[[], int], n: int, runs: int) -> float:
    out = []
    per = fn()      # items per call (and a warm-up)
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append(n * per / (time.perf_counter() - t0))
    return statistics.median(out)


# ---- pytracee

def pt_headers() -> int:
    flows, stats = FlowTable(), DecodeCounts()
    for p in HEADER_PKTS:
        derive(b.pkt(p), HEADER_SET, None, flows, stats)
    return len(HEADER_PKTS)


def pt_dns() -> int:
    for w in DNS_MSGS:
        m = pdns.parse(w)
        for sec in (m.answers, m.authorities, m.additionals):
            [(rr.name, rr.rtype, rr.ttl, rr.value) for rr in sec]
    return len(DNS_MSGS)


def pt_http() -> int:
    phttp.parse_request(b.HTTP_REQUEST)
    phttp.parse_response(b.HTTP_RESPONSE)
    return 2


def pt_derive(wanted: frozenset[str]) -> Callable[[], int]:
    cache, flows, stats = DnsCache(), FlowTable(), DecodeCounts()

    def run() -> int:
        for p in MIX:
            derive(p, wanted, cache, flows, stats)
        return len(MIX)
    return run


# ---- dpkt

def dpkt_cases() -> dict[str, Callable[[], int]] | str:
    try:
        import dpkt
    except ImportError:
        return "not installed"
    ntoa, ntop, AF6 = socket.inet_ntoa, socket.inet_ntop, socket.AF_INET6

    def headers() -> int:
        for p in HEADER_PKTS:
            if p[0] >> 4 == 4:
                ip = dpkt.ip.IP(p)
                src, dst = ntoa(ip.src), ntoa(ip.dst)
            else:
                ip = dpkt.ip6.IP6(p)
                src, dst = ntop(AF6, ip.src), ntop(AF6, ip.dst)
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                (src, dst, l4.sport, l4.dport, l4.seq, l4.ack, l4.flags, l4.win)
            else:
                (src, dst, l4.sport, l4.dport, l4.ulen)
        return len(HEADER_PKTS)

    def value(rr: object) -> object:
        t = rr.type  # type: ignore[attr-defined]
        if t == 1:
            return ntoa(rr.ip)  # type: ignore[attr-defined]
        if t == 28:
            return ntop(AF6, rr.ip6)  # type: ignore[attr-defined]
        if t == 5:
            return rr.cname  # type: ignore[attr-defined]
        if t == 2:
            return rr.nsname  # type: ignore[attr-defined]
        if t == 15:
            return rr.mxname  # type: ignore[attr-defined]
        if t == 6:
            return rr.mname  # type: ignore[attr-defined]
        return rr.rdata  # type: ignore[attr-defined]

    def dns() -> int:
        for w in DNS_MSGS:
            m = dpkt.dns.DNS(w)
            for sec in (m.an, m.ns, m.ar):
                [(rr.name, rr.type, rr.ttl, value(rr)) for rr in sec]
        return len(DNS_MSGS)

    def http() -> int:
        r = dpkt.http.Request(b.HTTP_REQUEST)
        (r.method, r.uri, r.version, r.headers)
        # dpkt.http.Response wants the whole body: give it the head only
        head = b.HTTP_RESPONSE.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        s = dpkt.http.Response(head.replace(b"Content-Length: 1256", b"Content-Length: 0"))
        (s.status, s.reason, s.version, s.headers)
        return 2
    return {"headers": headers, "dns": dns, "http": http}


# ---- dnspython

def dnspython_cases() -> dict[str, Callable[[], int]] | str:
    try:
        import dns.message
    except ImportError:
        return "not installed"

    def dns_() -> int:
        for w in DNS_MSGS:
            m = dns.message.from_wire(w)
            for sec in (m.answer, m.authority, m.additional):
                for rrset in sec:
                    name = rrset.name.to_text(omit_final_dot=True)
                    [(name, rrset.rdtype, rrset.ttl, rd.to_text()) for rd in rrset]
        return len(DNS_MSGS)
    return {"dns": dns_}


# ---- scapy

def scapy_cases() -> dict[str, Callable[[], int]] | str:
    try:
        import logging
        logging.getLogger("scapy").setLevel(logging.ERROR)
        from scapy.layers.dns import DNS
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
    except ImportError:
        return "not installed"

    def headers() -> int:
        for p in HEADER_PKTS:
            ip = IP(p) if p[0] >> 4 == 4 else IPv6(p)
            l4 = ip.payload
            if isinstance(l4, TCP):
                (ip.src, ip.dst, l4.sport, l4.dport, l4.seq, l4.ack, int(l4.flags), l4.window)
            else:
                (ip.src, ip.dst, l4.sport, l4.dport, l4.len)
        return len(HEADER_PKTS)

    def dns_() -> int:
        for w in DNS_MSGS:
            m = DNS(w)
            for sec in (m.an, m.ns, m.ar):
                [(rr.rrname, rr.type, getattr(rr, "ttl", None), getattr(rr, "rdata", None))
                 for rr in (sec or [])]
        return len(DNS_MSGS)
    return {"headers": headers, "dns": dns_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="rounds over the mix per run")
    ap.add_argument("--runs", type=int, default=5, help="runs per case (median)")
    a = ap.parse_args()

    peers = {"dpkt": dpkt_cases(), "dnspython": dnspython_cases(), "scapy": scapy_cases()}
    versions = {}
    for mod in ("dpkt", "dns.version", "scapy"):
        try:
            m = __import__(mod, fromlist=["x"])
            versions[mod.split(".")[0]] = getattr(m, "__version__", getattr(m, "version", "?"))
        except ImportError:
            pass
    print(f"python {sys.version.split()[0]}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"{'task':<8} {'parser':<18} {'items/s':>12} {'x pytracee':>11}")
    ours = {"headers": pt_headers, "dns": pt_dns, "http": pt_http}
    for task, fn in ours.items():
        base = rate(fn, a.n, a.runs)
        print(f"{task:<8} {'pytracee.net':<18} {base:>12,.0f} {1.0:>11.2f}")
        for name, cases in peers.items():
            if isinstance(cases, str):
                print(f"{task:<8} {name:<18} {cases:>12}")
                continue
            if task in cases:
                r = rate(cases[task], max(1, a.n // 4), a.runs)
                print(f"{task:<8} {name:<18} {r:>12,.0f} {r / base:>11.2f}")
    for label, wanted in (("all 14", NET_EVENTS), ("default", DEFAULT_SET)):
        r = rate(pt_derive(wanted), a.n, a.runs)
        print(f"{'derive':<8} {label + ' events':<18} {r:>12,.0f} {'':>11}")


if __name__ == "__main__":
    main()
