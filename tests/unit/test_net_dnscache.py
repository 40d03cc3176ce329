"""DnsCache: IP -> names from DNS responses, CNAME chains, TTLs and the LRU bound."""

from __future__ import annotations

import pytest

from pytracee.net import dns as d
from pytracee.net.dnscache import DnsCache
from tests.unit import net_packets as b

A, AAAA, CNAME, PTR, MX, TXT = 1, 28, 5, 12, 15, 16


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def chain_response(query: str, chain: list[str], ips: list[str], ttl: int = 60,
                   cname_ttl: int = 300, qtype: int = b.A) -> bytes:
    bld = b.DnsBuilder(7, qr=1, ra=1).question(query, qtype)
    owner = query
    for c in chain:
        bld.answer(owner, b.CNAME, cname_ttl, c)
        owner = c
    for ip in ips:
        bld.answer(owner, b.AAAA if ":" in ip else b.A, ttl, ip)
    return bld.build()


def feed(cache: DnsCache, wire: bytes) -> None:
    cache.add_message(d.parse(wire))


def test_cname_chain_maps_ip_to_query_and_cnames():
    c = DnsCache(clock=Clock())
    feed(c, chain_response("www.shop.example", ["shop.edgekey.net", "e123.a.akamaiedge.net"],
                           ["23.45.67.89", "23.45.67.90"]))
    want = ["www.shop.example", "shop.edgekey.net", "e123.a.akamaiedge.net"]
    assert c.names("23.45.67.89") == want
    assert c.names("23.45.67.90") == want
    assert c.get("www.shop.example") == (want, ["23.45.67.89", "23.45.67.90"])
    assert c.get("shop.edgekey.net") == (["www.shop.example", "shop.edgekey.net",
                                          "e123.a.akamaiedge.net"], ["23.45.67.89", "23.45.67.90"])
    assert c.names("192.0.2.1") == []


def test_aaaa_answers():
    c = DnsCache(clock=Clock())
    feed(c, chain_response("ipv6.example", [], ["2001:db8::5"], qtype=b.AAAA))
    assert c.names("2001:db8::5") == ["ipv6.example"]


def test_ttl_expiry_with_the_injected_clock():
    clock = Clock()
    c = DnsCache(clock=clock)
    feed(c, chain_response("a.example", ["b.example"], ["198.51.100.1"], ttl=30, cname_ttl=100))
    clock.t += 30
    assert c.names("198.51.100.1") == ["a.example", "b.example"]      # expires after, not at
    clock.t += 0.5
    assert c.names("198.51.100.1") == []
    assert c.get("b.example")[0] == ["a.example", "b.example"]       # the CNAME lives longer
    clock.t += 70
    assert c.get("b.example") == ([], [])
    assert c.get("a.example")[0] == ["a.example"]                     # a query root never expires


def test_ttl_renewed_by_a_new_response():
    clock = Clock()
    c = DnsCache(clock=clock)
    feed(c, chain_response("a.example", [], ["198.51.100.1"], ttl=10))
    clock.t += 8
    feed(c, chain_response("a.example", [], ["198.51.100.1"], ttl=10))
    clock.t += 8
    assert c.names("198.51.100.1") == ["a.example"]


def test_expired_answers_are_dropped_when_a_name_gets_new_ones():
    clock = Clock()
    c = DnsCache(clock=clock)
    for i in range(50):             # a CDN name rotating its addresses
        clock.t += 10
        feed(c, chain_response("cdn.example", [], [f"203.0.113.{i}"], ttl=5))
    assert len(c) == 2              # the root and the last, live, address
    assert c.names("203.0.113.49") == ["cdn.example"]


def test_ip_shared_by_two_queries_lists_the_latest_first():
    c = DnsCache(clock=Clock())
    feed(c, chain_response("one.example", [], ["192.0.2.10"]))
    feed(c, chain_response("two.example", [], ["192.0.2.10"]))
    assert c.names("192.0.2.10") == ["two.example", "one.example"]


def test_lru_bound_on_query_roots():
    c = DnsCache(max_entries=2, clock=Clock())
    feed(c, chain_response("q1.example", ["c1.example"], ["192.0.2.1"]))
    feed(c, chain_response("q2.example", [], ["192.0.2.2"]))
    assert c.names("192.0.2.1") == ["q1.example", "c1.example"]      # a hit: q1 is now recent
    feed(c, chain_response("q3.example", [], ["192.0.2.3"]))
    assert c.evictions == 1
    assert c.names("192.0.2.2") == []                                 # q2 went, with its answers
    assert c.get("q2.example") == ([], [])
    assert c.names("192.0.2.1") == ["q1.example", "c1.example"]
    assert c.names("192.0.2.3") == ["q3.example"]
    feed(c, chain_response("q4.example", [], ["192.0.2.4"]))    # q1 is now the oldest
    assert c.names("192.0.2.1") == [] and c.names("192.0.2.3") == ["q3.example"]
    assert len(c) == 4      # q3, q4 and their addresses


def test_lru_keeps_exactly_max_entries_roots():
    c = DnsCache(max_entries=3, clock=Clock())
    for i in range(10):
        feed(c, chain_response(f"q{i}.example", [], [f"192.0.2.{i}"]))
    assert c.evictions == 7
    assert [c.names(f"192.0.2.{i}") for i in range(10)] == [[]] * 7 + [
        ["q7.example"], ["q8.example"], ["q9.example"]]
    assert len(c) == 6


def test_reverse_lookups():
    c = DnsCache(clock=Clock())
    w = (b.DnsBuilder(1, qr=1).question("10.2.0.192.in-addr.arpa", b.PTR)
         .answer("10.2.0.192.in-addr.arpa", b.PTR, 60, "host.example").build())
    feed(c, w)
    # Tracee keeps the reversed octets as the node value
    assert c.get("10.2.0.192.in-addr.arpa") == (["host.example"], ["10.2.0.192"])
    assert c.get("10.2.0.192") == (["host.example"], ["10.2.0.192"])
    feed(c, w)
    assert len(c) == 2


def test_mx_and_srv_targets_are_names():
    c = DnsCache(clock=Clock())
    w = (b.DnsBuilder(1, qr=1).question("example.org", b.MX)
         .rr(1, "example.org", b.MX, 60, target="mail.example.org", pre=b"\x00\x05")
         .answer("mail.example.org", b.A, 60, "192.0.2.25")
         .rr(1, "example.org", b.TXT, 60, b"\x02hi").build())
    feed(c, w)
    assert c.names("192.0.2.25") == ["example.org", "mail.example.org"]


def test_only_answered_single_question_responses_count():
    c = DnsCache(clock=Clock())
    feed(c, b.dns_query(1, "q.example"))
    feed(c, b.DnsBuilder(2, qr=1, rcode=3).question("nx.example").build())
    two = (b.DnsBuilder(3, qr=1).question("a.example").question("b.example")
           .answer("a.example", b.A, 60, "192.0.2.9").build())
    feed(c, two)
    assert len(c) == 0 and c.responses == 0


def test_cname_loop_does_not_hang():
    c = DnsCache(clock=Clock())
    feed(c, chain_response("a.example", ["b.example"], ["192.0.2.7"]))
    feed(c, chain_response("b.example", ["a.example"], []))
    assert c.names("192.0.2.7") == ["a.example", "b.example"]
    assert c.get("a.example")[1] == ["192.0.2.7"]


def test_bad_size():
    with pytest.raises(ValueError):
        DnsCache(max_entries=0)
