"""The filterable fields of structured network arguments (events/structs.py) are the
fields the network decoder really produces, with the right kinds of values."""

from __future__ import annotations

from typing import Any

from pytracee.events.definitions import EVENTS, NET_EVENTS_END, NET_EVENTS_START
from pytracee.events.structs import STRUCT_FIELDS
from pytracee.net.decode import derive
from pytracee.net.dnscache import DnsCache
from pytracee.net.flows import FlowTable
from tests.unit import net_packets as np

ALL = frozenset(EVENTS[eid].name for eid in range(NET_EVENTS_START, NET_EVENTS_END + 1))
_PY = {"string": str}


def _check(value: Any, type_: str, where: str, seen: set[str]) -> None:
    many = type_.startswith("[]")
    base = type_.removeprefix("[]")
    if many:
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _check(item, base, f"{where}[{i}]", seen)
        return
    fields = STRUCT_FIELDS.get(base)
    if fields is None:  # a scalar
        if value is None:
            return
        assert isinstance(value, str if base == "string" else int), (where, value)
        return
    seen.add(base)
    assert isinstance(value, dict), where
    for name, sub in fields.items():
        assert name in value, f"{where} has no {name}"
        _check(value[name], sub, f"{where}.{name}", seen)


def test_struct_fields_are_what_the_decoder_emits() -> None:
    packets = [
        np.pkt(np.udp4("10.0.0.2", "10.0.0.1", 40000, 53, np.dns_query(7, "www.example.com"))),
        np.pkt(np.udp4("10.0.0.1", "10.0.0.2", 53, 40000, np.dns_cname_response(7)), ingress=True),
        np.pkt(np.tcp4("10.0.0.2", "10.0.0.1", 40001, 80, flags="PA", payload=np.HTTP_REQUEST)),
        np.pkt(np.tcp4("10.0.0.1", "10.0.0.2", 80, 40001, flags="PA", payload=np.HTTP_RESPONSE),
               ingress=True),
        np.pkt(np.tcp6("::1", "::1", 40002, 443, flags="S")),
        np.pkt(np.ipv4("10.0.0.2", "10.0.0.1", 1, np.icmp(8, 0, 1, 1))),
        np.pkt(np.ipv6("::1", "::1", 58, np.icmp6("::1", "::1", 128, 0, b"\0\1\0\1"))),
    ]
    seen: set[str] = set()
    flows = FlowTable()
    for p in packets:
        for name, args in derive(p, ALL, DnsCache(), flows):
            ev = next(e for e in EVENTS.values() if e.name == name)
            for a in ev.args:
                if a.type.removeprefix("[]") in STRUCT_FIELDS:
                    _check(args[a.name], a.type, f"{name}.{a.name}", seen)
    # Every struct a network argument can hold was produced at least once.
    arg_structs = {a.type.removeprefix("[]") for eid in range(NET_EVENTS_START, NET_EVENTS_END + 1)
                   for a in EVENTS[eid].args if a.type.startswith(("trace.", "[]trace."))}
    nested = {t.removeprefix("[]") for f in STRUCT_FIELDS.values() for t in f.values()
              if t.removeprefix("[]") in STRUCT_FIELDS}
    assert arg_structs | nested == seen
