"""Fuzzing the wire codec: for every decoder, 20,000 inputs - random bytes, truncations, bit flips and
overwritten length fields of valid messages from the encoder - and nothing but `OFPError` may come
out; the cached flow-mod decoder must accept and refuse exactly what the generic one does. Then the
same malformed messages go over TCP to a running simulated VRS and to a running VSC, and both keep
serving. Seeded, so every run sends the same bytes; a failure names the input in hex."""

from __future__ import annotations

import functools
import random
import struct

import pytest

from openflow import decode, encode, fastdecode, switchmsg
from openflow.consts import (
    OFPBAC_BAD_LEN,
    OFPET_BAD_ACTION,
    OFPFC_DELETE,
    OFPFC_MODIFY,
    OFPT_MULTIPART_REPLY,
    OFPTT_ALL,
)
from openflow.flow import OFPP_CONTROLLER, OFPP_IN_PORT, Ct, DecTtl, Flow, Move, Output, SetField, match

N = 20_000
SEED = 20_130_624
OFPBAC_MATCH_INCONSISTENT = 10

FLOWS = [
    Flow(0, 100, match(in_port=5, eth_type=0x0800), goto=20),
    Flow(0, 110, match(in_port=1, tun_id=900), goto=30, write_metadata=(5, 0xFF)),
    Flow(20, 50, match(eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFFFFFF00)),
         actions=(SetField("tun_id", 900), SetField("tun_ipv4_dst", 0xC0A80001), Output(1))),
    Flow(30, 10, match(eth_type=0x0800, ip_proto=6, tcp_dst=(80, 0xFFF0), ct_state=(0x21, 0x21)),
         actions=(Ct(commit=True, zone=5, table=40),)),
    Flow(40, 5, match(eth_type=0x0806, arp_op=1, arp_tpa=0x0A000001),
         actions=(SetField("arp_op", 2), Move("arp_sha", "arp_tha", 48), Output(OFPP_IN_PORT))),
    Flow(50, 1, match(reg0=1, reg6=(2, 0xF), eth_type=0x0800, eth_src=0x020000000001, metadata=(1, 0xFF)),
         actions=(DecTtl(), Output(OFPP_CONTROLLER, 128)), cookie=0xC0FFEE, idle_timeout=30),
    Flow(60, 0),
]


def _seed_flow_mods() -> list[bytes]:
    out = [encode.flow_mod(f, xid=i) for i, f in enumerate(FLOWS)]
    out += [encode.flow_mod(f, OFPFC_MODIFY, 100 + i, strict=True) for i, f in enumerate(FLOWS)]
    out.append(encode.flow_mod(Flow(OFPTT_ALL, 0, match(reg5=3)), OFPFC_DELETE, 200, cookie_mask=0xFF))
    return out


def _seed_stats_replies() -> list[bytes]:
    entries = [switchmsg.flow_stats_entry(f, 3, 5, 7, 420) for f in FLOWS]
    return switchmsg.flow_stats_replies(9, entries) + switchmsg.flow_stats_replies(10, entries[2:4])


def _instructions(fm: bytes) -> bytes:
    return fm[48 + (int.from_bytes(fm[50:52], "big") + 7) // 8 * 8 :]


def _actions(fm: bytes) -> bytes:
    """The apply-actions list of a flow-mod (or b"")."""
    blob = _instructions(fm)
    p = 0
    while p + 8 <= len(blob):
        itype, ilen = struct.unpack_from("!HH", blob, p)
        if itype == 4:
            return blob[p + 8 : p + ilen]
        p += max(ilen, 8)
    return b""


def mutants(seeds: list[bytes], rng: random.Random, n: int) -> list[bytes]:
    """n inputs derived from `seeds`: a few whole random strings, the rest truncations, bit flips,
    overwritten 16-bit fields (lengths are where parsers go wrong) and splices of two seeds."""
    out = []
    for i in range(n):
        seed = seeds[i % len(seeds)]
        kind = rng.random()
        if kind < 0.1:
            b = bytearray(rng.randbytes(rng.randrange(0, 2 * len(seed) + 9)))
            if b and rng.random() < 0.7:
                b[: min(len(b), 4)] = seed[: min(len(b), 4)]  # a plausible header gets past the first check
        elif kind < 0.3:
            b = bytearray(seed[: rng.randrange(0, len(seed))])
        elif kind < 0.6:
            b = bytearray(seed)
            for _ in range(rng.randrange(1, 5)):
                bit = rng.randrange(len(b) * 8)
                b[bit // 8] ^= 1 << (bit % 8)
        elif kind < 0.85:
            b = bytearray(seed)
            for _ in range(rng.randrange(1, 3)):
                p = rng.randrange(0, max(len(b) - 1, 1)) & ~1
                b[p : p + 2] = rng.choice([0, 1, 4, 7, 8, 15, 16, 24, 0xFFFF, rng.randrange(0x10000)]).to_bytes(2, "big")
        else:
            other = seeds[rng.randrange(len(seeds))]
            cut = rng.randrange(len(seed) + 1)
            b = bytearray(seed[:cut] + other[rng.randrange(len(other) + 1) :])
        if len(b) >= 4 and rng.random() < 0.5:
            b[2:4] = len(b).to_bytes(2, "big")  # a consistent header length goes deeper
        out.append(bytes(b))
    return out


@functools.cache
def corpus() -> dict[str, list[bytes]]:
    rng = random.Random(SEED)
    fms = _seed_flow_mods()
    replies = _seed_stats_replies()
    bodies = [r[16:] for r in replies]
    flow_mods = mutants(fms, rng, N)
    return {
        "parse_header": mutants(fms[:3] + replies[:1], rng, N),
        "flow_mod": flow_mods,
        "match": mutants([fm[48:] for fm in fms], rng, N),
        "instructions": mutants([_instructions(fm) for fm in fms if _instructions(fm)], rng, N),
        "actions": mutants([_actions(fm) for fm in fms if _actions(fm)], rng, N),
        "multipart_reply": mutants(replies, rng, N),
        "flow_stats_reply": mutants(bodies, rng, N),
    }


def _only_ofp_errors(decoder, inputs: list[bytes]) -> int:
    """Run decoder on every input; the number it refused (with OFPError - anything else fails)."""
    refused = 0
    for b in inputs:
        try:
            decoder(b)
        except decode.OFPError:
            refused += 1
        except Exception as e:
            raise AssertionError(f"{type(e).__name__}: {e} on input {b.hex()}") from e
    return refused


DECODERS = {
    "parse_header": decode.parse_header,
    "match": lambda b: decode.decode_match(b, 0),
    "instructions": decode.decode_instructions,
    "actions": lambda b: decode.decode_actions(b, 0, len(b)),
    "multipart_reply": decode.multipart_reply,
    "flow_stats_reply": decode.flow_stats_reply,
}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_raises_nothing_but_openflow_errors(name):
    inputs = corpus()[name]
    refused = _only_ofp_errors(DECODERS[name], inputs)
    assert 0 < refused < len(inputs), refused  # the corpus exercises both outcomes


def _outcome(decoder, b: bytes):
    try:
        decoder(b)
        return "ok"
    except decode.OFPError as e:
        return e.type, e.code
    except Exception as e:
        raise AssertionError(f"{type(e).__name__}: {e} on input {b.hex()}") from e


def test_flow_mod_decoders_raise_nothing_but_openflow_errors_and_agree():
    """The generic decoder and the cached per-shape decoders, on the same 20,000 flow-mods: the same
    verdict, the same (type, code) - except that only the switch's decoder checks the actions
    against the match (OFPBAC_MATCH_INCONSISTENT)."""
    fastdecode._DECODERS.clear()
    counts = {"ok": 0, "refused": 0}
    for b in corpus()["flow_mod"]:
        generic = _outcome(decode.parse_flow_mod, b)
        fast = _outcome(fastdecode.flow_mod, b)
        again = _outcome(fastdecode.flow_mod, b)  # now through the decoder the first call compiled
        assert fast == again, b.hex()
        if generic == "ok" and fast == (OFPET_BAD_ACTION, OFPBAC_MATCH_INCONSISTENT):
            continue
        assert fast == generic, (fast, generic, b.hex())
        counts["ok" if generic == "ok" else "refused"] += 1
    assert counts["ok"] > 100 and counts["refused"] > 100, counts


def test_truncations_of_every_seed_are_openflow_errors():
    """Every prefix of every valid message, header length left as it was or fixed up."""
    for seed in _seed_flow_mods():
        for n in range(len(seed)):
            for b in (seed[:n], seed[:2] + n.to_bytes(2, "big") + seed[4:n] if n >= 4 else seed[:n]):
                _only_ofp_errors(decode.parse_flow_mod, [b])
                _only_ofp_errors(fastdecode.flow_mod, [b])
    for reply in _seed_stats_replies():
        assert decode.parse_header(reply)[1] == OFPT_MULTIPART_REPLY
        for n in range(len(reply)):
            _only_ofp_errors(decode.multipart_reply, [reply[:n]])
            _only_ofp_errors(decode.flow_stats_reply, [reply[16:n]])
    assert OFPBAC_BAD_LEN  # (imported for the reader: truncated actions are BAD_LEN)
