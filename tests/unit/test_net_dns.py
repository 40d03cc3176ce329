"""pytracee.net.dns: the DNS wire reader, gopacket's view of a message.

dnspython (a test dependency) builds messages the way real resolvers compress
them and serves as the oracle for a randomized comparison.
"""

from __future__ import annotations

import random
import struct

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from pytracee.net import dns as d
from tests.unit import net_packets as b


def test_header_flags_and_counts():
    w = b.DnsBuilder(0xBEEF, qr=1, opcode=2, aa=1, tc=1, rd=0, ra=1, z=5, rcode=3).build()
    m = d.parse(w)
    assert (m.id, m.qr, m.opcode, m.aa, m.tc, m.rd, m.ra, m.z, m.rcode) == (0xBEEF, 1, 2, 1, 1, 0, 1, 5, 3)
    p = d.proto_dns(m)
    assert (p["opCode"], p["responseCode"]) == ("status", "non-existent domain")
    assert d.proto_dns(d.parse(b.DnsBuilder(1, rcode=2).build()))["responseCode"] == "server failure "
    assert d.proto_dns(d.parse(b.DnsBuilder(1, opcode=9, rcode=12).build()))["opCode"] == "unknown"


def test_compression_pointers_and_chains():
    w = b.dns_cname_response()
    # the CNAME target "www.example.com.cdn.net" ends in a pointer to "www.example.com"'s
    # labels? no: it is new labels + the question's suffix; the A owners point at the target
    assert w.count(b"\xc0") >= 3
    m = d.parse(w)
    assert m.questions == [("www.example.com", 1, 1)]
    assert [(r.name, r.rtype, r.ttl, r.value) for r in m.answers] == [
        ("www.example.com", 5, 300, "www.example.com.cdn.net"),
        ("www.example.com.cdn.net", 1, 60, "93.184.216.34"),
        ("www.example.com.cdn.net", 1, 60, "93.184.216.35")]


def test_pointer_to_pointer():
    hdr = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    q = b"\x03foo\x03bar\x00" + b"\x00\x01\x00\x01"                 # at 12
    # owner: "x" + pointer to 16 ("bar"); rdata: pointer to the owner (a pointer chain)
    owner = b"\x01x\xc0\x10"                                          # at 25
    rr = owner + struct.pack("!HHIH", 5, 1, 7, 2) + b"\xc0\x19"
    m = d.parse(hdr + q + rr)
    assert m.answers[0].name == "x.bar" and m.answers[0].value == "x.bar"


def test_every_record_type():
    soa = b.DnsBuilder(0).name("ns.icann.org") + b.DnsBuilder(0).name("noc.dns.icann.org")
    w = (b.DnsBuilder(5, qr=1).question("t.example")
         .answer("t.example", b.A, 1, "192.0.2.1")
         .answer("t.example", b.AAAA, 2, "2001:db8::1")
         .answer("t.example", b.CNAME, 3, "c.example")
         .answer("t.example", b.NS, 4, "ns1.example")
         .answer("1.2.0.192.in-addr.arpa", b.PTR, 5, "host.example")
         .rr(1, "t.example", b.MX, 6, target="mx.example", pre=b"\x00\x14")
         .rr(1, "_sip._tcp.example", b.SRV, 7, target="sip.example", pre=b"\x00\x01\x00\x02\x13\xc4")
         .rr(1, "t.example", b.TXT, 8, b"\x05hello\x05world")
         .rr(1, "t.example", 13, 9, b"\x03cpu\x02os")                       # HINFO
         .rr(1, "t.example", 256, 10, b"\x00\x0a\x00\x01https://x.example/")  # URI
         .rr(1, "t.example", 99, 11, b"\xde\xad")                            # SPF: unknown here
         .rr(2, "example", b.SOA, 12, soa + struct.pack("!IIIII", 2024010101, 7200, 3600, 1209600, 300))
         .opt(1232, options=b"\x00\x0a\x00\x02ab" + b"\x00\x63\x00\x00")
         .build())
    m = d.parse(w)
    assert [(r.name, r.rtype, r.ttl, r.value) for r in m.answers] == [
        ("t.example", 1, 1, "192.0.2.1"),
        ("t.example", 28, 2, "2001:db8::1"),
        ("t.example", 5, 3, "c.example"),
        ("t.example", 2, 4, "ns1.example"),
        ("1.2.0.192.in-addr.arpa", 12, 5, "host.example"),
        ("t.example", 15, 6, (20, "mx.example")),
        ("_sip._tcp.example", 33, 7, (1, 2, 5060, "sip.example")),
        ("t.example", 16, 8, ("\x05hello\x05world", ["hello", "world"])),
        ("t.example", 13, 9, ("\x03cpu\x02os", ["cpu", "os"])),
        ("t.example", 256, 10, (10, 1, "https://x.example/")),
        ("t.example", 99, 11, None)]
    assert [(r.name, r.value) for r in m.authorities] == [
        ("example", ("ns.icann.org", "noc.dns.icann.org", 2024010101, 7200, 3600, 1209600, 300))]
    (opt,) = m.additionals
    assert (opt.name, opt.rtype, opt.rclass, opt.value) == ("", 41, 1232, [(10, "ab"), (99, "")])
    # DnsAnswer.answer, as Tracee picks it
    assert [d.answer_text(r) for r in m.answers] == [
        "192.0.2.1", "2001:db8::1", "c.example", "ns1.example", "host.example", "mx.example",
        "not implemented", "\x05hello\x05world", "not implemented", "not implemented",
        "not implemented"]
    rec = d.rr_dict(m.authorities[0])
    assert rec["SOA"] == {"MName": "ns.icann.org", "RName": "noc.dns.icann.org",
                          "serial": 2024010101, "refresh": 7200, "retry": 3600,
                          "expire": 1209600, "minimum": 300}
    assert d.rr_dict(opt)["OPT"] == [{"code": "Cookie", "data": "ab"},
                                     {"code": "Unknown", "data": ""}]
    assert d.rr_dict(opt)["class"] == "Unknown" and d.rr_dict(opt)["type"] == "OPT"
    assert d.rr_dict(m.answers[6])["SRV"] == {"priority": 1, "weight": 2, "port": 5060,
                                              "name": "sip.example"}
    assert d.rr_dict(m.answers[9])["URI"] == {"priority": 10, "weight": 1,
                                              "target": "https://x.example/"}
    assert d.rr_dict(m.answers[7])["TXTs"] == ["hello", "world"]
    assert d.rr_dict(m.answers[10])["type"] == "Unknown"


def test_extended_rcode_from_opt():
    w = b.DnsBuilder(1, qr=1, rcode=0).question("x.test").opt(ext_rcode=1).build()
    assert d.proto_dns(d.parse(w))["responseCode"] == "bad opt version"


def test_response_data_shape():
    m = d.parse(b.dns_cname_response())
    assert d.query_data(m) == [{"query": "www.example.com", "query_type": "A", "query_class": "IN"}]
    assert d.response_data(m)[0]["dns_answer"][0] == {
        "answer_type": "CNAME", "ttl": 300, "answer": "www.example.com.cdn.net"}


HDR1 = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)


@pytest.mark.parametrize("wire,why", [
    (b"\x00" * 11, "shorter than a DNS header"),
    (HDR1, "name runs past the data"),
    (HDR1 + b"\x04www", "label runs past the data"),
    (HDR1 + b"\x03www\x00\x00\x01", "question runs past the data"),
    (HDR1 + b"\xc0\x0c\x00\x01\x00\x01", "compression pointer loop"),
    (HDR1 + b"\xc0\xff\x00\x01\x00\x01", "name runs past the data"),
    (HDR1 + b"\xc0", "pointer runs past the data"),
    (HDR1 + b"\x41x\x00\x00\x01\x00\x01", "unsupported label type"),
    (HDR1 + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63
     + b"\x00\x00\x01\x00\x01", "name too long"),
])
def test_malformed_messages(wire, why):
    with pytest.raises(d.DnsError, match=why):
        d.parse(wire)


def rr_msg(rtype: int, rdata: bytes, rdlen: int | None = None) -> bytes:
    hdr = struct.pack("!HHHHHH", 1, 0x8180, 0, 1, 0, 0)
    return hdr + b"\x00" + struct.pack("!HHIH", rtype, 1, 0, len(rdata) if rdlen is None else rdlen) + rdata


@pytest.mark.parametrize("wire,why", [
    (rr_msg(1, b"\x01\x02\x03\x04", rdlen=5), "rdata runs past the data"),
    (rr_msg(1, b"")[:-3], "record header runs past the data"),
    (rr_msg(16, b"\x09short"), "character-string runs past the rdata"),
    (rr_msg(15, b"\x00"), "MX too small"),
    (rr_msg(33, b"\x00\x01\x00"), "SRV too small"),
    (rr_msg(256, b"\x00\x01"), "URI too small"),
    (rr_msg(6, b"\x00\x00" + b"\x00" * 19), "SOA too small"),
    (rr_msg(41, b"\x00\x0a\x00"), "malformed OPT option"),
    (rr_msg(41, b"\x00\x0a\x00\x09ab"), "OPT option runs past the rdata"),
    (rr_msg(5, b"\x03abc"), "name runs past the data"),     # CNAME name must end in its rdata
])
def test_malformed_records(wire, why):
    with pytest.raises(d.DnsError, match=why):
        d.parse(wire)


def test_odd_address_lengths_print_as_go_does():
    assert d.parse(rr_msg(1, b"\x01\x02\x03")).answers[0].value == "?010203"
    assert d.parse(rr_msg(1, b"")).answers[0].value == "<nil>"
    assert d.parse(rr_msg(28, bytes(10) + b"\xff\xff\x0a\x00\x00\x01")).answers[0].value == "10.0.0.1"


def test_ip_string_is_gos():
    import socket
    v6 = lambda s: d.ip_string(socket.inet_pton(socket.AF_INET6, s))  # noqa: E731
    assert v6("::") == "::"
    assert v6("::1") == "::1"
    assert v6("::ffff:192.0.2.1") == "192.0.2.1"
    assert v6("::192.0.2.1") == "::c000:201"
    assert v6("2001:db8:0:1:0:0:0:1") == "2001:db8:0:1::1"
    assert v6("2001:db8:0:0:1:0:0:1") == "2001:db8::1:0:0:1"
    assert v6("2001:db8:1:1:1:1:0:1") == "2001:db8:1:1:1:1:0:1"


def test_dns_over_tcp():
    q = b.dns_query(3, "a.example")
    assert d.parse_tcp(len(q).to_bytes(2, "big") + q).questions == [("a.example", 1, 1)]
    with pytest.raises(d.DnsError, match="continues past this segment"):
        d.parse_tcp((len(q) + 1).to_bytes(2, "big") + q)
    with pytest.raises(d.DnsError):
        d.parse_tcp(b"\x00")


def test_non_utf8_labels_become_replacement_characters():
    hdr = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    m = d.parse(hdr + b"\x02\xff\xfe\x00\x00\x01\x00\x01")
    assert m.questions == [("\ufffd\ufffd", 1, 1)]


# ---- randomized comparison with dnspython

LABELS = ["www", "api", "cdn", "example", "edge", "a1", "b-2", "net", "com", "org", "mail", "x"]


def rand_name(rnd: random.Random) -> dns.name.Name:
    return dns.name.from_text(".".join(rnd.choice(LABELS) for _ in range(rnd.randint(1, 5))))


def rand_rdata(rnd: random.Random, rdtype: int) -> str:
    if rdtype == 1:
        return ".".join(str(rnd.randint(1, 254)) for _ in range(4))
    if rdtype == 28:
        return ":".join(f"{rnd.randint(1, 0xFFFF):x}" for _ in range(8))
    if rdtype in (2, 5, 12):
        return rand_name(rnd).to_text()
    if rdtype == 15:
        return f"{rnd.randint(0, 100)} {rand_name(rnd)}"
    if rdtype == 33:
        return f"{rnd.randint(0, 9)} {rnd.randint(0, 9)} {rnd.randint(1, 65535)} {rand_name(rnd)}"
    if rdtype == 6:
        return f"{rand_name(rnd)} {rand_name(rnd)} {rnd.randint(1, 2**31)} 1 2 3 4"
    return " ".join(f'"{rnd.choice(LABELS) * rnd.randint(1, 3)}"' for _ in range(rnd.randint(1, 3)))


def oracle_value(rd: dns.rdata.Rdata) -> object:
    t = rd.rdtype
    name = lambda n: n.to_text(omit_final_dot=True)  # noqa: E731
    if t in (1, 28):
        return rd.address
    if t in (2, 5, 12):
        return name(rd.target)
    if t == 15:
        return (rd.preference, name(rd.exchange))
    if t == 33:
        return (rd.priority, rd.weight, rd.port, name(rd.target))
    if t == 6:
        return (name(rd.mname), name(rd.rname), rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum)
    return [s.decode() for s in rd.strings]


def ours_value(rr: d.RR) -> object:
    return rr.value[1] if rr.rtype == 16 else rr.value


def test_random_messages_read_as_dnspython_reads_them():
    rnd = random.Random(1)
    types = [1, 28, 2, 5, 12, 15, 33, 6, 16]
    for _ in range(300):
        qname = rand_name(rnd)
        msg = dns.message.make_query(qname, rnd.choice(types))
        resp = dns.message.make_response(msg)
        want = []
        for section in (resp.answer, resp.authority, resp.additional):
            used = set()    # dnspython merges same-owner-and-type records into one TTL
            for _ in range(rnd.randint(0, 4)):
                t = rnd.choice(types)
                owner = rnd.choice([qname, rand_name(rnd)])
                if (owner, t) in used:
                    continue
                used.add((owner, t))
                rd = dns.rdata.from_text(dns.rdataclass.IN, t, rand_rdata(rnd, t))
                ttl = rnd.randint(0, 2**31 - 1)
                section.append(dns.rrset.from_rdata(owner, ttl, rd))
        wire = resp.to_wire()
        back = dns.message.from_wire(wire)
        for section in (back.answer, back.authority, back.additional):
            want.append([(rs.name.to_text(omit_final_dot=True), rd.rdtype, rs.ttl, oracle_value(rd))
                         for rs in section for rd in rs])
        m = d.parse(wire)
        got = [[(r.name, r.rtype, r.ttl, ours_value(r)) for r in sec]
               for sec in (m.answers, m.authorities, m.additionals)]
        assert got == want
        assert m.questions == [(qname.to_text(omit_final_dot=True), back.question[0].rdtype, 1)]
        assert m.id == back.id and m.qr == 1 and m.rd == 1
