"""OpenFlow semantics of the simulated switch, driven with real wire messages (our encoder)."""

from __future__ import annotations

import pytest

from openflow import decode, encode
from openflow.consts import (
    OFPBCT_COMMIT_REPLY,
    OFPBCT_OPEN_REPLY,
    OFPFC_DELETE,
    OFPFC_MODIFY,
    OFPFF_CHECK_OVERLAP,
    OFPFF_RESET_COUNTS,
    OFPT_BARRIER_REPLY,
    OFPT_ERROR,
    OFPTT_ALL,
)
from openflow.flow import (
    CT_EST,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    OFPP_IN_PORT,
    Ct,
    Flow,
    Move,
    Output,
    SetField,
    match,
)
from vrs.sim.fabric import SimFabric
from vrs.sim.packet import Packet
from vrs.sim.switch import Port, SimSwitch

IP_A, IP_B, IP_C = 0x0A000001, 0x0A000002, 0x0A000003
MAC_A, MAC_B, MAC_C = 0x02000000000A, 0x02000000000B, 0x02000000000C
VTEP1, VTEP2 = 0xC0A80001, 0xC0A80002


def host(name: str, dpid: int, vtep: int, *containers: tuple[str, int, int, int]) -> SimSwitch:
    sw = SimSwitch(name, dpid, vtep)
    for cname, ofport, mac, ip in containers:
        sw.ports[ofport] = Port(ofport, cname, mac, ip)
    return sw


def send(sw: SimSwitch, *flows: Flow, **kw) -> list[bytes]:
    out = []
    for i, f in enumerate(flows):
        out += sw.handle(encode.flow_mod(f, xid=i + 1, **kw))
    return out


@pytest.fixture
def one():
    fab = SimFabric()
    sw = fab.add(host("vl-h1", 1, VTEP1, ("vl-a", 2, MAC_A, IP_A), ("vl-b", 3, MAC_B, IP_B), ("vl-c", 4, MAC_C, IP_C)))
    return fab, sw


def tcp(src: str, dst_ip: int, port: int = 80, flags: str | None = None) -> Packet:
    return Packet("tcp", dst_ip, port, source=src, tcp_flags=flags)


def test_priority_masks_goto_metadata_and_registers(one):
    fab, sw = one
    assert send(
        sw,
        Flow(0, 100, match(in_port=2), actions=(SetField("reg6", 7),), write_metadata=(5, 0xFF), goto=10),
        Flow(10, 10, match(metadata=(5, 0xFF), eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFFFFFF00)),
             actions=(Output(4),)),
        Flow(10, 20, match(reg6=7, eth_type=0x0800, ipv4_dst=IP_B), actions=(Output(3),)),
        Flow(10, 30, match(reg6=8, eth_type=0x0800, ipv4_dst=IP_B), actions=(Output(4),)),
    ) == []
    r = fab.trace(tcp("vl-a", IP_B))
    assert [d.container for d in r.delivered] == ["vl-b"], r.text()
    assert [s.table for s in r.steps] == [0, 10]
    r = fab.trace(tcp("vl-a", IP_C))  # only the /24 flow matches
    assert [d.container for d in r.delivered] == ["vl-c"]
    r = fab.trace(tcp("vl-b", IP_C))  # table 0 misses for in_port 3
    assert r.verdict == "dropped" and "no matching flow" in r.drops[0]


def test_tcp_port_masks_match_port_ranges(one):
    fab, sw = one
    send(sw, Flow(0, 5, match(eth_type=0x0800, ip_proto=6, tcp_dst=(0x1F90, 0xFFF0)), actions=(Output(3),)))
    assert fab.trace(tcp("vl-a", IP_B, 0x1F9F)).delivered_to("vl-b")
    assert fab.trace(tcp("vl-a", IP_B, 0x1FA0)).verdict == "dropped"


def test_add_replaces_and_keeps_counters_unless_reset(one):
    fab, sw = one
    f = Flow(0, 5, match(in_port=2), actions=(Output(3),), cookie=1)
    send(sw, f)
    fab.trace(tcp("vl-a", IP_B))
    send(sw, Flow(0, 5, match(in_port=2), actions=(Output(4),), cookie=2))
    ((_, rule),) = sw.flows()
    assert (rule.cookie, rule.n_packets) == (2, 1)
    send(sw, f, flags=OFPFF_RESET_COUNTS)
    assert sw.flows()[0][1].n_packets == 0 and sw.flow_count() == 1
    assert fab.trace(tcp("vl-a", IP_B)).delivered_to("vl-b")


def test_modify_and_strict_and_cookie_deletes(one):
    fab, sw = one
    flows = [Flow(1, p, match(reg0=p), actions=(Output(2),), cookie=0x100 + p) for p in (1, 2, 3)]
    flows.append(Flow(1, 9, match(reg0=1, reg1=1), actions=(Output(2),), cookie=0x200))
    send(sw, *flows)
    # Loose modify of reg0=1 hits both flows that match reg0=1 (with or without reg1).
    # The modify changes the actions, never the cookie (as OVS does in OpenFlow 1.3).
    send(sw, Flow(1, 0, match(reg0=1), actions=(Output(3),), cookie=0x300), command=OFPFC_MODIFY)
    outs = {r.priority: r.instr[0][0].port for _, r in sw.flows()}
    assert outs == {1: 3, 2: 2, 3: 2, 9: 3}
    # Strict delete needs the exact match and priority.
    send(sw, Flow(1, 2, match(reg0=1)), command=OFPFC_DELETE, strict=True)
    assert sw.flow_count() == 4
    send(sw, Flow(1, 2, match(reg0=2)), command=OFPFC_DELETE, strict=True)
    assert sw.flow_count() == 3
    # Delete by cookie in all tables.
    send(sw, Flow(OFPTT_ALL, 0, cookie=0x100), command=OFPFC_DELETE, cookie_mask=0xF00)
    assert [r.cookie for _, r in sw.flows()] == [0x200]
    # out_port filter.
    send(sw, Flow(OFPTT_ALL, 0), command=OFPFC_DELETE, out_port=2)
    assert sw.flow_count() == 1
    send(sw, Flow(OFPTT_ALL, 0), command=OFPFC_DELETE, out_port=3)
    assert sw.flow_count() == 0


def test_errors_for_bad_goto_and_overlap(one):
    _, sw = one
    (err,) = send(sw, Flow(5, 1, actions=(Output(2),), goto=3))
    assert err[1] == OFPT_ERROR and err[8:12] == bytes.fromhex("00030002")  # BAD_INSTRUCTION/BAD_TABLE_ID
    send(sw, Flow(5, 1, match(reg0=(0, 0xF0))))
    (err,) = send(sw, Flow(5, 1, match(reg0=(1, 0xF)), actions=(Output(2),)), flags=OFPFF_CHECK_OVERLAP)
    assert err[8:12] == bytes.fromhex("00050003")  # FLOW_MOD_FAILED/OVERLAP
    (err,) = sw.handle(bytes.fromhex("04ff000800000001"))
    assert err[8:12] == bytes.fromhex("00010001")  # BAD_REQUEST/BAD_TYPE


def test_bundle_is_atomic(one):
    _, sw = one
    ok = [Flow(0, 1, match(reg0=p), actions=(Output(2),)) for p in range(1, 4)]
    # Overlaps the first flow: can only fail when applied, i.e. at commit.
    bad = encode.flow_mod(Flow(0, 1, match(reg0=(0, 0xF0)), actions=(Output(3),)), flags=OFPFF_CHECK_OVERLAP)
    replies = sw.handle(encode.bundle_open(1, 100))
    assert decode.parse_header(replies[0])[1] == 4 and replies[0][21] == OFPBCT_OPEN_REPLY
    for i, m in enumerate([*(encode.flow_mod(f) for f in ok), bad]):
        assert sw.handle(encode.bundle_add(1, m, 101 + i)) == []
    # A message OVS refuses when it decodes it is refused at once, and the bundle stays usable.
    (err,) = sw.handle(encode.bundle_add(1, encode.flow_mod(Flow(7, 1, goto=2)), 150))
    assert err[1] == OFPT_ERROR and err[8:12] == bytes.fromhex("00030002") and err[13] == 4  # quotes the add
    replies = sw.handle(encode.bundle_commit(1, 200))
    assert [r[1] for r in replies] == [OFPT_ERROR, OFPT_ERROR]
    assert decode.parse_header(replies[0])[3] == 104  # the failing inner message's xid
    assert sw.flow_count() == 0  # nothing of the bundle stayed
    # The same bundle without the bad flow commits, and is invisible until then.
    msg, commit_xid = encode.bundle_flow_mods(2, ok, 300)
    parts = []
    p = 0
    while p < len(msg):
        n = int.from_bytes(msg[p + 2 : p + 4], "big")
        parts.append(msg[p : p + n])
        p += n
    for m in parts[:-1]:
        sw.handle(m)
    assert sw.flow_count() == 0
    (reply,) = sw.handle(parts[-1])
    assert reply[21] == OFPBCT_COMMIT_REPLY and decode.parse_header(reply)[3] == commit_xid
    assert sw.flow_count() == 3
    (b,) = sw.handle(encode.barrier_request(9))
    assert b[1] == OFPT_BARRIER_REPLY


def test_flow_stats_reply_reads_back(one):
    _, sw = one
    flows = [Flow(3, 10, match(reg6=i, eth_type=0x0800, ipv4_dst=IP_A + i), actions=(Output(2),), cookie=i)
             for i in range(3000)]
    send(sw, *flows)
    replies = sw.handle(encode.flow_stats_request(5))
    assert len(replies) > 1
    got = [s.flow for r in replies for s in decode.flow_stats_reply(decode.multipart_reply(r)[2])]
    assert sorted(got, key=lambda f: f.cookie) == [f.canonical() for f in flows]


def test_conntrack_states_and_stateful_acl(one):
    fab, sw = one
    send(
        sw,
        Flow(0, 10, match(eth_type=0x0800), actions=(Ct(zone=1, table=1),)),
        # New connections only from vl-a; established/reply traffic both ways.
        Flow(1, 20, match(eth_type=0x0800, ct_state=(CT_TRK | CT_NEW, CT_TRK | CT_NEW), in_port=2),
             actions=(Ct(commit=True, zone=1), Output(3))),
        Flow(1, 20, match(eth_type=0x0800, ct_state=(CT_TRK | CT_EST, CT_TRK | CT_EST), in_port=2),
             actions=(Output(3),)),
        Flow(1, 20, match(eth_type=0x0800, ct_state=(CT_TRK | CT_EST | CT_RPL, CT_TRK | CT_EST | CT_RPL),
                          in_port=3), actions=(Output(2),)),
    )
    assert fab.trace(tcp("vl-b", IP_A)).verdict == "dropped"  # B may not open to A
    assert fab.trace(tcp("vl-a", IP_B), commit=False).delivered_to("vl-b")
    assert fab.trace(tcp("vl-b", IP_A, flags="SA").with_(src_port=80, dst_port=40000)).verdict == "dropped"
    r = fab.trace(tcp("vl-a", IP_B))  # commits
    assert r.delivered_to("vl-b") and "recirc" in r.text()
    reply = Packet("tcp", IP_A, 40000, source="vl-b", src_port=80, tcp_flags="SA")
    assert fab.trace(reply).delivered_to("vl-a")
    assert fab.trace(tcp("vl-b", IP_A)).verdict == "dropped"  # a fresh SYN from B is still new
    assert fab.trace(tcp("vl-a", IP_B, flags="A")).delivered_to("vl-b")  # +est, original direction
    assert fab.trace(Packet("udp", IP_A, 53, source="vl-b")).verdict == "dropped"
    assert fab.trace(Packet("udp", IP_B, 53, source="vl-a")).delivered_to("vl-b")
    assert fab.trace(Packet("udp", IP_A, 40000, source="vl-b", src_port=53)).delivered_to("vl-a")
    states = sw.conntrack.process({"ip_proto": 6, "ipv4_src": IP_B, "tcp_src": 80, "ipv4_dst": IP_A,
                                   "tcp_dst": 40000, "tcp_flags": 0x10}, 1, False)
    assert states == CT_TRK | CT_EST | CT_RPL


def test_arp_responder(one):
    fab, sw = one
    gw_mac, gw_ip = 0x02AABBCCDDEE, 0x0A0000FE
    send(sw, Flow(0, 100, match(eth_type=0x0806, arp_op=1, arp_tpa=gw_ip), actions=(
        Move("eth_src", "eth_dst", 48), SetField("eth_src", gw_mac), SetField("arp_op", 2),
        Move("arp_sha", "arp_tha", 48), SetField("arp_sha", gw_mac), Move("arp_spa", "arp_tpa", 32),
        SetField("arp_spa", gw_ip), Output(OFPP_IN_PORT))))
    r = fab.trace(Packet("arp", gw_ip, source="vl-a"))
    (d,) = r.delivered
    assert d.container == "vl-a"
    p = d.packet
    assert (p["arp_op"], p["eth_src"], p["eth_dst"], p["arp_sha"], p["arp_spa"], p["arp_tha"], p["arp_tpa"]) == (
        2, gw_mac, MAC_A, gw_mac, gw_ip, MAC_A, IP_A)


def test_trace_follows_vxlan_into_the_remote_switch():
    fab = SimFabric()
    h1 = fab.add(host("vl-h1", 1, VTEP1, ("vl-a", 2, MAC_A, IP_A)))
    h2 = fab.add(host("vl-h2", 2, VTEP2, ("vl-b", 2, MAC_B, IP_B)))
    send(h1, Flow(0, 10, match(in_port=2, eth_type=0x0800, ipv4_dst=IP_B),
                  actions=(SetField("tun_id", 77), SetField("tun_ipv4_dst", VTEP2), Output(1))))
    send(h2, Flow(0, 10, match(in_port=1, tun_id=77, tun_ipv4_src=VTEP1), actions=(SetField("reg6", 1),), goto=5),
         Flow(5, 10, match(reg6=1, eth_type=0x0800, ipv4_dst=IP_B), actions=(Output(2),)))
    r = fab.trace(tcp("vl-a", IP_B))
    assert r.delivered_to("vl-b") and r.tunnels == ["vl-h1 -> vl-h2 (vni 77)"], r.text()
    assert [(s.switch, s.table) for s in r.steps] == [("vl-h1", 0), ("vl-h2", 0), ("vl-h2", 5)]
    send(h1, Flow(0, 10, match(in_port=2, eth_type=0x0800, ipv4_dst=IP_B),
                  actions=(SetField("tun_id", 78), SetField("tun_ipv4_dst", VTEP2), Output(1))))
    r = fab.trace(tcp("vl-a", IP_B))
    assert r.verdict == "dropped" and "vl-h2 table 0" in r.drops[0]


def test_arp_responder_swapping_through_a_register(one):
    """The VSC's form (vsc/pipeline.md table 10): arp_spa and arp_tpa swapped through reg10."""
    fab, sw = one
    router = 0x02FEFEFEFEFE
    send(sw, Flow(10, 100, match(eth_type=0x0806, arp_op=1, arp_tpa=(0x0A000000, 0xFFFFFF00)), actions=(
        Move("eth_src", "eth_dst", 48), SetField("eth_src", router), SetField("arp_op", 2),
        Move("arp_sha", "arp_tha", 48), SetField("arp_sha", router), Move("arp_tpa", "reg10", 32),
        Move("arp_spa", "arp_tpa", 32), Move("reg10", "arp_spa", 32), Output(OFPP_IN_PORT))),
        Flow(0, 1, match(in_port=3, eth_type=0x0806), goto=10))
    (d,) = fab.trace(Packet("arp", IP_C, source="vl-b"), commit=False).delivered
    p = d.packet
    assert d.container == "vl-b"
    assert (p["arp_op"], p["arp_sha"], p["arp_spa"], p["arp_tha"], p["arp_tpa"], p["eth_dst"]) == (
        2, router, IP_C, MAC_B, IP_B, MAC_B)


def test_icmp_errors_are_related_and_non_ip_frames_match_eth_type(one):
    from scapy.layers.inet import ICMP, IP, IPerror, TCPerror
    from scapy.layers.l2 import Ether

    fab, sw = one
    rel = CT_TRK | CT_REL
    send(
        sw,
        Flow(0, 10, match(eth_type=0x0800), actions=(Ct(zone=1, table=1),)),
        Flow(0, 10, match(eth_type=0x88CC, in_port=2), actions=(Output(4),)),
        Flow(1, 20, match(eth_type=0x0800, ct_state=(CT_TRK | CT_NEW, CT_TRK | CT_NEW), in_port=2),
             actions=(Ct(commit=True, zone=1), Output(3))),
        Flow(1, 20, match(eth_type=0x0800, ct_state=(rel, rel), in_port=3), actions=(Output(2),)),
    )
    assert fab.trace(tcp("vl-a", IP_B)).delivered_to("vl-b")  # commits A:40000 -> B:80
    err = Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3) / IPerror(
        src="10.0.0.1", dst="10.0.0.2", proto=6) / TCPerror(sport=40000, dport=80)
    p = Packet.from_scapy(err, source="vl-b")
    assert p.icmp_inner == (6, "10.0.0.1", 40000, "10.0.0.2", 80)
    r = fab.trace(p)
    assert r.delivered_to("vl-a") and "+rel+rpl+trk" in r.text(), r.text()
    stray = p.with_(icmp_inner=(6, "10.0.0.1", 40001, "10.0.0.2", 80))
    assert fab.trace(stray).verdict == "dropped"  # +inv: quotes no known connection
    lldp = Packet(eth_type=0x88CC, source="vl-a", eth_dst="01:80:c2:00:00:0e")
    assert fab.trace(lldp).delivered_to("vl-c")
    assert fab.trace(lldp.with_(source="vl-b")).verdict == "dropped"


def test_a_new_controller_connection_discards_open_bundles(one):
    _, sw = one
    sw.handle(encode.bundle_open(1, 1))
    sw.handle(encode.bundle_add(1, encode.flow_mod(Flow(0, 1, actions=(Output(2),))), 2))
    sw.new_connection()
    (reply,) = sw.handle(encode.bundle_open(1, 3))  # not OFPBFC_BUNDLE_EXIST
    assert reply[1] == 4 and reply[21] == OFPBCT_OPEN_REPLY
    assert sw.flow_count() == 0


def test_same_match_at_several_priorities(one):
    fab, sw = one
    send(sw, *(Flow(0, p, match(in_port=2), actions=(Output(port),)) for p, port in [(5, 3), (9, 4), (7, 3)]))
    assert sw.flow_count() == 3
    assert fab.trace(tcp("vl-a", IP_B)).delivered_to("vl-c")  # priority 9 wins
    send(sw, Flow(0, 9, match(in_port=2)), command=OFPFC_DELETE, strict=True)
    assert sw.flow_count() == 2 and fab.trace(tcp("vl-a", IP_B)).delivered_to("vl-b")
    send(sw, Flow(0, 7, match(in_port=2), actions=(Output(4),)))  # replaces the priority-7 flow only
    assert sw.flow_count() == 2 and fab.trace(tcp("vl-a", IP_B)).delivered_to("vl-c")
