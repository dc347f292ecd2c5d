"""The OF1.3 codec against os-ken's parser (an independent decoder) and against itself."""

from __future__ import annotations

import ipaddress
import time

import pytest
from os_ken.ofproto import ofproto_common, ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from openflow import decode, encode, fastdecode, switchmsg
from openflow.consts import (
    OFPET_BAD_ACTION,
    OFPET_BAD_MATCH,
    OFPFC_DELETE,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY_STRICT,
    OFPTT_ALL,
)
from openflow.fields import FIELDS
from openflow.flow import (
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    Ct,
    DecTtl,
    Flow,
    FlowStats,
    MatchField,
    Move,
    Output,
    SetField,
    match,
)

DP = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
MACS = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}
IPS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst"}
PREREQ = {
    "ip_proto": match(eth_type=0x0800),
    "ipv4_src": match(eth_type=0x0800),
    "ipv4_dst": match(eth_type=0x0800),
    "tcp_src": match(eth_type=0x0800, ip_proto=6),
    "tcp_dst": match(eth_type=0x0800, ip_proto=6),
    "udp_src": match(eth_type=0x0800, ip_proto=17),
    "udp_dst": match(eth_type=0x0800, ip_proto=17),
    "icmpv4_type": match(eth_type=0x0800, ip_proto=1),
    "icmpv4_code": match(eth_type=0x0800, ip_proto=1),
    **{f: match(eth_type=0x0806) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
}


def osken(msg: bytes):
    version, msg_type, length, xid = decode.parse_header(msg)
    return ofproto_parser.msg(DP, version, msg_type, length, xid, msg)


def osken_value(name: str, v: int):
    if name in MACS:
        return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))
    if name in IPS:
        return str(ipaddress.IPv4Address(v))
    return v


def osken_fields(flow: Flow) -> dict:
    out = {}
    for f in flow.match:
        name = "tunnel_id" if f.name == "tun_id" else f.name
        v = osken_value(f.name, f.value)
        out[name] = v if f.mask is None else (v, osken_value(f.name, f.mask))
    return out


def sample_value(name: str, salt: int = 0) -> int:
    bits = FIELDS[name].bits
    return ((0x1234_5678_9ABC_DEF1 + salt * 0x1111) & ((1 << bits) - 1)) or 1


def field_cases():
    for name, fs in FIELDS.items():
        pre = PREREQ.get(name, ())
        if name == "eth_type":
            yield name, (MatchField("eth_type", 0x0800),)
            continue
        if name == "ip_proto":
            yield name, pre + (MatchField("ip_proto", 6),)
            continue
        v = sample_value(name)
        if name in PREREQ and name.startswith(("tcp", "udp", "icmp", "arp_op")):
            v &= 0xFF
        yield name, pre + (MatchField(name, v),)
        if fs.maskable:
            m = ((1 << fs.bits) - 1) ^ 0xF  # not all-ones, so it stays a masked match
            yield name + "/mask", pre + (MatchField(name, v & m, m),)


@pytest.mark.parametrize("name,fields", list(field_cases()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_match_field_round_trips_through_osken(name, fields):
    flow = Flow(table=7, priority=1234, match=fields, actions=(Output(3),), cookie=0xABCDEF)
    msg = encode.flow_mod(flow, xid=42)
    parsed = osken(msg)
    assert isinstance(parsed, parser.OFPFlowMod)
    assert dict(parsed.match._fields2) == osken_fields(flow)
    assert (parsed.table_id, parsed.priority, parsed.cookie, parsed.xid) == (7, 1234, 0xABCDEF, 42)
    assert decode.parse_flow_mod(msg).flow == flow
    # The shape-compiled decoder agrees with the generic one, in canonical order.
    fast = fastdecode.flow_mod(msg)
    assert dict(zip(fast[11], fast[13], strict=True)) == {f.name: f.value for f in fields}


def settable_cases():
    for name, fs in FIELDS.items():
        if fs.settable:
            yield SetField(name, sample_value(name, 3))


@pytest.mark.parametrize("action", list(settable_cases()), ids=lambda a: a.name)
def test_every_set_field_round_trips_through_osken(action):
    flow = Flow(table=0, priority=1, actions=(action,))
    msg = encode.flow_mod(flow)
    (inst,) = osken(msg).instructions
    (act,) = inst.actions
    assert isinstance(act, parser.OFPActionSetField)
    key = "tunnel_id" if action.name == "tun_id" else action.name
    assert (act.key, act.value) == (key, osken_value(action.name, action.value))
    assert decode.parse_flow_mod(msg).flow == flow


def test_actions_and_instructions_round_trip_through_osken():
    acts = (
        Move("eth_src", "eth_dst", 48),
        Move("reg0", "reg1", 16, 0, 16),
        Move("arp_spa", "arp_tpa", 32),
        Ct(commit=True, zone=5, table=7),
        Ct(),
        DecTtl(),
        Output(3),
        Output(OFPP_IN_PORT),
        Output(OFPP_CONTROLLER, 128),
    )
    flow = Flow(table=3, priority=9, match=match(reg6=1), actions=acts, goto=9, write_metadata=(5, 0xFF))
    msg = encode.flow_mod(flow)
    apply, wmd, goto = osken(msg).instructions
    assert (wmd.metadata, wmd.metadata_mask, goto.table_id) == (5, 0xFF, 9)
    a = apply.actions
    assert (a[0].src_field, a[0].dst_field, a[0].n_bits) == ("eth_src", "eth_dst", 48)
    assert (a[1].src_ofs, a[1].dst_ofs, a[1].n_bits) == (0, 16, 16)
    assert (a[3].flags, a[3].zone_ofs_nbits, a[3].recirc_table) == (1, 5, 7)
    assert (a[4].flags, a[4].recirc_table) == (0, 0xFF)
    assert isinstance(a[5], parser.OFPActionDecNwTtl)
    assert [(x.port, x.max_len) for x in a[6:]] == [(3, 0xFFE5), (ofp.OFPP_IN_PORT, 0xFFE5), (ofp.OFPP_CONTROLLER, 128)]
    assert decode.parse_flow_mod(msg).flow == flow


def test_osken_built_flow_mod_decodes():
    m = parser.OFPMatch(eth_type=0x0800, ipv4_dst=("10.1.0.0", "255.255.0.0"), reg6=7, tunnel_id=9)
    acts = [
        parser.OFPActionSetField(tun_ipv4_dst="192.168.1.2"),
        parser.NXActionRegMove(src_field="reg6", dst_field="reg7", n_bits=32),
        parser.NXActionCT(flags=1, zone_src="", zone_ofs_nbits=3, recirc_table=12, alg=0, actions=[]),
        parser.OFPActionOutput(5),
    ]
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, acts), parser.OFPInstructionGotoTable(20)]
    fm = parser.OFPFlowMod(DP, cookie=77, table_id=10, priority=300, match=m, instructions=inst)
    fm.serialize()
    got = decode.parse_flow_mod(bytes(fm.buf))
    assert got.flow.canonical() == Flow(
        table=10,
        priority=300,
        match=match(eth_type=0x0800, ipv4_dst=(0x0A010000, 0xFFFF0000), reg6=7, tun_id=9),
        actions=(SetField("tun_ipv4_dst", 0xC0A80102), Move("reg6", "reg7", 32), Ct(True, 3, 12), Output(5)),
        goto=20,
        cookie=77,
    ).canonical()


def test_delete_by_cookie_and_strict_variants():
    msg = encode.flow_mod(Flow(table=OFPTT_ALL, priority=0, cookie=0x5500), OFPFC_DELETE, cookie_mask=0xFF00)
    p = osken(msg)
    assert (p.command, p.table_id, p.cookie, p.cookie_mask, p.instructions) == (OFPFC_DELETE, 255, 0x5500, 0xFF00, [])
    flow = Flow(table=1, priority=5, match=match(reg0=1), actions=(Output(1),))
    assert osken(encode.flow_mod(flow, OFPFC_DELETE, strict=True)).command == OFPFC_DELETE_STRICT
    assert osken(encode.flow_mod(flow, ofp.OFPFC_MODIFY, strict=True)).command == OFPFC_MODIFY_STRICT
    assert osken(encode.flow_mod(flow, OFPFC_DELETE, out_port=4)).out_port == 4


def test_bundle_barrier_and_stats_request_parse_in_osken():
    inner = encode.flow_mod(Flow(table=0, priority=1, actions=(Output(1),)), xid=1)
    o = osken(encode.bundle_open(7, 10))
    assert isinstance(o, parser.ONFBundleCtrlMsg) and (o.bundle_id, o.type) == (7, ofp.ONF_BCT_OPEN_REQUEST)
    a = osken(encode.bundle_add(7, inner, 11))
    # os-ken only serialises bundle-adds; it parses them as a generic experimenter message.
    assert (a.experimenter, a.exp_type) == (ofproto_common.ONF_EXPERIMENTER_ID, ofp.ONF_ET_BUNDLE_ADD_MESSAGE)
    assert a.data[:8] == bytes.fromhex("0000000700000003")  # bundle 7, flags atomic|ordered
    m = osken(a.data[8:])
    assert isinstance(m, parser.OFPFlowMod) and m.xid == 11 and m.priority == 1
    c = osken(encode.bundle_commit(7, 12))
    assert c.type == ofp.ONF_BCT_COMMIT_REQUEST
    # os-ken does not parse controller-to-switch requests: compare with what it serialises.
    assert encode.barrier_request(5) == osken_bytes(parser.OFPBarrierRequest(DP), 5)
    assert encode.flow_stats_request(9) == osken_bytes(parser.OFPFlowStatsRequest(DP), 9)
    assert encode.flow_stats_request(9, table=3, cookie=4, cookie_mask=7) == osken_bytes(
        parser.OFPFlowStatsRequest(DP, table_id=3, cookie=4, cookie_mask=7), 9
    )


def osken_bytes(msg, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def test_flow_stats_reply_round_trip_and_chunking():
    flows = [
        Flow(table=20, priority=100, match=match(reg6=i, eth_type=0x0800, ipv4_dst=0x0A000000 + i),
             actions=(SetField("tun_id", 5), SetField("tun_ipv4_dst", 0x01020304), Output(3)), cookie=i)
        for i in range(2000)
    ]
    entries = [switchmsg.flow_stats_entry(f, 3, 500, i, 60 * i) for i, f in enumerate(flows)]
    msgs = switchmsg.flow_stats_replies(8, entries)
    assert len(msgs) > 1 and all(len(m) <= 0xFFFF for m in msgs)
    got: list[FlowStats] = []
    for i, m in enumerate(msgs):
        mp_type, flags, body = decode.multipart_reply(m)
        assert flags == (1 if i < len(msgs) - 1 else 0)
        got += decode.flow_stats_reply(body)
        parsed = osken(m)
        assert isinstance(parsed, parser.OFPFlowStatsReply)
    assert [g.flow for g in got] == flows
    assert (got[7].packet_count, got[7].byte_count, got[7].duration_sec) == (7, 420, 3)


@pytest.mark.parametrize(
    "mutate,etype",
    [
        (lambda b: b[:52] + b"\x80\x00\x7e\x04" + b[56:], OFPET_BAD_MATCH),  # unknown OXM field 63
        (lambda b: b[:-16] + b"\x00\x63" + b[-14:], OFPET_BAD_ACTION),  # unknown action type
    ],
)
def test_junk_raises_openflow_errors(mutate, etype):
    msg = encode.flow_mod(Flow(table=0, priority=1, match=match(reg0=1), actions=(Output(1),)))
    with pytest.raises(decode.OFPError) as e:
        decode.parse_flow_mod(mutate(msg))
    assert e.value.type == etype
    with pytest.raises(decode.OFPError):
        fastdecode.flow_mod(mutate(msg))


def test_missing_prerequisite_is_bad_prereq():
    msg = encode.flow_mod(Flow(table=0, priority=1, match=match(tcp_dst=80)))
    with pytest.raises(decode.OFPError) as e:
        fastdecode.flow_mod(msg)
    assert (e.value.type, e.value.code) == (OFPET_BAD_MATCH, 9)


def test_bad_values_are_value_errors():
    with pytest.raises(ValueError, match="unknown match field"):
        encode.flow_mod(Flow(table=0, priority=1, match=(MatchField("nope", 1),)))
    with pytest.raises(ValueError, match="cannot be masked"):
        encode.flow_mod(Flow(table=0, priority=1, match=(MatchField("in_port", 1, 3),)))
    with pytest.raises(ValueError):
        encode.flow_mod(Flow(table=0, priority=1, match=match(reg0=1 << 40)))


def test_encode_and_decode_cost(capsys):
    """Prints the per-flow-mod cost of the codec (figures, not an assertion on time)."""
    flows = [
        Flow(table=20, priority=100, match=match(reg6=7, eth_type=0x0800, ipv4_dst=0x0A000000 + i),
             actions=(SetField("tun_id", 5), SetField("tun_ipv4_dst", 0x01020304), Output(3)))
        for i in range(20000)
    ]
    t0 = time.perf_counter()
    msgs = [encode.flow_mod(f, 0, i) for i, f in enumerate(flows)]
    t1 = time.perf_counter()
    for m in msgs:
        fastdecode.flow_mod(m)
    t2 = time.perf_counter()
    for m in msgs[:2000]:
        decode.parse_flow_mod(m)
    t3 = time.perf_counter()
    n = len(flows)
    with capsys.disabled():
        print(f"\nflow-mod encode {1e6 * (t1 - t0) / n:.2f} us, fast decode {1e6 * (t2 - t1) / n:.2f} us, "
              f"decode to Flow {1e6 * (t3 - t2) / 2000:.2f} us")


def test_actions_inconsistent_with_the_match_are_refused_by_the_switch_decoder():
    arp_reply = (SetField("arp_op", 2), Move("arp_sha", "arp_tha", 48), Output(OFPP_IN_PORT))
    ok = encode.flow_mod(Flow(0, 1, match(eth_type=0x0806), actions=arp_reply))
    assert fastdecode.flow_mod(ok)[14][3]  # the prerequisites travel with the decoded actions
    for m in [match(), match(eth_type=0x0800), match(reg0=1)]:
        with pytest.raises(decode.OFPError) as e:
            fastdecode.flow_mod(encode.flow_mod(Flow(0, 1, m, actions=arp_reply)))
        assert (e.value.type, e.value.code) == (OFPET_BAD_ACTION, 10)  # OFPBAC_MATCH_INCONSISTENT
    tcp_rewrite = (SetField("tcp_dst", 8080), Output(2))
    with pytest.raises(decode.OFPError):
        fastdecode.flow_mod(encode.flow_mod(Flow(0, 1, match(eth_type=0x0800, ip_proto=17), actions=tcp_rewrite)))
    fastdecode.flow_mod(encode.flow_mod(Flow(0, 1, match(eth_type=0x0800, ip_proto=6), actions=tcp_rewrite)))
    for acts in [(Ct(table=3),), (DecTtl(), Output(2))]:  # IP only, as ovs-ofctl insists too
        with pytest.raises(decode.OFPError):
            fastdecode.flow_mod(encode.flow_mod(Flow(0, 1, match(eth_type=0x0806), actions=acts)))
        fastdecode.flow_mod(encode.flow_mod(Flow(0, 1, match(eth_type=0x0800), actions=acts)))
