"""The simulator's trace against `ovs-appctl ofproto/trace` on a real OVS holding the same flows
(loaded from our dump-flows text with ovs-ofctl): for each packet, the same tables visited in the
same order (recirculations included), the same flows matched, the same outputs, and for the ARP
responder the same rewritten packet.

Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import os
import re

import pytest

from openflow import text
from tests.test_simvrs_vs_ovs import RealOvs, pytestmark  # noqa: F401  (same markers: slow, root)
from vrs.sim import Container, Packet, SimFabric
from vrs.sim.host import SimVrs

FLOWS = """\
table=0,priority=100,ip,in_port=2,nw_src=10.0.0.2 actions=set_field:0x1->reg8,move:NXM_OF_IP_DST[]->NXM_NX_REG0[],write_metadata:0x1,goto_table:20
table=0,priority=100,arp,in_port=2 actions=goto_table:10
table=0,priority=50,tcp,in_port=3,tp_dst=0x1f90/0xfff0 actions=output:2
table=10,priority=100,arp,arp_tpa=10.0.0.1,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:fe:fe:fe:fe:fe->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:02:fe:fe:fe:fe:fe->arp_sha,move:NXM_OF_ARP_TPA[]->NXM_NX_REG10[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],move:NXM_NX_REG10[]->NXM_OF_ARP_SPA[],IN_PORT
table=20,priority=100,reg0=0xa000003,metadata=0x1 actions=set_field:0x3->reg1,goto_table:30
table=20,priority=100,reg0=0xa000010/0xfffffff0,metadata=0x1 actions=set_field:0x3->reg1,set_field:0x7->reg2,goto_table:30
table=20,priority=90,reg0=0xa000004,metadata=0x1 actions=set_field:0x1389->tun_id,set_field:192.168.0.9->tun_dst,output:1
table=20,priority=10,ip,metadata=0x1 actions=ct(table=35,zone=1)
table=30,priority=100,ip,reg1=0x3,reg2=0x7/0x7 actions=dec_ttl,output:3
table=30,priority=90,ip,reg1=0x3 actions=set_field:02:fe:fe:fe:fe:fe->eth_src,output:3
table=35,priority=10,ct_state=+new+trk,ip actions=ct(commit,zone=1),goto_table:36
table=36,priority=10,ct_state=-trk,ip actions=output:3
table=36,priority=10,ct_state=+trk,ip actions=output:2
"""

MAC2, BCAST = "02:00:00:00:00:02", "ff:ff:ff:ff:ff:ff"
# (ofproto/trace flow, the same packet for the simulator)
PACKETS = [
    ("tcp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.2,nw_dst=10.0.0.3,nw_ttl=64,"
     "tp_src=5,tp_dst=80", Packet("tcp", "10.0.0.3", 80, src_port=5, eth_dst="02:fe:fe:fe:fe:fe")),
    ("tcp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.2,nw_dst=10.0.0.77,nw_ttl=64,"
     "tp_src=5,tp_dst=80", Packet("tcp", "10.0.0.77", 80, src_port=5, eth_dst="02:fe:fe:fe:fe:fe")),
    ("udp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.2,nw_dst=10.0.0.4,nw_ttl=64,"
     "udp_src=5,udp_dst=53", Packet("udp", "10.0.0.4", 53, src_port=5, eth_dst="02:fe:fe:fe:fe:fe")),
    ("udp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.2,nw_dst=10.0.0.9,nw_ttl=64,"
     "udp_src=5,udp_dst=53", Packet("udp", "10.0.0.9", 53, src_port=5, eth_dst="02:fe:fe:fe:fe:fe")),
    ("udp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.2,nw_dst=10.0.0.20,nw_ttl=64,"
     "udp_src=5,udp_dst=53", Packet("udp", "10.0.0.20", 53, src_port=5, eth_dst="02:fe:fe:fe:fe:fe")),
    ("udp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.2,nw_dst=10.0.0.20,nw_ttl=1,"
     "udp_src=5,udp_dst=53", Packet("udp", "10.0.0.20", 53, src_port=5, eth_dst="02:fe:fe:fe:fe:fe", ttl=1)),
    ("tcp,in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:fe:fe:fe:fe:fe,nw_src=10.0.0.99,nw_dst=10.0.0.3,nw_ttl=64,"
     "tp_src=5,tp_dst=80", Packet("tcp", "10.0.0.3", 80, src_port=5, src_ip="10.0.0.99", eth_dst="02:fe:fe:fe:fe:fe")),
    (f"arp,in_port=2,dl_src={MAC2},dl_dst={BCAST},arp_op=1,arp_spa=10.0.0.2,arp_tpa=10.0.0.1,arp_sha={MAC2},"
     "arp_tha=00:00:00:00:00:00", Packet("arp", "10.0.0.1", eth_dst=BCAST)),
    (f"arp,in_port=2,dl_src={MAC2},dl_dst={BCAST},arp_op=1,arp_spa=10.0.0.2,arp_tpa=10.0.0.8,arp_sha={MAC2},"
     "arp_tha=00:00:00:00:00:00", Packet("arp", "10.0.0.8", eth_dst=BCAST)),
    ("tcp,in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.3,nw_dst=10.0.0.2,nw_ttl=64,"
     "tp_src=5,tp_dst=8095", Packet("tcp", "10.0.0.2", 8095, src_port=5, in_port=3, eth_src="02:00:00:00:00:03",
                                   eth_dst=MAC2, src_ip="10.0.0.3")),
    ("tcp,in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.3,nw_dst=10.0.0.2,nw_ttl=64,"
     "tp_src=5,tp_dst=8096", Packet("tcp", "10.0.0.2", 8096, src_port=5, in_port=3, eth_src="02:00:00:00:00:03",
                                   eth_dst=MAC2, src_ip="10.0.0.3")),
]

_STEP = re.compile(r"^\s*(\d+)\. (.*)$")
_OUT = re.compile(r"^\s+(output:\d+|IN_PORT)$")


def ovs_walk(trace: str) -> tuple[list[tuple[int, str | None]], list[str], str]:
    """(tables visited with the matched flow's match and priority, outputs, final flow line)."""
    steps, outs, final = [], [], ""
    for line in trace.splitlines():
        m = _STEP.match(line)
        if m:
            steps.append((int(m.group(1)), None if m.group(2) == "No match." else m.group(2)))
        elif _OUT.match(line):
            outs.append(line.strip())
        elif line.startswith("Final flow:") and "unchanged" not in line:
            final = line
    return steps, outs, final


def sim_walk(result) -> tuple[list[tuple[int, str | None]], list[str]]:
    steps, outs = [], []
    for s in result.steps:
        if s.flow is None:
            steps.append((s.table, None))
            continue
        steps.append((s.table, s.match))
        outs += [a.split("  ")[0] for a in s.actions if a.startswith("output:") or a.startswith("IN_PORT")]
    return steps, outs


@pytest.fixture(scope="module")
def ovs(tmp_path_factory):
    host = RealOvs(tmp_path_factory.mktemp("ovs"), str(os.getpid() % 10000 + 1))
    try:
        host.start(None, (2, 3))
        flows = tmp_path_factory.mktemp("flows") / "flows.txt"
        flows.write_text(FLOWS)
        host.ofctl("add-flows", "br-int", str(flows))
        yield host
    finally:
        host.stop()


@pytest.mark.parametrize("ovs_flow,packet", PACKETS, ids=[f"p{i}" for i in range(len(PACKETS))])
def test_trace_matches_ofproto_trace(ovs, ovs_flow, packet):
    fab = SimFabric()
    h = SimVrs("vl-trace", 1, "192.168.0.1", [Container("vl-c2", MAC2, "10.0.0.2", ofport=2),
                                               Container("vl-c3", "02:00:00:00:00:03", "10.0.0.3", ofport=3)],
               controller=None, agent=None)
    fab.add(h.switch)
    assert h.load_dump(FLOWS.replace("table=", " table=")) == len(FLOWS.splitlines())
    if packet.in_port is None:
        packet = packet.with_(host="vl-trace", in_port=2, eth_src=MAC2, src_ip=packet.src_ip or "10.0.0.2")
    else:
        packet = packet.with_(host="vl-trace")
    o_steps, o_outs, o_final = ovs_walk(ovs.trace(ovs_flow))
    r = fab.trace(packet)
    s_steps, s_outs = sim_walk(r)
    assert s_steps == o_steps, r.text()
    assert s_outs == o_outs, r.text()
    if packet.proto == "arp" and r.delivered:  # the responder rewrote the packet the same way
        p = r.delivered[0].packet
        for k, v in (("dl_src", text.mac_str(p["eth_src"])), ("dl_dst", text.mac_str(p["eth_dst"])),
                     ("arp_op", str(p["arp_op"])), ("arp_spa", text.ip_str(p["arp_spa"])),
                     ("arp_tpa", text.ip_str(p["arp_tpa"])), ("arp_sha", text.mac_str(p["arp_sha"])),
                     ("arp_tha", text.mac_str(p["arp_tha"]))):
            assert f",{k}={v}" in o_final, (k, v, o_final)
