"""DNS messages (RFC 1035) from packet payloads, read the way Tracee reads them.

Tracee decodes DNS with gopacket and prints gopacket's view: names are the raw
label bytes joined by dots (no trailing dot, root is ""), type/class/opcode/rcode
are gopacket's enum names, a TXT record also keeps its raw rdata. This module
reads the wire format into that view with precompiled structs; bench/net_parse.py
measures it against dnspython and dpkt, and the unit tests check it against
dnspython on the same messages.

`parse()` raises `DnsError` (a ValueError) for anything malformed or cut short:
a DNS message is taken whole or not at all, as gopacket does.
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv6Address

_HDR = struct.Struct("!HBBHHHH")
_QTAIL = struct.Struct("!HH")
_RRTAIL = struct.Struct("!HHIH")
_H = struct.Struct("!H")
_HHH = struct.Struct("!HHH")
_SOA = struct.Struct("!IIIII")
_HH = struct.Struct("!HH")

T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_HINFO, T_MX, T_TXT = 1, 2, 5, 6, 12, 13, 15, 16
T_AAAA, T_SRV, T_OPT, T_URI = 28, 33, 41, 256

# gopacket's DNSType.String()
TYPE_NAMES = {1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG",
              9: "MR", 10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX",
              16: "TXT", 28: "AAAA", 33: "SRV", 41: "OPT", 256: "URI"}
CLASS_NAMES = {1: "IN", 2: "CS", 3: "CH", 4: "HS", 255: "Any"}
# gopacket's DNSOpCode.String() and DNSResponseCode.String(), lowercased as Tracee
# prints them ("server failure " keeps gopacket's trailing space).
OPCODE_NAMES = {0: "query", 1: "inverse query", 2: "status", 4: "notify", 5: "update"}
RCODE_NAMES = {0: "no error", 1: "format error", 2: "server failure ", 3: "non-existent domain",
               4: "not implemented", 5: "query refused", 6: "name exists when it should not",
               7: "rr set exists when it should not", 8: "rr set that should exist does not",
               9: "server not authoritative for zone", 10: "name not contained in zone",
               16: "bad opt version", 17: "key not recognized", 18: "signature out of time window",
               19: "bad tkey mode", 20: "duplicate key name", 21: "algorithm not supported",
               22: "bad truncation", 23: "bad cookie"}
OPT_CODE_NAMES = {3: "NSID", 5: "DAU", 6: "DHU", 7: "N3U", 8: "EDNSClientSubnet", 9: "EDNSExpire",
                  10: "Cookie", 11: "EDNSKeepAlive", 12: "CodePadding", 13: "CodeChain",
                  14: "CodeEDNSKeyTag", 16: "EDNSClientTag", 17: "EDNSServerTag", 26946: "DeviceID"}

_MAX_POINTERS = 127     # a name has at most 127 labels: more jumps is a loop
_MAX_NAME = 255         # RFC 1035 2.3.4, as gopacket enforces it


class DnsError(ValueError):
    """Malformed or truncated DNS message."""


class RR:
    """One resource record. `value` holds the decoded rdata, by type:
    A/AAAA: str ip; NS/CNAME/PTR: str name; TXT/HINFO: (raw str, [strings]);
    SOA: (mname, rname, serial, refresh, retry, expire, minimum); MX: (pref, name);
    SRV: (priority, weight, port, name); URI: (priority, weight, target);
    OPT: [(code, data str)]; other types: None."""

    __slots__ = ("name", "rtype", "rclass", "ttl", "value")

    def __init__(self, name: str, rtype: int, rclass: int, ttl: int, value: object) -> None:
        self.name = name
        self.rtype = rtype
        self.rclass = rclass
        self.ttl = ttl
        self.value = value

    def __repr__(self) -> str:
        return f"RR({self.name!r}, {type_name(self.rtype)}, ttl={self.ttl}, {self.value!r})"


class Message:
    __slots__ = ("id", "qr", "opcode", "aa", "tc", "rd", "ra", "z", "rcode",
                 "qdcount", "ancount", "nscount", "arcount",
                 "questions", "answers", "authorities", "additionals")

    id: int
    qr: int
    opcode: int
    aa: int
    tc: int
    rd: int
    ra: int
    z: int
    rcode: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    questions: list[tuple[str, int, int]]    # (name, type, class)
    answers: list[RR]
    authorities: list[RR]
    additionals: list[RR]


def type_name(t: int) -> str:
    return TYPE_NAMES.get(t, "Unknown")


def class_name(c: int) -> str:
    return CLASS_NAMES.get(c, "Unknown")


def ip_string(b: bytes) -> str:
    """An address as Go's net.IP.String() prints it (what Tracee outputs)."""
    n = len(b)
    if n == 4:
        return socket.inet_ntoa(b)
    if n == 16:
        if b[:10] == b"\0" * 10:
            # glibc prints ::a.b.c.d for these; Go prints ::ffff:a.b.c.d as a.b.c.d
            # and the rest in plain hex groups.
            if b[10:12] == b"\xff\xff":
                return socket.inet_ntoa(b[12:])
            return IPv6Address(b).compressed
        return socket.inet_ntop(socket.AF_INET6, b)
    if n == 0:
        return "<nil>"
    return "?" + b.hex()


def _name(buf: bytes, off: int, end: int) -> tuple[str, int]:
    """The name at `off` (following compression pointers within buf[:end]) and the
    offset just past it in the record."""
    labels: list[bytes] = []
    after = -1
    jumps = 0
    size = 0
    while True:
        if off >= end:
            raise DnsError("name runs past the data")
        ln = buf[off]
        if ln == 0:
            off += 1
            break
        kind = ln & 0xC0
        if kind == 0:
            nxt = off + 1 + ln
            if nxt > end:
                raise DnsError("label runs past the data")
            size += ln + 1
            if size > _MAX_NAME:
                raise DnsError("name too long")
            labels.append(buf[off + 1:nxt])
            off = nxt
        elif kind == 0xC0:
            if off + 2 > end:
                raise DnsError("pointer runs past the data")
            if after < 0:
                after = off + 2
            off = ((ln & 0x3F) << 8) | buf[off + 1]
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsError("compression pointer loop")
        else:
            raise DnsError("unsupported label type")
    if after < 0:
        after = off
    if not labels:
        return "", after
    return b".".join(labels).decode("utf-8", "replace"), after


def _char_strings(data: bytes) -> list[str]:
    out = []
    i, n = 0, len(data)
    while i < n:
        j = i + 1 + data[i]
        if j > n:
            raise DnsError("character-string runs past the rdata")
        out.append(data[i + 1:j].decode("utf-8", "replace"))
        i = j
    return out


def _rdata(buf: bytes, rtype: int, start: int, end: int) -> object:
    if rtype == T_A or rtype == T_AAAA:
        return ip_string(buf[start:end])
    if rtype == T_CNAME or rtype == T_NS or rtype == T_PTR:
        return _name(buf, start, end)[0]
    if rtype == T_TXT or rtype == T_HINFO:
        raw = buf[start:end]
        return raw.decode("utf-8", "replace"), _char_strings(raw)
    if rtype == T_MX:
        if end - start < 2:
            raise DnsError("MX too small")
        return _H.unpack_from(buf, start)[0], _name(buf, start + 2, end)[0]
    if rtype == T_SRV:
        if end - start < 6:
            raise DnsError("SRV too small")
        prio, weight, port = _HHH.unpack_from(buf, start)
        return prio, weight, port, _name(buf, start + 6, end)[0]
    if rtype == T_SOA:
        mname, off = _name(buf, start, end)
        rname, off = _name(buf, off, end)
        if end - off < 20:
            raise DnsError("SOA too small")
        return (mname, rname) + _SOA.unpack_from(buf, off)
    if rtype == T_URI:
        if end - start < 4:
            raise DnsError("URI too small")
        prio, weight = _HH.unpack_from(buf, start)
        return prio, weight, buf[start + 4:end].decode("utf-8", "replace")
    if rtype == T_OPT:
        opts = []
        i = start
        while i < end:
            if end - i < 4:
                raise DnsError("malformed OPT option")
            code, ln = _HH.unpack_from(buf, i)
            j = i + 4 + ln
            if j > end:
                raise DnsError("OPT option runs past the rdata")
            opts.append((code, buf[i + 4:j].decode("utf-8", "replace")))
            i = j
        return opts
    return None


def _records(buf: bytes, off: int, count: int, out: list[RR]) -> int:
    n = len(buf)
    for _ in range(count):
        name, off = _name(buf, off, n)
        if off + 10 > n:
            raise DnsError("record header runs past the data")
        rtype, rclass, ttl, rdlen = _RRTAIL.unpack_from(buf, off)
        start = off + 10
        off = start + rdlen
        if off > n:
            raise DnsError("rdata runs past the data")
        out.append(RR(name, rtype, rclass, ttl, _rdata(buf, rtype, start, off)))
    return off


def parse(buf: bytes) -> Message:
    """Read a whole DNS message (UDP payload, or TCP payload without its length prefix)."""
    if len(buf) < 12:
        raise DnsError("shorter than a DNS header")
    ident, b2, b3, qd, an, ns, ar = _HDR.unpack_from(buf)
    m = Message()
    m.id = ident
    m.qr = b2 >> 7
    m.opcode = (b2 >> 3) & 0x0F
    m.aa = (b2 >> 2) & 1
    m.tc = (b2 >> 1) & 1
    m.rd = b2 & 1
    m.ra = b3 >> 7
    m.z = (b3 >> 4) & 7
    m.rcode = b3 & 0x0F
    m.qdcount, m.ancount, m.nscount, m.arcount = qd, an, ns, ar
    n = len(buf)
    off = 12
    questions = []
    for _ in range(qd):
        name, off = _name(buf, off, n)
        if off + 4 > n:
            raise DnsError("question runs past the data")
        qtype, qclass = _QTAIL.unpack_from(buf, off)
        off += 4
        questions.append((name, qtype, qclass))
    m.questions = questions
    m.answers = []
    m.authorities = []
    m.additionals = []
    off = _records(buf, off, an, m.answers)
    off = _records(buf, off, ns, m.authorities)
    _records(buf, off, ar, m.additionals)
    for rr in m.additionals:
        if rr.rtype == T_OPT:       # extended RCODE, RFC 6891 6.1.3
            m.rcode |= (rr.ttl >> 20) & 0xF0
    return m


def parse_tcp(buf: bytes) -> Message:
    """DNS over TCP: a 2-byte length prefix, then one message (RFC 1035 4.2.2)."""
    if len(buf) < 2:
        raise DnsError("no TCP length prefix")
    ln = _H.unpack_from(buf)[0]
    if len(buf) - 2 < ln:
        raise DnsError("message continues past this segment")
    return parse(buf[2:2 + ln])


# ---- Tracee's argument shapes (types/trace: ProtoDNS, DnsQueryData, DnsResponseData)

def answer_text(rr: RR) -> str:
    """DnsAnswer.answer: the record's main value, as Tracee picks it."""
    t = rr.rtype
    if t == T_A or t == T_AAAA or t == T_CNAME or t == T_NS or t == T_PTR:
        return rr.value  # type: ignore[return-value]
    if t == T_MX:
        return rr.value[1]  # type: ignore[index]
    if t == T_TXT:
        return rr.value[0]  # type: ignore[index]
    return "not implemented"


_EMPTY_SOA = (("MName", ""), ("RName", ""), ("serial", 0), ("refresh", 0),
              ("retry", 0), ("expire", 0), ("minimum", 0))


def rr_dict(rr: RR) -> dict:
    """ProtoDNSResourceRecord: every field present, zero values where the type has none."""
    t = rr.rtype
    v = rr.value
    ip = ns = cname = ptr = txt = ""
    txts: list[str] = []
    soa = dict(_EMPTY_SOA)
    srv = {"priority": 0, "weight": 0, "port": 0, "name": ""}
    mx = {"preference": 0, "name": ""}
    opt: list[dict] = []
    uri = {"priority": 0, "weight": 0, "target": ""}
    if v is not None:
        if t == T_A or t == T_AAAA:
            ip = v  # type: ignore[assignment]
        elif t == T_CNAME:
            cname = v  # type: ignore[assignment]
        elif t == T_NS:
            ns = v  # type: ignore[assignment]
        elif t == T_PTR:
            ptr = v  # type: ignore[assignment]
        elif t == T_TXT or t == T_HINFO:
            txt, txts = v  # type: ignore[misc]
        elif t == T_MX:
            mx = {"preference": v[0], "name": v[1]}  # type: ignore[index]
        elif t == T_SRV:
            srv = {"priority": v[0], "weight": v[1], "port": v[2], "name": v[3]}  # type: ignore[index]
        elif t == T_SOA:
            soa = {"MName": v[0], "RName": v[1], "serial": v[2], "refresh": v[3],  # type: ignore[index]
                   "retry": v[4], "expire": v[5], "minimum": v[6]}  # type: ignore[index]
        elif t == T_URI:
            uri = {"priority": v[0], "weight": v[1], "target": v[2]}  # type: ignore[index]
        elif t == T_OPT:
            opt = [{"code": OPT_CODE_NAMES.get(c, "Unknown"), "data": d} for c, d in v]  # type: ignore[union-attr]
    return {"name": rr.name, "type": type_name(t), "class": class_name(rr.rclass), "TTL": rr.ttl,
            "IP": ip, "NS": ns, "CNAME": cname, "PTR": ptr, "TXTs": txts, "SOA": soa, "SRV": srv,
            "MX": mx, "OPT": opt, "URI": uri, "TXT": txt}


def proto_dns(m: Message) -> dict:
    """trace.ProtoDNS."""
    return {
        "ID": m.id, "QR": m.qr, "opCode": OPCODE_NAMES.get(m.opcode, "unknown"),
        "AA": m.aa, "TC": m.tc, "RD": m.rd, "RA": m.ra, "Z": m.z,
        "responseCode": RCODE_NAMES.get(m.rcode, "unknown"),
        "QDCount": m.qdcount, "ANCount": m.ancount, "NSCount": m.nscount, "ARCount": m.arcount,
        "questions": [{"name": n, "type": type_name(t), "class": class_name(c)}
                      for n, t, c in m.questions],
        "answers": [rr_dict(rr) for rr in m.answers],
        "authorities": [rr_dict(rr) for rr in m.authorities],
        "additionals": [rr_dict(rr) for rr in m.additionals],
    }


def query_data(m: Message) -> list[dict]:
    """[]trace.DnsQueryData."""
    return [{"query": n, "query_type": type_name(t), "query_class": class_name(c)}
            for n, t, c in m.questions]


def response_data(m: Message) -> list[dict]:
    """[]trace.DnsResponseData: the single question and its answers."""
    n, t, c = m.questions[0]
    return [{
        "query_data": {"query": n, "query_type": type_name(t), "query_class": class_name(c)},
        "dns_answer": [{"answer_type": type_name(rr.rtype), "ttl": rr.ttl, "answer": answer_text(rr)}
                       for rr in m.answers],
    }]
