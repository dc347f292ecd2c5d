"""The routes a VSC's federation holds, one by one, as `GET /bgp` shows them (pure; read under the
core's lock).

Every received route says whether it is programmed and into which domain, or why not. The reasons
follow the order `vsc.bgp.federation` decides in: a route under the same key from another peer that
was announced later is the one imported; a route whose route targets no domain serves, or that
carries no IP, is not imported at all; an imported route may still lose its address slot (domain,
IP) to a local endpoint (the local truth wins) or to a route announced later for the same address
(an endpoint that moved). Our own routes reflected back never reach federation (the speaker drops
them by their RD): they are only counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsc.bgp.route import MacIpRoute
from vsc.bgp.routes import RouteError, community_bits, domains_by_rt, imported_endpoints, key_text

if TYPE_CHECKING:
    from vsc.bgp.federation import Federation

PROGRAMMED = "programmed"
LOCAL_WINS = "a local endpoint holds this address (the local truth wins)"
RT_NOT_SERVED = "no domain here has its route target"
NO_IP = "MAC-only route: nothing to route to"


def route_fields(r: MacIpRoute) -> dict:
    return {"rd": r.rd, "mac": r.mac, "ip": r.ip, "vni": r.vni, "next_hop": r.next_hop,
            "route_targets": list(r.route_targets), "communities": list(r.communities),
            "ethernet_tag": r.ethernet_tag}


def domain_name(fed: Federation, domain_id: str) -> str:
    """"enterprise/domain": domain names repeat across enterprises."""
    view = fed.view
    dom = view.domains.get(domain_id)
    if dom is None:
        return domain_id
    ent = view.enterprises.get(dom.enterprise_id)
    return f"{ent.name if ent else dom.enterprise_id}/{dom.name}"


def route_listing(fed: Federation) -> dict:
    """{"received": {peer: [route + verdict]}, "advertised": [route + vport, domain]}, each sorted by
    (RD, MAC, IP). A received route's verdict: `imported` (programmed in at least one domain),
    `domains` ([{id, name, state}]: state is PROGRAMMED or why its slot went elsewhere) and `reason`
    (why it is not imported, None when it is)."""
    served = domains_by_rt(fed.view)
    received: dict[str, list[dict]] = {}
    for key, per in sorted(fed.routes.items(), key=lambda kv: _order(kv[0])):
        newest = next(reversed(per))
        for peer, route in per.items():
            entry = route_fields(route)
            if peer != newest:
                entry.update(imported=False, domains=[], reason=f"the same route from {newest} is newer")
            else:
                entry.update(_verdict(fed, key, route, served))
            received.setdefault(peer, []).append(entry)
    advertised = []
    for vport, route in sorted(fed.advertised.items(), key=lambda kv: _order(kv[1].key)):
        ep = fed.prog.eps.get(vport)
        advertised.append({**route_fields(route), "vport": vport,
                           "domain": domain_name(fed, ep.domain_id) if ep else None})
    return {"received": received, "advertised": advertised}


def _order(key: tuple[str, str, str | None]) -> tuple[str, str, str]:
    rd, mac, ip = key
    return rd, mac, ip or ""


def _verdict(fed: Federation, key, route: MacIpRoute, served: dict[str, list[str]]) -> dict:
    into = fed.imported.get(key, {})
    if not into:
        return {"imported": False, "domains": [], "reason": _why_not(fed, route, served)}
    owner = key_text(key)
    domains = []
    for d, ep in sorted(into.items()):
        slot = (d, ep.ip)
        held = fed.prog.learned.get(slot)
        if held is not None and held[0].vport_id == owner:
            state = PROGRAMMED
        elif fed.local_addrs.get(slot):
            state = LOCAL_WINS
        elif held is not None:
            state = f"a route announced later holds this address ({held[0].vport_id})"
        else:
            state = "not programmed yet"
        domains.append({"id": d, "name": domain_name(fed, d), "state": state})
    programmed = any(x["state"] == PROGRAMMED for x in domains)
    return {"imported": programmed, "domains": domains,
            "reason": None if programmed else "; ".join(sorted({x["state"] for x in domains}))}


def _why_not(fed: Federation, route: MacIpRoute, served: dict[str, list[str]]) -> str:
    if not any(rt in served for rt in route.route_targets):
        return f"{RT_NOT_SERVED} ({', '.join(route.route_targets) or 'it carries none'})"
    if route.ip is None:
        return NO_IP
    try:  # only a malformed route is left: say what is wrong with it
        imported_endpoints(fed.view, route, served, community_bits(fed.view))
    except RouteError as e:
        return str(e)
    return "not imported yet"
