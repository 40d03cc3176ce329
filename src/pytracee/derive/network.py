"""Network events from the packets cgroup_skb sends (net_packet_base, or the base
of a class when only that class of packets is wanted), and
net_tcp_connect from security_socket_connect; the DNS cache; pcap capture.

Runs after enrichment, so the derived events share their packet's task context
(container included). net_packet_base never leaves this stage; a
security_socket_connect sent only because net_tcp_connect needs it stops here too.
"""

from __future__ import annotations

from collections.abc import Callable

from pytracee.events import definitions as d
from pytracee.events.event import Event
from pytracee.net.decode import DecodeCounts, derive
from pytracee.net.dnscache import DnsCache
from pytracee.net.flows import FlowTable
from pytracee.net.packet import Packet
from pytracee.net.pcap import PcapSet
from pytracee.policy.runtime import PolicyRuntime

NET_IDS = range(d.NET_EVENTS_START, d.NET_EVENTS_END + 1)
_NAME_OF = {eid: d.EVENTS[eid].name for eid in NET_IDS}
# name -> (id, definition, its argument names in order): one lookup per derived event.
_DERIVED = {d.EVENTS[eid].name: (eid, d.EVENTS[eid], tuple(a.name for a in d.EVENTS[eid].args))
            for eid in NET_IDS}
# Events whose src_dns/dst_dns come from the cache: the cache is fed whenever they are wanted.
_NEEDS_DNS = frozenset({d.BY_NAME["net_flow_tcp_begin"].id, d.BY_NAME["net_flow_tcp_end"].id,
                        d.NET_TCP_CONNECT})
_BASES = frozenset(d.NET_BASES)
_TOUCHED = _BASES | {d.SECURITY_SOCKET_CONNECT}
SOCK_STREAM = 1
_AF_INET = {"AF_INET", "AF_INET6"}


class NetworkStage:
    """Per batch: replace each packet by the network events its policies need (and
    write it to the pcap files), add net_tcp_connect after each TCP
    security_socket_connect whose policies select it.

    "Need" is the policy set's kernel bits: what the policies select, and what their
    signatures are built on (the pipeline strips the latter after detection)."""

    def __init__(self, runtime_of: Callable[[int], PolicyRuntime | None],
                 dns: DnsCache | None = None, pcap: PcapSet | None = None) -> None:
        self.runtime_of = runtime_of  # policy set version -> its runtime (None: forgotten)
        self.dns = dns if dns is not None else DnsCache()
        self.flows = FlowTable()
        self.pcap = pcap
        self.counts = DecodeCounts()
        self.packets = 0       # packet records read
        self.unplaced = 0      # records of a policy set already forgotten (dropped)
        self._wanted: dict[tuple[int, int], frozenset[str]] = {}  # (version, matched) -> names
        self._connect_keep: dict[int, int] = {}  # version -> security_socket_connect bits kept

    def process(self, events: list[Event]) -> list[Event]:
        if _TOUCHED.isdisjoint({ev.event_id for ev in events}):
            return events  # the usual batch: nothing here for this stage (one C-level pass)
        out: list[Event] = []
        append = out.append
        for ev in events:
            eid = ev.event_id
            if eid in _BASES:
                out.extend(self._packet(ev))
            elif eid == d.SECURITY_SOCKET_CONNECT:
                rt = self.runtime_of(ev.version)
                if rt is None:
                    append(ev)  # the pipeline counts events of forgotten sets
                    continue
                wanted = ev.matched & rt.kernel_bits.get(d.NET_TCP_CONNECT, 0)
                ev.matched &= self._keep_connect(rt)
                if ev.matched:
                    append(ev)
                if wanted:
                    derived = self._tcp_connect(ev, wanted)
                    if derived is not None:
                        append(derived)
            else:
                append(ev)
        return out

    def _keep_connect(self, rt: PolicyRuntime) -> int:
        """The policies that want security_socket_connect for anything but net_tcp_connect
        (itself, or a signature built on it): the kernel sent it for the others only."""
        keep = self._connect_keep.get(rt.version)
        if keep is None:
            keep = rt.event_bits.get(d.SECURITY_SOCKET_CONNECT, 0)
            for eid, bits in rt.event_bits.items():
                if eid != d.NET_TCP_CONNECT and d.SECURITY_SOCKET_CONNECT in d.dependencies(eid):
                    keep |= bits
            if len(self._connect_keep) > 64:
                self._connect_keep.clear()
            self._connect_keep[rt.version] = keep
        return keep

    def _wanted_names(self, rt: PolicyRuntime, matched: int) -> frozenset[str]:
        key = (rt.version, matched)
        names = self._wanted.get(key)
        if names is None:
            bits = rt.kernel_bits
            names = frozenset(_NAME_OF[eid] for eid in NET_IDS if bits.get(eid, 0) & matched)
            if any(bits.get(eid, 0) & matched for eid in _NEEDS_DNS):
                names |= {"dns_cache"}  # feed the cache even when no DNS event is wanted
            if len(self._wanted) > 4096:
                self._wanted.clear()
            self._wanted[key] = names
        return names

    def _packet(self, ev: Event) -> list[Event]:
        self.packets += 1
        rt = self.runtime_of(ev.version)
        if rt is None:
            self.unplaced += 1
            return []
        matched = ev.matched
        ctx = ev.ctx
        for i, scope in rt.userland_scopes.items():  # what the kernel could not check
            if matched >> i & 1 and not scope.matches(ctx):
                matched &= ~(1 << i)
        if not matched:
            return []
        ingress, length, data = ev.args
        pkt = Packet(ev.timestamp, bool(ingress), length or 0, data or b"")
        if self.pcap is not None:
            container = ctx.container.id if ctx.container is not None else ""
            # The process's file: its pid and the start of its leader (as epoch ns).
            start = ctx.leader_start + ctx.start_time - ctx.boot_start
            self.pcap.write(pkt, ctx.host_pid, ctx.comm, start, container)
        wanted = self._wanted_names(rt, matched)
        if not wanted:
            return []
        bits = rt.kernel_bits
        out = []
        ts, cpu, version = ev.timestamp, ev.cpu, ev.version
        for name, args in derive(pkt, wanted, self.dns, self.flows, self.counts):
            known = _DERIVED.get(name)
            if known is None:
                continue
            eid, definition, arg_names = known
            mine = matched & bits.get(eid, 0)
            if mine:
                out.append(Event(ts, 0, mine, eid, -1, cpu, version, 0, ctx, definition,
                                 list(map(args.get, arg_names))))
        return out

    def _tcp_connect(self, ev: Event, matched: int) -> Event | None:
        """Tracee's net_tcp_connect: a TCP connect to an IPv4/IPv6 address."""
        sock_type, addr = ev.arg("type"), ev.arg("remote_addr")
        if not isinstance(addr, dict) or addr.get("sa_family") not in _AF_INET:
            return None
        if sock_type is None or int(sock_type) & 0xF != SOCK_STREAM:
            return None
        v6 = addr["sa_family"] == "AF_INET6"
        dst = addr.get("sin6_addr" if v6 else "sin_addr", "")
        port = int(addr.get("sin6_port" if v6 else "sin_port", "0"))
        return Event(ev.timestamp, ev.retval, matched, d.NET_TCP_CONNECT, ev.syscall, ev.cpu,
                     ev.version, 0, ev.ctx, d.EVENTS[d.NET_TCP_CONNECT],
                     [dst, port, self.dns.names(dst)])

    def summary(self) -> str:
        """For the run's summary line: packets read, and what went wrong with them."""
        c = self.counts
        out = f", packets: {self.packets}"
        if self.unplaced:
            out += f" ({self.unplaced} of a forgotten policy set)"
        bad = c.decode_errors + c.dns_errors + c.http_errors
        if bad:
            out += f" (undecodable parts: {bad})"
        if self.pcap is not None:
            out += f", pcap: {self.pcap.packets} packets"
            if self.pcap.write_errors:
                out += f" ({self.pcap.write_errors} write errors)"
        return out

    def close(self) -> None:
        if self.pcap is not None:
            self.pcap.close()
