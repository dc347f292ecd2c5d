"""Scenario-file error cases: one edit of a valid file, and the error must name its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsplab.scenario.check import load_scenario
from vsplab.scenario.loader import ScenarioError


def assert_edit_is_refused(tmp_path: Path, base: str, old: str, new: str, line: int, words: str) -> None:
    assert old in base, old
    f = tmp_path / "bad.yaml"
    f.write_text(base.replace(old, new, 1))
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    text = str(e.value)
    assert f"{f}:{line}:" in text, text
    assert words in text, text
