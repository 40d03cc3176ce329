"""DNS cache: which names an IP address was resolved from (Tracee's pkg/datastores/dns).

Fed with DNS responses. Each question is a root node; its answers hang below it
(an A/AAAA answer is an IP node, a CNAME a name node, MX/SRV/PTR targets name
nodes), and an answer whose owner name is already known hangs below that node
instead, so a CNAME chain reads query -> cname -> ... -> IP. `names(ip)` walks
up from the IP and returns the names on the way, the query first:

    www.example.com CNAME e1.cdn.net, e1.cdn.net A 192.0.2.7
    names("192.0.2.7") == ["www.example.com", "e1.cdn.net"]

Bounds, as Tracee: at most `max_entries` query roots, least recently used
evicted with everything below them (`--stores dns.max-entries=N`). Roots never
expire; every other node expires `ttl` seconds after the response that last
carried it, by the injected clock (seconds, default time.monotonic).

Unlike Tracee: an expired node is also left out of the answers of others
(Tracee still lists a name's expired addresses), a name's expired answers are
dropped when it gets new ones (a CDN name would otherwise collect addresses
forever), a PTR question is found again by its trimmed name, and the walks stop
on cycles (a CNAME loop).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from pytracee.net import dns as dnswire

_REVERSE_V4 = ".in-addr.arpa"
_REVERSE_V6 = ".ip6.arpa"
_FOREVER = float("inf")
DEFAULT_MAX_ENTRIES = 5000


class _Node:
    __slots__ = ("value", "is_ip", "expires", "parents", "children")

    def __init__(self, value: str, is_ip: bool, expires: float) -> None:
        self.value = value
        self.is_ip = is_ip
        self.expires = expires
        self.parents: dict[str, _Node] = {}     # ordered sets keyed by value
        self.children: dict[str, _Node] = {}


def _trim(key: str) -> str:
    if key.endswith(_REVERSE_V4):
        return key[:-len(_REVERSE_V4)]
    if key.endswith(_REVERSE_V6):
        return key[:-len(_REVERSE_V6)]
    return key


def _node_value(rtype: int, value: object) -> tuple[str, bool]:
    """What node an answer makes (Tracee's makeNodeFromAnswer): (value, is_ip)."""
    if rtype == dnswire.T_A or rtype == dnswire.T_AAAA:
        return value, True  # type: ignore[return-value]
    if rtype == dnswire.T_CNAME or rtype == dnswire.T_PTR:
        return value, False  # type: ignore[return-value]
    if rtype == dnswire.T_MX:
        return value[1], False  # type: ignore[index]
    if rtype == dnswire.T_SRV:
        return value[3], False  # type: ignore[index]
    return "", False


class DnsCache:
    """Thread-safe: fed by the packet path, read by flow and connect events."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("dns.max-entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._index: dict[str, _Node] = {}
        self._roots: OrderedDict[str, _Node] = OrderedDict()
        self._lock = threading.Lock()
        self.responses = 0      # responses added
        self.evictions = 0      # roots evicted by the LRU bound

    def __len__(self) -> int:
        return len(self._index)

    # ---- feeding

    def add_message(self, msg: dnswire.Message) -> None:
        """A parsed DNS message; only responses with one question and answers count."""
        if msg.qr != 1 or not msg.answers or len(msg.questions) != 1:
            return
        qname, qtype, _ = msg.questions[0]
        self.add(qname, qtype, ((rr.name, rr.rtype, rr.ttl, rr.value) for rr in msg.answers))

    def add(self, question: str, qtype: int,
            answers: Iterable[tuple[str, int, int, object]]) -> None:
        """answers: (owner name, type, ttl, decoded value as in dns.RR.value)."""
        now = self._clock()
        with self._lock:
            self.responses += 1
            is_ptr = qtype == dnswire.T_PTR
            value = _trim(question) if is_ptr else question
            node = self._index.get(value)
            if node is None:
                node = _Node(value, is_ptr, _FOREVER)
                self._index[value] = node
                self._roots[value] = node
                self._roots.move_to_end(value)
                while len(self._roots) > self.max_entries:
                    _, old = self._roots.popitem(last=False)
                    self.evictions += 1
                    self._clear(old, set())
            self._add_children(node, answers, now)

    def _add_children(self, parent: _Node, answers: Iterable[tuple[str, int, int, object]],
                      now: float) -> None:
        pruned: set[int] = set()
        for owner, rtype, ttl, value in answers:
            val, is_ip = _node_value(rtype, value)
            if not val:
                continue    # a type that names nothing (TXT, SOA, ...)
            ctx = parent
            if owner != parent.value:
                ctx = self._index.get(owner, parent)
            if id(ctx) not in pruned:
                pruned.add(id(ctx))
                self._prune(ctx, now)
            child = self._index.get(val)
            if child is None:
                child = _Node(val, is_ip, now + ttl)
                child.parents[ctx.value] = ctx
                self._index[val] = child
                ctx.children[val] = child
            else:
                child.parents[ctx.value] = ctx
                child.expires = now + ttl

    def _prune(self, node: _Node, now: float) -> None:
        for key, child in list(node.children.items()):
            if child.expires < now:
                del node.children[key]
                child.parents.pop(node.value, None)
                if not child.parents:
                    self._clear(child, set())

    def _clear(self, node: _Node, seen: set[int]) -> None:
        """Drop a node and what hangs below it from the index (Tracee's clearNode)."""
        if id(node) in seen:
            return
        seen.add(id(node))
        if self._index.get(node.value) is node:
            del self._index[node.value]
        for child in node.children.values():
            self._clear(child, seen)
        node.children = {}
        node.parents = {}

    # ---- queries

    def names(self, ip: str) -> list[str]:
        """The names `ip` was resolved from: the query first, then the CNAMEs."""
        return self.get(ip)[0]

    def get(self, key: str) -> tuple[list[str], list[str]]:
        """(names, ips) related to an IP or a name; ([], []) when unknown or expired."""
        now = self._clock()
        with self._lock:
            node = self._index.get(_trim(key))
            if node is None or now > node.expires:
                return [], []
            names: deque[str] = deque()
            ips: deque[str] = deque()
            (ips if node.is_ip else names).append(node.value)
            self._walk_children(node, names, ips, now, {id(node)})
            self._walk_parents(node, names, ips, now, {id(node)})
            return list(names), list(ips)

    def _walk_children(self, node: _Node, names: deque[str], ips: deque[str], now: float,
                       seen: set[int]) -> None:
        for child in node.children.values():
            if id(child) in seen or now > child.expires:
                continue
            seen.add(id(child))
            (ips if child.is_ip else names).append(child.value)
            self._walk_children(child, names, ips, now, seen)

    def _walk_parents(self, node: _Node, names: deque[str], ips: deque[str], now: float,
                      seen: set[int]) -> None:
        if not node.parents:
            if self._roots.get(node.value) is node:
                self._roots.move_to_end(node.value)     # a hit keeps its root alive
            return
        if now > node.expires:
            return
        for parent in node.parents.values():
            if id(parent) in seen:
                continue
            seen.add(id(parent))
            (ips if parent.is_ip else names).appendleft(parent.value)
            self._walk_parents(parent, names, ips, now, seen)
