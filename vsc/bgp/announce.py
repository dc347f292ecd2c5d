"""EVPN routes as ExaBGP 5 text commands.

ExaBGP has no announce syntax for EVPN (Exa-Networks/exabgp#1061), but it sends a raw path
attribute with any route: each batch of MAC/IP routes becomes one hand-encoded MP_REACH_NLRI
(or MP_UNREACH_NLRI) attribute riding an `announce route` of a throw-away IPv4 /32, the carrier.
The carrier's UPDATE is the EVPN routes' UPDATE, so the carrier carries their path attributes
too: route targets, the VXLAN encapsulation, the policy-group communities. Receivers ignore the
IPv4 carriers.

Why the carrier's NEXT_HOP is the VTEP: FRR's zebra programs its VXLAN fdb from the IPv4 NEXT_HOP
of the UPDATE, not from MP_REACH_NLRI's next hop, so anything else there sends FRR's traffic to the
wrong tunnel end (tests/test_vsc_frr_external.py).

Why each batch gets its own carrier prefix and a MED of its own: ExaBGP queues outgoing routes by
prefix inside buckets keyed by the full attribute text, and sends one UPDATE per bucket. Two
batches that came out identical (a route announced, withdrawn, announced again) would share a
bucket, so the third would be sent at the first one's place in the queue, ahead of the withdraw.
A MED taken from the batch's carrier address gives every batch its own bucket, in the order we
wrote it; the carrier rotates through `carrier_prefix` (65,536 by default), far more than can be
queued at once. The MED means nothing else here: each NLRI has one originator, so no path
selection compares it.

Routes that share next hop, route targets and communities share one attribute, as many NLRIs
as fit a 4096-octet UPDATE (about a hundred): a table of 20,000 routes is ~200 commands.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from vsc.bgp.community import extended_communities_for
from vsc.bgp.evpn import MacIpAdvertisement
from vsc.bgp.mpnlri import MP_REACH_NLRI, MP_UNREACH_NLRI, MpReachNlri, MpUnreachNlri
from vsc.bgp.route import MacIpRoute

MESSAGE_SIZE = 4096  # RFC 4271 4.1, no extended messages negotiated
# What the carrier's UPDATE holds besides the MP attribute, communities and extended communities:
# header 19, withdrawn and attribute lengths 4, the /32 carrier 5, ORIGIN 4, AS_PATH 3+2+4 (eBGP,
# one 4-octet AS; 16 left for a few prepends), NEXT_HOP 7, MED 7, LOCAL_PREF 7 (iBGP).
UPDATE_OVERHEAD = 19 + 4 + 5 + 4 + 25 + 7 + 7 + 7
MP_ATTRIBUTE_HEADER = 4  # flags, code, two-octet (extended) length
MP_REACH_FIXED = 2 + 1 + 1 + 4 + 1  # AFI, SAFI, next hop length, IPv4 next hop, reserved
MP_UNREACH_FIXED = 2 + 1


class CarrierPool:
    """The next carrier address, round-robin through a prefix."""

    def __init__(self, prefix: str) -> None:
        network = ipaddress.IPv4Network(prefix)
        self._first, self._size, self._next = int(network.network_address), network.num_addresses, 0

    def take(self) -> str:
        address = ipaddress.IPv4Address(self._first + self._next)
        self._next = (self._next + 1) % self._size
        return str(address)


@dataclass(frozen=True, slots=True)
class Batch:
    """Routes that go in one UPDATE: announced (with their shared attributes) or withdrawn."""

    withdraw: bool
    nlris: tuple[MacIpAdvertisement, ...]
    next_hop: str = ""
    route_targets: tuple[str, ...] = ()
    communities: tuple[str, ...] = ()

    def attribute(self) -> tuple[int, bytes]:
        if self.withdraw:
            return MP_UNREACH_NLRI, MpUnreachNlri(self.nlris).body()
        return MP_REACH_NLRI, MpReachNlri(self.next_hop, self.nlris).body()

    def command(self, carrier: str, selector: str = "") -> str:
        """`[neighbor X [, neighbor Y]] announce route CARRIER/32 ...` as ExaBGP's API reads it."""
        code, body = self.attribute()
        next_hop = self.next_hop or carrier  # a withdraw has no VTEP: MP_UNREACH carries no next hop
        med = int(ipaddress.IPv4Address(carrier))
        words = [selector, "announce route", f"{carrier}/32", "next-hop", next_hop, f"med {med}", "origin igp"]
        if self.communities:
            words.append(f"community [ {' '.join(self.communities)} ]")
        if not self.withdraw:
            extended = " ".join("0x" + c.hex() for c in extended_communities_for(self.route_targets))
            words.append(f"extended-community [ {extended} ]")
        words.append(f"attribute [ 0x{code:02x} 0x80 0x{body.hex()} ]")
        return " ".join(w for w in words if w)


def _budget(fixed: int, communities: int = 0, extended: int = 0) -> int:
    """Octets left for NLRIs in one UPDATE."""
    room = MESSAGE_SIZE - UPDATE_OVERHEAD - MP_ATTRIBUTE_HEADER - fixed
    if communities:
        room -= 4 + 4 * communities
    if extended:
        room -= 4 + 8 * extended
    return room


def _chunks(nlris: Iterable[MacIpAdvertisement], budget: int) -> Iterator[tuple[MacIpAdvertisement, ...]]:
    chunk: list[MacIpAdvertisement] = []
    used = 0
    for nlri in nlris:
        size = len(nlri.pack())
        if chunk and used + size > budget:
            yield tuple(chunk)
            chunk, used = [], 0
        chunk.append(nlri)
        used += size
    if chunk:
        yield tuple(chunk)


def announce_batches(routes: Iterable[MacIpRoute]) -> list[Batch]:
    groups: dict[tuple, list[MacIpAdvertisement]] = {}
    for route in routes:
        shared = (route.next_hop, route.route_targets, route.communities)
        groups.setdefault(shared, []).append(MacIpAdvertisement.from_route(route))
    batches = []
    for (next_hop, targets, communities), nlris in groups.items():
        budget = _budget(MP_REACH_FIXED, len(communities), len(targets) + 1)
        for chunk in _chunks(nlris, budget):
            batches.append(Batch(False, chunk, next_hop, targets, communities))
    return batches


def withdraw_batches(routes: Sequence[MacIpRoute]) -> list[Batch]:
    """MP_UNREACH carries only NLRIs; the label of each is the one last announced (RFC 7432 7.2
    lets the receiver ignore it, but the NLRI must be the same length)."""
    nlris = (MacIpAdvertisement.from_route(route) for route in routes)
    return [Batch(True, chunk) for chunk in _chunks(nlris, _budget(MP_UNREACH_FIXED))]
