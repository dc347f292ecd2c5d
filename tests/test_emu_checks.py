"""Concurrent emu checks (vsplab/emu/volley.py, vsplab/emu/check.py) on real Open vSwitch: the same
verdicts and details as probing one at a time, denials confirmed by the drop flows' packet counters,
and denials the counters do not account for decided again the old way.

The lab test needs root and Open vSwitch (scripts/system-deps); the dump parsing runs anywhere."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from vsplab.emu.check import check_expectations
from vsplab.emu.drops import drop_count, dropped_by_flows
from vsplab.emu.lab import EmuLab
from vsplab.scenario.check import load_scenario

ROOT = Path(__file__).resolve().parents[1]
needs_ovs = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                               reason="needs root and Open vSwitch (scripts/system-deps)")

DUMP = """\
 cookie=0x7000000000001, duration=3.1s, table=45, n_packets=7, n_bytes=518, priority=10,metadata=0x1 actions=drop
 cookie=0x6000000000002, duration=3.1s, table=45, n_packets=40, n_bytes=2960, priority=37999,tcp actions=ct(commit,table=48,zone=1)
 cookie=0x2000000000001, duration=3.1s, table=35, n_packets=2, n_bytes=148, priority=1,ct_state=+inv+trk actions=drop
"""


def test_drop_flows_are_the_flows_that_drop():
    assert dropped_by_flows(DUMP) == 9


@pytest.mark.slow
@pytest.mark.root
@needs_ovs
def test_concurrent_checks_agree_with_sequential_ones_and_denials_are_drops():
    scenario = load_scenario(str(ROOT / "scenarios" / "three-tier.yaml"))
    assert {x.expect for x in scenario.expect} == {"allow", "deny"}
    with EmuLab(scenario, console=Console(file=io.StringIO())) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=120)

        def drops() -> int:
            return drop_count((h.ovs, "br-int") for h in lab.hosts.values())

        old = check_expectations(lab.listeners, scenario, lab.placed, probing="sequential")
        notes: dict[str, str] = {}
        new = check_expectations(lab.listeners, scenario, lab.placed, drops=drops, notes=notes)
        assert all(r.passed for r in old), [r for r in old if not r.passed]
        assert [(r.label, r.observed, r.detail) for r in new] == [(r.label, r.observed, r.detail) for r in old]
        denied = sum(r.observed == "deny" for r in new)
        assert notes["denials"].startswith(f"{denied} denied probes each unanswered twice"), notes

        # a datapath that counted no drop does not back the silence: the denials are decided one at a time
        notes = {}
        doubted = check_expectations(lab.listeners, scenario, lab.placed, drops=lambda: 0, notes=notes)
        assert "probed again one at a time" in notes["denials"]
        assert [(r.label, r.observed) for r in doubted] == [(r.label, r.observed) for r in old]
