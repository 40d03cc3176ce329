"""Packets built byte by byte for the net tests and bench/net_parse.py.

Checksums are computed (readers such as tshark flag bad ones); lengths are the
real ones unless a test overrides them to build a lying or truncated packet.
"""

from __future__ import annotations

import socket
import struct

from pytracee.net.packet import Packet

TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ttl: int = 64, ident: int = 0x1C46,
         flags: int = 2, frag: int = 0, tos: int = 0, total_len: int | None = None,
         options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(payload) if total_len is None else total_len
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, length, ident, (flags << 13) | frag, ttl,
                      proto, 0, socket.inet_aton(src), socket.inet_aton(dst)) + options
    ck = checksum(hdr)
    return hdr[:10] + struct.pack("!H", ck) + hdr[12:] + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes, *, hop: int = 64, tclass: int = 0,
         flow: int = 0, plen: int | None = None) -> bytes:
    vtf = (6 << 28) | (tclass << 20) | flow
    return struct.pack("!IHBB16s16s", vtf, len(payload) if plen is None else plen, nh, hop,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if ":" in src:
        return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!IxxxB", length, proto))
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!xBH", proto, length)


def tcp(src: str, dst: str, sport: int, dport: int, *, flags: str = "S", seq: int = 1000,
        ack: int = 0, window: int = 64240, options: bytes = b"", payload: bytes = b"",
        urgent: int = 0, ns: bool = False) -> bytes:
    doff = 5 + len(options) // 4
    fl = 0
    for ch in flags:
        fl |= TCP_FLAGS[ch]
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (doff << 4) | int(ns), fl, window, 0,
                      urgent) + options + payload
    ck = checksum(_pseudo(src, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", ck) + seg[18:]


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ck = checksum(_pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", ck) + seg[8:]


def icmp(typ: int, code: int, ident: int, seq: int, payload: bytes = b"") -> bytes:
    msg = struct.pack("!BBHHH", typ, code, 0, ident, seq) + payload
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def icmp6(src: str, dst: str, typ: int, code: int, body: bytes) -> bytes:
    msg = struct.pack("!BBH", typ, code, 0) + body
    ck = checksum(_pseudo(src, dst, 58, len(msg)) + msg)
    return msg[:2] + struct.pack("!H", ck) + msg[4:]


def tcp4(src: str, dst: str, sport: int, dport: int, **kw: object) -> bytes:
    return ipv4(src, dst, 6, tcp(src, dst, sport, dport, **kw))  # type: ignore[arg-type]


def tcp6(src: str, dst: str, sport: int, dport: int, **kw: object) -> bytes:
    return ipv6(src, dst, 6, tcp(src, dst, sport, dport, **kw))  # type: ignore[arg-type]


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return ipv4(src, dst, 17, udp(src, dst, sport, dport, payload))


def udp6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return ipv6(src, dst, 17, udp(src, dst, sport, dport, payload))


def pkt(data: bytes, ingress: bool = False, ts_ns: int = 1_700_000_000_123_456_789,
        length: int | None = None) -> Packet:
    return Packet(ts_ns=ts_ns, ingress=ingress, length=len(data) if length is None else length,
                  data=data)


# ---- DNS messages (with name compression, as resolvers send them)

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41


class DnsBuilder:
    """Encode a DNS message; names are compressed against earlier ones."""

    def __init__(self, ident: int, *, qr: int = 0, opcode: int = 0, aa: int = 0, tc: int = 0,
                 rd: int = 1, ra: int = 0, z: int = 0, rcode: int = 0,
                 compress: bool = True) -> None:
        self.flags = ((qr << 15) | (opcode << 11) | (aa << 10) | (tc << 9) | (rd << 8)
                      | (ra << 7) | (z << 4) | rcode)
        self.ident = ident
        self.compress = compress
        self.buf = bytearray(12)
        self.offsets: dict[str, int] = {}
        self.counts = [0, 0, 0, 0]

    def name(self, name: str) -> bytes:
        out = bytearray()
        labels = [x for x in name.split(".") if x]
        pos = len(self.buf)
        for i in range(len(labels)):
            suffix = ".".join(labels[i:]).lower()
            if self.compress and suffix in self.offsets:
                out += struct.pack("!H", 0xC000 | self.offsets[suffix])
                return bytes(out)
            if pos + len(out) < 0x3FFF:
                self.offsets.setdefault(suffix, pos + len(out))
            lab = labels[i].encode()
            out += bytes([len(lab)]) + lab
        return bytes(out + b"\0")

    def question(self, name: str, qtype: int = A, qclass: int = 1) -> DnsBuilder:
        self.buf += self.name(name) + struct.pack("!HH", qtype, qclass)
        self.counts[0] += 1
        return self

    def rr(self, section: int, name: str, rtype: int, ttl: int, rdata: bytes | None = None,
           *, rclass: int = 1, target: str | None = None, pre: bytes = b"") -> DnsBuilder:
        """rdata raw, or `target` (a name, compressed) after `pre` bytes (MX/SRV)."""
        owner = self.name(name)
        self.buf += owner
        hdr_at = len(self.buf)
        self.buf += b"\0" * 10
        if target is not None:
            self.buf += pre
            rdata = pre + self.name(target)
            self.buf += rdata[len(pre):]
        else:
            assert rdata is not None
            self.buf += rdata
        self.buf[hdr_at:hdr_at + 10] = struct.pack("!HHIH", rtype, rclass, ttl, len(rdata))
        self.counts[section] += 1
        return self

    def answer(self, name: str, rtype: int, ttl: int, value: str | bytes) -> DnsBuilder:
        if rtype == A:
            return self.rr(1, name, A, ttl, socket.inet_aton(value))  # type: ignore[arg-type]
        if rtype == AAAA:
            return self.rr(1, name, AAAA, ttl, socket.inet_pton(socket.AF_INET6, value))  # type: ignore[arg-type]
        if rtype in (CNAME, NS, PTR):
            return self.rr(1, name, rtype, ttl, target=value)  # type: ignore[arg-type]
        return self.rr(1, name, rtype, ttl, value)  # type: ignore[arg-type]

    def opt(self, udp_size: int = 1232, options: bytes = b"", ext_rcode: int = 0) -> DnsBuilder:
        self.buf += b"\0" + struct.pack("!HHIH", OPT, udp_size, ext_rcode << 24, len(options))
        self.buf += options
        self.counts[3] += 1
        return self

    def build(self) -> bytes:
        self.buf[:12] = struct.pack("!HHHHHH", self.ident, self.flags, *self.counts)
        return bytes(self.buf)


def dns_query(ident: int, name: str, qtype: int = A) -> bytes:
    return DnsBuilder(ident).question(name, qtype).build()


def dns_cname_response(ident: int = 0x4A3F) -> bytes:
    """www.example.com -> CNAME www.example.com.cdn.net -> two A records."""
    return (DnsBuilder(ident, qr=1, ra=1).question("www.example.com")
            .answer("www.example.com", CNAME, 300, "www.example.com.cdn.net")
            .answer("www.example.com.cdn.net", A, 60, "93.184.216.34")
            .answer("www.example.com.cdn.net", A, 60, "93.184.216.35")
            .build())


HTTP_REQUEST = (b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\n"
                b"User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n"
                 b"Content-Length: 1256\r\nServer: ECS (dcb/7F84)\r\n"
                 b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n<!doctype html>")
