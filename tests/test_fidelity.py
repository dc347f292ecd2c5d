"""`vsplab fidelity`: the simulator, loaded with the flows real OVS holds in an emu lab, must trace
every packet as ofproto/trace does and give the verdict real packets give - and the check must be
able to fail (a flow changed in the simulated copy only is reported).

The emu tests need root and Open vSwitch (scripts/system-deps); each runs one emulated lab."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from vsplab import cli
from vsplab.fidelity.ofptrace import parse_trace
from vsplab.fidelity.run import run_fidelity


def emu(test):
    """One emulated lab per test: slow, root, Open vSwitch."""
    for mark in (pytest.mark.slow, pytest.mark.root,
                 pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                                    reason="needs root and Open vSwitch (scripts/system-deps)")):
        test = mark(test)
    return test


SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SUMMARY = re.compile(r"^agreement: ([\d.]+)% \((\d+) packets\)$", re.M)


@emu
def test_fidelity_three_tier_cli(tmp_path, capsys):
    out = tmp_path / "fidelity.json"
    rc = cli.main(["fidelity", str(SCENARIOS / "three-tier.yaml"), "--seed", "7", "--samples", "12",
                   "--json", str(out)])
    printed = capsys.readouterr().out
    m = SUMMARY.search(printed)
    assert m, printed
    assert (m.group(1), m.group(2)) == ("100", "23"), printed  # 11 expectations + 12 sampled
    assert rc == 0 and "DISAGREE" not in printed
    assert "seed 7" in printed
    data = json.loads(out.read_text())
    assert data["packets"] == 23 and data["agreed"] == 23
    # the expectations held on all three sides, and the sample is not all one verdict
    for c in data["cases"]:
        if c["origin"] == "expect":
            assert c["sim"] == c["ovs"] == c["real"] == c["expect"], c
    assert {c["real"] for c in data["cases"]} == {"allow", "deny"}
    # an allowed TCP case crossed hosts: both traces followed the tunnel and the stateful reply
    web_app = next(c for c in data["cases"] if (c["src"], c["dst"], c["port"]) == ("web1", "app1", 8080))
    reply = next(p for p in web_app["packets"] if p["packet"] == "reply")
    assert set(reply["ovs_path"]) == {"host1", "host2"} and reply["ovs_path"] == reply["sim_path"]


@emu
def test_fidelity_multi_tenant():
    buf = io.StringIO()
    report = run_fidelity(str(SCENARIOS / "multi-tenant.yaml"), samples=12, seed=11,
                          console=Console(file=buf, width=200))
    printed = buf.getvalue()
    assert SUMMARY.search(printed).groups() == ("100", "19"), printed
    assert report.ok and report.agreed == 19


def _drop_web_to_app_ingress(host: str, dump: str) -> str:
    """The twin of host1 loses the ingress ACL flow allowing tcp/8080 (web -> app); real OVS keeps it."""
    if host != "host1":
        return dump
    lines = dump.splitlines(keepends=True)
    kept = [line for line in lines if not ("table=45" in line and "tp_dst=8080" in line)]
    assert len(kept) == len(lines) - 1, "expected exactly one web -> app ingress flow on host1"
    return "".join(kept)


@emu
def test_fidelity_reports_a_tampered_flow():
    buf = io.StringIO()
    report = run_fidelity(str(SCENARIOS / "three-tier.yaml"), samples=0, seed=1,
                          tamper=_drop_web_to_app_ingress, console=Console(file=buf, width=200))
    printed = buf.getvalue()
    assert not report.ok
    # web1 (host1) -> app1/app2 on 8080 are the cases that need the removed flow; nothing else
    bad = {r.case.label for r in report.results if not r.agrees}
    assert bad == {"web1 -> app1 tcp/8080", "web1 -> app2 tcp/8080"}, printed
    assert "DISAGREE web1 -> app1 tcp/8080" in printed
    assert "verdicts: sim deny, ofproto/trace allow, real packets allow" in printed
    m = SUMMARY.search(printed)
    assert m and m.group(2) == "11" and float(m.group(1)) < 100, printed


# the last pass of a cross-host request on host1, as OVS 3.1 printed it (abridged Flow lines)
RECIRC_PASS = """\
Flow: recirc_id=0x1,ct_state=new|trk,ct_zone=1,eth,tcp,in_port=2,dl_src=02:00:00:00:00:01
bridge("br-int")
----------------
    thaw
        Resuming from table 40
40. priority 0, cookie 0x100000000000000
    goto_table:45
45. tcp,reg2=0x1/0x1,reg4=0x2/0x2,metadata=0x1,tp_dst=8080, priority 37999, cookie 0x6812c0476480f59
    ct(commit,table=48,zone=1)
    drop
Final flow: recirc_id=0x1,eth,tcp,reg0=0xa02000b,metadata=0x1,in_port=2,dl_src=02:00:00:00:00:01
Datapath actions: ct(commit,zone=1),recirc(0x2)
===============================================================================
recirc(0x2) - resume conntrack with default ct_state=trk|new (use --ct-next to customize)
===============================================================================
bridge("br-int")
----------------
    thaw
        Resuming from table 48
48. reg1=0,reg9=0x1, priority 200, cookie 0x100000000000000
    set_field:0x1000->tun_id
    set_field:172.30.0.2->tun_dst
    output:1
     >> Not tunneling to our own address
60. reg1=0x2, priority 100, cookie 0x41aa765a95ae2b6
    output:2
     >> skipping output to input port
Final flow: recirc_id=0x2,eth,tcp,tun_id=0x1000,dl_src=02:00:00:00:00:01,dl_dst=02:76:73:70:00:01,nw_ttl=64
Datapath actions: drop
"""


def test_parse_trace_reads_recirculations_tunnels_and_refusals():
    hp = parse_trace("host1", RECIRC_PASS)
    assert [t for t, _ in hp.steps] == [40, 45, 48, 60]
    assert hp.steps[0] == (40, "priority 0, cookie 0x100000000000000")
    assert hp.committed and hp.tun_id == 0x1000 and hp.tun_dst == "172.30.0.2"
    # the tunnel output stands (a trace artifact, recorded); the in_port one is dropped as OVS does
    assert hp.outputs == [1] and len(hp.artifacts) == 1 and not hp.warnings
    assert hp.final["dl_dst"] == "02:76:73:70:00:01" and "tcp" in hp.final
