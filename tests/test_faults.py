"""Fault steps in scenario files, without a lab: each mistake named by its line, faults a mode cannot
perform refused at load time (or, asked for, left out with a warning naming the line), the simulated
underlay dropping what crosses a link that is down or lossy, and the timeline's JSON and JUnit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.scenario_support import assert_edit_is_refused
from vrs.sim.fabric import SimFabric
from vsplab.faults.timeline import StepRecord, Timeline
from vsplab.report import ExpectationResult, LabReport
from vsplab.scenario.check import load_scenario
from vsplab.scenario.loader import ScenarioError

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

BASE = """\
name: t
controllers: [{name: vsc1}]
hosts:
  - {name: h1}
  - {name: h2}
enterprises:
  - name: e
    domains:
      - name: d
        zones:
          - name: z
            subnets: [{name: s1, address: 10.1.0.0/24}]
        policy_groups: [g1, g2]
        ingress:
          rules:
            - {from: g1, to: g2, protocol: tcp, port: 80}
containers:
  - {name: c1, host: h1, subnet: s1, groups: [g1]}
  - {name: c2, host: h2, subnet: s1, groups: [g2]}
expect:
  - {from: c1, to: c2, protocol: tcp, port: 80, expect: allow}
probes:
  - {from: c1, to: c2, protocol: tcp, port: 80}
faults:
  - kill: vsc vsc1
  - start: vsc vsc1
  - link-down: h2
    expect: none
  - link-up: h2
  - delete-acl: {domain: d, direction: ingress, rule: 0}
    now-denied: [0]
"""

BAD = [
    ("kill: vsc vsc1", "kill: vsc vsc9", 25, "unknown controller 'vsc9'"),
    ("kill: vsc vsc1", "kill: httpd h1", 25, "expected vsd, or vsc NAME"),
    ("kill: vsc vsc1", "kill: vrs h7", 25, "unknown host 'h7'"),
    ("link-down: h2", "link-down: h3", 27, "unknown host 'h3'"),
    ("  - link-up: h2", "  - link-up: h2\n    netem: h2", 29, "exactly one action"),
    ("  - link-up: h2", "  - netem: h2", 29, "netem needs loss"),
    ("  - link-up: h2", "  - link-up: h2\n    loss: 5", 29, "loss and delay_ms go with netem only"),
    ("rule: 0}", "rule: 3}", 30, "has 1 rules"),
    ("domain: d,", "domain: x,", 30, "domain 'x' is unknown"),
    ("now-denied: [0]", "now-denied: [4]", 31, "no allow expectation"),
    ("  - link-up: h2", "  - link-up: h2\n    expect: [2]", 30, "no expectation 2"),
    ("  - link-up: h2", "  - stop-bgp: vsc1", 29, "no bgp: section"),
    ("  - link-up: h2", "  - move: {container: c9, to: h1}", 29, "unknown container 'c9'"),
    ("{from: c1, to: c2, protocol: tcp, port: 80}\nfaults", "{from: c1, to: c3, protocol: tcp, port: 80}\nfaults",
     23, "unknown container 'c3'"),
    ("{from: c1, to: c2, protocol: tcp, port: 80}\nfaults", "{from: c1, to: c2, protocol: tcp}\nfaults",
     23, "tcp needs a port"),
    ("  - link-up: h2", "  - link-up: h2\n    at: -1", 30, "greater than or equal to 0"),
]


@pytest.mark.parametrize("old,new,line,words", BAD, ids=[b[3] for b in BAD])
def test_bad_fault_steps_name_line_and_field(tmp_path, old, new, line, words):
    assert_edit_is_refused(tmp_path, BASE, old, new, line, words)


def test_good_steps_load_with_their_lines(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text(BASE)
    s = load_scenario(f, mode="sim")
    assert [(x.action, x.line) for x in s.faults] == [("kill", 25), ("start", 26), ("link-down", 27),
                                                      ("link-up", 29), ("delete-acl", 30)]
    assert s.faults[0].process() == ("vsc", "vsc1") and s.faults[4].now_denied == [0]
    assert load_scenario(f, mode="emu").faults


def refusal(path: Path, mode: str) -> str:
    with pytest.raises(ScenarioError) as e:
        load_scenario(path, mode=mode)
    return str(e.value)


def test_a_mode_refuses_what_it_cannot_do_naming_the_line(tmp_path):
    f = tmp_path / "f.yaml"
    f.write_text(BASE.replace("  - link-up: h2", "  - restart: ovs-vswitchd h1\n  - kill: vrs h1\n"
                              "  - link-up: h2"))
    text = refusal(f, "sim")
    assert f"{f}:29: faults[3].restart: sim mode cannot restart ovs-vswitchd" in text, text
    assert f"{f}:30: faults[4].kill: sim mode cannot kill vrs" in text, text
    assert "faults[0]" not in text  # killing the VSC is fine: it is a real process in sim mode too
    mininet = refusal(f, "mininet")
    assert f"{f}:25: faults[0].kill: mininet mode runs no faults" in mininet
    assert f"{f}:23: probes[0].protocol" in mininet
    emu_icmp = tmp_path / "icmp.yaml"
    emu_icmp.write_text(BASE.replace("{from: c1, to: c2, protocol: tcp, port: 80}\nfaults",
                                     "{from: c1, to: c2, protocol: icmp}\nfaults"))
    assert f"{emu_icmp}:23: probes[0].protocol: emu mode probes continuously with tcp" in refusal(emu_icmp, "emu")
    s = load_scenario(f, mode="sim", skip_impossible_faults=True)  # asked for: left out, out loud
    assert [x.action for x in s.faults] == ["kill", "start", "link-down", "link-up", "delete-acl"]
    assert any(f"{f}:29: faults[3].restart: left out" in w for w in s.warnings), s.warnings


def test_shipped_fault_scenarios():
    s = load_scenario(SCENARIOS / "faults.yaml", mode="emu")
    wanted = {"kill", "start", "restart", "link-down", "link-up", "tamper-flow", "delete-acl"}
    assert wanted <= {x.action for x in s.faults}
    assert "restart" in refusal(SCENARIOS / "faults.yaml", "sim")  # ovs-vswitchd: no such process in sim
    bgp = load_scenario(SCENARIOS / "faults-bgp.yaml", mode="sim")
    assert [x.action for x in bgp.faults] == ["stop-bgp", "cut-bgp"]


def test_simulated_underlay_drops_on_a_down_or_lossy_link():
    from vrs.sim.host import Container, SimVrs

    fabric = SimFabric()
    for i, name in enumerate(("h1", "h2"), 1):
        vrs = SimVrs(name, i, f"172.30.0.{i}", [Container(name=f"c{i}", mac=f"02:00:00:00:00:0{i}",
                                                          ip=f"10.1.0.{10 + i}", vport_id=f"v{i}")], None, None)
        fabric.add(vrs.switch)
    with pytest.raises(KeyError):
        fabric.link("h9")
    fabric.link("h2").delay_ms = 40
    assert fabric.path_delay_ms("h1", "h2") == 40 and fabric.path_delay_ms("h2", "h2") == 0
    from vrs.sim.fabric import TraceResult
    from vrs.sim.pipeline import Emit

    def tunnel_out(src: str) -> tuple[object, TraceResult]:
        sw = fabric.switches[src]
        other = next(s for s in fabric.switches.values() if s is not sw)
        res = TraceResult()
        emit = Emit(sw, sw.tunnel_ofport, {"tun_ipv4_dst": other.vtep_ip, "tun_id": 5})
        return fabric._decap(emit, 0, res), res

    nxt, res = tunnel_out("h1")
    assert nxt is not None and res.tunnels == ["h1 -> h2 (vni 5)"]
    fabric.link("h2").up = False
    nxt, res = tunnel_out("h1")
    assert nxt is None and "the underlay link of h2 is down" in res.drops[0]
    fabric.link("h2").up = True
    fabric.link("h1").loss = 100
    nxt, res = tunnel_out("h2")
    assert nxt is None and "lost on the underlay link of h1 (100% loss)" in res.drops[0]


def test_timeline_in_json_and_junit(tmp_path):
    ok = ExpectationResult("a", "b", "tcp", 80, "allow", "allow")
    bad = ExpectationResult("a", "b", "tcp", 22, "deny", "allow", "delivered")
    tl = Timeline("t", "sim", steps=[
        StepRecord(0, "kill vsc vsc1", 24, injected=0.0, detected=0.1, detected_by="VSC vsc1 stopped answering",
                   recovered=0.2, probes_sent=10, probes_lost=2, flow_mods=0, results=[ok]),
        StepRecord(1, "link-down h2", 26, injected=0.3, results=[bad]),
    ], final=[ok])
    report = LabReport("t", "sim", results=[ok], timeline=tl)
    assert not report.ok  # a failed step fails the run
    data = report.to_json()["faults"]
    assert data["steps"][0]["detected_by"] == "VSC vsc1 stopped answering" and data["steps"][0]["ok"]
    assert data["steps"][1]["expectations"][0]["passed"] is False and not data["ok"]
    report.write_junit(tmp_path / "r.xml")
    suite = ET.parse(tmp_path / "r.xml").getroot()
    names = [c.get("name") for c in suite.iter("testcase")]
    assert "step 0: kill vsc vsc1" in names and "step 1: link-down h2: a -> b tcp/22 expect deny" in names
    assert suite.get("tests") == "5" and suite.get("failures") == "1"


def test_vsplab_check_with_a_mode_refuses_its_impossible_faults():
    def check(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vsplab.cli", "check", "scenarios/faults.yaml", "--mode", mode],
                              cwd=SCENARIOS.parent, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "300"})

    sim = check("sim")
    assert sim.returncode == 2 and "faults[3].restart: sim mode cannot restart ovs-vswitchd" in sim.stdout, sim.stdout
    assert check("emu").returncode == 0
