"""Fuzzing the wire codec: for every decoder, 20,000 inputs - random bytes, truncations, bit flips and
overwritten length fields of valid messages from the encoder - and nothing but `OFPError` may come
out; the cached flow-mod decoder must accept and refuse exactly what the generic one does. Then the
same malformed messages go over TCP to a running simulated VRS and to a running VSC, and both keep
serving. Seeded, so every run sends the same bytes; a failure names the input in hex."""

from __future__ import annotations

import collections
import functools
import logging
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
from tests.of_peers import Controller, barrier, connect_switch

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


# --- over TCP -------------------------------------------------------------------------------------


def wire_messages() -> list[bytes]:
    """Every input of the corpus as one OpenFlow 1.3 frame: version 4 and a header length that says
    how long it is, so that each reaches the peer's parsers as a message of its own (bytes 1 and
    8.. stay as mutated, so the types are as varied as the corpus)."""
    out = []
    for inputs in corpus().values():
        for b in inputs:
            b = bytearray(b.ljust(8, b"\0"))
            b[0] = 4
            b[2:4] = len(b).to_bytes(2, "big")
            out.append(bytes(b))
    return out


@pytest.mark.slow
def test_simulated_vrs_answers_every_malformed_message_and_keeps_serving(caplog):
    from vrs.sim import SimRuntime

    msgs = wire_messages()
    ctl = Controller()
    rt = SimRuntime(("127.0.0.1", ctl.port), None)
    rt.run_in_thread()
    try:
        with caplog.at_level(logging.WARNING, logger="vrs.sim"):
            rt.add_host("vl-fz1", 0xF1, "192.168.79.1")
            peer = ctl.handshake()
            for i in range(0, len(msgs), 2000):
                peer.send(b"".join(msgs[i : i + 2000]))
                barrier(peer, 0xB0000000 + i, timeout=60)  # drains the replies as it goes
            # A normal flow-mod after all that installs, and the connection never dropped.
            peer.send(encode.flow_mod(Flow(0, 0x7FFF, match(reg9=0xF00D), actions=(Output(2),)), xid=77))
            assert not [m for m in barrier(peer, 78) if m[1] == 1]
            host = rt.stats()["hosts"][0]
            assert host["connects"] == 1 and host["errors_sent"] > len(msgs) // 2, host
            assert rt.call(lambda: any(r.priority == 0x7FFF for _, r in rt.hosts["vl-fz1"].switch.flows(0)))
        # Simulator bugs are logged as errors: bad input must not reach one.
        assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        rt.stop()
        ctl.close()


@pytest.mark.slow
def test_vsc_survives_every_malformed_message_and_still_programs_vrss(tmp_path):
    from tests.test_vsc_app import assert_nfd8_policy, host_specs, nfd8_lab

    msgs = wire_messages()
    lab = nfd8_lab(tmp_path)
    of_port = int(lab.vsc.args[lab.vsc.args.index("--of-port") + 1])
    lab.vsc.start()
    peer = None
    try:
        peer = connect_switch(of_port, 0xF2)
        drops: collections.Counter = collections.Counter()  # message type -> connections os-ken dropped on it
        for i in range(0, len(msgs), 100):
            chunk = msgs[i : i + 100]
            if _delivered(peer, b"".join(chunk)):
                continue
            # os-ken dropped the switch on one of them: again one at a time, to deliver all the others.
            for m in chunk:
                if peer.eof or not _delivered(peer, m):
                    drops[m[1]] += peer.eof
                    peer.close()
                    peer = connect_switch(of_port, 0xF2)
        assert lab.vsc.proc.poll() is None
        # Then simulated VRSs connect, and the VSC programs them as it would have anyway.
        lab.rt.run_in_thread()
        lab.rt.add_hosts(host_specs(lab.placement, lab.names))
        assert lab.converged()["endpoints"] == 18
        assert_nfd8_policy(lab)
        log = lab.vsc.log_file.read_text()
        assert log.count("unparsable OpenFlow message") < 20, log[-3000:]
        print(f"\n[fuzz] {len(msgs)} malformed messages to the VSC; os-ken dropped the switch on "
              f"{sum(drops.values())} (by type: {dict(drops)}); {log.count('Traceback')} tracebacks in its log")
    finally:
        if peer is not None:
            peer.close()
        lab.__exit__(None, None, None)


_sync_xid = iter(range(0xE0000000, 0xFFFFFFFF))


def _delivered(peer, data: bytes) -> bool:
    """Send data, then an echo request: True if the reply comes (the connection still serves)."""
    xid = next(_sync_xid)
    try:
        peer.send(data + encode.echo_request(xid, b"sync"))
    except OSError:
        return False
    echo, _ = peer.until(lambda m: m[1] == 3 and int.from_bytes(m[4:8], "big") == xid, 10)
    return echo is not None
