"""Flow-mod decoding specialised per shape, for the simulated switch's hot path.

The first flow-mod of a shape (its sequence of OXM headers) is decoded generically and compiles a
decoder: one `struct.unpack_from` over the fixed header and the whole match, a check that the OXM
headers are the expected ones, prerequisite checks as constant comparisons, and the values returned
in canonical field order with their masks - ready to be a classifier key. Decoders are found by
(match length, first OXM header); a shape that shares that key with another one is told apart by
the header check, so a wrong guess costs a retry, never a wrong decode.

A compiled decoder makes the generic decoder's checks: the OXM headers and the match type are
compared, a message too short for the padded match fails its unpack, and anything it does not
accept goes to the generic decoder, which names the error. Each new shape costs a compile, so the
decoders kept are bounded (a peer inventing shapes cannot grow them without end).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from openflow.consts import (
    OFP_VERSION,
    OFPBMC_BAD_PREREQ,
    OFPBMC_BAD_WILDCARDS,
    OFPBMC_DUP_FIELD,
    OFPBRC_BAD_LEN,
    OFPET_BAD_MATCH,
    OFPET_BAD_REQUEST,
    OFPT_FLOW_MOD,
)
from openflow.decode import (
    NO_INSTRUCTIONS,
    OFPError,
    check_action_prereqs,
    decode_instructions,
    flow_mod_parts,
)
from openflow.fields import FIELD_ORDER, FIELDS, FIELDS_BY_TYPE

_FIXED = "!BBHIQQBBHHHIIIH2xHH"  # flow-mod fixed part + ofp_match type/length
_FIXED_N = 17  # number of values it yields
_KEY = struct.Struct("!HI")  # (match length, first OXM header) at offset 50


def _compile(shape: tuple[tuple[int, bool], ...], mlen: int):
    """shape: ((OXM header, masked), ...) in wire order."""
    fmt = [_FIXED]
    # Version, type and length of the message and the match type (OFPMT_OXM) here rather than before
    # the lookup: comparing unpacked values is cheaper than slicing the header (the match length is
    # part of the lookup key).
    checks = [f"v[0] != {OFP_VERSION}", f"v[1] != {OFPT_FLOW_MOD}", "v[2] != len(msg)", "v[15] != 1"]
    exprs: dict[str, tuple[str, str]] = {}  # name -> (value expr, mask expr)
    idx = _FIXED_N
    wild = []  # value bits outside the mask: OFPBMC_BAD_WILDCARDS, as OVS answers
    names = [FIELDS_BY_TYPE[h & 0xFFFFFE00].name for h, _ in shape]
    if len(set(names)) != len(names):
        raise OFPError(OFPET_BAD_MATCH, OFPBMC_DUP_FIELD, "duplicate match field")
    for h, masked in shape:
        fs = FIELDS_BY_TYPE[h & 0xFFFFFE00]
        full = (1 << FIELDS[fs.name].bits) - 1  # the canonical width (NXM_OF_IN_PORT is 16 bits)
        fmt.append("I")
        checks.append(f"v[{idx}] != {h}")
        idx += 1
        parts = []
        for _ in range(2 if masked else 1):
            if fs.nbytes == 6:
                fmt.append("HI")
                parts.append(f"((v[{idx}] << 32) | v[{idx + 1}])")
                idx += 2
            else:
                fmt.append({1: "B", 2: "H", 4: "I", 8: "Q"}[fs.nbytes])
                parts.append(f"v[{idx}]")
                idx += 1
        if masked:
            exprs[fs.name] = (parts[0], parts[1])
            wild.append(f"{parts[0]} & ~{parts[1]}")
        else:
            exprs[fs.name] = (parts[0], str(full))
    fmt.append(f"{(mlen + 7) // 8 * 8 - mlen}x")
    pre = []
    for name in names:
        for pname, allowed in FIELDS[name].prereq:
            if pname not in exprs or exprs[pname][1] != str((1 << FIELDS[pname].bits) - 1):
                raise OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_PREREQ, f"{name} needs {pname}")
            pre.append(f"{exprs[pname][0]} not in {set(allowed)!r}")
    order = sorted(names, key=FIELD_ORDER.__getitem__)
    # Exact-only shapes share one masks tuple instead of building one per message.
    mask_exprs = [exprs[n][1] for n in order]
    const_masks = all(m.isdigit() for m in mask_exprs)
    masks = "MASKS" if const_masks else f"({''.join(m + ', ' for m in mask_exprs)})"
    # For the rare flows whose actions need match prerequisites (ARP responder, L4 rewrites).
    byname = "{" + "".join(
        f"{n!r}: ({exprs[n][0]}, {'None' if exprs[n][1].isdigit() else exprs[n][1]}), " for n in order) + "}"
    unpack = struct.Struct("".join(fmt))
    end = unpack.size
    src = f"""
def dec(msg):
    v = unpack_from(msg)
    if {' or '.join(checks)}:
        return None
    if {' or '.join(wild) if wild else 'False'}:
        raise wildcards_error
    if {' or '.join(pre) if pre else 'False'}:
        raise prereq_error
    instr = decode_instructions(msg[{end}:]) if len(msg) > {end} else EMPTY
    if instr[3]:
        check_action_prereqs({byname}, instr[3])
    return (v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[12], v[13], v[14],
            NAMES, {masks}, ({''.join(exprs[n][0] + ', ' for n in order)}), instr)
"""
    ns = {
        "unpack_from": unpack.unpack_from,
        "decode_instructions": decode_instructions,
        "EMPTY": NO_INSTRUCTIONS,
        "check_action_prereqs": check_action_prereqs,
        "NAMES": tuple(order),
        "MASKS": tuple(int(m) for m in mask_exprs) if const_masks else None,
        "prereq_error": OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_PREREQ, "match prerequisites not met"),
        "wildcards_error": OFPError(OFPET_BAD_MATCH, OFPBMC_BAD_WILDCARDS, "value has bits outside its mask"),
    }
    exec(compile(src, "<flow_mod decoder>", "exec"), ns)  # noqa: S102
    return ns["dec"], end


_DECODERS: dict[tuple[int, int], list[Callable]] = {}
# A controller uses a few dozen match shapes; past this many, start over (a peer making up shapes).
DECODERS_MAX = 1024
_compiled = [0]


def compiled_decoders() -> int:
    return _compiled[0]


def flow_mod(msg: bytes) -> tuple:
    """Decode one whole flow-mod for indexing:
    (xid, cookie, cookie_mask, table, command, idle_timeout, hard_timeout, priority, out_port,
     out_group, flags, field names (canonical order), masks, masked values, (actions, goto, metadata)).
    Exact fields carry an all-ones mask so that exact and all-ones-masked matches are one flow."""
    if len(msg) < 56:
        raise OFPError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, "flow-mod too short")
    key = _KEY.unpack_from(msg, 50)
    cands = _DECODERS.get(key)
    if cands:
        for dec in cands:
            try:
                r = dec(msg)
            except struct.error:
                break  # shorter than the padded match: the generic decoder names the problem
            if r is not None:
                return r
    # Unknown shape, or one the cached decoders refused: decode generically (raises the precise
    # error for bad input), then compile.
    items = flow_mod_parts(msg).match
    mlen = key[0]
    shape = []
    p = 52
    for _ in items:
        h = int.from_bytes(msg[p : p + 4], "big")
        shape.append((h, bool(h & 0x100)))
        p += 4 + (h & 0xFF)
    # An empty match's "first OXM header" is its padding: whatever it holds, the shape is the same.
    key = (mlen, shape[0][0] if shape else 0)
    for dec in _DECODERS.get(key, ()):
        r = dec(msg)
        if r is not None:
            return r
    if _compiled[0] >= DECODERS_MAX:
        _DECODERS.clear()
        _compiled[0] = 0
    dec, _end = _compile(tuple(shape), mlen)
    _DECODERS.setdefault(key, []).append(dec)
    _compiled[0] += 1
    r = dec(msg)
    if r is None:  # cannot happen for a message the generic decoder accepted
        raise OFPError(OFPET_BAD_MATCH, 0, "decoder compile mismatch")
    return r
