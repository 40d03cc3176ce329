"""--config FILE and `list policies`: what users write, and what they are told when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pytracee.cli import main
from pytracee.config import load_config
from pytracee.errors import UsageError


def test_config_keys_become_flag_values(tmp_path: Path) -> None:
    cfg = tmp_path / "pytracee.yaml"
    cfg.write_text("events: [openat, execve]\nscope: comm=bash\npolicy: []\n"
                   "output: [json, option:parse-arguments]\nbuffers: kernel.events=8192\nlog-level: info\n")
    assert load_config(str(cfg)) == {
        "events": ["openat", "execve"], "scope": ["comm=bash"], "policies": [],
        "output": ["json", "option:parse-arguments"], "buffers": ["kernel.events=8192"],
        "log_level": "info"}


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("events: [openat]\nscopes: [comm=x]\n", 2, "unknown config key 'scopes'"),
    ("events: {a: 1}\n", 1, "'events' takes a string or a list of strings"),
    ("log-level: [info]\n", 1, "'log-level' takes a single value"),
    ("events: [openat\n", 2, "invalid YAML"),
    ("- openat\n", 1, "a config file is a mapping"),
    ("log-level: loud\n", 1, "log-level must be one of debug, info, warning, error"),
])
def test_bad_config_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError) as err:
        load_config(str(cfg))
    assert str(err.value).startswith(f"{cfg}:{line}: ")
    assert fragment in str(err.value)


def test_bad_config_on_the_command_line_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("nope: 1\n")
    res = CliRunner().invoke(main, ["-c", str(cfg), "list", "events"])
    assert res.exit_code == 2
    assert res.output == f"pytracee: {cfg}:1: unknown config key 'nope' (known: events, scope, policy, output, buffers, stores, enrichment, signatures-dir, signatures-config, server, capture, artifacts, log-level)\n"


def test_list_policies_prints_each_policy_and_reports_every_error(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.yaml").write_text("type: policy\nname: opens\ndescription: d\nscope: [comm=cat]\n"
                                 "rules:\n  - event: openat\n    filters: [data.pathname=/etc/*]\n")
    res = CliRunner().invoke(main, ["list", "policies", str(good)])
    assert res.exit_code == 0
    assert "opens" in res.output and "openat" in res.output and "/etc/*" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.yaml").write_text("type: policy\nname: one\nscope: [comm=x]\nrules:\n  - event: nosuch\n")
    (bad / "b.yaml").write_text("type: policy\nname: two\nscope: [comm>x]\nrules:\n  - event: openat\n")
    res = CliRunner().invoke(main, ["list", "policies", str(bad)])
    assert res.exit_code == 2
    lines = res.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"pytracee: {bad}/a.yaml:5: ") and "nosuch" in lines[0]
    assert lines[1].startswith(f"pytracee: {bad}/b.yaml:3: ") and "comm>x" in lines[1]


@pytest.mark.parametrize("raw", [b"events: [caf\xe9]\n", b"events: [a\x01]\n"])
def test_undecodable_config_is_a_usage_error(tmp_path: Path, raw: bytes) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(raw)
    with pytest.raises(UsageError) as err:
        load_config(str(cfg))
    assert str(err.value).startswith(f"{cfg}")
