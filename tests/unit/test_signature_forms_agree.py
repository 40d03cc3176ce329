"""The same detections written three ways (Python built-in, Rego, YAML+CEL) decide
alike on the same events."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytracee.detect.cel import load_yaml_detectors
from pytracee.detect.loader import builtin_signatures
from pytracee.detect.rego import load_rego_signatures
from pytracee.detect.signature import Finding, Signature, SignatureContext
from pytracee.events.event import Event
from tests.unit.signature_fixtures import exec_event, ptrace_event

ROOT = Path(__file__).resolve().parents[2] / "signatures"

CASES: dict[str, list[tuple[Event, bool]]] = {
    "TRC-102": [(ptrace_event(0), True), (ptrace_event(16), False), (ptrace_event(4), False),
                (ptrace_event(5), False)],
    "TRC-105": [(exec_event("memfd:payload"), True), (exec_event("/dev/shm/x"), True),
                (exec_event("/run/shm/y"), True), (exec_event("/usr/bin/ls"), False),
                (exec_event("/tmp/memfd:x"), False), (exec_event("/dev/shmx"), False)],
    "TRC-1016": [(exec_event("/bin/sh", comm="sh", prev_comm="nginx"), True),
                 (exec_event("/bin/bash", comm="bash", prev_comm="apache2"), True),
                 (exec_event("/bin/sh", comm="sh", prev_comm="bash"), False),
                 (exec_event("/usr/bin/ls", comm="ls", prev_comm="nginx"), False)],
}


def _forms(sig_id: str) -> dict[str, Signature]:
    forms = {"python": next(s for s in builtin_signatures() if s.metadata.id == sig_id)}
    rego, errs = load_rego_signatures([ROOT / "rego"])
    assert errs == []
    yml, errs2 = load_yaml_detectors([ROOT / "yaml"])
    assert errs2 == []
    forms.update({f"rego:{s.metadata.id}": s for s in rego if s.metadata.id == sig_id})
    forms.update({f"yaml:{s.metadata.id}": s for s in yml if s.metadata.id == sig_id})
    return forms


@pytest.mark.parametrize("sig_id", sorted(CASES))
def test_forms_agree(sig_id: str) -> None:
    forms = _forms(sig_id)
    if sig_id in ("TRC-102", "TRC-105"):
        assert len(forms) == 3, sorted(forms)  # written in all three forms
    else:
        assert len(forms) >= 2, sorted(forms)
    names = {s.metadata.event_name for s in forms.values()}
    assert len(names) == 1  # the same produced event
    for name, sig in forms.items():
        found: list[Finding] = []
        sig.init(SignatureContext(found.append, {}))
        for ev, expected in CASES[sig_id]:
            found.clear()
            sig.on_event(ev)
            assert (len(found) == 1) == expected, (name, ev.name, ev.args)
