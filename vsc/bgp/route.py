"""The EVPN MAC/IP advertisement route as the VSC sees it: the one record shared by the advertising
side (built from a local endpoint), the wire encoder and the receiving side (decoded from ExaBGP).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MacIpRoute:
    """RFC 7432 section 7.2, with RFC 8365's VXLAN reading of the label (the VNI).

    Text forms are the ones FRR and ExaBGP print, so a route reads the same in all three:
    `rd` "192.0.2.1:5001" (type 1) or "65000:5001" (type 0); `mac` "02:00:0a:01:00:01" (lower case);
    `route_targets` "65000:5001"; `communities` (standard, RFC 1997) "5001:3" - one per policy group,
    the group's EVPNCommunityTag.
    """

    rd: str
    mac: str
    ip: str | None
    vni: int
    next_hop: str  # the VTEP of the VRS the endpoint sits behind
    route_targets: tuple[str, ...] = ()
    communities: tuple[str, ...] = ()
    ethernet_tag: int = 0

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What identifies the route in BGP (RD + NLRI): a new value under the same key replaces it."""
        return (self.rd, self.mac, self.ip)
