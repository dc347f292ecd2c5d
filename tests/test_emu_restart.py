"""Restarting `vrs` and then `ovs-vswitchd` on one emulated host of scenarios/three-tier.yaml while a
container on that host keeps opening TCP connections to one on another host (one every 20 ms):

- the agent restart touches no flow (same flows, none re-added: durations keep counting) and the
  probe keeps passing;
- the switch restart loses every flow; the VSC reprograms the same flows when the switch reconnects,
  the probe passes again, and every expectation of the scenario holds again.

How long traffic was interrupted is printed, not asserted (no timed tests).
Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from vsplab.emu.check import container_netns
from vsplab.emu.disruption import ContinuousProbe, flow_durations, normalized_flows
from vsplab.emu.lab import EmuLab
from vsplab.scenario.check import load_scenario

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]

THREE_TIER = Path(__file__).resolve().parents[1] / "scenarios" / "three-tier.yaml"


def wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if v := cond():
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def agent_connects(lab: EmuLab, host: str) -> int:
    """How many times the host's agents (this one and those before it) connected to the VSC."""
    return lab.hosts[host].agent_output().count("agent channel connected")


def failures(report) -> str:
    return "\n".join(f"{r.label}: expected {r.expected}, observed {r.observed} {r.detail}" for r in report.failures)


def test_restart_vrs_then_vswitchd_under_traffic():
    scenario = load_scenario(str(THREE_TIER))
    out = io.StringIO()
    figures = {}
    with EmuLab(scenario, console=Console(file=out, width=200)) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=60)
        assert lab.check().ok
        src, dst = lab.placed["web1"], lab.placed["app1"]  # web -> app tcp/8080 is allowed
        host = src.host
        assert host != dst.host  # the probe crosses the tunnel out of the restarted host
        lab.listeners.tcp_on(container_netns(dst.name), dst.ip, 8080)
        vsc = lab.vsc_of(host)
        dpid = str(lab.hosts[host].datapath_id)
        local = sum(1 for p in lab.placed.values() if p.host == host)
        flows_before = lab.host_flows(host)
        assert normalized_flows(flows_before)

        probe = ContinuousProbe(container_netns(src.name), dst.ip, 8080, container_netns(dst.name),
                                timeout=0.1).start()  # a connect here takes ~2 ms: 0.1 s is a loss
        try:
            probe.wait_passing(0, count=10)

            # 1. the agent restarts: it replays its ports, the VSC finds the flows already right
            time.sleep(1.1)  # a flow re-added now would show a duration at least a second shorter
            mark = probe.mark()
            t0 = time.monotonic()
            connects = agent_connects(lab, host)
            old_agent = lab.hosts[host].agent.pid
            lab.restart_agent(host)
            assert lab.hosts[host].agent.pid != old_agent
            wait_for(lambda: agent_connects(lab, host) > connects, 20, "the restarted agent to reach the VSC")
            wait_for(lambda: vsc.status()["datapaths"][dpid]["ports"] == local, 20, "the replayed ports")
            figures["vrs restart: agent back and replayed"] = f"{time.monotonic() - t0:.2f}s"
            time.sleep(1.0)  # room for any flow-mod the replay would cause, before the flows are compared
            vsc.wait_converged(timeout=30, datapaths=len(scenario.hosts), endpoints=len(scenario.containers))
            flows_after_agent = lab.host_flows(host)
            assert normalized_flows(flows_after_agent) == normalized_flows(flows_before)
            before_d, after_d = flow_durations(flows_before), flow_durations(flows_after_agent)
            churned = [f for f in before_d if after_d[f] < before_d[f] + 1.0]
            assert not churned, f"flows re-added by the agent restart: {churned}"
            probe.wait_passing(mark, count=10)
            gap = probe.outage(mark)
            figures["vrs restart: traffic interrupted"] = (
                "not at all" if gap is None else f"{gap.seconds * 1000:.0f} ms ({gap.lost} connects lost)")
            figures["vrs restart: probe"] = probe.summary(mark)

            # 2. ovs-vswitchd restarts: every flow goes; the VSC puts the same ones back on reconnect
            mark = probe.mark()
            old_pid = lab.hosts[host].ovs.pid("ovs-vswitchd")
            t0 = time.monotonic()
            lab.restart_vswitchd(host)
            assert lab.hosts[host].ovs.pid("ovs-vswitchd") != old_pid
            wait_for(lambda: lab.hosts[host].flow_count() == vsc.status()["datapaths"][dpid]["flows_desired"], 30,
                     "the VSC to reprogram the restarted switch")
            vsc.wait_converged(timeout=30, datapaths=len(scenario.hosts), endpoints=len(scenario.containers))
            figures["vswitchd restart: flows back"] = f"{time.monotonic() - t0:.2f}s after the kill"
            probe.wait_passing(mark, count=10)
            flows_after_ovs = lab.host_flows(host)
            assert normalized_flows(flows_after_ovs) == normalized_flows(flows_before)
            assert max(flow_durations(flows_after_ovs).values()) <= time.monotonic() - t0 + 0.5  # all reinstalled
            gap = probe.outage(mark)
            assert gap is not None  # the switch really was gone for a while
            figures["vswitchd restart: traffic interrupted"] = (
                f"{gap.seconds * 1000:.0f} ms ({gap.lost} connects lost)")
            figures["vswitchd restart: probe"] = probe.summary(mark)
        finally:
            probe.stop()

        # every expectation holds again, on the restarted host and across it
        report = lab.check()
        assert report.ok, failures(report)
        assert all(h.agent_alive() for h in lab.hosts.values())
        print(out.getvalue())
    for k, v in figures.items():
        print(f"{k}: {v}")
