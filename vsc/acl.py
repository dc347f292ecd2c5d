"""ACL entries -> flows of Table.INGRESS_ACL / Table.EGRESS_ACL (pure).

Policy groups are matched as tag bits in registers, so an entry costs a handful of flows however many
vports its groups hold. Which side of the packet an entry's `location` and `network` name depends on
the direction (Nuage's convention, see pipeline.md):

    ingress ACL (what a vport sends):      location = source,      network = destination
    egress ACL (what a vport receives):    location = destination, network = source
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from openflow.fields import FIELDS
from openflow.flow import Ct, Flow, MatchField
from vsc.pipeline import (
    ACL_BAND_WIDTH,
    ACL_BANDS,
    ACL_DEFAULT_PRIORITY,
    REG_DST_SLOTS,
    REG_DST_TAGS,
    REG_SRC_SLOTS,
    REG_SRC_TAGS,
    Kind,
    Table,
    canonical,
    cookie,
)
from vsc.problems import Problem
from vsc.tags import TagError, group_match
from vsc.view import View
from vsc.vsd_objects import AclEntry, AclTemplate

Alt = tuple[MatchField, ...]


class UnsupportedEntry(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Side:
    tags: tuple[str, str]  # the bitmap registers
    slots: tuple[str, str]  # the slot registers (vsc.tags)
    ip: str


SRC = Side(REG_SRC_TAGS, REG_SRC_SLOTS, "ipv4_src")
DST = Side(REG_DST_TAGS, REG_DST_SLOTS, "ipv4_dst")
# direction -> (ACL table, table after an allow, location side, network side)
DIRECTIONS = {
    "ingress": (Table.INGRESS_ACL, Table.ROUTE, SRC, DST),
    "egress": (Table.EGRESS_ACL, Table.DELIVER, DST, SRC),
}
PROTOCOLS = {"TCP": 6, "UDP": 17, "ICMP": 1}
PORT_FIELDS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def port_range(spec: str | None) -> tuple[int, int] | None:
    """'*' / empty -> None (any); '80' -> (80, 80); '1000-2000' -> (1000, 2000)."""
    if spec is None or str(spec).strip() in ("", "*"):
        return None
    text = str(spec).strip()
    lo, sep, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise UnsupportedEntry(f"port {text!r} is not N or N-M") from None
    if not (0 <= a <= b <= 0xFFFF):
        raise UnsupportedEntry(f"port range {text!r} out of 0-65535")
    if (a, b) == (0, 0xFFFF):
        return None
    return a, b


def port_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """The fewest (value, mask) pairs covering [lo, hi]: OVS matches L4 ports bitwise."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def _tag_match(view: View, side: Side, group_id: str | None) -> list[Alt]:
    index = view.group_bit.get(group_id or "")
    if index is None:
        pg = view.policy_groups.get(group_id or "")
        why = "unknown policy group" if pg is None else "policy group beyond the per-domain tag limit"
        raise UnsupportedEntry(f"{why} {group_id}")
    try:
        return group_match(index, side.tags, side.slots)
    except TagError as e:
        raise UnsupportedEntry(f"policy group {group_id}: {e}") from None


def _prefix(side: Side, net: int, mask: int) -> Alt:
    return (MatchField(side.ip, net, mask),) if mask else ()


def _subnet_alts(view: View, side: Side, subnets) -> list[Alt]:
    return [_prefix(side, s.network, s.netmask) for s in subnets]


def _alternatives(view: View, domain_id: str, side: Side, kind: str, ident: str | None) -> list[Alt]:
    """The alternative matches (OR) that select `kind`/`ident` on one side of the packet."""
    if kind == "ANY":
        return [()]
    if kind == "POLICYGROUP":
        return _tag_match(view, side, ident)
    if kind == "SUBNET":
        s = view.subnets.get(ident or "")
        if s is None:
            raise UnsupportedEntry(f"unknown subnet {ident}")
        return [_prefix(side, s.network, s.netmask)]
    if kind == "ZONE":
        if ident not in view.zones:
            raise UnsupportedEntry(f"unknown zone {ident}")
        return _subnet_alts(view, side, view.subnets_of_zone(ident))
    if kind == "ENDPOINT_DOMAIN":
        return _subnet_alts(view, side, view.subnets_of_domain(domain_id))
    if kind == "ENTERPRISE_NETWORK":
        n = view.enterprise_networks.get(ident or "")
        if n is None:
            raise UnsupportedEntry(f"unknown enterprise network {ident}")
        return [_prefix(side, n.network, n.netmask)]
    if kind == "NETWORK_MACRO_GROUP":
        g = view.macro_groups.get(ident or "")
        if g is None:
            raise UnsupportedEntry(f"unknown network macro group {ident}")
        nets = sorted((view.enterprise_networks[m] for m in g.member_ids if m in view.enterprise_networks),
                      key=lambda n: (n.network, n.netmask))
        return [_prefix(side, n.network, n.netmask) for n in nets]
    raise UnsupportedEntry(f"{kind} is not supported")


def _pairs(view: View, domain_id: str, loc: Side, net: Side, kind: str) -> list[Alt]:
    """ENDPOINT_SUBNET / ENDPOINT_ZONE: the network side is 'the same subnet/zone as the location'."""
    subnets = view.subnets_of_domain(domain_id)
    if kind == "ENDPOINT_SUBNET":
        return [_prefix(loc, s.network, s.netmask) + _prefix(net, s.network, s.netmask) for s in subnets]
    out = []
    for z in sorted({s.zone_id for s in subnets}):
        zs = [s for s in subnets if s.zone_id == z]
        out += [_prefix(loc, a.network, a.netmask) + _prefix(net, b.network, b.netmask) for a in zs for b in zs]
    return out


def _merge(a: Alt, b: Alt) -> Alt | None:
    """a AND b, or None when they cannot both hold (two disjoint prefixes on one field)."""
    out = {f.name: f for f in a}
    for f in b:
        g = out.get(f.name)
        if g is None:
            out[f.name] = f
            continue
        full = (1 << FIELDS[f.name].bits) - 1
        fm, gm = full if f.mask is None else f.mask, full if g.mask is None else g.mask
        if f.name.startswith("reg"):
            if (f.value ^ g.value) & fm & gm:
                return None
            m = fm | gm
            out[f.name] = MatchField(f.name, (f.value & fm) | (g.value & gm), m)
        elif (f.value ^ g.value) & fm & gm:
            return None
        else:
            out[f.name] = f if (fm | gm) == fm else g  # the narrower prefix
    return tuple(out.values())


def _override(side: Side, text: str) -> Alt:
    try:
        n = ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError:
        raise UnsupportedEntry(f"addressOverride {text!r} is not an IPv4 address or prefix") from None
    return _prefix(side, int(n.network_address), int(n.netmask))


def _l4(entry: AclEntry) -> list[Alt]:
    proto_text = entry.protocol.strip().upper()
    if proto_text in ("ANY", ""):
        return [()]
    try:
        proto = PROTOCOLS.get(proto_text) or int(proto_text)
    except ValueError:
        raise UnsupportedEntry(f"protocol {entry.protocol!r}") from None
    base = (MatchField("ip_proto", proto),)
    if proto == 1:
        extra = []
        for name, v in (("icmpv4_type", entry.icmp_type), ("icmpv4_code", entry.icmp_code)):
            if v not in (None, "", "*"):
                extra.append(MatchField(name, int(v)))
        return [base + tuple(extra)]
    if proto not in PORT_FIELDS:
        return [base]
    f_src, f_dst = PORT_FIELDS[proto]
    srcs = _port_alts(f_src, port_range(entry.source_port))
    dsts = _port_alts(f_dst, port_range(entry.destination_port))
    return [base + s + d for s in srcs for d in dsts]


def _port_alts(name: str, rng: tuple[int, int] | None) -> list[Alt]:
    if rng is None:
        return [()]
    return [(MatchField(name, v, None if m == 0xFFFF else m),) for v, m in port_masks(*rng)]


def band_of(template: AclTemplate) -> str:
    """TOP, NONE or BOTTOM: the band of OpenFlow priorities a template's entries go to."""
    band = template.priority_type.split("_")[0]
    return band if band in ACL_BANDS else "NONE"


def band_priorities(band: str, priorities: Iterable[int]) -> dict[int, int]:
    """Nuage entry priority -> OpenFlow priority for the entries of one band of one direction of a
    domain (lower Nuage number = evaluated first = higher OpenFlow priority). When every priority
    fits the band's width it is subtracted from the band's top, so an added entry moves no other;
    otherwise the distinct priorities are ranked densely. Priorities beyond the band's
    ACL_BAND_WIDTH distinct values get none (acl_flows reports those entries)."""
    top = ACL_BANDS[band] + ACL_BAND_WIDTH - 1
    ps = sorted(set(priorities))
    if not ps or (ps[0] >= 0 and ps[-1] < ACL_BAND_WIDTH):
        return {p: top - p for p in ps}
    return {p: top - k for k, p in enumerate(ps[:ACL_BAND_WIDTH])}


def entry_priority(template: AclTemplate, entry: AclEntry) -> int:
    """The OpenFlow priority of an entry considered alone (band top - its priority); acl_flows ranks
    a domain's entries instead when they do not fit."""
    prio = band_priorities(band_of(template), [entry.priority]).get(entry.priority)
    assert prio is not None  # one priority always fits
    return prio


def entry_flows(view: View, domain_id: str, dindex: int, template: AclTemplate, entry: AclEntry,
                prio: int | None = None, zone: int | None = None) -> list[Flow]:
    """The flows of one ACL entry at OpenFlow priority `prio` (default: `entry_priority`), committing
    in conntrack zone `zone` (default: the domain index). Raises UnsupportedEntry naming what cannot
    be compiled."""
    if entry.uncompiled:
        raise UnsupportedEntry(f"{', '.join(entry.uncompiled)}: not compiled by this VSC, and the entry would "
                               "match more traffic than it says without it")
    ether = (entry.ether_type or "0x0800").strip().upper()
    if ether not in ("0X0800", "ANY", "2048"):
        raise UnsupportedEntry(f"etherType {entry.ether_type} (only IPv4 entries are compiled)")
    table, after, loc, net = DIRECTIONS[entry.direction]
    locs = _alternatives(view, domain_id, loc, entry.location_type, entry.location_id)
    if entry.address_override:  # narrows the location side to one address or prefix
        only = _override(loc, entry.address_override)
        locs = [m for la in locs if (m := _merge(la, only)) is not None]
    if entry.network_type in ("ENDPOINT_SUBNET", "ENDPOINT_ZONE"):
        nets = _pairs(view, domain_id, loc, net, entry.network_type)
    else:
        nets = _alternatives(view, domain_id, net, entry.network_type, entry.network_id)
    if entry.action == "FORWARD":
        ct = Ct(commit=True, zone=dindex if zone is None else zone, table=after)
        actions, goto = ((ct,), None) if entry.stateful else ((), after)
    elif entry.action == "DROP":
        actions, goto = (), None
    else:
        raise UnsupportedEntry(f"action {entry.action}")
    if prio is None:
        prio = entry_priority(template, entry)
    ck = cookie(Kind.ACL_ENTRY, entry.id)
    head = (MatchField("metadata", dindex), MatchField("eth_type", 0x0800))
    flows = []
    for la in locs:
        for na in nets:
            both = _merge(la, na)
            if both is None:
                continue
            for l4 in _l4(entry):
                m = _merge(both, l4)
                if m is not None:
                    flows.append(Flow(table, prio, canonical(head + m), actions, goto, cookie=ck))
    return flows


def default_flows(view: View, domain_id: str, dindex: int, zone: int | None = None) -> list[Flow]:
    """The verdict for IP traffic no entry matched: the first active template's defaultAllowIP in each
    direction; no active template at all means drop."""
    out = []
    ck = cookie(Kind.ACL_DEFAULT, domain_id)
    for direction, (table, after, _, _) in DIRECTIONS.items():
        ts = view.templates_of(domain_id, direction)
        allow = bool(ts) and ts[0].default_allow_ip
        # A default allow commits the connection: without it a TCP reply (SYN-ACK) of a connection
        # conntrack never saw is +inv and dropped, so "allow all" would not carry TCP at all.
        actions = (Ct(commit=True, zone=dindex if zone is None else zone, table=after),) if allow else ()
        out.append(Flow(table, ACL_DEFAULT_PRIORITY,
                        canonical((MatchField("metadata", dindex), MatchField("eth_type", 0x0800))),
                        actions, cookie=ck))
    return out


def non_ip_allowed(view: View, domain_id: str) -> bool:
    """Non-IP frames pass only if both directions' first active templates allow them."""
    for direction in DIRECTIONS:
        ts = view.templates_of(domain_id, direction)
        if not ts or not ts[0].default_allow_non_ip:
            return False
    return True


def acl_flows(view: View, domain_id: str, dindex: int, zone: int | None = None) -> tuple[list[Flow], list[str]]:
    """Every ACL flow of a domain (stateful allows committing in `zone`, default the domain index), and
    the problems (entries not compiled, colliding flows)."""
    flows: dict = {}
    problems = []
    entries_by_template: dict[str, list[AclEntry]] = {}
    for e in view.acl_entries.values():
        entries_by_template.setdefault(e.template_id, []).append(e)
    for direction in DIRECTIONS:
        templates = view.templates_of(domain_id, direction)
        in_band: dict[str, list[int]] = {}
        for t in templates:
            in_band.setdefault(band_of(t), []).extend(e.priority for e in entries_by_template.get(t.id, ()))
        ranks = {band: band_priorities(band, ps) for band, ps in in_band.items()}
        for t in templates:
            band = band_of(t)
            for e in sorted(entries_by_template.get(t.id, ()), key=lambda e: (e.priority, e.id)):
                prio = ranks[band].get(e.priority)
                try:
                    if prio is None:
                        raise UnsupportedEntry(
                            f"priority {e.priority} is beyond the {ACL_BAND_WIDTH:,} distinct priorities the "
                            f"{band} band of the domain's {direction} ACLs can order")
                    fs = entry_flows(view, domain_id, dindex, t, e, prio, zone)
                except UnsupportedEntry as err:
                    problems.append(Problem(f"{direction} ACL entry {e.id} (template {t.name}): {err}",
                                            f"{direction}aclentrytemplate", e.id))
                    continue
                for f in fs:
                    if f.key in flows:
                        problems.append(Problem(f"{direction} ACL entry {e.id} duplicates a flow of an earlier entry",
                                                f"{direction}aclentrytemplate", e.id))
                        continue
                    flows[f.key] = f
    for f in default_flows(view, domain_id, dindex, zone):
        flows[f.key] = f
    return list(flows.values()), problems


def predicted_flows(view: View, domain_id: str) -> dict[str, int]:
    """ACL entry ID -> how many flows it costs every host with an endpoint of the domain (0: not
    compiled, acl_flows says why), and "default" -> the default verdicts. Counted from acl_flows
    itself, so a prediction (e.g. `vsplab lint`) always equals what the VSC installs."""
    flows, _ = acl_flows(view, domain_id, view.domain_index.get(domain_id, 1))
    by_cookie: dict[int, int] = {}
    for f in flows:
        by_cookie[f.cookie] = by_cookie.get(f.cookie, 0) + 1
    out = {"default": by_cookie.get(cookie(Kind.ACL_DEFAULT, domain_id), 0)}
    for t in (*view.templates_of(domain_id, "ingress"), *view.templates_of(domain_id, "egress")):
        for e in view.acl_entries.values():
            if e.template_id == t.id:
                out[e.id] = by_cookie.get(cookie(Kind.ACL_ENTRY, e.id), 0)
    return out
