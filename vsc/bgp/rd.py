"""Route Distinguisher, RFC 4364 section 4.2: eight octets, a two-octet type then an administrator
and an assigned number whose widths the type decides.

    type 0  ASN2:nn     2-octet AS number, 4-octet number    "65000:5001"
    type 1  IPv4:nn     IPv4 address, 2-octet number         "192.0.2.1:5001"
    type 2  ASN4:nn     4-octet AS number, 2-octet number    "4200000000:7"

The text form does not say which of types 0 and 2 a "AS:nn" is; like FRR and ExaBGP, the encoder
takes type 0 whenever the values fit it, so a type 2 with a small AS number reads back as type 0.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_AS2 = 0
TYPE_IPV4 = 1
TYPE_AS4 = 2

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RouteDistinguisher:
    type: int
    administrator: int | str  # an AS number, or the IPv4 address as text for type 1
    assigned: int

    LENGTH = 8

    @classmethod
    def from_text(cls, text: str) -> RouteDistinguisher:
        admin, sep, number = text.strip().rpartition(":")
        if not sep or not admin or not number.isdigit():
            raise ValueError(f"route distinguisher {text!r}: expected ASN:nn or IPv4:nn")
        assigned = int(number)
        if "." in admin:
            try:
                address = str(ipaddress.IPv4Address(admin))
            except ValueError:
                raise ValueError(f"route distinguisher {text!r}: {admin!r} is not an IPv4 address") from None
            if assigned > _U16:
                raise ValueError(f"route distinguisher {text!r}: type 1 numbers are 16 bits")
            return cls(TYPE_IPV4, address, assigned)
        if not admin.isdigit():
            raise ValueError(f"route distinguisher {text!r}: {admin!r} is not an AS number")
        asn = int(admin)
        if asn <= _U16 and assigned <= _U32:
            return cls(TYPE_AS2, asn, assigned)
        if asn <= _U32 and assigned <= _U16:
            return cls(TYPE_AS4, asn, assigned)
        raise ValueError(f"route distinguisher {text!r}: no RD type holds these widths")

    def pack(self) -> bytes:
        if self.type == TYPE_AS2:
            return struct.pack("!HHI", TYPE_AS2, self.administrator, self.assigned)
        if self.type == TYPE_IPV4:
            return struct.pack("!H4sH", TYPE_IPV4, ipaddress.IPv4Address(self.administrator).packed,
                               self.assigned)
        if self.type == TYPE_AS4:
            return struct.pack("!HIH", TYPE_AS4, self.administrator, self.assigned)
        raise ValueError(f"route distinguisher type {self.type} is not one of RFC 4364's")

    @classmethod
    def unpack(cls, data: bytes) -> RouteDistinguisher:
        if len(data) < cls.LENGTH:
            raise ValueError(f"route distinguisher needs 8 octets, got {len(data)}")
        (rd_type,) = struct.unpack_from("!H", data)
        if rd_type == TYPE_AS2:
            _, asn, number = struct.unpack_from("!HHI", data)
            return cls(TYPE_AS2, asn, number)
        if rd_type == TYPE_IPV4:
            _, address, number = struct.unpack_from("!H4sH", data)
            return cls(TYPE_IPV4, str(ipaddress.IPv4Address(address)), number)
        if rd_type == TYPE_AS4:
            _, asn, number = struct.unpack_from("!HIH", data)
            return cls(TYPE_AS4, asn, number)
        raise ValueError(f"route distinguisher type {rd_type} is not one of RFC 4364's")

    def __str__(self) -> str:
        return f"{self.administrator}:{self.assigned}"


def pack_rd(text: str) -> bytes:
    return RouteDistinguisher.from_text(text).pack()


def unpack_rd(data: bytes) -> str:
    return str(RouteDistinguisher.unpack(data))
