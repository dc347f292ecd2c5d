"""OpenFlow 1.3 wire bytes -> Flow, strictly: anything the codec does not understand raises `OFPError`
with the (type, code) a switch answers with, so the simulated VRS never silently accepts junk. That
holds for truncated and malformed input too: every read checks its bounds first (`unpack` for fixed
structures, explicit length checks in the loops over matches, actions and instructions), so no
`struct.error` or `IndexError` ever leaves the codec.

The hot path (`flow_mod_parts`) avoids building dataclasses: match entries come back as plain
(name, value, mask) tuples and instruction blocks are decoded once per distinct byte string (the
controller sends the same few action lists to thousands of flows), so indexing a flow-mod in the
simulated switch costs a few microseconds.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from openflow.consts import (
    NX_CT_F_COMMIT,
    NX_CT_RECIRC_NONE,
    NX_VENDOR_ID,
    NXAST_CT,
    NXAST_REG_MOVE,
    OFP_VERSION,
    OFPAT_DEC_NW_TTL,
    OFPAT_EXPERIMENTER,
    OFPAT_OUTPUT,
    OFPAT_SET_FIELD,
    OFPBAC_BAD_ARGUMENT,
    OFPBAC_BAD_EXP_TYPE,
    OFPBAC_BAD_EXPERIMENTER,
    OFPBAC_BAD_LEN,
    OFPBAC_BAD_OUT_PORT,
    OFPBAC_BAD_SET_ARGUMENT,
    OFPBAC_BAD_SET_LEN,
    OFPBAC_BAD_SET_TYPE,
    OFPBAC_BAD_TYPE,
    OFPBIC_BAD_LEN,
    OFPBIC_UNKNOWN_INST,
    OFPBMC_BAD_FIELD,
    OFPBMC_BAD_LEN,
    OFPBMC_BAD_MASK,
    OFPBMC_BAD_PREREQ,
    OFPBMC_BAD_TYPE,
    OFPBMC_BAD_WILDCARDS,
    OFPBMC_DUP_FIELD,
    OFPBRC_BAD_LEN,
    OFPBRC_BAD_VERSION,
    OFPET_BAD_ACTION,
    OFPET_BAD_INSTRUCTION,
    OFPET_BAD_MATCH,
    OFPET_BAD_REQUEST,
    OFPIT_APPLY_ACTIONS,
    OFPIT_GOTO_TABLE,
    OFPIT_WRITE_METADATA,
    OFPT_FLOW_MOD,
    OFPT_MULTIPART_REPLY,
)
from openflow.fields import FIELDS, FIELDS_BY_TYPE
from openflow.flow import Action, Ct, DecTtl, Flow, FlowStats, MatchField, Move, Output, SetField

OFPBIC_UNSUP_INST = 1


class OFPError(Exception):
    """A protocol error, carrying the OpenFlow error (type, code) to answer with."""

    def __init__(self, type_: int, code: int, reason: str) -> None:
        super().__init__(f"{reason} (error type {type_}, code {code})")
        self.type = type_
        self.code = code
        self.reason = reason


_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")
_TL = struct.Struct("!HH")
_ACT_OUTPUT = struct.Struct("!IH")
_ACT_EXP = struct.Struct("!IH")
_REG_MOVE = struct.Struct("!HHHII")
_CT = struct.Struct("!HIHB3xH")
_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")


_TRUNCATED = (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN)


def unpack(st: struct.Struct, buf: bytes, off: int, what: str, error: tuple[int, int] = _TRUNCATED) -> tuple:
    """`st` read at `off`, or OFPError `error` naming `what` when the bytes end first: the one way
    untrusted bytes are read into a fixed structure, so a short message is an OpenFlow error."""
    if off < 0 or off + st.size > len(buf):
        raise OFPError(*error, f"truncated {what}: {st.size} bytes at {off} of {len(buf)}")
    return st.unpack_from(buf, off)


def parse_header(msg: bytes, off: int = 0) -> tuple[int, int, int, int]:
    """(version, type, length, xid)."""
    return unpack(_HEADER, msg, off, "OpenFlow header")


# --- match ----------------------------------------------------------------------------------------


def match_items(buf: bytes, off: int, limit: int | None = None) -> tuple[list[tuple[str, int, int | None]], int]:
    """Decode an ofp_match at `off` that must end, padding included, by `limit` (default: the end of
    `buf`): ([(name, value, mask or None)], offset after the padded match)."""
    if limit is None:
        limit = len(buf)
    if limit < off + 4:
        raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_LEN, "truncated match")
    mtype, mlen = _TL.unpack_from(buf, off)
    if mtype != 1:
        raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_TYPE, f"match type {mtype} is not OXM")
    end = off + mlen
    # OVS pulls the padded length before looking inside: a match without its padding is BAD_LEN.
    if mlen < 4 or off + (mlen + 7) // 8 * 8 > limit:
        raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_LEN, f"match length {mlen} (padded) beyond its message")
    items = []
    p = off + 4
    fbt = FIELDS_BY_TYPE
    while p < end:
        if p + 4 > end:
            raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_LEN, "truncated OXM header")
        h = int.from_bytes(buf[p : p + 4], "big")
        fs = fbt.get(h & 0xFFFFFE00)
        if fs is None:
            raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_FIELD, f"unsupported OXM field 0x{h:08x}")
        n = fs.nbytes
        masked = h & 0x100
        if (h & 0xFF) != (2 * n if masked else n) or p + 4 + (h & 0xFF) > end:
            raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_LEN, f"bad length for {fs.name}")
        v = int.from_bytes(buf[p + 4 : p + 4 + n], "big")
        if masked:
            if not fs.maskable:
                raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_MASK, f"{fs.name} is not maskable")
            m = int.from_bytes(buf[p + 4 + n : p + 4 + 2 * n], "big")
            if v & ~m:  # OpenFlow 1.3 (and OVS) refuse value bits the mask does not cover
                raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_WILDCARDS, f"{fs.name} value has bits outside its mask")
            if m == (1 << (8 * n)) - 1:
                m = None  # an all-ones mask is an exact match (OVS prints and compares it so)
            items.append((fs.name, v, m))
        else:
            items.append((fs.name, v, None))
        p += 4 + (h & 0xFF)
    return items, off + (mlen + 7) // 8 * 8


def check_prereqs(items: list[tuple[str, int, int | None]]) -> dict[str, tuple[int, int | None]]:
    """Refuse duplicate fields and fields whose prerequisites (eth_type, ip_proto) are missing, as
    OVS does; returns the items as a dict for callers that want one."""
    byname = {}
    for name, v, m in items:
        if name in byname:
            raise OFPError(OFPET_BAD_MATCH, OFPBMC_DUP_FIELD, f"duplicate field {name}")
        byname[name] = (v, m)
    for name in byname:
        for pname, allowed in FIELDS[name].prereq:
            got = byname.get(pname)
            if got is None or got[1] is not None or got[0] not in allowed:
                raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_PREREQ, f"{name} needs {pname} in {sorted(allowed)}")
    return byname


_IP_ANY = frozenset({0x0800, 0x86DD})


def _action_prereqs(actions) -> tuple:
    need = {}
    for a in actions:
        c = a.__class__
        names = (a.name,) if c is SetField else (a.src, a.dst) if c is Move else ()
        reqs = [r for n in names for r in FIELDS[n].prereq]
        if c is Ct or c is DecTtl:  # conntrack and TTLs exist only for IP (ovs-ofctl agrees)
            reqs.append(("eth_type", _IP_ANY))
        for pname, allowed in reqs:
            need[pname] = need[pname] & allowed if pname in need else allowed
    return tuple(need.items())


def check_action_prereqs(byname: dict[str, tuple[int, int | None]], needs: tuple) -> None:
    """OVS refuses actions on fields the match does not guarantee the packet has (set_field of
    arp_op on a flow that does not match ARP): OFPBAC_MATCH_INCONSISTENT."""
    for pname, allowed in needs:
        got = byname.get(pname)
        if got is None or got[1] is not None or got[0] not in allowed:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_MATCH_INCONSISTENT,
                           f"actions need {pname} in {sorted(allowed)} in the match")


def decode_match(buf: bytes, off: int) -> tuple[tuple[MatchField, ...], int]:
    items, nxt = match_items(buf, off)
    check_prereqs(items)
    return tuple(MatchField(n, v, m) for n, v, m in items), nxt


# --- instructions and actions --------------------------------------------------------------------


def _oxm_field(h: int, what: str):
    fs = FIELDS_BY_TYPE.get(h & 0xFFFFFE00)
    if fs is None or h & 0x100 or (h & 0xFF) != fs.nbytes:
        raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_ARGUMENT, f"unsupported {what} field 0x{h:08x}")
    return fs


def _action(buf: bytes, p: int, alen: int, atype: int) -> Action:
    if atype == OFPAT_OUTPUT:
        if alen != 16:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, "output action length")
        port, max_len = _ACT_OUTPUT.unpack_from(buf, p + 4)
        if port == 0 or port == 0xFFFFFFFF:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_OUT_PORT, f"output to port {port}")
        return Output(port, max_len)
    if atype == OFPAT_SET_FIELD:
        h = int.from_bytes(buf[p + 4 : p + 8], "big")
        fs = FIELDS_BY_TYPE.get(h & 0xFFFFFE00)
        if fs is None or not fs.settable:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_SET_TYPE, f"cannot set field 0x{h:08x}")
        if h & 0x100 or (h & 0xFF) != fs.nbytes or alen != (8 + fs.nbytes + 7) // 8 * 8:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_SET_LEN, f"set_field {fs.name} length")
        return SetField(fs.name, int.from_bytes(buf[p + 8 : p + 8 + fs.nbytes], "big"))
    if atype == OFPAT_DEC_NW_TTL:
        if alen != 8:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, "dec_ttl length")
        return DecTtl()
    if atype == OFPAT_EXPERIMENTER:
        if alen < 16:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, "experimenter action length")
        vendor, subtype = _ACT_EXP.unpack_from(buf, p + 4)
        if vendor != NX_VENDOR_ID:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_EXPERIMENTER, f"experimenter 0x{vendor:x}")
        if subtype == NXAST_REG_MOVE:
            if alen != 24:
                raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, "reg_move length")
            n_bits, src_ofs, dst_ofs, sh, dh = _REG_MOVE.unpack_from(buf, p + 10)
            src, dst = _oxm_field(sh, "move source"), _oxm_field(dh, "move destination")
            if not dst.settable:
                raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_SET_ARGUMENT, f"cannot move into {dst.name}")
            if n_bits == 0 or src_ofs + n_bits > src.bits or dst_ofs + n_bits > dst.bits:
                raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_ARGUMENT, "move bits out of range")
            return Move(src.name, dst.name, n_bits, src_ofs, dst_ofs)
        if subtype == NXAST_CT:
            # Nested actions make a ct() longer than 24 bytes; a shorter one cannot hold its arguments.
            if alen < 24:
                raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, "ct length")
            flags, zone_src, zone, table, alg = _CT.unpack_from(buf, p + 10)
            # Nested actions, ALGs, NAT and zones taken from fields are not simulated: refuse them
            # rather than install a flow that behaves differently from OVS.
            if alen != 24 or zone_src != 0 or alg != 0 or flags & ~NX_CT_F_COMMIT:
                raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_ARGUMENT, "unsupported ct() arguments")
            return Ct(bool(flags & NX_CT_F_COMMIT), zone, None if table == NX_CT_RECIRC_NONE else table)
        raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_EXP_TYPE, f"Nicira action subtype {subtype}")
    raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_TYPE, f"action type {atype}")


def decode_actions(buf: bytes, off: int, end: int) -> tuple[Action, ...]:
    out = []
    p = off
    while p < end:
        if p + 4 > end:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, "truncated action")
        atype, alen = _TL.unpack_from(buf, p)
        if alen < 8 or alen % 8 or p + alen > end:
            raise OFPError(OFPET_BAD_ACTION, OFPBAC_BAD_LEN, f"action length {alen}")
        out.append(_action(buf, p, alen, atype))
        p += alen
    return tuple(out)


# (apply-actions, goto table or None, (metadata, mask) or None, prerequisites the actions put on the
# match: ((field, allowed values), ...) - e.g. set_field on arp_op needs eth_type=0x0806).
Instructions = tuple[tuple[Action, ...], int | None, tuple[int, int] | None, tuple]
NO_INSTRUCTIONS: Instructions = ((), None, None, ())
OFPBAC_MATCH_INCONSISTENT = 10
_INSTR_CACHE: dict[bytes, Instructions] = {}
_INSTR_CACHE_MAX = 200_000


def decode_instructions(blob: bytes) -> Instructions:
    """(apply-actions, goto, write-metadata, match prerequisites) of an instruction list."""
    hit = _INSTR_CACHE.get(blob)
    if hit is not None:
        return hit
    actions: tuple[Action, ...] = ()
    goto = md = None
    p, end = 0, len(blob)
    while p < end:
        if p + 4 > end:
            raise OFPError(OFPET_BAD_INSTRUCTION, OFPBIC_BAD_LEN, "truncated instruction")
        itype, ilen = _TL.unpack_from(blob, p)
        if ilen < 8 or ilen % 8 or p + ilen > end:
            raise OFPError(OFPET_BAD_INSTRUCTION, OFPBIC_BAD_LEN, f"instruction length {ilen}")
        if itype == OFPIT_APPLY_ACTIONS:
            actions = decode_actions(blob, p + 8, p + ilen)
        elif itype == OFPIT_GOTO_TABLE and ilen == 8:
            goto = blob[p + 4]
        elif itype == OFPIT_WRITE_METADATA and ilen == 24:
            md = struct.unpack_from("!QQ", blob, p + 8)
        elif itype in (OFPIT_GOTO_TABLE, OFPIT_WRITE_METADATA):
            raise OFPError(OFPET_BAD_INSTRUCTION, OFPBIC_BAD_LEN, f"instruction {itype} length {ilen}")
        elif 3 <= itype <= 6:
            raise OFPError(OFPET_BAD_INSTRUCTION, OFPBIC_UNSUP_INST, f"instruction {itype} not supported")
        else:
            raise OFPError(OFPET_BAD_INSTRUCTION, OFPBIC_UNKNOWN_INST, f"instruction type {itype}")
        p += ilen
    result = (actions, goto, md, _action_prereqs(actions))
    if len(_INSTR_CACHE) >= _INSTR_CACHE_MAX:
        _INSTR_CACHE.clear()
    _INSTR_CACHE[blob] = result
    return result


# --- messages -------------------------------------------------------------------------------------


class FlowModParts(NamedTuple):
    """A flow-mod without the Flow dataclass: what the simulated switch indexes."""

    xid: int
    cookie: int
    cookie_mask: int
    table: int
    command: int
    idle_timeout: int
    hard_timeout: int
    priority: int
    buffer_id: int
    out_port: int
    out_group: int
    flags: int
    match: list[tuple[str, int, int | None]]
    instructions: Instructions


def flow_mod_parts(msg: bytes) -> FlowModParts:
    if len(msg) < 56:
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, "flow-mod too short")
    v, t, length, xid, cookie, cmask, table, cmd, idle, hard, prio, buf_id, oport, ogroup, flags = (
        _FLOW_MOD.unpack_from(msg)
    )
    if v != OFP_VERSION:
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION, f"flow-mod of OpenFlow version {v}")
    if t != OFPT_FLOW_MOD or length != len(msg):
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, "not a whole flow-mod")
    items, p = match_items(msg, 48)
    check_prereqs(items)  # before the instructions, as OVS checks the whole match first
    instr = decode_instructions(msg[p:]) if p < length else NO_INSTRUCTIONS
    return FlowModParts(xid, cookie, cmask, table, cmd, idle, hard, prio, buf_id, oport, ogroup, flags, items, instr)


class FlowModMsg(NamedTuple):
    command: int
    flags: int
    flow: Flow
    xid: int
    cookie_mask: int
    out_port: int
    out_group: int
    buffer_id: int


def _flow(table, prio, items, instr, cookie, idle, hard) -> Flow:
    actions, goto, md = instr[:3]
    match = tuple(MatchField(n, v, m) for n, v, m in items)
    return Flow(table, prio, match, actions, goto, md, cookie, idle, hard)


def parse_flow_mod(msg: bytes) -> FlowModMsg:
    """(command, flags, Flow, xid, cookie_mask, out_port, out_group, buffer_id) of one flow-mod."""
    p = flow_mod_parts(msg)  # action prerequisites are the switch's business (fastdecode checks them)
    flow = _flow(p.table, p.priority, p.match, p.instructions, p.cookie, p.idle_timeout, p.hard_timeout)
    return FlowModMsg(p.command, p.flags, flow, p.xid, p.cookie_mask, p.out_port, p.out_group, p.buffer_id)


_MULTIPART = struct.Struct("!BBHIHH4x")


def multipart_reply(msg: bytes) -> tuple[int, int, bytes]:
    """(multipart type, flags, body) of one whole OFPT_MULTIPART_REPLY message."""
    _v, t, length, _xid, mp_type, flags = unpack(_MULTIPART, msg, 0, "multipart reply")
    if t != OFPT_MULTIPART_REPLY or length != len(msg):
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, f"not a whole multipart reply (type {t}, length {length})")
    return mp_type, flags, msg[16:]


def flow_stats_reply(body: bytes) -> list[FlowStats]:
    """The entries of an OFPMP_FLOW reply body (the bytes after the 16-byte multipart header)."""
    out = []
    p = 0
    while p < len(body):
        (length, table, dsec, dnsec, prio, idle, hard, flags, cookie, pkts, nbytes) = unpack(
            _FLOW_STATS, body, p, "flow stats entry")
        if length < 56 or p + length > len(body):
            raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, f"flow stats entry length {length}")
        items, q = match_items(body, p + 48, p + length)  # the match belongs to this entry, not the next
        instr = decode_instructions(body[q : p + length]) if q < p + length else NO_INSTRUCTIONS
        flow = _flow(table, prio, items, instr, cookie, idle, hard)
        out.append(FlowStats(flow, dsec, dnsec, pkts, nbytes, {"flags": flags} if flags else {}))
        p += length
    return out
