"""MP_REACH_NLRI (type 14) and MP_UNREACH_NLRI (type 15), RFC 4760 sections 3 and 4, for the
L2VPN EVPN family (AFI 25, SAFI 70, RFC 7432 section 20).

    MP_REACH_NLRI body                       MP_UNREACH_NLRI body
    +--------------------------------+       +--------------------------------+
    | AFI (2)          | SAFI (1)    |       | AFI (2)          | SAFI (1)    |
    | Next hop length (1)            |       | Withdrawn NLRIs (variable)     |
    | Next hop (4: the IPv4 VTEP)    |       +--------------------------------+
    | Reserved (1)                   |
    | NLRIs (variable)               |
    +--------------------------------+

A path attribute is flags, type code, length (one octet, or two with the Extended Length flag,
RFC 4271 4.3), body. Both are optional non-transitive (flags 0x80).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from vsc.bgp.evpn import MacIpAdvertisement, ip_text, pack_ip, unpack_mac_ip_routes

AFI_L2VPN = 25
SAFI_EVPN = 70
MP_REACH_NLRI = 14
MP_UNREACH_NLRI = 15
FLAG_OPTIONAL = 0x80
FLAG_EXTENDED_LENGTH = 0x10


def pack_attribute(code: int, body: bytes, flags: int = FLAG_OPTIONAL) -> bytes:
    if len(body) > 0xFF:
        return struct.pack("!BBH", flags | FLAG_EXTENDED_LENGTH, code, len(body)) + body
    return struct.pack("!BBB", flags & ~FLAG_EXTENDED_LENGTH, code, len(body)) + body


def unpack_attribute(data: bytes) -> tuple[int, int, bytes]:
    """(flags, type code, body) of one path attribute."""
    flags, code = data[0], data[1]
    if flags & FLAG_EXTENDED_LENGTH:
        (length,), start = struct.unpack_from("!H", data, 2), 4
    else:
        length, start = data[2], 3
    if start + length != len(data):
        raise ValueError(f"path attribute {code} says {length} octets, carries {len(data) - start}")
    return flags, code, data[start:]


@dataclass(frozen=True, slots=True)
class MpReachNlri:
    next_hop: str
    nlris: Sequence[MacIpAdvertisement]

    CODE = MP_REACH_NLRI

    def body(self) -> bytes:
        hop = pack_ip(self.next_hop)
        return (struct.pack("!HBB", AFI_L2VPN, SAFI_EVPN, len(hop)) + hop + b"\x00"
                + b"".join(n.pack() for n in self.nlris))

    def pack(self) -> bytes:
        return pack_attribute(self.CODE, self.body())

    @classmethod
    def unpack_body(cls, body: bytes) -> MpReachNlri:
        afi, safi, hop_length = struct.unpack_from("!HBB", body)
        if (afi, safi) != (AFI_L2VPN, SAFI_EVPN):
            raise ValueError(f"MP_REACH_NLRI for AFI {afi} SAFI {safi}, not L2VPN EVPN")
        if hop_length not in (4, 16, 32):  # RFC 2545: an IPv6 global address may come with a link-local
            raise ValueError(f"MP_REACH_NLRI next hop of {hop_length} octets")
        hop = ip_text(body[4:4 + min(hop_length, 16)])
        return cls(next_hop=hop, nlris=unpack_mac_ip_routes(body[4 + hop_length + 1:]))


@dataclass(frozen=True, slots=True)
class MpUnreachNlri:
    nlris: Sequence[MacIpAdvertisement]

    CODE = MP_UNREACH_NLRI

    def body(self) -> bytes:
        return struct.pack("!HB", AFI_L2VPN, SAFI_EVPN) + b"".join(n.pack() for n in self.nlris)

    def pack(self) -> bytes:
        return pack_attribute(self.CODE, self.body())

    @classmethod
    def unpack_body(cls, body: bytes) -> MpUnreachNlri:
        afi, safi = struct.unpack_from("!HB", body)
        if (afi, safi) != (AFI_L2VPN, SAFI_EVPN):
            raise ValueError(f"MP_UNREACH_NLRI for AFI {afi} SAFI {safi}, not L2VPN EVPN")
        return cls(nlris=unpack_mac_ip_routes(body[3:]))
