"""EVPN NLRI, RFC 7432 section 7: a route type octet, a length octet, then the route.

Only the MAC/IP advertisement (type 2, section 7.2) is built and read here; other types a peer
sends (FRR sends type 3, inclusive multicast) are framed and skipped.

    +---------------------------------------+
    |  RD (8 octets)                        |
    |  Ethernet Segment Identifier (10)     |  zero: single-homed
    |  Ethernet Tag ID (4)                  |
    |  MAC Address Length (1)               |  48
    |  MAC Address (6)                      |
    |  IP Address Length (1)                |  0, 32 or 128
    |  IP Address (0, 4 or 16)              |
    |  MPLS Label1 (3)                      |  the VNI, the whole 24 bits (RFC 8365 5.1.3)
    |  MPLS Label2 (0 or 3)                 |
    +---------------------------------------+
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from vsc.bgp.community import sort_communities, sort_route_targets
from vsc.bgp.rd import RouteDistinguisher
from vsc.bgp.route import MacIpRoute

ROUTE_TYPE_MAC_IP = 2
ESI_LENGTH = 10
ZERO_ESI = bytes(ESI_LENGTH)
MAC_BITS = 48
VNI_MAX = 0xFFFFFF


def pack_ip(text: str) -> bytes:
    """An IPv4 or IPv6 address in its 4 or 16 octets (inet_pton: strict, and much cheaper than
    ipaddress for 20,000 routes)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, text)
        except OSError:
            continue
    raise ValueError(f"{text!r} is not an IPv4 or IPv6 address")


def ip_text(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


@functools.lru_cache(maxsize=4096)
def rd_from_text(text: str) -> RouteDistinguisher:
    """A VSC advertises under a handful of RDs: parsed once each."""
    return RouteDistinguisher.from_text(text)


def mac_to_bytes(mac: str) -> bytes:
    if len(mac) == 17 and mac[2::3] in (":::::", "-----"):
        try:
            return bytes.fromhex(mac[0:2] + mac[3:5] + mac[6:8] + mac[9:11] + mac[12:14] + mac[15:17])
        except ValueError:
            pass  # the message below names it
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) for p in parts):
        raise ValueError(f"MAC address {mac!r}: expected six hex octets")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"MAC address {mac!r}: expected six hex octets") from None


def mac_to_text(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


@dataclass(frozen=True, slots=True)
class MacIpAdvertisement:
    rd: RouteDistinguisher
    mac: bytes
    ip: bytes  # 4 or 16 octets, or none (a MAC-only route)
    vni: int
    ethernet_tag: int = 0
    esi: bytes = ZERO_ESI

    @classmethod
    def from_route(cls, route: MacIpRoute) -> MacIpAdvertisement:
        if not 0 <= route.vni <= VNI_MAX:
            raise ValueError(f"VNI {route.vni} does not fit the 24-bit label field")
        return cls(rd=rd_from_text(route.rd), mac=mac_to_bytes(route.mac),
                   ip=pack_ip(route.ip) if route.ip else b"", vni=route.vni,
                   ethernet_tag=route.ethernet_tag)

    def to_route(self, next_hop: str, route_targets: tuple[str, ...] = (),
                 communities: tuple[str, ...] = ()) -> MacIpRoute:
        return MacIpRoute(rd=str(self.rd), mac=mac_to_text(self.mac),
                          ip=ip_text(self.ip) if self.ip else None, vni=self.vni,
                          next_hop=next_hop, route_targets=route_targets, communities=communities,
                          ethernet_tag=self.ethernet_tag)

    @property
    def key(self) -> tuple[str, str, str | None]:
        """`MacIpRoute.key` of the route this NLRI carries."""
        return (str(self.rd), mac_to_text(self.mac), ip_text(self.ip) if self.ip else None)

    def pack_route(self) -> bytes:
        """The route-type-specific part (section 7.2), without type and length."""
        return (self.rd.pack() + self.esi + struct.pack("!IB", self.ethernet_tag, MAC_BITS) + self.mac
                + bytes([len(self.ip) * 8]) + self.ip + self.vni.to_bytes(3, "big"))

    def pack(self) -> bytes:
        body = self.pack_route()
        return bytes([ROUTE_TYPE_MAC_IP, len(body)]) + body

    @classmethod
    def unpack_route(cls, data: bytes) -> MacIpAdvertisement:
        if len(data) < 33:
            raise ValueError(f"MAC/IP route of {len(data)} octets is shorter than the 33 it needs")
        rd = RouteDistinguisher.unpack(data[0:8])
        esi = data[8:18]
        ethernet_tag, mac_bits = struct.unpack_from("!IB", data, 18)
        if mac_bits != MAC_BITS:
            raise ValueError(f"MAC address length {mac_bits}, RFC 7432 9.2.1 allows only 48")
        mac = data[23:29]
        ip_bits = data[29]
        if ip_bits not in (0, 32, 128):
            raise ValueError(f"IP address length {ip_bits}, expected 0, 32 or 128")
        end = 30 + ip_bits // 8
        if len(data) not in (end + 3, end + 6):
            raise ValueError(f"MAC/IP route of {len(data)} octets, expected {end + 3} or {end + 6}")
        ip = bytes(data[30:end])
        vni = int.from_bytes(data[end:end + 3], "big")
        return cls(rd=rd, mac=mac, ip=ip, vni=vni, ethernet_tag=ethernet_tag, esi=esi)

    @classmethod
    def unpack(cls, data: bytes) -> MacIpAdvertisement:
        (route_type, body), = iter_evpn_nlris(data)
        if route_type != ROUTE_TYPE_MAC_IP:
            raise ValueError(f"EVPN route type {route_type} is not a MAC/IP advertisement")
        return cls.unpack_route(body)


def canonical_route(route: MacIpRoute) -> MacIpRoute:
    """The route in the forms decoding gives back (RD and MAC as printed from their octets, route
    targets and communities in wire order without repeats), so that what a speaker advertises
    compares equal to what its peer receives. Raises ValueError naming a field that cannot be sent."""
    nlri = MacIpAdvertisement.from_route(route)
    try:
        socket.inet_pton(socket.AF_INET, route.next_hop)
    except OSError:
        raise ValueError(f"next hop {route.next_hop!r} is not an IPv4 address (the VTEP)") from None
    return nlri.to_route(route.next_hop, _sorted_targets(tuple(route.route_targets)),
                         _sorted_communities(tuple(route.communities)))


# Routes share a few sets of route targets and communities (a VNI's, its policy groups'): sorted once.
_sorted_targets = functools.lru_cache(maxsize=4096)(sort_route_targets)
_sorted_communities = functools.lru_cache(maxsize=4096)(sort_communities)


def canonical_key(key: tuple) -> tuple[str, str, str | None]:
    rd, mac, ip = key
    return (str(rd_from_text(rd)), mac_to_text(mac_to_bytes(mac)), ip_text(pack_ip(ip)) if ip else None)


def iter_evpn_nlris(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(route type, route) for each NLRI packed one after the other, as in MP_(UN)REACH_NLRI."""
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("EVPN NLRI cut short before its length octet")
        route_type, length = data[offset], data[offset + 1]
        end = offset + 2 + length
        if end > len(data):
            raise ValueError(f"EVPN NLRI of {length} octets runs past the attribute")
        yield route_type, data[offset + 2:end]
        offset = end


def unpack_mac_ip_routes(data: bytes) -> list[MacIpAdvertisement]:
    """The MAC/IP advertisements among packed NLRIs; other route types are left out."""
    return [MacIpAdvertisement.unpack_route(body) for route_type, body in iter_evpn_nlris(data)
            if route_type == ROUTE_TYPE_MAC_IP]
