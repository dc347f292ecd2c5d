"""Packets between the controller and the simulated switch: PACKET_OUT runs its actions on the packet
(an output to TABLE goes through the pipeline, a tunnel output into the remote switch, as OVS would
forward it), and an output to CONTROLLER during an injecting trace sends a real PACKET_IN."""

from __future__ import annotations

import collections
import struct

from openflow import switchmsg
from openflow.consts import OFP_NO_BUFFER, OFPBRC_BAD_LEN, OFPET_BAD_REQUEST
from openflow.decode import OFPError, decode_actions, unpack
from vrs.sim.packet import Packet, fields_to_bytes, ip_int, mac_int

OFPBRC_BUFFER_UNKNOWN = 8
OFPR_ACTION = 1
RECENT = 64  # packet-outs kept (with their trace) for inspection
_PACKET_OUT = struct.Struct("!IIH6x")


def recent_log() -> collections.deque:
    return collections.deque(maxlen=RECENT)


def packet_out(sw, msg: bytes, xid: int) -> list[bytes]:
    buffer_id, in_port, alen = unpack(_PACKET_OUT, msg, 8, "packet-out")
    if buffer_id != OFP_NO_BUFFER:
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BUFFER_UNKNOWN, "the simulated switch buffers no packets")
    if 24 + alen > len(msg):
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, "packet-out actions overrun the message")
    actions = decode_actions(msg, 24, 24 + alen)
    data = msg[24 + alen :]
    try:
        from scapy.layers.l2 import Ether

        pkt = Packet.from_scapy(Ether(data), host=sw.name, in_port=in_port)
    except Exception as e:  # a frame the simulator cannot model: say so rather than pretend
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, f"packet-out data not understood: {e}") from None
    fields = pkt.fields(in_port, mac_int(pkt.eth_src) or 0, mac_int(pkt.eth_dst) or 0, ip_int(pkt.src_ip))
    if sw.fabric is not None:
        result = sw.fabric.trace_fields(sw, fields, True, len(data), actions=actions)
    else:
        from vrs.sim import pipeline

        result = pipeline.run_actions(sw, fields, actions, len(data))
    sw.packet_outs.append(result)
    sw.stats["packet_outs"] = sw.stats.get("packet_outs", 0) + 1
    return []


def packet_in(sw, fields: dict[str, int], table: int, cookie: int, length: int) -> None:
    if sw.notify is None:
        return
    data = fields_to_bytes(fields)
    sw.notify(switchmsg.packet_in(OFP_NO_BUFFER, len(data), OFPR_ACTION, table, cookie, fields["in_port"], data))
    sw.stats["packet_ins"] = sw.stats.get("packet_ins", 0) + 1
