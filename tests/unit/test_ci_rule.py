"""The "fail, don't skip, in CI" rule cannot be switched off by how CI spells CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import in_ci


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True), ("anything", True),
    ("", False), ("0", False), ("false", False), ("no", False), ("off", False), (" False ", False),
])
def test_any_truthy_ci_counts(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_unset_ci_is_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert in_ci() is False


def test_the_ci_entry_point_sets_ci_itself() -> None:
    lines = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text().splitlines()
    assert "export CI=true" in lines
    assert lines.index("export CI=true") < lines.index("make test")
