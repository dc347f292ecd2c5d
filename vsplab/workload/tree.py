"""VSD object trees and VRS reports built in memory, in the exact shape of the change stream and the
agent channel: the inputs of the compiler tests and of `benchmarks/compile.py` (including the NFD8
workload of ../shared/notes/anchors.md), without a VSD or a VRS running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from vsc.locations import Locations
from vsc.view import View


def _ip(n: int) -> str:
    return str(IPv4Address(n))


def _mac(n: int) -> str:
    return ":".join(f"{b:02x}" for b in (0x02_00_00_00_00_00 | n).to_bytes(6, "big"))


@dataclass
class Tree:
    """A VSD tree as stream objects ({"entityType", "entity", "assoc"}), IDs readable and stable."""

    objects: list[dict] = field(default_factory=list)
    _n: int = 0

    def add(self, kind: str, parent: tuple[str, str] | None = None, assoc: dict | None = None, **attrs) -> str:
        self._n += 1
        oid = attrs.pop("ID", None) or f"{kind}-{self._n}"
        ent = {"ID": oid, **attrs}
        if parent:
            ent["parentType"], ent["parentID"] = parent
        self.objects.append({"entityType": kind, "entity": ent, "assoc": assoc or {}})
        return oid

    def find(self, oid: str) -> dict:
        return next(o for o in self.objects if o["entity"]["ID"] == oid)

    def enterprise(self, name: str = "acme") -> str:
        return self.add("enterprise", name=name)

    def domain(self, ent: str, name: str, vni: int) -> str:
        return self.add("domain", ("enterprise", ent), name=name, serviceID=vni, routeTarget=f"65000:{vni}")

    def zone(self, dom: str, name: str) -> str:
        return self.add("zone", ("domain", dom), name=name)

    def subnet(self, zone: str, name: str, cidr: str, vni: int | None = None) -> str:
        addr, plen = cidr.split("/")
        mask = (0xFFFFFFFF << (32 - int(plen))) & 0xFFFFFFFF
        net = int(IPv4Address(addr)) & mask
        return self.add("subnet", ("zone", zone), name=name, address=_ip(net), netmask=_ip(mask),
                        gateway=_ip(net + 1), vnId=vni)

    def vport(self, subnet: str, dom: str, name: str, mac: str, ip: str) -> str:
        vp = self.add("vport", ("subnet", subnet), name=name, domainID=dom, type="CONTAINER",
                      addressSpoofing="INHERITED")
        self.add("vminterface", ("vm", f"vm-{vp}"), name=name, MAC=mac, IPAddress=ip, VPortID=vp,
                 domainID=dom, attachedNetworkID=subnet)
        return vp

    def policy_group(self, dom: str, name: str, number: int, members: list[str]) -> str:
        return self.add("policygroup", ("domain", dom), {"vport": list(members)}, name=name, type="SOFTWARE",
                        policyGroupID=number, EVPNCommunityTag=f"65000:{number}")

    def template(self, dom: str, direction: str, allow_ip: bool = False, allow_non_ip: bool = False,
                 priority: int = 100) -> str:
        return self.add(f"{direction}acltemplate", ("domain", dom), name=f"{direction}-{priority}", active=True,
                        defaultAllowIP=allow_ip, defaultAllowNonIP=allow_non_ip, priority=priority,
                        priorityType="NONE")

    def entry(self, template: str, direction: str, priority: int, action: str = "FORWARD",
              location: tuple[str, str | None] = ("ANY", None), network: tuple[str, str | None] = ("ANY", None),
              protocol: str = "ANY", dport: str = "*", sport: str = "*", stateful: bool = False) -> str:
        return self.add(f"{direction}aclentrytemplate", (f"{direction}acltemplate", template), action=action,
                        locationType=location[0], locationID=location[1], networkType=network[0],
                        networkID=network[1], protocol=protocol, sourcePort=sport, destinationPort=dport,
                        etherType="0x0800", priority=priority, stateful=stateful, DSCP="*")

    def network(self, ent: str, name: str, cidr: str) -> str:
        addr, plen = cidr.split("/")
        mask = (0xFFFFFFFF << (32 - int(plen))) & 0xFFFFFFFF
        return self.add("enterprisenetwork", ("enterprise", ent), name=name, address=addr, netmask=_ip(mask))

    def macro_group(self, ent: str, name: str, members: list[str]) -> str:
        return self.add("networkmacrogroup", ("enterprise", ent), {"enterprisenetwork": list(members)}, name=name)


@dataclass
class Placement:
    """What each simulated VRS would report on the agent channel."""

    hosts: dict[int, list[dict]] = field(default_factory=dict)

    def host(self, dpid: int, vtep: str, tunnel_ofport: int = 1) -> None:
        self.hosts[dpid] = [
            {"op": "hello", "datapath_id": dpid, "name": f"vl-vrs{dpid}", "vtep_ip": vtep},
            {"op": "tunnel", "datapath_id": dpid, "ofport": tunnel_ofport},
        ]

    def port(self, dpid: int, ofport: int, vport: str, mac: str, ip: str) -> None:
        self.hosts[dpid].append({"op": "port-up", "datapath_id": dpid, "ofport": ofport, "name": f"vl-c{ofport}",
                                 "vport_id": vport, "mac": mac, "ip": ip})

    def messages(self) -> list[dict]:
        return [m for msgs in self.hosts.values() for m in msgs]


def compiler_inputs(tree: Tree, placement: Placement) -> tuple[View, Locations]:
    """The VSC's view of `tree` (as a snapshot at revision 1) and its locations from `placement`'s
    reports: what the compiler reads, built without a VSD or a VRS."""
    view, locs = View(), Locations()
    view.load_snapshot(1, tree.objects)
    for m in placement.messages():
        locs.apply(m)
    return view, locs


def vtep_of(dpid: int) -> str:
    return _ip(int(IPv4Address("192.168.77.0")) + dpid)


def tiered(n_endpoints: int, n_hosts: int, n_groups: int, n_rules: int) -> tuple[Tree, Placement]:
    """One domain, one subnet; endpoint i in group i mod G, round-robin over hosts; R stateful allow
    rules from group r mod G to group (r+1) mod G on tcp port 1000+r, split ingress/egress."""
    t, p = Tree(), Placement()
    ent = t.enterprise()
    dom = t.domain(ent, "d1", 5001)
    sub = t.subnet(t.zone(dom, "z1"), "s1", "10.0.0.0/8")
    members: list[list[str]] = [[] for _ in range(n_groups)]
    for h in range(n_hosts):
        p.host(h + 1, vtep_of(h + 1))
    for i in range(n_endpoints):
        mac, ip = _mac(i + 1), _ip(int(IPv4Address("10.0.0.0")) + 10 + i)
        vp = t.vport(sub, dom, f"c{i}", mac, ip)
        members[i % n_groups].append(vp)
        p.port(i % n_hosts + 1, 10 + i // n_hosts, vp, mac, ip)
    groups = [t.policy_group(dom, f"g{g}", g + 1, members[g]) for g in range(n_groups)]
    tin, teg = t.template(dom, "ingress"), t.template(dom, "egress")
    for r in range(n_rules):
        direction, tmpl = ("ingress", tin) if r % 2 == 0 else ("egress", teg)
        t.entry(tmpl, direction, 100 + r, location=("POLICYGROUP", groups[r % n_groups]),
                network=("POLICYGROUP", groups[(r + 1) % n_groups]), protocol="6", dport=str(1000 + r),
                stateful=True)
    return t, p


def nfd8(n_hosts: int = 40, per_host: int = 500) -> tuple[Tree, Placement]:
    """The NFD8 workload of anchors.md: tiers web/app/db by g mod 3, one subnet and zone per tier in one
    L3 domain, groups web/app/db/all, 13 rules (every container under 7), allows stateful."""
    t, p = Tree(), Placement()
    ent = t.enterprise("nfd8")
    dom = t.domain(ent, "nfd8", 5001)
    tiers = ["web", "app", "db"]
    subs = [t.subnet(t.zone(dom, f"zone-{n}"), f"{n}", f"10.{k + 1}.0.0/16") for k, n in enumerate(tiers)]
    members: list[list[str]] = [[], [], []]
    for h in range(n_hosts):
        p.host(h + 1, vtep_of(h + 1))
    for g in range(n_hosts * per_host):
        h, slot, tier = divmod(g, per_host)[0], g % per_host, g % 3
        n = g // 3 + 2
        mac, ip = _mac(g + 1), f"10.{tier + 1}.{n >> 8}.{n & 0xFF}"
        vp = t.vport(subs[tier], dom, f"c{g}", mac, ip)
        members[tier].append(vp)
        p.port(h + 1, 10 + slot, vp, mac, ip)
    web, app, db = (t.policy_group(dom, n, k + 1, members[k]) for k, n in enumerate(tiers))
    every = t.policy_group(dom, "all", 4, [v for m in members for v in m])
    dns = t.macro_group(ent, "dns", [t.network(ent, "dns1", "10.0.0.53/32"), t.network(ent, "dns2", "10.0.0.54/32")])
    mgmt = t.network(ent, "mgmt", "192.168.100.0/24")
    tin, teg = t.template(dom, "ingress"), t.template(dom, "egress")
    pg = "POLICYGROUP"
    # Ingress = what the group sends ("out"), egress = what it receives ("in").
    t.entry(tin, "ingress", 10, location=(pg, every), network=("NETWORK_MACRO_GROUP", dns), protocol="17",
            dport="53", stateful=True)
    t.entry(teg, "egress", 10, location=(pg, every), network=("ENTERPRISE_NETWORK", mgmt), protocol="6",
            dport="22", stateful=True)
    t.entry(teg, "egress", 20, location=(pg, web), protocol="6", dport="80", stateful=True)
    t.entry(teg, "egress", 21, location=(pg, web), protocol="6", dport="443", stateful=True)
    t.entry(tin, "ingress", 20, location=(pg, web), network=(pg, app), protocol="6", dport="8080", stateful=True)
    t.entry(teg, "egress", 22, location=(pg, web), network=(pg, web), protocol="6", dport="7946", stateful=True)
    t.entry(teg, "egress", 23, location=(pg, app), network=(pg, web), protocol="6", dport="8080", stateful=True)
    t.entry(tin, "ingress", 21, location=(pg, app), network=(pg, db), protocol="6", dport="5432", stateful=True)
    t.entry(teg, "egress", 24, location=(pg, app), network=(pg, app), protocol="6", dport="7946", stateful=True)
    t.entry(teg, "egress", 25, location=(pg, db), network=(pg, app), protocol="6", dport="5432", stateful=True)
    t.entry(tin, "ingress", 22, location=(pg, db), network=(pg, db), protocol="6", dport="5433", stateful=True)
    t.entry(teg, "egress", 26, location=(pg, db), network=(pg, db), protocol="6", dport="5433", stateful=True)
    t.entry(teg, "egress", 1000, action="DROP", location=(pg, every))
    t.entry(tin, "ingress", 1000, action="DROP", location=(pg, every))
    return t, p
