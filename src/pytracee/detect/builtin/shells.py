"""Signatures on shells: a web server that starts one."""

from __future__ import annotations

from pytracee.detect.builtin._common import meta, select
from pytracee.detect.signature import Signature
from pytracee.events.event import Event

SHELLS = frozenset({"ash", "bash", "csh", "ksh", "sh", "tcsh", "zsh", "dash"})
# Process names (comm, at most 15 characters) of web servers.
WEB_SERVERS = frozenset({"nginx", "httpd", "httpd-foregroun", "http-nio", "lighttpd", "apache",
                         "apache2"})


class IllegitimateShell(Signature):
    metadata = meta("TRC-1016", "Web server spawned a shell", "illegitimate_shell", 2, "T1190",
                    "Exploit Public-Facing Application", "initial-access",
                    "A web server process turned into a shell: the program that ran exec was "
                    "a web server and the new program is a shell. Web servers do not normally "
                    "run shells; this is what command injection or a web shell looks like.")
    selected_events = select("sched_process_exec")

    def on_event(self, ev: Event) -> None:
        if ev.ctx.comm in SHELLS and ev.arg("prev_comm") in WEB_SERVERS:
            self.match(ev)


SIGNATURES = (IllegitimateShell,)
