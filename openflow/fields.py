"""The match fields the codec knows: each `Flow` field name mapped to its OXM class, field number and
width, exactly as OVS encodes them in OpenFlow 1.3 (OXM basic class 0x8000 for standard fields, Nicira
NXM_1 class 0x0001 for registers, tunnel endpoints and conntrack)."""

from __future__ import annotations

from dataclasses import dataclass

OFPXMC_NXM_1 = 0x0001
OFPXMC_OPENFLOW_BASIC = 0x8000


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    oxm_class: int
    oxm_field: int
    nbytes: int
    maskable: bool
    # Prerequisites as (field, allowed values): OVS refuses a match without them (OFPBMC_BAD_PREREQ).
    prereq: tuple[tuple[str, frozenset[int]], ...] = ()
    settable: bool = True

    @property
    def bits(self) -> int:
        return self.nbytes * 8

    def header(self, masked: bool = False) -> int:
        """The 32-bit OXM header: class, field, has-mask bit, payload length."""
        n = self.nbytes * 2 if masked else self.nbytes
        return (self.oxm_class << 16) | (self.oxm_field << 9) | (int(masked) << 8) | n


_IP = (("eth_type", frozenset({0x0800})),)
_IP_ANY = (("eth_type", frozenset({0x0800, 0x86DD})),)
_ARP = (("eth_type", frozenset({0x0806})),)


def _l4(proto: int) -> tuple[tuple[str, frozenset[int]], ...]:
    return (*_IP_ANY, ("ip_proto", frozenset({proto})))


_B = OFPXMC_OPENFLOW_BASIC
_N = OFPXMC_NXM_1

_SPECS = [
    FieldSpec("in_port", _B, 0, 4, False),
    FieldSpec("metadata", _B, 2, 8, True),
    FieldSpec("eth_dst", _B, 3, 6, True),
    FieldSpec("eth_src", _B, 4, 6, True),
    FieldSpec("eth_type", _B, 5, 2, False, settable=False),
    FieldSpec("ip_proto", _B, 10, 1, False, _IP_ANY, settable=False),
    FieldSpec("ipv4_src", _B, 11, 4, True, _IP),
    FieldSpec("ipv4_dst", _B, 12, 4, True, _IP),
    # OVS accepts bitwise masks on L4 ports (port ranges as a few masked flows).
    FieldSpec("tcp_src", _B, 13, 2, True, _l4(6)),
    FieldSpec("tcp_dst", _B, 14, 2, True, _l4(6)),
    FieldSpec("udp_src", _B, 15, 2, True, _l4(17)),
    FieldSpec("udp_dst", _B, 16, 2, True, _l4(17)),
    FieldSpec("icmpv4_type", _B, 19, 1, False, (*_IP, ("ip_proto", frozenset({1})))),
    FieldSpec("icmpv4_code", _B, 20, 1, False, (*_IP, ("ip_proto", frozenset({1})))),
    FieldSpec("arp_op", _B, 21, 2, False, _ARP),
    FieldSpec("arp_spa", _B, 22, 4, True, _ARP),
    FieldSpec("arp_tpa", _B, 23, 4, True, _ARP),
    FieldSpec("arp_sha", _B, 24, 6, True, _ARP),
    FieldSpec("arp_tha", _B, 25, 6, True, _ARP),
    FieldSpec("tun_id", _B, 38, 8, True),
    FieldSpec("tun_ipv4_src", _N, 31, 4, True),
    FieldSpec("tun_ipv4_dst", _N, 32, 4, True),
    FieldSpec("ct_state", _N, 105, 4, True, settable=False),
    FieldSpec("ct_zone", _N, 106, 2, False, settable=False),
    FieldSpec("ct_mark", _N, 107, 4, True, settable=False),
    *(FieldSpec(f"reg{i}", _N, i, 4, True) for i in range(16)),
]

FIELDS: dict[str, FieldSpec] = {s.name: s for s in _SPECS}

# The older NXM headers for the same fields. We always encode the ones above, but OVS itself writes
# NXM_OF_*/NXM_NX_* headers where they exist (e.g. in reg_move actions of its flow-stats replies), so
# the decoder accepts both. NXM_OF_IN_PORT is the 16-bit OpenFlow 1.0 port number.
OFPXMC_NXM_0 = 0x0000
_NXM_ALIASES = [
    ("in_port", OFPXMC_NXM_0, 0, 2), ("eth_dst", OFPXMC_NXM_0, 1, 6), ("eth_src", OFPXMC_NXM_0, 2, 6),
    ("eth_type", OFPXMC_NXM_0, 3, 2), ("ip_proto", OFPXMC_NXM_0, 6, 1), ("ipv4_src", OFPXMC_NXM_0, 7, 4),
    ("ipv4_dst", OFPXMC_NXM_0, 8, 4), ("tcp_src", OFPXMC_NXM_0, 9, 2), ("tcp_dst", OFPXMC_NXM_0, 10, 2),
    ("udp_src", OFPXMC_NXM_0, 11, 2), ("udp_dst", OFPXMC_NXM_0, 12, 2), ("icmpv4_type", OFPXMC_NXM_0, 13, 1),
    ("icmpv4_code", OFPXMC_NXM_0, 14, 1), ("arp_op", OFPXMC_NXM_0, 15, 2), ("arp_spa", OFPXMC_NXM_0, 16, 4),
    ("arp_tpa", OFPXMC_NXM_0, 17, 4), ("tun_id", OFPXMC_NXM_1, 16, 8), ("arp_sha", OFPXMC_NXM_1, 17, 6),
    ("arp_tha", OFPXMC_NXM_1, 18, 6),
]
# Decoding looks fields up by the header with the length and has-mask bits cleared.
FIELDS_BY_TYPE: dict[int, FieldSpec] = {(s.oxm_class << 16) | (s.oxm_field << 9): s for s in _SPECS}
for _name, _cls, _fld, _n in _NXM_ALIASES:
    _c = FIELDS[_name]
    FIELDS_BY_TYPE[(_cls << 16) | (_fld << 9)] = FieldSpec(_name, _cls, _fld, _n, _c.maskable, _c.prereq, _c.settable)
# Canonical field order (OVS prints and compares matches in its own fixed order, not wire order).
FIELD_ORDER: dict[str, int] = {s.name: i for i, s in enumerate(_SPECS)}


def spec(name: str) -> FieldSpec:
    try:
        return FIELDS[name]
    except KeyError:
        raise ValueError(f"unknown match field {name!r}") from None
