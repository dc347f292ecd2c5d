"""Malformed and truncated wire input: every decoder answers with `OFPError` carrying the (type, code)
OVS would send, never a `struct.error` or an `IndexError`, and the cached flow-mod decoders make the
same checks as the generic decoder they stand in for."""

from __future__ import annotations

import pytest

from openflow import decode, encode, fastdecode, switchmsg
from openflow.consts import (
    OFPBAC_BAD_LEN,
    OFPBMC_BAD_LEN,
    OFPBMC_BAD_TYPE,
    OFPBRC_BAD_LEN,
    OFPBRC_BAD_VERSION,
    OFPET_BAD_ACTION,
    OFPET_BAD_MATCH,
    OFPET_BAD_REQUEST,
    OFPMP_FLOW,
)
from openflow.flow import Ct, Flow, Output, SetField, match


def _set_length(msg: bytes) -> bytes:
    return msg[:2] + len(msg).to_bytes(2, "big") + msg[4:]


def _without_match_padding(msg: bytes) -> bytes:
    """The flow-mod with its match's padding cut out (and its header length fixed up)."""
    mlen = int.from_bytes(msg[50:52], "big")
    return _set_length(msg[: 48 + mlen] + msg[48 + (mlen + 7) // 8 * 8 :])


def _error(fn, *args) -> tuple[int, int]:
    with pytest.raises(decode.OFPError) as e:
        fn(*args)
    return e.value.type, e.value.code


def test_cached_decoder_checks_the_match_type():
    msg = encode.flow_mod(Flow(0, 1, match(reg0=1), actions=(Output(1),)))
    fastdecode.flow_mod(msg)  # compiles (and caches) the decoder of this shape
    standard = msg[:48] + b"\x00\x00" + msg[50:]  # OFPMT_STANDARD: an OpenFlow 1.0-style match
    assert _error(decode.parse_flow_mod, standard) == (OFPET_BAD_MATCH, OFPBMC_BAD_TYPE)
    assert _error(fastdecode.flow_mod, standard) == (OFPET_BAD_MATCH, OFPBMC_BAD_TYPE)


def test_flow_mod_without_match_padding_is_bad_match_length():
    msg = encode.flow_mod(Flow(0, 1, match(reg1=7)))  # a 12-byte match, padded to 16
    short = _without_match_padding(msg)
    for _ in range(2):  # the first call decodes generically, the second through the cached decoder
        assert _error(fastdecode.flow_mod, short) == (OFPET_BAD_MATCH, OFPBMC_BAD_LEN)
        assert _error(decode.parse_flow_mod, short) == (OFPET_BAD_MATCH, OFPBMC_BAD_LEN)
        fastdecode.flow_mod(msg)


def test_flow_mod_without_match_padding_before_instructions_is_an_openflow_error():
    """With instructions after it, the padding OVS pulls is their first bytes: what is left is no
    longer an instruction list, and both decoders say so alike."""
    msg = encode.flow_mod(Flow(0, 1, match(reg1=8), actions=(Output(1),)))
    short = _without_match_padding(msg)
    fastdecode.flow_mod(msg)
    assert _error(fastdecode.flow_mod, short) == _error(decode.parse_flow_mod, short)


def test_flow_mod_of_another_version_is_refused():
    msg = encode.flow_mod(Flow(0, 1, match(reg2=1)))
    fastdecode.flow_mod(msg)
    assert _error(fastdecode.flow_mod, b"\x05" + msg[1:]) == (OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION)
    assert _error(decode.parse_flow_mod, b"\x05" + msg[1:]) == (OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION)


@pytest.mark.parametrize("n", range(8))
def test_truncated_header_is_bad_length(n):
    assert _error(decode.parse_header, encode.barrier_request(1)[:n]) == (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN)


def _stats_reply() -> bytes:
    flows = [Flow(0, 10 + i, match(reg0=i), actions=(SetField("reg1", i), Output(2))) for i in range(3)]
    (reply,) = switchmsg.flow_stats_replies(9, [switchmsg.flow_stats_entry(f) for f in flows])
    return reply


@pytest.mark.parametrize("n", [0, 8, 12, 15])
def test_truncated_multipart_reply_is_bad_length(n):
    msg = _stats_reply()
    assert decode.multipart_reply(msg)[0] == OFPMP_FLOW
    assert _error(decode.multipart_reply, msg[:n]) == (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN)
    # A header claiming more (or less) than the bytes given is not a whole message either.
    assert _error(decode.multipart_reply, msg[:-8]) == (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN)


def test_truncated_flow_stats_reply_is_an_openflow_error():
    body = decode.multipart_reply(_stats_reply())[2]
    assert len(decode.flow_stats_reply(body)) == 3
    for n in range(1, len(body)):
        if n % (len(body) // 3) == 0:  # whole entries: a shorter but valid reply
            continue
        with pytest.raises(decode.OFPError):
            decode.flow_stats_reply(body[:n])


def test_flow_stats_entry_whose_match_runs_past_it_is_refused():
    entry = switchmsg.flow_stats_entry(Flow(0, 5, match(reg0=1)))  # 48 + a 12-byte match padded to 16
    assert len(entry) == 64 and len(decode.flow_stats_reply(entry)) == 1
    # The entry says it ends after 56 bytes, inside its own match: the match's bytes exist, but not in it.
    short = (56).to_bytes(2, "big") + entry[2:]
    assert _error(decode.flow_stats_reply, short) == (OFPET_BAD_MATCH, OFPBMC_BAD_LEN)


def test_ct_action_shorter_than_its_arguments_is_bad_length():
    msg = encode.flow_mod(Flow(0, 1, match(eth_type=0x0800), actions=(Ct(commit=True, zone=3, table=4),)))
    ct = msg.rindex(b"\xff\xff\x00\x18\x00\x00\x23\x20")  # the Nicira ct action: type 0xffff, length 24
    # Say the action is 16 bytes long and end the message (and the instruction) there.
    short = msg[: ct + 2] + b"\x00\x10" + msg[ct + 4 : ct + 16]
    short = short[: ct - 8 + 2] + (len(short) - ct + 8).to_bytes(2, "big") + short[ct - 8 + 4 :]
    short = _set_length(short)
    assert _error(decode.parse_flow_mod, short) == (OFPET_BAD_ACTION, OFPBAC_BAD_LEN)
    assert _error(fastdecode.flow_mod, short) == (OFPET_BAD_ACTION, OFPBAC_BAD_LEN)


def test_compiled_decoders_are_bounded():
    """Every distinct match shape compiles a decoder: a peer sending endless new shapes must not grow
    the cache without end."""
    for i in range(1, fastdecode.DECODERS_MAX + 50):
        # Registers 0..7 each absent, exact or masked: 3^8 shapes.
        kinds = [i // 3**r % 3 for r in range(8)]
        fields = {f"reg{r}": 1 if k == 1 else (1, 0xFF) for r, k in enumerate(kinds) if k}
        fastdecode.flow_mod(encode.flow_mod(Flow(0, 1, match(**fields))))
    assert fastdecode.compiled_decoders() <= fastdecode.DECODERS_MAX
