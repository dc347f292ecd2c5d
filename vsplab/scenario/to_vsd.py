"""Push a scenario's objects into the VSD through its REST API (bulk where the API allows), the way an
operator's tooling would. Returns where each container landed (vport, MAC, IP as the VSD assigned).

ACL direction (Nuage's convention, see `vsplab.scenario.model`): ingress rules get location = `from`,
network = `to`; egress rules get location = `to`, network = `from`. Priorities: lower numbers are
evaluated first; a rule without one gets 1000 + 10 * its position, so explicit small numbers win.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .check import resolve_subnet
from .model import AclRule, AclTemplate, Scenario, parse_port_range

PROTOCOLS = {"any": "ANY", "tcp": "6", "udp": "17", "icmp": "1"}
_LOCATION = {"subnet": "SUBNET", "zone": "ZONE"}
_NETWORK = {"subnet": "SUBNET", "zone": "ZONE", "macro": "ENTERPRISE_NETWORK",
            "macrogroup": "NETWORK_MACRO_GROUP"}


@dataclass
class PlacedContainer:
    name: str
    host: str
    enterprise: str
    domain: str
    subnet: str
    vport_id: str
    vm_id: str
    mac: str
    ip: str
    groups: tuple[str, ...]


@dataclass
class PushResult:
    containers: dict[str, PlacedContainer]
    objects: int  # how many VSD objects the push created


def _mac_for(index: int) -> str:
    # locally administered, unicast; unique per container of the scenario
    return "02:00:" + ":".join(f"{b:02x}" for b in index.to_bytes(4, "big"))


def _ports(v) -> str:
    r = parse_port_range(v)
    if r is None:
        return "*"
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


class _Ids:
    """Name -> VSD ID per enterprise/domain, filled as objects are created."""

    def __init__(self):
        self.groups: dict[tuple[str, str, str], str] = {}
        self.subnets: dict[tuple[str, str], str] = {}
        self.zones: dict[tuple[str, str, str], str] = {}
        self.macros: dict[tuple[str, str], str] = {}
        self.macro_groups: dict[tuple[str, str], str] = {}


def _end(end: str, ent: str, dom: str, ids: _Ids, *, as_location: bool) -> tuple[str, str | None]:
    if end == "any":
        return "ANY", None
    kind, _, name = end.partition(":")
    if not name:
        return "POLICYGROUP", ids.groups[(ent, dom, end)]
    table = _LOCATION if as_location else _NETWORK
    if kind not in table:
        raise ValueError(f"{end!r} cannot be an ACL location (only a policy group, subnet, zone or any)")
    ref = {"subnet": lambda: ids.subnets[(ent, name)], "zone": lambda: ids.zones[(ent, dom, name)],
           "macro": lambda: ids.macros[(ent, name)], "macrogroup": lambda: ids.macro_groups[(ent, name)]}[kind]()
    return table[kind], ref


def acl_entry(rule: AclRule, position: int, direction: str, ent: str, dom: str, ids: _Ids) -> dict:
    location, network = (rule.from_, rule.to) if direction == "ingress" else (rule.to, rule.from_)
    loc_type, loc_id = _end(location, ent, dom, ids, as_location=True)
    net_type, net_id = _end(network, ent, dom, ids, as_location=False)
    entry = {
        "description": f"{rule.from_} -> {rule.to} {rule.protocol} {rule.port or ''}".strip(),
        "action": "FORWARD" if rule.action == "allow" else "DROP",
        "locationType": loc_type, "locationID": loc_id,
        "networkType": net_type, "networkID": net_id,
        "etherType": "0x0800",
        "protocol": PROTOCOLS[rule.protocol],
        "priority": rule.priority if rule.priority is not None else 1000 + 10 * position,
        "stateful": rule.stateful,
    }
    if rule.protocol in ("tcp", "udp"):
        entry["sourcePort"] = _ports(rule.src_port)
        entry["destinationPort"] = _ports(rule.port)
    return entry


def push_scenario(client, s: Scenario) -> PushResult:
    ids = _Ids()
    created = 0
    for ent in s.enterprises:
        e = client.create("", "enterprises", {"name": ent.name})
        created += 1
        macros = client.create(f"enterprises/{e['ID']}", "enterprisenetworks", [
            {"name": m.name, "address": str(ipaddress.IPv4Network(m.address).network_address),
             "netmask": str(ipaddress.IPv4Network(m.address).netmask)} for m in ent.network_macros]) if ent.network_macros else []
        created += len(macros)
        for m, obj in zip(ent.network_macros, macros, strict=True):
            ids.macros[(ent.name, m.name)] = obj["ID"]
        for g in ent.macro_groups:
            obj = client.create(f"enterprises/{e['ID']}", "networkmacrogroups", {"name": g.name})
            client.assign(f"networkmacrogroups/{obj['ID']}/enterprisenetworks",
                          [ids.macros[(ent.name, m)] for m in g.members])
            ids.macro_groups[(ent.name, g.name)] = obj["ID"]
            created += 1
        for dom in ent.domains:
            created += _push_domain(client, e["ID"], ent.name, dom, ids)
    placed, n = _push_workload(client, s, ids)
    return PushResult(containers=placed, objects=created + n)


def _push_domain(client, enterprise_id: str, ent: str, dom, ids: _Ids) -> int:
    tmpl = client.create(f"enterprises/{enterprise_id}", "domaintemplates", {"name": f"{dom.name}-template"})
    d = client.create(f"enterprises/{enterprise_id}", "domains", {"name": dom.name, "templateID": tmpl["ID"]})
    created = 2
    zones = client.create(f"domains/{d['ID']}", "zones", [{"name": z.name} for z in dom.zones])
    created += len(zones)
    for zone, zobj in zip(dom.zones, zones, strict=True):
        ids.zones[(ent, dom.name, zone.name)] = zobj["ID"]
        net_objs = client.create(f"zones/{zobj['ID']}", "subnets", [
            {"name": sn.name, "address": str(sn.network.network_address), "netmask": str(sn.network.netmask),
             "gateway": sn.gateway_ip} for sn in zone.subnets])
        created += len(net_objs)
        for sn, sobj in zip(zone.subnets, net_objs, strict=True):
            ids.subnets[(ent, sn.name)] = sobj["ID"]
    if dom.policy_groups:
        pgs = client.create(f"domains/{d['ID']}", "policygroups",
                            [{"name": g, "type": "SOFTWARE"} for g in dom.policy_groups])
        created += len(pgs)
        for g, pobj in zip(dom.policy_groups, pgs, strict=True):
            ids.groups[(ent, dom.name, g)] = pobj["ID"]
    for direction in ("ingress", "egress"):
        template: AclTemplate = getattr(dom, direction) or AclTemplate()
        t = client.create(f"domains/{d['ID']}", f"{direction}acltemplates", {
            "name": f"{dom.name}-{direction}", "active": True,
            "defaultAllowIP": template.default_allow_ip, "defaultAllowNonIP": template.default_allow_non_ip})
        created += 1
        if template.rules:
            entries = [acl_entry(r, i, direction, ent, dom.name, ids) for i, r in enumerate(template.rules)]
            created += len(client.create(f"{direction}acltemplates/{t['ID']}", f"{direction}aclentrytemplates", entries))
    return created


def _push_workload(client, s: Scenario, ids: _Ids) -> tuple[dict[str, PlacedContainer], int]:
    by_subnet: dict[str, list[int]] = {}
    refs = {}
    for i, c in enumerate(s.containers):
        ref = resolve_subnet(s, c.subnet)
        refs[c.name] = ref
        by_subnet.setdefault(ids.subnets[(ref.enterprise.name, ref.subnet.name)], []).append(i)
    vport_of: dict[int, dict] = {}
    for subnet_id, idx in by_subnet.items():
        vports = client.create(f"subnets/{subnet_id}", "vports", [
            {"name": s.containers[i].name, "type": "VM", "addressSpoofing": "INHERITED"} for i in idx])
        vport_of.update(zip(idx, vports, strict=True))
    vms = client.create("", "vms", [{
        "name": c.name, "UUID": vport_of[i]["ID"],
        "interfaces": [{"name": "eth0", "MAC": c.mac or _mac_for(i + 1), "VPortID": vport_of[i]["ID"],
                        **({"IPAddress": c.ip} if c.ip else {})}],
    } for i, c in enumerate(s.containers)]) if s.containers else []
    members: dict[str, list[str]] = {}
    placed = {}
    for i, (c, vm) in enumerate(zip(s.containers, vms, strict=True)):
        ref = refs[c.name]
        iface = client.list(f"vms/{vm['ID']}/vminterfaces")[0] if "interfaces" not in vm else vm["interfaces"][0]
        for g in c.groups:
            members.setdefault(ids.groups[(ref.enterprise.name, ref.domain.name, g)], []).append(vport_of[i]["ID"])
        placed[c.name] = PlacedContainer(
            name=c.name, host=c.host, enterprise=ref.enterprise.name, domain=ref.domain.name,
            subnet=ref.subnet.name, vport_id=vport_of[i]["ID"], vm_id=vm["ID"], mac=iface["MAC"].lower(),
            ip=iface["IPAddress"], groups=tuple(c.groups))
    for pg_id, vport_ids in members.items():
        client.assign(f"policygroups/{pg_id}/vports", vport_ids)
    return placed, len(vport_of) + len(vms) * 2
