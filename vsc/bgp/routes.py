"""Local endpoints to EVPN MAC/IP routes and received routes back to remote endpoints (pure, no I/O).

A VSC advertises each endpoint its VRSs report under one RD per VSC and domain; a receiving VSC
imports a route into each of its domains whose `routeTarget` the route carries and reads the route's
standard communities as policy groups (`EVPNCommunityTag`), giving them the tag bits of its own view.
The result is an `Endpoint` like one a local VRS reported, so it compiles to the same table-20 flow.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from vsc.bgp.route import MacIpRoute
from vsc.compiler import Endpoint
from vsc.tags import TagError, encode
from vsc.view import View
from vsc.vsd_objects import mac_int

# An imported endpoint sits behind no VRS of this VSC: no datapath id is negative.
NO_DATAPATH = -1
_RD_NUMBER_MAX = 0xFFFF  # an RD of type 1 (IPv4 address : number) has 16 bits for the number


class RouteError(ValueError):
    pass


def route_distinguisher(router_id: str, vni: int, dindex: int) -> str:
    """RD "<router id>:<VNI>": unique per VSC and domain. A VNI wider than the RD's 16-bit number falls
    back to the domain index, which the VSC allocates once, persists and keeps unique."""
    return f"{router_id}:{vni if vni <= _RD_NUMBER_MAX else dindex}"


def mac_text(mac: int) -> str:
    return ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))


def key_text(key: tuple[str, str, str | None]) -> str:
    """The owner string an imported endpoint's cookie hashes: "evpn:RD:MAC:IP"."""
    rd, mac, ip = key
    return f"evpn:{rd}:{mac}:{ip or ''}"


def group_communities(view: View, vport_id: str) -> tuple[str, ...]:
    tags = {view.policy_groups[g].evpn_tag for g in view.groups_of_vport.get(vport_id, ())
            if g in view.policy_groups}
    return tuple(sorted(t for t in tags if t))


def advertised_route(view: View, ep: Endpoint, router_id: str) -> MacIpRoute | None:
    """The route of a local endpoint; None for a domain without a route target (nobody could import it)."""
    dom = view.domains.get(ep.domain_id)
    if dom is None or not dom.route_target:
        return None
    return MacIpRoute(rd=route_distinguisher(router_id, ep.vni, ep.dindex), mac=mac_text(ep.mac),
                      ip=str(IPv4Address(ep.ip)), vni=ep.vni, next_hop=str(IPv4Address(ep.vtep_ip)),
                      route_targets=(dom.route_target,), communities=group_communities(view, ep.vport_id))


# --- the receiving side ----------------------------------------------------------------------------


def domains_by_rt(view: View) -> dict[str, list[str]]:
    """Route target -> the domains of this view that import it (normally one)."""
    out: dict[str, list[str]] = {}
    for d in view.domains.values():
        if d.route_target:
            out.setdefault(d.route_target, []).append(d.id)
    for doms in out.values():
        doms.sort()
    return out


def community_bits(view: View, domains: set[str] | None = None) -> dict[str, dict[str, int]]:
    """Domain -> {EVPNCommunityTag: the tag bits this view gives the groups naming it}. Groups without
    a bit (over the per-domain limit) or without a tag contribute nothing. One pass over the groups."""
    out: dict[str, dict[str, int]] = {} if domains is None else {d: {} for d in domains}
    for g in view.policy_groups.values():
        if domains is not None and g.domain_id not in domains:
            continue
        bit = view.group_bit.get(g.id)
        if g.evpn_tag and bit is not None:
            bits = out.setdefault(g.domain_id, {})
            bits[g.evpn_tag] = bits.get(g.evpn_tag, 0) | 1 << bit
    return out


def imported_endpoints(view: View, route: MacIpRoute, by_rt: dict[str, list[str]],
                       bits: dict[str, dict[str, int]]) -> dict[str, Endpoint]:
    """Domain -> the remote endpoint `route` is in that domain of this view; {} when no domain imports
    it. A route without an IP has nothing to route to (all traffic in a domain is routed)."""
    doms = sorted({d for rt in route.route_targets for d in by_rt.get(rt, ()) if d in view.domains})
    if not doms or route.ip is None:
        return {}
    try:
        mac, ip, vtep = mac_int(route.mac), int(IPv4Address(route.ip)), int(IPv4Address(route.next_hop))
    except ValueError as e:
        raise RouteError(f"route {key_text(route.key)}: {e}") from None
    if mac is None or not 0 < route.vni < 1 << 24:
        raise RouteError(f"route {key_text(route.key)}: no MAC or VNI {route.vni} out of range")
    owner = key_text(route.key)
    out = {}
    for d in doms:
        named = bits.get(d, {})
        indices = 0  # the set of tag indices, as bits; vsc.tags encodes it (bitmap and slots)
        for c in route.communities:
            indices |= named.get(c, 0)  # a community no group of this domain carries names nothing here
        try:
            tags = encode(i for i in range(indices.bit_length()) if indices >> i & 1)
        except TagError as e:
            raise RouteError(f"route {key_text(route.key)}: {e}") from None
        out[d] = Endpoint(owner, d, view.domain_index[d], route.vni, mac, ip, tags, NO_DATAPATH, 0, vtep)
    return out


def is_own(route: MacIpRoute, router_id: str | None) -> bool:
    """A route this VSC originated, reflected back (FRR returns routes over eBGP, see exabgp-evpn.md)."""
    return bool(router_id) and route.rd.startswith(f"{router_id}:")
