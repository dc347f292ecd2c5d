"""The simulated switch's less common messages: timeouts and FLOW_REMOVED, PACKET_OUT through the
pipeline and the tunnel, PACKET_IN for output to CONTROLLER, async config, aggregate stats. OVS's
ofp-print checks the switch-built messages."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from openflow import encode
from openflow.consts import (
    OFPFC_DELETE,
    OFPFF_SEND_FLOW_REM,
    OFPMP_AGGREGATE,
    OFPT_FLOW_REMOVED,
    OFPT_GET_ASYNC_REPLY,
    OFPT_GET_ASYNC_REQUEST,
    OFPT_PACKET_IN,
    OFPT_PACKET_OUT,
)
from openflow.flow import OFPP_CONTROLLER, OFPP_TABLE, Flow, Output, SetField, match
from vrs.sim import Packet, SimFabric
from vrs.sim.switch import Port, SimSwitch

needs_ovs = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")


def ofp_print(msg: bytes) -> str:
    return subprocess.run(["ovs-ofctl", "ofp-print", msg.hex()], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def pair():
    fab = SimFabric()
    h1 = fab.add(SimSwitch("vl-h1", 1, 0xC0A80001))
    h2 = fab.add(SimSwitch("vl-h2", 2, 0xC0A80002))
    h1.ports[2] = Port(2, "vl-a", 0x0A, 0x0A000001)
    h2.ports[2] = Port(2, "vl-b", 0x0B, 0x0A000002)
    sent: list[bytes] = []
    h1.notify = sent.append
    return fab, h1, h2, sent


@needs_ovs
def test_hard_and_idle_timeouts_and_flow_removed(pair):
    _, h1, _, sent = pair
    now = h1.started
    h1.handle(encode.flow_mod(Flow(1, 5, match(reg0=1), actions=(Output(2),), hard_timeout=10),
                              flags=OFPFF_SEND_FLOW_REM))
    h1.handle(encode.flow_mod(Flow(1, 5, match(reg0=2), actions=(Output(2),), idle_timeout=3)))
    h1.handle(encode.flow_mod(Flow(1, 5, match(reg0=3), actions=(Output(2),))))
    assert h1.expire(now + 2) == 0
    assert h1.expire(now + 3.5) == 1 and h1.flow_count() == 2  # idle, no notice (flag not set)
    assert sent == []
    assert h1.expire(now + 10.5) == 1 and h1.flow_count() == 1
    (msg,) = sent
    assert msg[1] == OFPT_FLOW_REMOVED
    assert "reason=hard" in ofp_print(msg) and "reg0=0x1" in ofp_print(msg)


@needs_ovs
def test_delete_sends_flow_removed_when_asked(pair):
    _, h1, _, sent = pair
    h1.handle(encode.flow_mod(Flow(1, 5, match(reg0=1), cookie=9), flags=OFPFF_SEND_FLOW_REM))
    h1.handle(encode.flow_mod(Flow(1, 6, match(reg0=1), cookie=9)))
    h1.handle(encode.flow_mod(Flow(255, 0, cookie=9), OFPFC_DELETE, cookie_mask=0xFF))
    assert h1.flow_count() == 0
    (msg,) = sent
    assert "reason=delete" in ofp_print(msg) and "cookie0x9" in ofp_print(msg).replace(":", "")


@needs_ovs
def test_packet_out_runs_the_pipeline_and_crosses_the_tunnel(pair):
    _, h1, h2, sent = pair
    h1.handle(encode.flow_mod(Flow(0, 5, match(eth_type=0x0800, ipv4_dst=0x0A000002),
                                   actions=(SetField("tun_id", 7), SetField("tun_ipv4_dst", 0xC0A80002), Output(1)))))
    h2.handle(encode.flow_mod(Flow(0, 5, match(in_port=1, tun_id=7), actions=(Output(2),))))
    frame = bytes(Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / IP(src="10.0.0.1", dst="10.0.0.2")
                  / UDP(sport=5, dport=53))
    acts = struct.pack("!HHIH6x", 0, 16, OFPP_TABLE, 0)
    out = encode.header(OFPT_PACKET_OUT, 3, struct.pack("!IIH6x", 0xFFFFFFFF, OFPP_CONTROLLER, len(acts)) + acts + frame)
    assert "OFPT_PACKET_OUT" in ofp_print(out)
    assert h1.handle(out) == []
    (r,) = h1.packet_outs
    assert r.delivered_to("vl-b") and r.tunnels == ["vl-h1 -> vl-h2 (vni 7)"]
    bad = encode.header(OFPT_PACKET_OUT, 4, struct.pack("!IIH6x", 5, OFPP_CONTROLLER, 0) + frame)
    (err,) = h1.handle(bad)
    assert "OFPBRC_BUFFER_UNKNOWN" in ofp_print(err)


@needs_ovs
def test_output_to_controller_sends_packet_in(pair):
    fab, h1, _, sent = pair
    h1.handle(encode.flow_mod(Flow(0, 5, match(eth_type=0x0800), actions=(Output(OFPP_CONTROLLER, 128),),
                                   cookie=0x77)))
    r = fab.trace(Packet("udp", "10.0.0.9", 53, source="vl-a"), commit=False)
    assert r.to_controller and sent == []  # a dry run bothers nobody
    r = fab.trace(Packet("udp", "10.0.0.9", 53, source="vl-a"))
    (pin,) = sent
    assert pin[1] == OFPT_PACKET_IN
    text = ofp_print(pin)
    assert "cookie=0x77" in text and "in_port=2" in text and "nw_dst=10.0.0.9" in text and "tp_dst=53" in text


def test_async_config_and_aggregate(pair):
    _, h1, _, _ = pair
    (rep,) = h1.handle(encode.header(OFPT_GET_ASYNC_REQUEST, 5))
    assert rep[1] == OFPT_GET_ASYNC_REPLY and struct.unpack("!6I", rep[8:]) == (3, 0, 7, 7, 15, 0)
    for i in range(3):
        h1.handle(encode.flow_mod(Flow(2, 5, match(reg0=i), actions=(Output(2),))))
    body = struct.pack("!B3xII4xQQHH4x", 2, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0, 1, 4)
    (agg,) = h1.handle(encode.multipart_request(6, OFPMP_AGGREGATE, body))
    assert struct.unpack_from("!QQI", agg, 16) == (0, 0, 3)


@needs_ovs
def test_table_and_port_stats(pair):
    _, h1, _, _ = pair
    h1.handle(encode.flow_mod(Flow(2, 5, match(reg0=1), actions=(Output(2),))))
    replies = h1.handle(encode.multipart_request(7, 3))  # OFPMP_TABLE
    text = "".join(ofp_print(r) for r in replies)
    assert "table 2:\n    active=1, lookup=0, matched=0" in text
    (ports,) = h1.handle(encode.multipart_request(8, 4, struct.pack("!I4x", 0xFFFFFFFF)))  # OFPMP_PORT_STATS
    assert "port  2:" in ofp_print(ports) and "port LOCAL" in ofp_print(ports)
