"""Open vSwitch as the second oracle: `ovs-ofctl ofp-print` must read our bytes as the flow we meant,
and our dump-flows text must be what ovs-ofctl prints for it (and parse back in ovs-ofctl)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from openflow import encode, switchmsg, text, textparse
from openflow.consts import OFPBFC_BAD_ID, OFPET_BAD_MATCH, OFPFC_DELETE
from openflow.flow import OFPP_IN_PORT, Ct, DecTtl, Flow, FlowStats, Move, Output, SetField, match

pytestmark = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl (scripts/system-deps)")

MAC_A = 0x02_00_00_00_00_0A
ARP_RESPONDER = Flow(
    table=10,
    priority=100,
    match=match(eth_type=0x0806, arp_op=1, arp_tpa=0x0A000005, reg6=3),
    actions=(
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", MAC_A),
        SetField("arp_op", 2),
        Move("arp_sha", "arp_tha", 48),
        SetField("arp_sha", MAC_A),
        Move("arp_spa", "arp_tpa", 32),
        SetField("arp_spa", 0x0A000005),
        Output(OFPP_IN_PORT),
    ),
    cookie=0x1234,
)
FLOWS = [
    ARP_RESPONDER,
    Flow(table=20, priority=100, match=match(reg6=7, eth_type=0x0800, ipv4_dst=0x0A000001),
         actions=(SetField("tun_id", 5), SetField("tun_ipv4_dst", 0xC0A80102), Output(9))),
    Flow(table=0, priority=50, match=match(in_port=9, tun_id=5, tun_ipv4_src=0xC0A80101),
         write_metadata=(5, 0xFFFFFFFF), goto=10, cookie=7),
    Flow(table=30, priority=2000,
         match=match(eth_type=0x0800, ip_proto=6, ct_state=(0x22, 0x26), ipv4_src=(0x0A010000, 0xFFFF0000),
                     tcp_dst=(0x1F90, 0xFFF0), reg5=(4, 0xFF)),
         actions=(Ct(commit=True, zone=3),), goto=40),
    Flow(table=30, priority=10, match=match(eth_type=0x0800, ip_proto=17, udp_src=53, ct_zone=3),
         actions=(Ct(zone=3, table=31),)),
    Flow(table=31, priority=10, match=match(eth_type=0x0800, ip_proto=1, icmpv4_type=8, icmpv4_code=0,
                                            metadata=(1, 0xFF)),
         actions=(DecTtl(), Move("reg0", "reg1", 16, 0, 16), Output(2))),
    Flow(table=5, priority=1, match=match(eth_dst=(0x010000000000, 0x010000000000), eth_type=0x88CC,
                                          ct_mark=(1, 1)), idle_timeout=30, hard_timeout=60),
    Flow(table=0, priority=0),
]


def ofp_print(msg: bytes) -> str:
    out = subprocess.run(["ovs-ofctl", "ofp-print", msg.hex()], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def ovs_parse(flow_text: str) -> str:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-flow", flow_text], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f"t{f.table}p{f.priority}")
def test_ovs_reads_our_flow_mod_as_our_text_says(flow):
    printed = ofp_print(encode.flow_mod(flow, xid=1))
    # ofp-print of our bytes == ovs-ofctl's own encoding of our dump-flows text.
    ours = text.format_flow(flow, show_stats=False)
    assert printed == ovs_parse(ours)
    # And ovs-ofctl prints the match and actions exactly as our text module does.
    expect_match = text.format_match(flow.priority, flow.match)
    assert (expect_match + " ") in printed or printed.endswith(f"ADD {expect_match}") or expect_match == ""
    assert printed.split("actions=")[1] == text.format_actions(flow)


def test_ovs_reads_stats_reply_errors_and_bundles():
    entry = switchmsg.flow_stats_entry(FLOWS[1], 5, 250_000_000, 3, 180)
    (reply,) = switchmsg.flow_stats_replies(4, [entry])
    printed = ofp_print(reply)
    assert "OFPST_FLOW reply (OF1.3) (xid=0x4)" in printed
    stats = FlowStats(FLOWS[1], 5, 250_000_000, 3, 180)
    assert printed.splitlines()[1] == " " + text.format_flow(FLOWS[1], stats)
    bad = encode.flow_mod(FLOWS[0], xid=9)
    assert "OFPBMC_BAD_PREREQ" in ofp_print(switchmsg.error(9, OFPET_BAD_MATCH, 9, bad))
    assert "OFPBFC_BAD_ID" in ofp_print(switchmsg.error(9, 0, OFPBFC_BAD_ID, bad))
    delete = ofp_print(encode.flow_mod(Flow(table=255, priority=0, cookie=0x12), OFPFC_DELETE, cookie_mask=0xFF))
    assert "DEL table:255" in delete and "cookie:0x12/0xff" in delete
    port = switchmsg.PortDesc(3, "vl-c1", 0x020000000003)
    assert "3(vl-c1): addr:02:00:00:00:00:03" in ofp_print(switchmsg.port_status(0, port))
    assert "dpid:0000000000000abc" in ofp_print(switchmsg.features_reply(1, 0xABC))


def test_ovs_dump_text_parses_back_to_the_flows():
    """ofp-print of a flow-stats reply is exactly what `ovs-ofctl dump-flows` prints (same formatter
    in OVS): parsing those lines gives back the flows, as does parsing our own text."""
    entries = [switchmsg.flow_stats_entry(f, 1, 0, 2, 3) for f in FLOWS]
    printed = "\n".join(ofp_print(m) for m in switchmsg.flow_stats_replies(1, entries))
    assert textparse.parse_dump(printed) == [f.canonical() for f in FLOWS]
    for f in FLOWS:
        assert textparse.parse_flow(text.format_flow(f)) == f.canonical()


def test_add_flow_syntax_parses():
    f = textparse.parse_flow("table=20,priority=100,tcp,reg6=7,nw_dst=10.0.0.0/24,tp_dst=0x50/0xfff0,"
                             "ct_state=+trk-est,actions=ct(commit,zone=3,table=30),set_field:5->tun_id,"
                             "move:NXM_NX_REG0[0..15]->NXM_NX_REG1[16..31],output:3,goto_table:40")
    assert f == Flow(20, 100, match(eth_type=0x0800, ip_proto=6, reg6=7, ipv4_dst=(0x0A000000, 0xFFFFFF00),
                                    tcp_dst=(0x50, 0xFFF0), ct_state=(0x20, 0x22)),
                     actions=(Ct(True, 3, 30), SetField("tun_id", 5), Move("reg0", "reg1", 16, 0, 16), Output(3)),
                     goto=40).canonical()
    with pytest.raises(ValueError, match="resubmit"):
        textparse.parse_flow("priority=1 actions=resubmit(,3)")


@pytest.mark.parametrize("nsec,flags", [(0, 0), (500, 1), (1_000_000, 4), (999_999_999, 5), (250_000_000, 0)])
def test_dump_line_durations_and_flags_match_ovs(nsec, flags):
    flow = Flow(1, 5, match(reg0=1), actions=(Output(2),), idle_timeout=5, hard_timeout=9, cookie=3)
    (reply,) = switchmsg.flow_stats_replies(1, [switchmsg.flow_stats_entry(flow, 7, nsec, 1, 2, flags)])
    stats = FlowStats(flow, 7, nsec, 1, 2, {"flags": flags})
    assert ofp_print(reply).splitlines()[1] == " " + text.format_flow(flow, stats)
    assert textparse.parse_flow(text.format_flow(flow, stats)) == flow.canonical()
