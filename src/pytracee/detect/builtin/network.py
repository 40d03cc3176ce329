"""Signatures on sockets: a shell's standard streams on a network socket."""

from __future__ import annotations

from pytracee.detect.builtin._common import meta, select
from pytracee.detect.signature import Signature
from pytracee.events.event import Event

_INET = ("AF_INET", "AF_INET6")


class StdioOverSocket(Signature):
    metadata = meta("TRC-101", "Process standard input/output over socket detected",
                    "stdio_over_socket", 3, "T1059.004", "Unix Shell", "execution",
                    "A process's standard input, output or error (fd 0/1/2) is a network "
                    "socket: the shape of a reverse shell.")
    selected_events = select("security_socket_connect", "socket_dup")

    def on_event(self, ev: Event) -> None:
        fd = ev.arg("sockfd") if ev.name == "security_socket_connect" else ev.arg("newfd")
        addr = ev.arg("remote_addr")
        if fd not in (0, 1, 2) or not isinstance(addr, dict) or addr.get("sa_family") not in _INET:
            return
        ip = addr.get("sin_addr") or addr.get("sin6_addr") or ""
        port = addr.get("sin_port") if "sin_port" in addr else addr.get("sin6_port", 0)
        self.match(ev, **{"IP address": ip, "Port": str(port), "File descriptor": fd})


SIGNATURES = (StdioOverSocket,)
