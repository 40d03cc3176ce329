"""EX-1001: a program executed from a temporary directory.

Droppers fetch a payload into /tmp or /var/tmp (writable by everyone, rarely
mounted noexec) and run it from there; legitimate software is installed
elsewhere. None of the built-in signatures looks at this (TRC-105 covers
/dev/shm and memfd), so this one adds a detection of its own.

Try it:

    pytracee --signatures-dir signatures/python -e exec_from_tmp
    # in another shell:
    cp /bin/true /tmp/x && /tmp/x

and it reports `exec_from_tmp` for the process `x`. Allow a directory of your
own with `--signatures-config FILE`, the parameters of signature EX-1001:

    EX-1001:
      allowed_prefixes: [/tmp/my-build/]

How a Python signature works (pytracee.detect.signature): subclass Signature,
set `metadata` and `selected_events`, and write `on_event`; pytracee calls it
for every event it selected and `self.match(ev, **data)` reports a finding.
The finding becomes an event named `metadata.event_name`, which -e, policies
and `pytracee list signatures` know as they know the built-ins' events. Every
file of a --signatures-dir directory (and its subdirectories) is imported; each
class it defines that subclasses Signature and has `metadata` is a signature.
"""

from __future__ import annotations

from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata
from pytracee.events.event import Event

# The kernel reports the program's absolute path (./x run in /tmp is /tmp/x).
TMP_DIRS = ("/tmp/", "/var/tmp/")


class ExecFromTmp(Signature):
    # An id of its own: a user signature with a built-in's id (TRC-...) replaces the
    # built-in (pytracee warns when it starts).
    metadata = SignatureMetadata(
        id="EX-1001",
        name="Program executed from a temporary directory",
        event_name="exec_from_tmp",  # the event findings become: lowercase, unique
        version="1",
        description="A program was executed from /tmp or /var/tmp, where droppers "
                    "put what they download before running it.",
        tags=("linux", "container"),
        # Tracee's properties: Severity 0 (info) to 4 (critical), and MITRE ATT&CK.
        properties={"Severity": 2, "Category": "execution",
                    "Technique": "User Execution: Malicious File", "external_id": "T1204.002",
                    "MITRE ATT&CK": "execution: User Execution: Malicious File"},
    )
    # What to be called for: every program start (host and containers: origin "*").
    # The prefilter (field + prefixes) lets the engine skip, at C speed, the execs
    # this signature would ignore anyway; it must let through all it could report.
    selected_events = (
        EventSelector("sched_process_exec", "*", field="pathname", prefixes=TMP_DIRS),
    )

    def on_event(self, ev: Event) -> None:
        path = ev.arg("pathname") or ""
        if not path.startswith(TMP_DIRS):
            return
        # Parameters come from --signatures-config (an empty mapping without it).
        allowed = tuple(self.params.get("allowed_prefixes", ()))
        if allowed and path.startswith(allowed):
            return
        # The finding's data: the detection's arguments (next to triggeredBy, the
        # exec event itself, with the process that ran it).
        self.match(ev, pathname=path, argv=list(ev.arg("argv") or []))
