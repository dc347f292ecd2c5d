"""What a switch may send the VSC, checked before os-ken parses it.

os-ken's message parsers trust the lengths inside a message: a hello element, instruction, queue
property, bundle property or multipart entry of length 0 makes them loop forever, and os-ken serves
every switch from one thread - one such message from one switch would stop the VSC (and a
HELLO_FAILED error whose text is not ASCII raises in os-ken's handler and drops the switch). So a message
reaches os-ken's parsers only if it is of a kind a switch sends and every list os-ken walks in it is
well formed; anything else raises `OFPError`, which os-ken logs (as one line, see vsc.app) before
dropping the message. The checks are on framing only: what the fields mean is os-ken's business,
and the flow-stats entries are `openflow.decode`'s.
"""

from __future__ import annotations

import struct

from openflow import consts as C
from openflow.decode import OFPError, unpack

_TL = struct.Struct("!HH")
_MP = struct.Struct("!HH")
_EXP = struct.Struct("!II")
_ERROR_TYPE = struct.Struct("!H")

# Messages a switch sends a controller in OpenFlow 1.3 (the rest go the other way, and os-ken would
# parse a flow-mod from a switch as readily as one from a controller).
SWITCH_SENDS = frozenset({
    C.OFPT_HELLO, C.OFPT_ERROR, C.OFPT_ECHO_REQUEST, C.OFPT_ECHO_REPLY, C.OFPT_EXPERIMENTER,
    C.OFPT_FEATURES_REPLY, C.OFPT_GET_CONFIG_REPLY, C.OFPT_PACKET_IN, C.OFPT_FLOW_REMOVED,
    C.OFPT_PORT_STATUS, C.OFPT_MULTIPART_REPLY, C.OFPT_BARRIER_REPLY, C.OFPT_ROLE_REPLY,
    C.OFPT_GET_ASYNC_REPLY,
})
# Multipart replies the VSC can use, by the size of their (fixed-size) entries; 0 for flow stats,
# whose entries vsc.app decodes itself (os-ken's body parser is switched off for them).
MULTIPART_ENTRY = {C.OFPMP_DESC: 1056, C.OFPMP_FLOW: 0, C.OFPMP_AGGREGATE: 24, C.OFPMP_TABLE: 24,
                   C.OFPMP_PORT_STATS: 112, C.OFPMP_PORT_DESC: 64}
_MULTIPART_SINGLE = {C.OFPMP_DESC, C.OFPMP_AGGREGATE}


def _refuse(reason: str, code: int = C.OFPBRC_BAD_LEN) -> OFPError:
    return OFPError(C.OFPET_BAD_REQUEST, code, reason)


def _tlvs(buf, off: int, end: int, what: str, align: int = 1) -> None:
    """(type, length) elements from off to end, each (its length rounded up to `align`, as os-ken
    steps over it) at least a header long and inside."""
    while off < end:
        _t, length = unpack(_TL, buf, off, what)
        if length < 4 or off + length > end:
            raise _refuse(f"{what} of length {length}")
        off += (length + align - 1) // align * align


def check(buf, msg_len: int) -> None:
    """Raise OFPError unless the message buf[:msg_len] (a whole message, as os-ken frames it) is one
    os-ken may parse."""
    if msg_len < C.OFP_HEADER_LEN or msg_len > len(buf):
        raise _refuse(f"message length {msg_len}")
    t = buf[1]
    if t not in SWITCH_SENDS:
        raise _refuse(f"message type {t} is not one a switch sends", C.OFPBRC_BAD_TYPE)
    if t == C.OFPT_HELLO:
        _tlvs(buf, 8, msg_len, "hello element")
    elif t == C.OFPT_ERROR:
        (etype,) = unpack(_ERROR_TYPE, buf, 8, "error message")
        if etype == C.OFPET_HELLO_FAILED and not bytes(buf[12:msg_len]).isascii():
            raise _refuse("HELLO_FAILED error whose text is not ASCII")
    elif t == C.OFPT_MULTIPART_REPLY:
        mp_type, _flags = unpack(_MP, buf, 8, "multipart reply")
        size = MULTIPART_ENTRY.get(mp_type)
        body = msg_len - 16
        if size is None:
            raise _refuse(f"multipart reply type {mp_type} is not one the VSC asks for", C.OFPBRC_BAD_MULTIPART)
        if body < 0 or size and (body % size or (mp_type in _MULTIPART_SINGLE and body != size)):
            raise _refuse(f"multipart reply type {mp_type} with a body of {body} bytes")
    elif t == C.OFPT_EXPERIMENTER:
        exp, exp_type = unpack(_EXP, buf, 8, "experimenter message")
        if (exp, exp_type) != (C.ONF_EXPERIMENTER_ID, C.ONF_ET_BUNDLE_CONTROL):
            raise _refuse(f"experimenter 0x{exp:x} message {exp_type} is not one the VSC asks for",
                          C.OFPBRC_BAD_EXPERIMENTER)
        if msg_len < 24:
            raise _refuse("truncated bundle control")
        _tlvs(buf, 24, msg_len, "bundle property", align=8)
