"""ONF EXT-230 bundles (OpenFlow 1.4 bundles carried as experimenter messages in 1.3) for the
simulated switch: messages are decoded and checked when added, staged, and applied on commit all or
nothing - a failing message rolls back the ones before it and the commit answers with its error.

The controller sends every flow-mod inside a bundle, so bundle-add and commit have fast paths for
the common case (a plain ADD into an open bundle) next to the general ones."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from openflow import consts as C
from openflow import fastdecode, switchmsg
from openflow.decode import OFPError, unpack

_CTRL = struct.Struct("!IIIHH")
_ADD = struct.Struct("!IIIxxH")
_EXPERIMENTER = struct.Struct("!II")
_ONF_ADD = struct.pack("!II", C.ONF_EXPERIMENTER_ID, C.ONF_ET_BUNDLE_ADD_MESSAGE)


@dataclass(slots=True)
class Bundle:
    flags: int
    # Decoded flow-mods only: a staged bundle of a few hundred thousand flows should not also hold
    # their wire bytes (an error reply re-encodes the one it quotes).
    msgs: list
    closed: bool = False


def restore(rule, instr, cookie, n_packets, n_bytes) -> None:
    rule.instr, rule.cookie, rule.n_packets, rule.n_bytes = instr, cookie, n_packets, n_bytes


def on_experimenter(sw, msg: bytes, xid: int) -> list[bytes]:
    exp, exp_type = unpack(_EXPERIMENTER, msg, 8, "experimenter message")
    if exp != C.ONF_EXPERIMENTER_ID:
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXPERIMENTER, f"experimenter 0x{exp:x}")
    if exp_type == C.ONF_ET_BUNDLE_CONTROL:
        return control(sw, msg, xid)
    if exp_type == C.ONF_ET_BUNDLE_ADD_MESSAGE:
        return add(sw, msg, xid)
    raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_EXP_TYPE, f"ONF message {exp_type}")


def add_fast(sw, msg: bytes) -> list[bytes] | None:
    """A bundle-add holding exactly one flow-mod with the right xid, for an open bundle with the same
    flags; anything else goes the general way (which finds the precise error)."""
    b = sw.bundles.get(int.from_bytes(msg[16:20], "big"))
    n = len(msg)
    if (b is None or b.closed or msg[8:16] != _ONF_ADD or n < 80 or msg[25] != C.OFPT_FLOW_MOD
            or ((msg[26] << 8) | msg[27]) != n - 24 or msg[28:32] != msg[4:8]
            or ((msg[22] << 8) | msg[23]) != b.flags):
        return sw.handle(msg)
    try:
        fm = fastdecode.flow_mod(msg[24:])
        sw.check_tables(fm)
        b.msgs.append(fm)
    except Exception as e:
        return sw.refuse(msg, e)
    return None


def add(sw, msg: bytes, xid: int) -> list[bytes]:
    _e, _t, bid, flags = unpack(_ADD, msg, 8, "bundle-add")
    inner = msg[24:]
    if len(inner) < 8 or int.from_bytes(inner[2:4], "big") > len(inner):
        return sw.error(xid, 0, C.OFPBFC_MSG_BAD_LEN, msg)
    inner = inner[: int.from_bytes(inner[2:4], "big")]  # properties may follow the message
    if int.from_bytes(inner[4:8], "big") != xid:
        return sw.error(xid, 0, C.OFPBFC_MSG_BAD_XID, msg)
    if inner[1] != C.OFPT_FLOW_MOD:
        return sw.error(xid, 0, C.OFPBFC_MSG_UNSUP, msg)
    b = sw.bundles.get(bid)
    if b is None:  # a bundle-add to an unknown id opens it (OpenFlow 1.4 section 7.3.9)
        b = sw.bundles[bid] = Bundle(flags, [])
    if b.closed:
        return sw.error(xid, 0, C.OFPBFC_BUNDLE_CLOSED, msg)
    if flags != b.flags:
        return sw.error(xid, 0, C.OFPBFC_BAD_FLAGS, msg)
    fm = fastdecode.flow_mod(inner)
    sw.check_tables(fm)  # these errors answer the add (quoting it), as in OVS; the bundle stays usable
    b.msgs.append(fm)
    return []


def control(sw, msg: bytes, xid: int) -> list[bytes]:
    _e, _t, bid, ctype, flags = unpack(_CTRL, msg, 8, "bundle control")
    b = sw.bundles.get(bid)

    def reply(t: int) -> list[bytes]:
        return [switchmsg.bundle_ctrl_reply(xid, bid, t, 0)]  # OVS 3.1 answers with flags 0

    if ctype == C.OFPBCT_OPEN_REQUEST:
        if b is not None:
            return sw.error(xid, 0, C.OFPBFC_BUNDLE_EXIST, msg)
        sw.bundles[bid] = Bundle(flags, [])
        return reply(C.OFPBCT_OPEN_REPLY)
    if ctype not in (C.OFPBCT_CLOSE_REQUEST, C.OFPBCT_COMMIT_REQUEST, C.OFPBCT_DISCARD_REQUEST):
        return sw.error(xid, 0, C.OFPBFC_BAD_TYPE, msg)
    if b is None:
        return sw.error(xid, 0, C.OFPBFC_BAD_ID, msg)
    if ctype == C.OFPBCT_DISCARD_REQUEST:
        del sw.bundles[bid]
        return reply(C.OFPBCT_DISCARD_REPLY)
    if flags != b.flags:
        return sw.error(xid, 0, C.OFPBFC_BAD_FLAGS, msg)
    if ctype == C.OFPBCT_CLOSE_REQUEST:
        if b.closed:
            return sw.error(xid, 0, C.OFPBFC_BUNDLE_CLOSED, msg)
        b.closed = True
        return reply(C.OFPBCT_CLOSE_REPLY)
    del sw.bundles[bid]
    failed = commit(sw, b)
    if failed is not None:
        fm, e = failed
        return sw.error(fm[0], e.type, e.code, _reencode(fm)) + sw.error(xid, 0, C.OFPBFC_MSG_FAILED, msg)
    sw.stats["bundles_committed"] += 1
    return reply(C.OFPBCT_COMMIT_REPLY)


def commit(sw, b: Bundle):
    """Apply every staged flow-mod; on the first failure undo the ones applied and return
    ((decoded, message), error). Plain ADDs take an inlined path; the rest go through sw.apply."""
    undo: list = []
    now = time.monotonic()
    fast = 0
    tables, n_tables = sw.tables, sw.n_tables
    for fm in b.msgs:
        table = fm[3]
        instr = fm[14]
        goto = instr[1]
        if (fm[4] != C.OFPFC_ADD or fm[10] or fm[5] or fm[6] or table >= n_tables
                or (goto is not None and (goto <= table or goto >= n_tables))):
            try:
                sw.apply(fm, undo)
            except OFPError as e:
                rollback(undo)
                sw.pending_removed.clear()
                return fm, e
            continue
        fast += 1
        t = tables[table] or sw.table(table)
        rule, old = t.insert(fm[11], fm[12], fm[13], fm[7], fm[1], instr, fm[5], fm[6], 0, now)
        undo.append((t.remove, rule))
        if old is not None:
            rule.n_packets, rule.n_bytes = old.n_packets, old.n_bytes
            undo.append((t.reinsert, old))
    sw.stats["flow_mods"] += fast  # sw.apply counts the others
    sw.flush_removed()
    return None


def rollback(undo: list) -> None:
    for fn, arg in reversed(undo):
        if fn is restore:
            fn(*arg)
        else:
            fn(arg)


def _reencode(fm: tuple) -> bytes:
    """The flow-mod a decoded tuple came from (same meaning; match fields in canonical order)."""
    from openflow import encode
    from openflow.fields import FIELDS
    from openflow.flow import Flow, MatchField

    xid, cookie, cmask, table, cmd, idle, hard, prio, oport, ogroup, flags, names, masks, values, instr = fm
    full = {n: (1 << FIELDS[n].bits) - 1 for n in names}
    match = tuple(MatchField(n, v, None if m == full[n] else m) for n, m, v in zip(names, masks, values, strict=True))
    flow = Flow(table, prio, match, instr[0], instr[1], instr[2], cookie, idle, hard)
    return encode.flow_mod(flow, cmd, xid, out_port=oport, out_group=ogroup, flags=flags, cookie_mask=cmask)
