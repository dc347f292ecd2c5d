"""`vsplab run` as a user types it, in the modes that need root: the same scenario file, real OVS and
real packets, the same table, and nothing left behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THREE_TIER = ROOT / "scenarios" / "three-tier.yaml"
pytestmark = pytest.mark.slow


def vsplab(*args):
    return subprocess.run([sys.executable, "-m", "vsplab.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def nothing_left() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("vl-")]


@pytest.mark.root
def test_emu_mode_from_the_command_line_with_revocation(tmp_path):
    out = vsplab("run", str(THREE_TIER), "--mode", "emu", "--revoke", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "three-tier (emu mode): reachability" in out.stdout and "11/11 passed" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["mode"] == "emu" and result["ok"] and len(result["expectations"]) == 11
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("ACL entry removed"))
    assert " ms after the DELETE" in line, line  # the time is printed (not asserted: no timed tests)
    assert nothing_left() == []


@pytest.mark.root
def test_mininet_mode_from_the_command_line():
    out = vsplab("run", str(THREE_TIER), "--mode", "mininet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "three-tier (mininet mode): reachability" in out.stdout and "11/11 passed" in out.stdout
    assert nothing_left() == []


def test_revoke_is_refused_outside_emu():  # refused before anything starts: no root needed
    out = vsplab("run", str(THREE_TIER), "--revoke")
    assert out.returncode == 2 and "emu mode only" in out.stdout
