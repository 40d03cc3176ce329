"""Network events from captured packets: Tracee's net_packet_* and net_flow_*.

The kernel (cgroup_skb) hands up `Packet`s; `derive()` turns one into the
selected events, feeding the DNS cache and the TCP flow table on the way;
`PcapSet` writes the captured packets to Tracee's pcap layout.
"""

from pytracee.net.decode import DNS_CACHE, NET_EVENTS, STATS, DecodeCounts, derive
from pytracee.net.dnscache import DnsCache
from pytracee.net.flows import FlowTable
from pytracee.net.packet import Packet
from pytracee.net.pcap import PcapSet, PcapWriter

__all__ = ["DNS_CACHE", "NET_EVENTS", "STATS", "DecodeCounts", "DnsCache", "FlowTable", "Packet",
           "PcapSet", "PcapWriter", "derive"]
