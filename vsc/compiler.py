"""Pure compilation: logical view + endpoint locations -> the flows each VRS should hold.

The desired state of a VRS is the union of independent units, each owned by one thing (and carrying
that owner in its cookie): the VRS's own skeleton, each domain it has local endpoints in, each local
endpoint, each remote endpoint of those domains. A change recompiles only the units it touches (see
`vsc.programmer`); `compile_host` builds all of them at once for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from openflow.flow import OFPP_IN_PORT, Ct, Flow, MatchField, Move, Output, SetField, match
from vsc.acl import acl_flows, non_ip_allowed
from vsc.locations import Host, Locations
from vsc.pipeline import (
    CT_ESTABLISHED,
    CT_RELATED,
    METADATA_MASK,
    PATH_LOCAL,
    PATH_TUNNEL,
    REG_DST_SLOTS,
    REG_DST_TAGS,
    REG_KEY,
    REG_OUT_PORT,
    REG_PATH,
    REG_PEER_REMOTE,
    REG_PEER_TAGS,
    REG_SCRATCH,
    REG_SRC_SLOTS,
    REG_SRC_TAGS,
    ROUTER_MAC,
    Kind,
    Table,
    canonical,
    cookie,
    flow_key,
)
from vsc.tags import TagError, set_tags, tag_problems, vport_tags
from vsc.view import View

ARP = 0x0806
IPV4 = 0x0800


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A VSD vport with its interface's addresses, resolved to the VRS port it sits behind."""

    vport_id: str
    domain_id: str
    dindex: int
    vni: int
    mac: int
    ip: int
    tags: int  # policy-group tags (vsc.tags): bitmap in bits 0-63, slots in bits 64-127
    dpid: int
    ofport: int
    vtep_ip: int


def endpoint(view: View, locs: Locations, vport_id: str) -> Endpoint | None:
    """None until the VSD knows the vport (with an interface and a domain) and a VRS reported it."""
    where = locs.by_vport.get(vport_id)
    vif_id = view.vif_by_vport.get(vport_id)
    domain_id = view.vport_domain(vport_id)
    if where is None or vif_id is None or domain_id is None or domain_id not in view.domains:
        return None
    host = locs.hosts[where[0]]
    port = host.ports[where[1]]
    vif = view.vminterfaces[vif_id]
    # The VSD's addresses are the policy; the VRS's report fills in only what the VSD left blank.
    mac = vif.mac if vif.mac is not None else port.mac
    ip = vif.ip if vif.ip is not None else port.ip
    if mac is None or ip is None or not host.vtep_ip:
        return None
    try:
        tags = vport_tags(view, vport_id)
    except TagError:
        return None  # refused: its domain's problems name it (tag_problems)
    return Endpoint(vport_id, domain_id, view.domain_index[domain_id], view.domains[domain_id].vni, mac, ip,
                    tags, host.datapath_id, where[1], host.vtep_ip)


def _md(dindex: int) -> tuple[int, int]:
    return (dindex, METADATA_MASK)


# --- units ---------------------------------------------------------------------------------------


def pipeline_flows(host: Host) -> list[Flow]:
    """The per-VRS skeleton: table-to-table glue that names no VSD object."""
    ck = cookie(Kind.PIPELINE)
    moves_dst = tuple(Move(p, d, 32) for p, d in zip(REG_PEER_TAGS, REG_DST_TAGS, strict=True))
    # From a tunnel the peer is the source: its slots, which Table.ENDPOINT wrote into the destination's,
    # move over and the destination's are cleared for Table.LOCAL_DST (see vsc.tags.set_tags).
    moves_src = (*(Move(p, s, 32) for p, s in zip(REG_PEER_TAGS, REG_SRC_TAGS, strict=True)),
                 *(Move(d, s, 32) for d, s in zip(REG_DST_SLOTS, REG_SRC_SLOTS, strict=True)),
                 *(SetField(d, 0) for d in REG_DST_SLOTS))
    flows = [
        Flow(Table.ENDPOINT, 0, goto=Table.PEER_MAP, cookie=ck),
        Flow(Table.PEER_MAP, 100, match(**{REG_PATH: PATH_LOCAL}), moves_dst, Table.LOCAL_DST, cookie=ck),
        Flow(Table.PEER_MAP, 100, match(**{REG_PATH: PATH_TUNNEL}), moves_src, Table.LOCAL_DST, cookie=ck),
        # A tunnel packet for an address that is not local here is dropped (table miss).
        Flow(Table.LOCAL_DST, 0, match(**{REG_PATH: PATH_LOCAL}), goto=Table.CONNTRACK, cookie=ck),
        # The sender already applied the ingress ACL; the tunnel path goes straight to the egress side.
        Flow(Table.INGRESS_STATE, 300, match(**{REG_PATH: PATH_TUNNEL}), goto=Table.EGRESS_STATE, cookie=ck),
        Flow(Table.INGRESS_STATE, 110, match(ct_state=CT_ESTABLISHED), goto=Table.ROUTE, cookie=ck),
        Flow(Table.INGRESS_STATE, 100, match(ct_state=CT_RELATED), goto=Table.ROUTE, cookie=ck),
        # New and invalid (+inv: e.g. the SYN-ACK of a connection this host never committed, as after a
        # stateless allow) both go through the ACL: conntrack only lets established traffic skip it.
        Flow(Table.INGRESS_STATE, 0, goto=Table.INGRESS_ACL, cookie=ck),
        # No local port and no remote endpoint: outside the domain, and the lab has no uplink.
        Flow(Table.ROUTE, 100, match(**{REG_OUT_PORT: 0}), cookie=ck),
        Flow(Table.ROUTE, 0, goto=Table.EGRESS_STATE, cookie=ck),
        Flow(Table.EGRESS_STATE, 110, match(ct_state=CT_ESTABLISHED), goto=Table.DELIVER, cookie=ck),
        Flow(Table.EGRESS_STATE, 100, match(ct_state=CT_RELATED), goto=Table.DELIVER, cookie=ck),
        Flow(Table.EGRESS_STATE, 0, goto=Table.EGRESS_ACL, cookie=ck),
        Flow(Table.NON_IP, 200, match(eth_type=IPV4), cookie=ck),
        Flow(Table.NON_IP, 200, match(eth_type=ARP), cookie=ck),
    ]
    if host.tunnel_ofport is not None:
        flows.append(Flow(Table.ROUTE, 200, match(**{REG_OUT_PORT: 0, REG_PEER_REMOTE: 1}),
                          (Output(host.tunnel_ofport),), cookie=ck))
    return [_canon(f) for f in flows]


def domain_flows(view: View, domain_id: str, host: Host) -> tuple[list[Flow], list[str]]:
    """What a VRS needs once it has any endpoint of the domain: tunnel classification, conntrack
    zone, ARP responders of the domain's subnets, and the domain's ACLs."""
    d = view.domains[domain_id]
    dindex = view.domain_index[domain_id]
    ck = cookie(Kind.DOMAIN, domain_id)
    if dindex >= host.ct_zone_count:
        return [], [f"datapath {host.datapath_id:#x} has conntrack zones {host.ct_zone_base}-"
                    f"{host.ct_zone_base + host.ct_zone_count - 1} (hello): domain index {dindex} has none there, "
                    "so the domain is not programmed on it"]
    zone = host.ct_zone_base + dindex
    # ct() needs an IP match (OVS: OFPBAC_MATCH_INCONSISTENT otherwise); only IPv4 gets this far anyway.
    flows = [Flow(Table.CONNTRACK, 100, match(metadata=dindex, eth_type=IPV4),
                  (Ct(zone=zone, table=Table.INGRESS_STATE),), cookie=ck)]
    if host.tunnel_ofport is not None:
        flows.append(Flow(
            Table.CLASSIFY, 100, match(in_port=host.tunnel_ofport, eth_type=IPV4, tun_id=d.vni),
            (SetField(REG_PATH, PATH_TUNNEL), Move("ipv4_src", REG_KEY, 32)),
            Table.ENDPOINT, _md(dindex), cookie=ck))
    for s in view.subnets_of_domain(domain_id):
        flows.append(arp_responder(dindex, s.network, s.netmask, cookie(Kind.SUBNET, s.id)))
        if s.gateway is not None:
            flows.append(gateway_echo(dindex, s.gateway, cookie(Kind.SUBNET, s.id)))
    acls, problems = acl_flows(view, domain_id, dindex, zone)
    return [_canon(f) for f in flows] + acls, problems + tag_problems(view, domain_id)


def gateway_echo(dindex: int, gateway: int, ck: int) -> Flow:
    """The subnet's gateway answers ping (the first thing anyone tries in a lab): the request is
    turned into the reply in place and sent back, before any ACL, like a router's own address."""
    actions = (
        Move("ipv4_src", REG_SCRATCH, 32),
        Move("ipv4_dst", "ipv4_src", 32),
        Move(REG_SCRATCH, "ipv4_dst", 32),
        SetField("icmpv4_type", 0),
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", ROUTER_MAC),
        Output(OFPP_IN_PORT),
    )
    m = match(metadata=dindex, eth_type=IPV4, ip_proto=1, ipv4_dst=gateway, icmpv4_type=8, **{REG_PATH: PATH_LOCAL})
    return _canon(Flow(Table.LOCAL_DST, 200, m, actions, cookie=ck))


def arp_responder(dindex: int, network: int, netmask: int, ck: int) -> Flow:
    """Answer every ARP request for an address of the subnet with the router MAC (proxy-ARP): one
    flow per subnet instead of one per endpoint, and nothing is flooded over the overlay."""
    actions = (
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", ROUTER_MAC),
        SetField("arp_op", 2),
        Move("arp_sha", "arp_tha", 48),
        SetField("arp_sha", ROUTER_MAC),
        Move("arp_tpa", REG_SCRATCH, 32),
        Move("arp_spa", "arp_tpa", 32),
        Move(REG_SCRATCH, "arp_spa", 32),
        Output(OFPP_IN_PORT),
    )
    m = match(metadata=dindex, eth_type=ARP, arp_op=1, arp_tpa=(network, netmask))
    return _canon(Flow(Table.ARP, 100, m, actions, cookie=ck))


def local_flows(ep: Endpoint, non_ip: bool) -> list[Flow]:
    """The flows of an endpoint on its own VRS: anti-spoofing classification (port + MAC + IP), its
    tags, its entry as a local destination and its delivery. Matches are written in canonical field
    order (tested) because NFD8 builds 100,000 of these."""
    ck = cookie(Kind.LOCAL_ENDPOINT, ep.vport_id)
    p, d, md = ep.ofport, ep.dindex, _md(ep.dindex)
    F = MatchField
    in_port, mac, ip, meta = F("in_port", p), F("eth_src", ep.mac), ep.ip, F("metadata", d)
    flows = [
        Flow(Table.CLASSIFY, 100, (in_port, mac, _IP, F("ipv4_src", ip)),
             (*set_tags(REG_SRC_TAGS, REG_SRC_SLOTS, ep.tags), _PATH_LOCAL, _KEY_FROM_DST), Table.ENDPOINT, md, cookie=ck),
        Flow(Table.CLASSIFY, 100, (in_port, mac, _ARP, F("arp_spa", ip)), goto=Table.ARP, write_metadata=md, cookie=ck),
        # A gratuitous ARP for its own address must not be answered (it would look like a conflict).
        Flow(Table.ARP, 200, (meta, _ARP, F("arp_spa", ip), F("arp_tpa", ip)), cookie=ck),
        Flow(Table.LOCAL_DST, 100, (meta, _IP, F("ipv4_dst", ip)),
             (*set_tags(REG_DST_TAGS, REG_DST_SLOTS, ep.tags), SetField(REG_OUT_PORT, p)), Table.CONNTRACK, cookie=ck),
        Flow(Table.DELIVER, 100, (F(REG_OUT_PORT, p),),
             (_ROUTER_SRC, SetField("eth_dst", ep.mac), Output(p)), cookie=ck),
    ]
    if non_ip:
        flows += [
            Flow(Table.CLASSIFY, 50, (in_port, mac), goto=Table.NON_IP, write_metadata=md, cookie=ck),
            Flow(Table.NON_IP, 100, (meta, F("eth_dst", ep.mac)), (Output(p),), cookie=ck),
        ]
    return flows


_IP = MatchField("eth_type", IPV4)
_ARP = MatchField("eth_type", ARP)
_PATH_LOCAL = SetField(REG_PATH, PATH_LOCAL)
_KEY_FROM_DST = Move("ipv4_dst", REG_KEY, 32)
_ROUTER_SRC = SetField("eth_src", ROUTER_MAC)


def remote_flow(ep: Endpoint) -> Flow:
    """The one flow every other VRS of the domain holds for this endpoint: its tags and where to
    tunnel. Keyed on reg0 so it serves both the sender's lookup (reg0 = ipv4_dst) and the receiver's
    (reg0 = ipv4_src). Built directly in canonical order: this is the flow NFD8 needs 780,000 of."""
    actions = (*set_tags(REG_PEER_TAGS, REG_DST_SLOTS, ep.tags), _PEER_REMOTE, SetField("tun_id", ep.vni),
               SetField("tun_ipv4_dst", ep.vtep_ip))
    m = (MatchField("metadata", ep.dindex), MatchField(REG_KEY, ep.ip))
    return Flow(Table.ENDPOINT, 100, m, actions, Table.PEER_MAP, cookie=cookie(Kind.REMOTE_ENDPOINT, ep.vport_id))


_PEER_REMOTE = SetField(REG_PEER_REMOTE, 1)


def _canon(f: Flow) -> Flow:
    return Flow(f.table, f.priority, canonical(f.match), f.actions, f.goto, f.write_metadata, f.cookie)


# --- whole hosts ---------------------------------------------------------------------------------


def endpoints_by_domain(view: View, locs: Locations) -> dict[str, list[Endpoint]]:
    out: dict[str, list[Endpoint]] = {}
    for vport_id in locs.by_vport:
        ep = endpoint(view, locs, vport_id)
        if ep is not None:
            out.setdefault(ep.domain_id, []).append(ep)
    return out


def compile_host(view: View, locs: Locations, dpid: int,
                 by_domain: dict[str, list[Endpoint]] | None = None) -> tuple[dict, list[str]]:
    """All desired flows of one VRS, keyed by (table, priority, match); and compile problems."""
    if by_domain is None:
        by_domain = endpoints_by_domain(view, locs)
    host = locs.hosts[dpid]
    flows = {flow_key(f): f for f in pipeline_flows(host)}
    problems: list[str] = []
    for domain_id, eps in by_domain.items():
        local = [e for e in eps if e.dpid == dpid]
        if not local:
            continue
        dflows, dprob = domain_flows(view, domain_id, host)
        problems += dprob
        non_ip = non_ip_allowed(view, domain_id)
        for f in dflows:
            flows[flow_key(f)] = f
        for e in eps:
            if e.dpid == dpid:
                for f in local_flows(e, non_ip):
                    flows[flow_key(f)] = f
            else:
                f = remote_flow(e)
                flows[flow_key(f)] = f
    return flows, problems
