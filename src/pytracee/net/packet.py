"""The packet the kernel hands to userland (cgroup_skb ingress/egress)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Packet:
    ts_ns: int          # event timestamp (ns, same clock as other events)
    ingress: bool       # True: cgroup_skb ingress; False: egress
    length: int         # the packet's full length (skb->len), may exceed len(data)
    data: bytes         # from the L3 header on (IPv4 or IPv6, no link layer), cut at the snap length
