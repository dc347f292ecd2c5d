"""Emulation mode at a bigger size: 4 emulated hosts (each a namespace with its own OVS and `vrs`),
40 containers in three tiers, every expectation checked with real packets. The scenario is generated
(vsplab/emu/scale.py) and shipped as scenarios/emu-scale.yaml; the test checks the two agree.

Needs root and Open vSwitch (scripts/system-deps). Figures (phase times, flows) are printed, not asserted."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from vsplab.emu.lab import EmuLab
from vsplab.emu.scale import scale_scenario
from vsplab.scenario.check import load_scenario

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]

SCALE = Path(__file__).resolve().parents[1] / "scenarios" / "emu-scale.yaml"


def test_shipped_scale_scenario_is_the_generated_one():
    assert yaml.safe_load(SCALE.read_text()) == scale_scenario(4, 40)


def test_four_hosts_forty_containers_with_real_packets():
    scenario = load_scenario(str(SCALE))
    hosts = {c.name: c.host for c in scenario.containers}
    assert len(scenario.hosts) >= 4 and len(scenario.containers) >= 40
    # what the expectations cover, so a regression in the generator cannot thin the test out
    probed = {x.from_ for x in scenario.expect} | {x.to for x in scenario.expect}
    assert probed == set(hosts)
    kinds = {(x.expect, hosts[x.from_] == hosts[x.to]) for x in scenario.expect}
    assert kinds == {("allow", True), ("allow", False), ("deny", True), ("deny", False)}
    assert {x.protocol for x in scenario.expect} == {"tcp", "icmp", "udp"}

    out = io.StringIO()
    t0 = time.perf_counter()
    with EmuLab(scenario, console=Console(file=out, width=200)) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=120)
        report = lab.check()
        report.print(Console(file=out, width=200))
        assert len(report.results) == len(scenario.expect)
        assert report.ok, "\n".join(f"{r.label}: expected {r.expected}, observed {r.observed} {r.detail}"
                                    for r in report.failures)
        for vsc in lab.vscs.values():  # OVS holds exactly what the VSC wanted on every host
            st = vsc.status()
            assert len(st["datapaths"]) == len(scenario.hosts)
            for dp in st["datapaths"].values():
                assert report.flows_per_host[dp["name"]] == dp["flows_desired"] > 0
                assert dp["ports"] == sum(1 for h in hosts.values() if h == dp["name"])
        for r in report.results:  # denials are drops (the SYN times out), not refusals
            if r.expected == "deny" and r.protocol == "tcp":
                assert "no answer" in r.detail, r
        workdir = lab.workdir
        print(out.getvalue())
        print(f"{len(scenario.hosts)} hosts, {len(scenario.containers)} containers, {len(report.results)} "
              f"expectations; phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))
        print(f"flows per host: {report.flows_per_host}; figures: {lab.figures}")
    print(f"whole lab including teardown: {time.perf_counter() - t0:.1f}s")
    assert not workdir.exists()
