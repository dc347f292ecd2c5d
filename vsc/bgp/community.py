"""Communities carried with the EVPN routes.

- Standard communities, RFC 1997: four octets, written "a:b" (two 16-bit halves). The VSC puts one
  per policy group on each endpoint's route (the group's EVPN community tag).
- Extended communities, RFC 4360: eight octets, type, sub-type, value.
  - Route Target (sub-type 0x02) in the three administrator forms: two-octet AS (type 0x00,
    RFC 4360 3.1), IPv4 address (0x01, 3.2) and four-octet AS (0x02, RFC 5668), written
    "65000:5001", "192.0.2.1:7", "4200000000:7" like FRR and ExaBGP do.
  - Encapsulation (type 0x03 opaque, sub-type 0x0c, RFC 9012 4.1): four reserved octets and the
    tunnel type; RFC 8365 5.1.3 asks for tunnel type 8 (VXLAN) on every EVPN route over VXLAN.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

SUBTYPE_ROUTE_TARGET = 0x02
TYPE_AS2_SPECIFIC = 0x00
TYPE_IPV4_SPECIFIC = 0x01
TYPE_AS4_SPECIFIC = 0x02
TYPE_OPAQUE = 0x03
SUBTYPE_ENCAPSULATION = 0x0C
TUNNEL_VXLAN = 8

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


# ---------------------------------------------------------------- RFC 1997


def pack_community(text: str) -> bytes:
    high, sep, low = text.strip().partition(":")
    if not sep or not high.isdigit() or not low.isdigit() or int(high) > _U16 or int(low) > _U16:
        raise ValueError(f"community {text!r}: expected a:b with both halves 0-65535")
    return struct.pack("!HH", int(high), int(low))


def unpack_community(data: bytes) -> str:
    high, low = struct.unpack("!HH", data)
    return f"{high}:{low}"


def sort_communities(texts: Iterable[str]) -> tuple[str, ...]:
    """In wire order, without repeats: the order ExaBGP sends them in, so a route reads the same at
    both ends."""
    return tuple(unpack_community(b) for b in sorted({pack_community(t) for t in texts}))


# ---------------------------------------------------------------- RFC 4360 / 5668 route targets


def pack_route_target(text: str) -> bytes:
    admin, sep, number = text.strip().rpartition(":")
    if not sep or not admin or not number.isdigit():
        raise ValueError(f"route target {text!r}: expected ASN:nn or IPv4:nn")
    assigned = int(number)
    if "." in admin:
        try:
            address = ipaddress.IPv4Address(admin).packed
        except ValueError:
            raise ValueError(f"route target {text!r}: {admin!r} is not an IPv4 address") from None
        if assigned > _U16:
            raise ValueError(f"route target {text!r}: IPv4-specific numbers are 16 bits")
        return struct.pack("!BB4sH", TYPE_IPV4_SPECIFIC, SUBTYPE_ROUTE_TARGET, address, assigned)
    if not admin.isdigit():
        raise ValueError(f"route target {text!r}: {admin!r} is not an AS number")
    asn = int(admin)
    if asn <= _U16 and assigned <= _U32:
        return struct.pack("!BBHI", TYPE_AS2_SPECIFIC, SUBTYPE_ROUTE_TARGET, asn, assigned)
    if asn <= _U32 and assigned <= _U16:
        return struct.pack("!BBIH", TYPE_AS4_SPECIFIC, SUBTYPE_ROUTE_TARGET, asn, assigned)
    raise ValueError(f"route target {text!r}: no extended community type holds these widths")


def unpack_route_target(data: bytes) -> str | None:
    """The text of a route target, None for any other extended community."""
    kind, subtype = data[0] & 0x3F, data[1]  # bit 6 only says transitive or not (RFC 4360 2)
    if subtype != SUBTYPE_ROUTE_TARGET:
        return None
    if kind == TYPE_AS2_SPECIFIC:
        _, _, asn, number = struct.unpack("!BBHI", data)
        return f"{asn}:{number}"
    if kind == TYPE_IPV4_SPECIFIC:
        _, _, address, number = struct.unpack("!BB4sH", data)
        return f"{ipaddress.IPv4Address(address)}:{number}"
    if kind == TYPE_AS4_SPECIFIC:
        _, _, asn, number = struct.unpack("!BBIH", data)
        return f"{asn}:{number}"
    return None


def sort_route_targets(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(unpack_route_target(b) for b in sorted({pack_route_target(t) for t in texts}))


# ---------------------------------------------------------------- RFC 9012 encapsulation


def pack_encapsulation(tunnel_type: int = TUNNEL_VXLAN) -> bytes:
    return struct.pack("!BB4xH", TYPE_OPAQUE, SUBTYPE_ENCAPSULATION, tunnel_type)


def unpack_encapsulation(data: bytes) -> int | None:
    """The tunnel type of an encapsulation community, None for any other."""
    if data[0] & 0x3F != TYPE_OPAQUE or data[1] != SUBTYPE_ENCAPSULATION:
        return None
    return struct.unpack("!H", data[6:8])[0]


def extended_communities_for(route_targets: Iterable[str], tunnel_type: int = TUNNEL_VXLAN) -> list[bytes]:
    """What an EVPN-over-VXLAN route carries: its route targets and the encapsulation."""
    return [pack_route_target(rt) for rt in route_targets] + [pack_encapsulation(tunnel_type)]
