"""Messages a switch sends (the simulated VRS's side of OpenFlow 1.3): replies, errors, port status."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from openflow.consts import (
    MULTIPART_BODY_LIMIT,
    OFP_VERSION,
    OFPMP_FLOW,
    OFPMP_PORT_DESC,
    OFPMPF_REPLY_MORE,
    OFPT_BARRIER_REPLY,
    OFPT_ECHO_REPLY,
    OFPT_ERROR,
    OFPT_EXPERIMENTER,
    OFPT_FEATURES_REPLY,
    OFPT_FLOW_REMOVED,
    OFPT_GET_CONFIG_REPLY,
    OFPT_MULTIPART_REPLY,
    OFPT_PACKET_IN,
    OFPT_PORT_STATUS,
    ONF_ET_BUNDLE_CONTROL,
    ONF_EXPERIMENTER_ID,
)
from openflow.encode import flow_mod, header
from openflow.flow import Flow

_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")
_PORT = struct.Struct("!I4x6s2x16sIIIIIIII")
# Capabilities OVS reports: flow, table, port, group stats, IP reassembly off, queue stats.
OVS_CAPABILITIES = 0x0000004F


@dataclass(frozen=True, slots=True)
class PortDesc:
    port_no: int
    name: str
    hw_addr: int
    config: int = 0
    state: int = 4  # OFPPS_LIVE
    curr_speed: int = 10_000_000  # kbps, what OVS reports for a 10G port

    def pack(self) -> bytes:
        feats = 0x840  # OFPPF_10GB_FD | OFPPF_COPPER
        return _PORT.pack(
            self.port_no, self.hw_addr.to_bytes(6, "big"), self.name.encode()[:15], self.config, self.state,
            feats, 0, 0, 0, self.curr_speed, self.curr_speed,
        )


def features_reply(xid: int, datapath_id: int, n_tables: int = 254, n_buffers: int = 0) -> bytes:
    return header(OFPT_FEATURES_REPLY, xid, struct.pack("!QIBB2xII", datapath_id, n_buffers, n_tables, 0,
                                                         OVS_CAPABILITIES, 0))


def echo_reply(xid: int, data: bytes = b"") -> bytes:
    return header(OFPT_ECHO_REPLY, xid, data)


def barrier_reply(xid: int) -> bytes:
    return header(OFPT_BARRIER_REPLY, xid)


def get_config_reply(xid: int, flags: int, miss_send_len: int) -> bytes:
    return header(OFPT_GET_CONFIG_REPLY, xid, struct.pack("!HH", flags, miss_send_len))


def error(xid: int, type_: int, code: int, offending: bytes) -> bytes:
    """OFPT_ERROR carrying (at most 64 bytes of) the offending message, as the spec asks. Codes of
    2300 and up are ONF EXT-230 bundle errors, which OpenFlow 1.3 carries as experimenter errors."""
    data = offending[:64]
    if code >= 2300:
        return header(OFPT_ERROR, xid, struct.pack("!HHI", 0xFFFF, code, ONF_EXPERIMENTER_ID) + data)
    return header(OFPT_ERROR, xid, struct.pack("!HH", type_, code) + data)


def bundle_ctrl_reply(xid: int, bundle_id: int, ctrl_type: int, flags: int) -> bytes:
    return header(OFPT_EXPERIMENTER, xid, struct.pack("!IIIHH", ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL,
                                                      bundle_id, ctrl_type, flags))


def port_status(reason: int, port: PortDesc) -> bytes:
    return header(OFPT_PORT_STATUS, 0, struct.pack("!B7x", reason) + port.pack())


def packet_in(buffer_id: int, total_len: int, reason: int, table: int, cookie: int, in_port: int,
              data: bytes) -> bytes:
    match = struct.pack("!HHIIxxxx", 1, 12, 0x80000004, in_port)  # OXM in_port, padded to 8
    body = struct.pack("!IHBBQ", buffer_id, total_len, reason, table, cookie) + match + b"\0\0" + data
    return header(OFPT_PACKET_IN, 0, body)


def flow_stats_entry(flow: Flow, duration_sec: int = 0, duration_nsec: int = 0, packet_count: int = 0,
                     byte_count: int = 0, flags: int = 0) -> bytes:
    """One ofp_flow_stats; the match and instructions are exactly a flow-mod's, so the flow-mod
    encoder's compiled layouts are reused."""
    tail = flow_mod(flow)[48:]
    return _FLOW_STATS.pack(
        48 + len(tail), flow.table, duration_sec, duration_nsec, flow.priority, flow.idle_timeout,
        flow.hard_timeout, flags, flow.cookie, packet_count, byte_count,
    ) + tail


def multipart_replies(xid: int, mp_type: int, items: list[bytes]) -> list[bytes]:
    """Chunk entries into replies whose length fits 16 bits, all but the last flagged REPLY_MORE."""
    out, chunk, size = [], [], 0
    for it in items:
        if chunk and size + len(it) > MULTIPART_BODY_LIMIT:
            out.append(chunk)
            chunk, size = [], 0
        chunk.append(it)
        size += len(it)
    out.append(chunk)
    msgs = []
    for i, c in enumerate(out):
        more = OFPMPF_REPLY_MORE if i < len(out) - 1 else 0
        body = b"".join(c)
        msgs.append(struct.pack("!BBHIHH4x", OFP_VERSION, OFPT_MULTIPART_REPLY, 16 + len(body), xid, mp_type,
                                more) + body)
    return msgs


def flow_stats_replies(xid: int, entries: list[bytes]) -> list[bytes]:
    return multipart_replies(xid, OFPMP_FLOW, entries)


def port_desc_replies(xid: int, ports: list[PortDesc]) -> list[bytes]:
    return multipart_replies(xid, OFPMP_PORT_DESC, [p.pack() for p in ports])


def flow_removed(flow: Flow, reason: int, duration_sec: int, duration_nsec: int, packet_count: int,
                 byte_count: int) -> bytes:
    """OFPT_FLOW_REMOVED (reason 0 idle timeout, 1 hard timeout, 2 delete); the match is the one a
    flow-mod of this flow carries."""
    fm = flow_mod(flow)
    match = fm[48 : 48 + (int.from_bytes(fm[50:52], "big") + 7) // 8 * 8]
    body = struct.pack("!QHBBIIHHQQ", flow.cookie, flow.priority, reason, flow.table, duration_sec, duration_nsec,
                       flow.idle_timeout, flow.hard_timeout, packet_count, byte_count)
    return header(OFPT_FLOW_REMOVED, 0, body + match)
