"""What a new user trips over in the first hour, in policy files: `list policies` agrees
with `pytracee -p`, one YAML error hides nothing, bad retval operators, did-you-mean."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytracee.cli import load_signatures, main
from pytracee.detect.loader import builtin_signatures
from pytracee.detect.signature import SEVERITY_NAMES
from pytracee.policy.compile import compile_policies
from pytracee.policy.files import PolicyErrors, load_policies

VALID_OPS = "(valid: = != < > <= >=)"


def policy(dir_: Path, name: str, body: str) -> Path:
    p = dir_ / name
    p.write_text(textwrap.dedent(body).lstrip("\n"))
    return p


def listed(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["list", "policies", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


# -- 1. the validator agrees with the runner ---------------------------------

def test_list_policies_knows_a_signatures_event(tmp_path: Path) -> None:
    p = policy(tmp_path, "dbg.yaml", """
        type: policy
        name: dbg
        scope: [global]
        rules:
          - event: anti_debugging
        """)
    assert listed(str(p)) == (0, f"policy 0: dbg  ({p}:1)\n  scope: global\n  events (1):\n"
                                 "    anti_debugging\n")


def test_list_policies_knows_the_signatures_threats(tmp_path: Path) -> None:
    p = policy(tmp_path, "high.yaml", """
        type: policy
        name: high
        scope: [comm=bash]
        rules:
          - event: threat.severity>=high
        """)
    high = sorted(s.metadata.event_name for s in builtin_signatures()
                  if s.metadata.severity >= SEVERITY_NAMES.index("high"))
    assert "fileless_execution" in high and "anti_debugging" not in high  # low
    assert listed(str(p)) == (0, f"policy 0: high  ({p}:1)\n  scope: comm=bash\n"
                                 f"  events ({len(high)}):\n"
                                 + "".join(f"    {n}\n" for n in high))


USER_SIG = '''
from pytracee.detect.signature import EventSelector, Signature, SignatureMetadata


class FirstHour(Signature):
    metadata = SignatureMetadata("FH-1", "First hour marker", "first_hour_marker",
                                 properties={"Severity": 2})
    selected_events = (EventSelector("security_file_open"),)

    def on_event(self, ev):
        pass
'''


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """In a child process: a user signature's event must not stay registered in ours."""
    return subprocess.run([sys.executable, "-m", "pytracee.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_list_policies_takes_signatures_dir_like_the_runner(tmp_path: Path) -> None:
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    (sigs / "marker.py").write_text(USER_SIG)
    p = policy(tmp_path, "m.yaml", """
        type: policy
        name: marker
        scope: [global]
        rules:
          - event: first_hour_marker
        """)
    without = _cli("list", "policies", str(p))
    assert (without.returncode, without.stdout) == (2, "")
    assert without.stderr == f"pytracee: {p}:5: unknown event 'first_hour_marker'\n"
    with_dir = _cli("list", "policies", "--signatures-dir", str(sigs), str(p))
    assert (with_dir.returncode, with_dir.stderr) == (0, "")
    assert with_dir.stdout == (f"policy 0: marker  ({p}:1)\n  scope: global\n  events (1):\n"
                               "    first_hour_marker\n")


def test_list_policies_reports_a_bad_signature_file_in_one_line(tmp_path: Path) -> None:
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    (sigs / "bad.py").write_text("from pytracee.detect.signature import Signature\n\ndef x(:\n")
    p = policy(tmp_path, "ok.yaml", "type: policy\nname: ok\nscope: [global]\n"
                                    "rules:\n  - event: openat\n")
    assert listed("--signatures-dir", str(sigs), str(p)) == (
        2, f"pytracee: {sigs}/bad.py:3: Python syntax error: invalid syntax\n")


# -- 2. one YAML syntax error hides nothing ----------------------------------

def _three_files(tmp_path: Path) -> Path:
    d = tmp_path / "pol"
    d.mkdir()
    policy(d, "1-event.yaml", """
        type: policy
        name: bad-event
        scope: [global]
        rules:
          - event: opneat
        """)
    policy(d, "2-syntax.yaml", """
        type: policy
        name: syntax
        scope: [global
        rules:
          - event: openat
        """)
    policy(d, "3-good.yaml", """
        type: policy
        name: good
        scope: [global]
        rules:
          - event: openat
        """)
    return d


EVENT_ERR = "unknown event 'opneat' (did you mean 'openat'?)"
YAML_ERR = "invalid YAML: while parsing a flow sequence expected ',' or ']', but got ':'"


def test_a_yaml_error_does_not_hide_the_other_files_errors(tmp_path: Path) -> None:
    d = _three_files(tmp_path)
    assert listed(str(d)) == (2, f"pytracee: {d}/1-event.yaml:5: {EVENT_ERR}\n"
                                 f"pytracee: {d}/2-syntax.yaml:4: {YAML_ERR}\n")


def test_load_policies_collects_every_error_in_file_order(tmp_path: Path) -> None:
    d = _three_files(tmp_path)
    with pytest.raises(PolicyErrors) as info:
        load_policies([str(d)])
    assert [str(e) for e in info.value.errors] == [f"{d}/1-event.yaml:5: {EVENT_ERR}",
                                                   f"{d}/2-syntax.yaml:4: {YAML_ERR}"]
    assert str(info.value) == f"{d}/1-event.yaml:5: {EVENT_ERR}"  # what `pytracee -p` prints
    (d / "2-syntax.yaml").unlink()
    with pytest.raises(PolicyErrors) as info:  # the event error alone: as before
        compile_policies(load_policies([str(d)]))
    assert [str(e) for e in info.value.errors] == [f"{d}/1-event.yaml:5: {EVENT_ERR}"]


# -- 3. a bad retval operator is a retval filter's mistake -------------------

def test_bad_retval_operators_in_a_policy(tmp_path: Path) -> None:
    p = policy(tmp_path, "r.yaml", """
        type: policy
        name: r
        scope: [global]
        rules:
          - event: close
            filters:
              - retval~5
              - retval=~5
              - retval!~5
              - retval==5
              - retval>=0
        """)
    assert listed(str(p)) == (2, "".join(
        f"pytracee: {p}:{line}: invalid filter '{f}': bad retval filter operator '{op}' "
        f"{VALID_OPS}\n"
        for line, f, op in ((7, "retval~5", "~"), (8, "retval=~5", "=~"),
                            (9, "retval!~5", "!~"), (10, "retval==5", "=="))))


def test_bad_retval_operator_on_a_glob_rule_names_the_event(tmp_path: Path) -> None:
    load_signatures(())
    p = policy(tmp_path, "g.yaml", """
        type: policy
        name: g
        scope: [global]
        rules:
          - event: clos*
            filters: [retval~0]
        """)
    code, out = listed(str(p))
    assert code == 2
    assert out == (f"pytracee: {p}:6: invalid filter 'retval~0': bad retval filter operator "
                   f"'~' {VALID_OPS} (event 'close')\n")


# -- 4. did you mean ---------------------------------------------------------

@pytest.mark.parametrize(("scope", "rule", "line", "message"), [
    ("[comn=bash]", "- event: openat", 3,
     "invalid scope 'comn=bash': unknown scope field 'comn' (did you mean 'comm'?)"),
    ("[global]", "- event: openat\n    filters: [comn=bash]", 6,
     "invalid filter 'comn=bash': unknown scope field 'comn' (did you mean 'comm'?)"),
    ("[global]", "- event: tag=fss", 5, "unknown event set 'fss' (did you mean 'fs'?)"),
    ("[global]", "- event: openat\n    actions: [prnt]", 6,
     "action 'prnt' is not supported (did you mean 'print'?); choose destinations with --output"),
    ("[global]", "- event: openat\n    actions: [alert]", 6,
     "action 'alert' is not supported (known: log, print); choose destinations with --output"),
    ("[global]", "- event: openat\n    filter: [retval<0]", 6,
     "rule: unknown key 'filter' (did you mean 'filters'?); known keys: event, filters, actions"),
])
def test_did_you_mean_in_policy_files(tmp_path: Path, scope: str, rule: str, line: int,
                                      message: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(f"type: policy\nname: p\nscope: {scope}\nrules:\n  {rule}\n")
    assert listed(str(p)) == (2, f"pytracee: {p}:{line}: {message}\n")


def test_did_you_mean_in_kubernetes_spec_keys(tmp_path: Path) -> None:
    p = policy(tmp_path, "k.yaml", """
        apiVersion: tracee.aquasec.com/v1beta1
        kind: Policy
        metadata:
          name: k
        spec:
          scope: [global]
          rule:
            - event: openat
        """)
    assert listed(str(p)) == (2, f"pytracee: {p}:7: spec: unknown key 'rule' (did you mean "
                                 "'rules'?); known keys: scope, defaultActions, rules\n"
                                 f"pytracee: {p}:6: spec: missing 'rules'\n")


def test_the_runner_reports_every_policy_mistake_too(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pytracee.cli import main

    (tmp_path / "1.yaml").write_text("type: policy\nname: a\nscope: [comm=x]\n"
                                     "rules:\n  - event: opneat\n")
    (tmp_path / "2.yaml").write_text("type: policy\nname: b\nrules: [ : \n")
    res = CliRunner().invoke(main, ["-p", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"pytracee: {tmp_path}/1.yaml:5: unknown event 'opneat' (did you mean 'openat'?)",
        f"pytracee: {tmp_path}/2.yaml:3: invalid YAML: while parsing a flow node expected the "
        "node content, but found ':'"]
