"""`vsplab audit` on real Open vSwitch: an emu lab of scenarios/three-tier.yaml, one ACL flow deleted and
one flow added on a host's bridge with `ovs-ofctl` behind the VSC's back. The audit (the VSC's flow-stats
request over its own OpenFlow connection) names both by their VSD object, `--repair` sends exactly their
two flow-mods, and every other flow on the switch is left alone (its age keeps counting).

Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from openflow.text import format_match
from openflow.textparse import parse_flow
from vsc.pipeline import Kind, Table, cookie_kind
from vsplab.emu.lab import EmuLab
from vsplab.scenario.check import load_scenario

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]

ROOT = Path(__file__).resolve().parents[1]


def vsplab_audit(lab_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsplab.cli", "audit", "--lab", str(lab_dir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def ages(dump: str) -> dict[str, float]:
    """Flow (without its counters) -> its age in seconds, from `ovs-ofctl dump-flows`."""
    out = {}
    for line in dump.splitlines():
        if "duration=" not in line:
            continue
        f = parse_flow(line)
        age = float(line.split("duration=")[1].split("s")[0])
        out[f"table={f.table},{format_match(f.priority, f.match)}"] = age
    return out


def test_a_flow_tampered_with_on_ovs_is_found_named_and_repaired_alone():
    scenario = load_scenario(str(ROOT / "scenarios" / "three-tier.yaml"))
    with EmuLab(scenario, console=Console(file=io.StringIO())) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=120)
        lab.serve_control()
        clean = vsplab_audit(lab.workdir)
        assert clean.returncode == 0 and "audit: no drift" in clean.stdout, clean.stdout + clean.stderr

        host = scenario.hosts[0].name
        ovs = lab.hosts[host].ovs
        dump = ovs.ofctl("dump-flows", "br-int", f"table={int(Table.INGRESS_ACL)}")
        gone = next(f for f in (parse_flow(line) for line in dump.splitlines() if "cookie=" in line)
                    if cookie_kind(f.cookie) == Kind.ACL_ENTRY)
        gone_spec = f"table={gone.table},{format_match(gone.priority, gone.match)}"
        ovs.ofctl("del-flows", "--strict", "br-int", gone_spec)
        ovs.ofctl("add-flow", "br-int", f"cookie={gone.cookie:#x},table={int(Table.INGRESS_ACL)},priority=65000,"
                                        "ip,nw_src=10.99.0.1,actions=drop")

        found = vsplab_audit(lab.workdir, "--json")
        assert found.returncode == 1, found.stdout + found.stderr
        report = json.loads(found.stdout)
        assert report["intent"] == []
        drift = {(d["host"], d["what"], d["table"], d["priority"]) for d in report["flows"]}
        assert drift == {(host, "missing", gone.table, gone.priority), (host, "extra", Table.INGRESS_ACL, 65000)}
        for d in report["flows"]:
            assert d["cookie"] == hex(gone.cookie)
            assert d["owner"]["kind"] == "ACL_ENTRY" and d["owner"]["entityType"].endswith("aclentrytemplate")
            assert d["owner"]["ID"]

        before = ages(ovs.ofctl("dump-flows", "br-int"))
        fixed = vsplab_audit(lab.workdir, "--repair")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert f"repair: 2 flow-mods ({host} +1 ~0 -1)" in fixed.stdout, fixed.stdout
        assert "after repair: audit: no drift" in fixed.stdout
        after = ages(ovs.ofctl("dump-flows", "br-int"))
        assert gone_spec in after and not any("priority=65000" in k for k in after)
        # every other flow is the one that was there: not re-added (its age did not restart)
        kept = {k: a for k, a in before.items() if "priority=65000" not in k}
        assert set(kept) == set(after) - {gone_spec}
        assert all(after[k] >= a for k, a in kept.items())
        assert after[gone_spec] < min(after[k] for k in kept)
        print(fixed.stdout)
