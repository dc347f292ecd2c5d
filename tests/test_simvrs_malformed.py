"""The simulated VRS against a controller that sends malformed or incomplete messages: every bad message
gets the OpenFlow error OVS would send and the connection keeps serving; a controller that stalls in
the middle of a message, or never says hello, is dropped after a few seconds and reconnected."""

from __future__ import annotations

import logging
import struct
import time

import pytest

from openflow import consts as C
from openflow import encode
from openflow.flow import Flow, Output, match
from tests.of_peers import Controller, barrier, error_of
from vrs.sim import SimRuntime, bundles, ofconn
from vrs.sim.switch import SimSwitch


def _set_length(msg: bytes) -> bytes:
    return msg[:2] + len(msg).to_bytes(2, "big") + msg[4:]


def _unpadded_flow_mod(xid: int = 7) -> bytes:
    """A flow-mod whose 12-byte match lacks its 4 bytes of padding."""
    msg = encode.flow_mod(Flow(0, 1, match(reg3=9)), xid=xid)
    return _set_length(msg[:60])


def test_flow_mod_without_match_padding_gets_bad_match_length():
    sw = SimSwitch("vl-m1", 1, 0x0A000001)
    good = encode.flow_mod(Flow(0, 1, match(reg3=1)))
    assert sw.flow_mod(good, 0.0) is None  # the shape's decoder is compiled and cached now
    for _ in range(2):
        (reply,) = sw.flow_mod(_unpadded_flow_mod(), 0.0)
        assert error_of(reply) == (C.OFPET_BAD_MATCH, C.OFPBMC_BAD_LEN)
        (reply,) = sw.handle(_unpadded_flow_mod())
        assert error_of(reply) == (C.OFPET_BAD_MATCH, C.OFPBMC_BAD_LEN)
    # The same flow-mod inside a bundle-add answers the add with the same error.
    sw.handle(encode.bundle_open(5, 20))
    (reply,) = bundles.add_fast(sw, encode.bundle_add(5, _unpadded_flow_mod(21), 21))
    assert error_of(reply) == (C.OFPET_BAD_MATCH, C.OFPBMC_BAD_LEN)
    assert sw.flow_count() == 1


TRUNCATED = {
    "set_config": encode.header(C.OFPT_SET_CONFIG, 1, b"\x00"),
    "set_async": encode.header(C.OFPT_SET_ASYNC, 1, b"\x00" * 20),
    "role_request": encode.header(C.OFPT_ROLE_REQUEST, 1, b"\x00" * 8),
    "multipart_request": encode.header(C.OFPT_MULTIPART_REQUEST, 1, b"\x00\x01"),
    "port_stats_request": encode.header(C.OFPT_MULTIPART_REQUEST, 1, struct.pack("!HH4x", C.OFPMP_PORT_STATS, 0)),
    "flow_stats_request": encode.flow_stats_request(1)[:40],
    "experimenter": encode.header(C.OFPT_EXPERIMENTER, 1, b"\x00\x00"),
    "bundle_control": encode.bundle_open(1, 1)[:20],
    "bundle_add": encode.bundle_add(1, encode.barrier_request(1), 1)[:20],
    "packet_out": encode.header(C.OFPT_PACKET_OUT, 1, b"\xff\xff\xff\xff"),
}


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_truncated_message_is_bad_length_and_no_simulator_bug(name, caplog):
    sw = SimSwitch("vl-m2", 2, 0x0A000002)
    msg = _set_length(TRUNCATED[name])
    with caplog.at_level(logging.ERROR, logger="vrs.sim"):
        (reply,) = sw.handle(msg)
    assert error_of(reply) == (C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN) or error_of(reply)[0] == 0xFFFF, name
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_message_shorter_than_a_header_is_refused():
    sw = SimSwitch("vl-m3", 3, 0x0A000003)
    for n in range(8):
        (reply,) = sw.handle(encode.barrier_request(4)[:n])
        assert error_of(reply) == (C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN)


@pytest.fixture
def sim_and_controller():
    ctl = Controller()
    rt = SimRuntime(("127.0.0.1", ctl.port), None)
    rt.run_in_thread()
    try:
        yield rt, ctl
    finally:
        rt.stop()
        ctl.close()


def test_malformed_flow_mod_over_tcp_keeps_the_connection(sim_and_controller):
    rt, ctl = sim_and_controller
    rt.add_host("vl-m4", 4, "192.168.77.4")
    peer = ctl.handshake()
    peer.send(encode.flow_mod(Flow(0, 1, match(reg3=2), actions=(Output(1),)), xid=30))
    peer.send(_unpadded_flow_mod(31))
    seen = barrier(peer, 32)
    assert [error_of(m) for m in seen] == [(C.OFPET_BAD_MATCH, C.OFPBMC_BAD_LEN)]
    assert rt.stats()["hosts"][0]["connects"] == 1 and rt.stats()["total_flows"] == 1


def test_controller_stalled_inside_a_message_is_dropped(sim_and_controller, monkeypatch):
    """A controller that starts a message and trickles a byte now and then never completes it: OVS
    counts only whole messages as activity, so the connection goes after a bounded wait."""
    monkeypatch.setattr(ofconn, "MESSAGE_TIMEOUT", 1.0, raising=False)
    rt, ctl = sim_and_controller
    rt.add_host("vl-m5", 5, "192.168.77.5")
    peer = ctl.handshake()
    partial = encode.header(C.OFPT_ECHO_REQUEST, 40, b"\x00" * 200)
    t0 = time.monotonic()
    for i in range(40):  # 20 s of a byte every half second, unless dropped first
        try:
            peer.send(partial[i : i + 1])
        except OSError:
            break
        if peer.closed_within(0.5) is not None:
            break
    assert peer.eof and time.monotonic() - t0 < 5, f"still open after {time.monotonic() - t0:.1f}s"
    peer.close()
    # It reconnects, and the new connection serves.
    peer = ctl.handshake()
    barrier(peer, 41)
    assert rt.stats()["hosts"][0]["connects"] == 2


def test_controller_that_never_says_hello_is_dropped(sim_and_controller, monkeypatch):
    monkeypatch.setattr(ofconn, "HELLO_TIMEOUT", 1.0, raising=False)
    rt, ctl = sim_and_controller
    rt.add_host("vl-m6", 6, "192.168.77.6")
    peer = ctl.accept()
    assert peer.recv()[1] == C.OFPT_HELLO
    took = peer.closed_within(8)
    assert took is not None and took < 4, took
    peer.close()
    peer = ctl.handshake()
    barrier(peer, 50)


def test_partial_header_after_hello_is_dropped(sim_and_controller, monkeypatch):
    monkeypatch.setattr(ofconn, "MESSAGE_TIMEOUT", 1.0, raising=False)
    rt, ctl = sim_and_controller
    rt.add_host("vl-m7", 7, "192.168.77.7")
    peer = ctl.handshake()
    peer.send(encode.barrier_request(60)[:5])
    took = peer.closed_within(8)
    assert took is not None and took < 4, took
