"""The generated 500-policy-group scenario (vsplab/workload/groups.py) through the whole control plane in
sim mode: VSD (REST) -> change stream -> VSC -> OpenFlow -> simulated VRSs -> traced packets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsplab.workload.groups import groups_yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_500_policy_groups_in_one_domain_pass_in_sim_mode(tmp_path):
    scenario = tmp_path / "vl-pg-500.yaml"
    scenario.write_text(groups_yaml(500))
    out = subprocess.run([sys.executable, "-m", "vsplab.cli", "run", str(scenario), "--json", str(tmp_path / "r.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["ok"] and len(result["expectations"]) >= 30
    assert all(x["passed"] for x in result["expectations"])
    # 500 ring rules per direction, most between two slot groups (16 flows each): far more than the
    # 18 containers would need per pair, and the same on both hosts
    assert all(n > 10_000 for n in result["flows_per_host"].values()), result["flows_per_host"]
