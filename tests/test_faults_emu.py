"""scenarios/faults.yaml in emu mode through `vsplab run --mode emu`: on real Open vSwitch hosts, with
real TCP connections probed continuously, the VSC killed with SIGKILL and started again, the VSD,
ovs-vswitchd, ovsdb-server and a vrs agent restarted, host3's underlay veth down and up, web2 moved to
host3 and back, a flow of host1 changed with ovs-ofctl and found and repaired by the drift audit, an ACL
entry deleted through the VSD. Every step must recover (its
declared expectations hold again), the timeline must say what noticed each fault, and every
expectation must hold at the end. Times are recorded, not asserted (no timed tests).
Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]


def test_faults_scenario_in_emu_mode(tmp_path):
    cmd = [sys.executable, "-m", "vsplab.cli", "run", "scenarios/faults.yaml", "--mode", "emu",
           "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        out, _ = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the lab tears itself down on SIGTERM, by its own names and PIDs
        out, _ = proc.communicate(timeout=120)
        pytest.fail(f"vsplab run did not finish within 400 s:\n{out[-6000:]}")
    assert proc.returncode == 0, out[-8000:]
    print(out[out.find("fault timeline") - 200:])
    faults = json.loads((tmp_path / "r.json").read_text())["faults"]
    steps = {s["label"]: s for s in faults["steps"]}
    assert list(steps) == ["kill vsc vsc1", "start vsc vsc1", "restart vsd", "restart ovs-vswitchd host2",
                           "restart ovsdb-server host3", "restart vrs host1", "link-down host3", "link-up host3",
                           "move web2 to host3", "move web2 to host2", "tamper-flow host1",
                           "delete-acl prod ingress rule 1"]
    assert faults["ok"] and all(s["ok"] for s in faults["steps"])
    assert steps["restart vsd"]["detected_by"] == "a VSC lost the VSD's change stream"
    for move in ("move web2 to host3", "move web2 to host2"):  # the VSC reprogrammed both hosts for it
        assert steps[move]["flow_mods"] > 0 and steps[move]["recovered"] is not None
    assert steps["kill vsc vsc1"]["detected_by"] == "VSC vsc1 stopped answering"
    vswitchd = steps["restart ovs-vswitchd host2"]
    assert vswitchd["detected_by"] == "VSC vsc1 saw host2's switch disconnect or reconnect"
    assert vswitchd["flow_mods"] > 0 and vswitchd["recovered"] is not None  # the host was reprogrammed
    assert steps["link-down host3"]["detected_by"].startswith("probe app2 -> db2")  # real packets lost
    assert steps["link-down host3"]["probes_lost"] > 0
    tamper = steps["tamper-flow host1"]
    assert tamper["detected_by"].startswith("the drift audit") and tamper["flow_mods"] > 0
    acl = steps["delete-acl prod ingress rule 1"]
    assert acl["detected_by"].startswith("every VSC applied VSD revision")
    assert all(x["passed"] for x in faults["final"]) and len(faults["final"]) == 11
    assert sum(p["attempts"] for p in faults["probes"]) > 100  # the probes ran throughout
