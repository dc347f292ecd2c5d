"""What the VSD checks and assigns per entity before an object enters the tree: addresses and gateways,
overlaps, VNIs, route distinguishers and targets, policy-group numbers, endpoint addresses, and that ACL
entries and member lists only point at objects of the same domain (or enterprise, for network macros).

Each `prepare_<kind>(tree, idx, obj, parent)` fills the object's placement (enterprise, domain, listing
ancestors) and the attributes the VSD owns, or raises a VsdError naming the field. Values arrive already
well-formed (`vsd.schema.clean_input`, `vsd.formats`); what is checked here is what they refer to.

A reference to another enterprise's object is refused exactly as one to no object at all (`missing`):
same status, same words, no name - otherwise an enterprise admin could probe what others have."""

from __future__ import annotations

import ipaddress

from vsd.drafts import TEMPLATES, prepare_job, settle_state
from vsd.errors import VsdError, bad, conflict, not_found
from vsd.indexes import ACL_ENTRIES, Indexes, ip_int
from vsd.schema import ALLOWED
from vsd.tree import Obj, Tree

# ACL location/network types this VSD resolves, and the entity each one names
LOCATION_TYPES = {"ANY": None, "POLICYGROUP": "policygroup", "SUBNET": "subnet", "ZONE": "zone"}
NETWORK_TYPES = {**LOCATION_TYPES, "ENTERPRISE_NETWORK": "enterprisenetwork",
                 "NETWORK_MACRO_GROUP": "networkmacrogroup"}
ASN = 65534  # the VSD's own AS for route distinguishers and targets


def place(obj: Obj, parent: Obj | None) -> None:
    if parent is None:
        obj.anc = ("",)
        obj.enterprise = obj.id if obj.kind == "enterprise" else None
        return
    obj.anc = (*parent.anc, parent.id)
    obj.enterprise = parent.enterprise
    obj.domain = obj.id if obj.kind == "domain" else parent.domain


def place_interface(obj: Obj, vm: Obj, vport: Obj) -> None:
    """An interface is listed under its VM and under its vport's whole chain (subnet, zone, domain...)."""
    obj.enterprise, obj.domain = vport.enterprise, vport.domain
    obj.anc = ("", vm.id, *vport.anc[1:], vport.id)


def place_vm(tree: Tree, vm: Obj) -> None:
    """After a restart: a VM is listed under every vport chain its interfaces sit on."""
    chain: dict[str, None] = {"": None}
    for i in tree.under(vm.id, "vminterface"):
        vport = tree.get(tree.objs[i].data.get("VPortID") or "")
        if vport is not None:
            chain.update(dict.fromkeys((*vport.anc, vport.id)))
    vm.anc = tuple(chain)


def missing(field: str, value: object, kind: str) -> VsdError:
    """The one answer for "no such object" and "another enterprise's object"."""
    return not_found(field, f"{field} {value}: no such {kind} in this enterprise")


def _set(obj: Obj, **values) -> None:
    allowed = ALLOWED[obj.kind]
    for k, v in values.items():
        if k in allowed:
            obj.data[k] = v


def _network(d: dict, what: str) -> ipaddress.IPv4Network:
    for field in ("address", "netmask"):
        if not d.get(field):
            raise bad(field, f"{what}.{field} is required", "Missing attribute")
    try:
        ipaddress.IPv4Address(d["address"])
    except ValueError:
        raise bad("address", f"{what}.address {d['address']!r} is not an IPv4 address", "Invalid CIDR") from None
    try:
        mask = ipaddress.IPv4Network(f"0.0.0.0/{d['netmask']}").prefixlen
    except ValueError:
        raise bad("netmask", f"{what}.netmask {d['netmask']!r} is not a valid netmask", "Invalid CIDR") from None
    try:
        return ipaddress.IPv4Network(f"{d['address']}/{mask}")
    except ValueError:
        raise bad("address", f"{what}.address {d['address']} has host bits set for netmask {d['netmask']}",
                  "Invalid CIDR") from None


def prepare_domain(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    d = obj.data
    tmpl = tree.get(d.get("templateID") or "")
    if tmpl is None or tmpl.kind != "domaintemplate" or tmpl.enterprise != obj.enterprise:
        raise missing("templateID", d.get("templateID"), "domain template")
    vni = d.get("serviceID")
    if vni is None:
        vni = idx.free_vni()
    elif not 1 <= vni < 1 << 24 or vni in idx.vnis:
        raise conflict("serviceID", f"serviceID {vni} is out of range or already in use")
    d.setdefault("routeDistinguisher", f"{ASN}:{vni}")
    d.setdefault("routeTarget", f"{ASN}:{vni}")
    _set(obj, serviceID=vni, enterpriseID=obj.enterprise, domainID=vni)


def prepare_subnet(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    d = obj.data
    net = _network(d, "subnet")
    if net.prefixlen > 30:
        raise bad("netmask", f"subnet {net} is too small to hold endpoints (at most /30)", "Invalid CIDR")
    gw = d.get("gateway") or str(net.network_address + 1)
    try:
        gw_addr = ipaddress.IPv4Address(gw)
    except ValueError:
        raise bad("gateway", f"gateway {gw!r} is not an IPv4 address") from None
    if gw_addr not in net or gw_addr in (net.network_address, net.broadcast_address):
        raise bad("gateway", f"gateway {gw} is not a host address of {net}", "Gateway outside subnet")
    for other_id, (o_net, o_len) in idx.subnets.get(obj.domain, {}).items():
        other = ipaddress.IPv4Network((o_net, o_len))
        if other.overlaps(net):
            name = tree.objs[other_id].data.get("name")
            raise conflict("address", f"subnet address {net} overlaps subnet {name!r} ({other}) in the same domain",
                           "Overlapping subnet")
    vni = d.get("vnId")
    if vni is None:
        vni = idx.free_vni()
    elif not 1 <= vni < 1 << 24 or vni in idx.vnis:
        raise conflict("vnId", f"vnId {vni} is out of range or already in use")
    d["address"], d["netmask"], d["gateway"], d["vnId"] = str(net.network_address), str(net.netmask), gw, vni
    _set(obj, domainID=obj.domain)


def prepare_vport(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    zone = tree.objs[parent.parent]
    dom = tree.objs[obj.domain]
    _set(obj, domainID=dom.id, domainName=dom.data.get("name"), zoneID=zone.id,
         subnetVNID=parent.data.get("vnId"))


def prepare_vminterface(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    d = obj.data
    vport = tree.get(d.get("VPortID") or "")
    if not d.get("VPortID"):
        raise bad("VPortID", "vminterface.VPortID is required", "Missing attribute")
    if vport is None or vport.kind != "vport" or (parent.enterprise is not None
                                                  and vport.enterprise != parent.enterprise):
        raise missing("VPortID", d["VPortID"], "vport")
    subnet = tree.objs[vport.parent]
    zone, dom = tree.objs[subnet.parent], tree.objs[vport.domain]
    place_interface(obj, parent, vport)
    mac = d.get("MAC")
    if not mac:
        raise bad("MAC", "vminterface.MAC is required", "Missing attribute")
    holder = idx.macs.get((obj.domain, mac.lower()))
    if holder is not None and holder != obj.id:
        raise conflict("MAC", f"MAC {mac} is already used by another interface in domain "
                       f"{dom.data.get('name')!r}", "Duplicate MAC")
    net = ipaddress.IPv4Network(f"{subnet.data['address']}/{subnet.data['netmask']}")
    gw = ip_int(subnet.data["gateway"])
    used = idx.ips.get(subnet.id, {})
    if d.get("IPAddress"):
        try:
            addr = ipaddress.IPv4Address(d["IPAddress"])
        except ValueError:
            raise bad("IPAddress", f"IPAddress {d['IPAddress']!r} is not an IPv4 address") from None
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise bad("IPAddress", f"IPAddress {addr} is outside subnet {subnet.data.get('name')!r} ({net})",
                      "Address outside subnet")
        if int(addr) == gw or used.get(int(addr), obj.id) != obj.id:
            raise conflict("IPAddress", f"IPAddress {addr} is already taken in subnet "
                           f"{subnet.data.get('name')!r}", "Address in use")
    else:
        first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
        start = min(max(idx.ip_hint.get(subnet.id, first), first), last)
        free = next((a for r in (range(start, last + 1), range(first, start)) for a in r
                     if a != gw and a not in used), None)
        if free is None:
            raise conflict("IPAddress", f"subnet {subnet.data.get('name')!r} ({net}) has no free address",
                           "Subnet full")
        idx.ip_hint[subnet.id] = free + 1  # everything from the hint up to here is taken
        d["IPAddress"] = str(ipaddress.IPv4Address(free))
    _set(obj, attachedNetworkID=subnet.id, attachedNetworkType="SUBNET", networkName=subnet.data.get("name"),
         netmask=subnet.data["netmask"], gateway=subnet.data["gateway"], domainID=dom.id,
         domainName=dom.data.get("name"), zoneID=zone.id, zoneName=zone.data.get("name"),
         VPortName=vport.data.get("name"), VMUUID=parent.data.get("UUID"))


def prepare_policygroup(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    d = obj.data
    used = idx.pgids.get(obj.domain, {})
    num = d.get("policyGroupID")
    if num is None:
        num = next((n for n in range(1, 4096) if n not in used), None)
        if num is None:
            raise conflict("policyGroupID", "the domain has no free policy group number (1..4095)")
    elif not 1 <= num <= 4095:
        raise bad("policyGroupID", f"policyGroupID {num} is outside 1..4095")
    elif used.get(num, obj.id) != obj.id:
        raise conflict("policyGroupID", f"policyGroupID {num} is already used in this domain")
    d["policyGroupID"] = num
    d.setdefault("EVPNCommunityTag", f"{tree.objs[obj.domain].data.get('serviceID', 0) & 0xFFFF}:{num}")


def _check_ref(tree: Tree, obj: Obj, field: str, kind_field: str, table: dict) -> None:
    d = obj.data
    kind = d.get(kind_field) or "ANY"
    if kind not in table:
        raise bad(kind_field, f"{kind_field} {kind} is not supported by this VSD "
                  f"(one of {', '.join(table)})", "Unsupported value")
    want = table[kind]
    if want is None:
        d[field] = None
        return
    target = tree.get(d.get(field) or "")
    if not d.get(field):
        raise bad(field, f"{field} is required when {kind_field} is {kind}", "Missing attribute")
    if target is None or target.kind != want or target.enterprise != obj.enterprise:
        raise missing(field, d[field], want)
    if want not in ("enterprisenetwork", "networkmacrogroup") and target.domain != obj.domain:
        raise conflict(field, f"{field} {d[field]} ({want} {target.data.get('name')!r}) is in another domain",
                       "Cross-domain reference")


def prepare_acltemplate(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    settle_state(tree, obj, parent)


def prepare_aclentry(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    d = obj.data
    settle_state(tree, obj, parent)
    _check_ref(tree, obj, "locationID", "locationType", LOCATION_TYPES)
    _check_ref(tree, obj, "networkID", "networkType", NETWORK_TYPES)
    proto = d.get("protocol") or "ANY"  # its format and the ports' were checked on the way in
    d["protocol"] = proto
    for field in ("sourcePort", "destinationPort"):
        port = d.get(field)
        if port is not None and port != "*" and proto not in ("6", "17"):
            raise bad(field, f"{field} only applies to TCP (6) or UDP (17), not protocol {proto}")
    if proto in ("6", "17"):
        d.setdefault("sourcePort", "*")
        d.setdefault("destinationPort", "*")
    used = idx.priorities.get(obj.parent, {})
    prio = d.get("priority")
    if prio is None:
        prio = max(used, default=0) + 1
    elif used.get(prio, obj.id) != obj.id:
        raise conflict("priority", f"priority {prio} is already used by another entry of this ACL template")
    d["priority"] = prio


def prepare_enterprisenetwork(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    net = _network(obj.data, "enterprisenetwork")
    obj.data["address"], obj.data["netmask"] = str(net.network_address), str(net.netmask)


def prepare_user(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    name = obj.data.get("userName")
    if idx.users.get((obj.enterprise, name), obj.id) != obj.id:
        raise conflict("userName", f"user {name!r} already exists in this enterprise", "Name clash")


def prepare_group(tree: Tree, idx: Indexes, obj: Obj, parent: Obj) -> None:
    if obj.data.get("role") not in ("ORGADMIN", "ORGUSER", "USER"):
        raise bad("role", f"role {obj.data.get('role')} cannot be given inside an enterprise "
                  "(ORGADMIN, ORGUSER or USER)")


PREPARE = {"domain": prepare_domain, "subnet": prepare_subnet, "vport": prepare_vport,
           "vminterface": prepare_vminterface, "policygroup": prepare_policygroup,
           "enterprisenetwork": prepare_enterprisenetwork, "user": prepare_user, "group": prepare_group,
           "job": prepare_job, **{k: prepare_aclentry for k in ACL_ENTRIES},
           **{k: prepare_acltemplate for k in TEMPLATES}}

MEMBER_SCOPE = {"policygroup": "domain", "networkmacrogroup": "enterprise", "group": "enterprise"}


def check_members(tree: Tree, owner: Obj, member_kind: str, ids: object) -> list[str]:
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad("ID", f"the body must be a JSON list of {member_kind} IDs")
    scope = MEMBER_SCOPE[owner.kind]
    out: dict[str, None] = {}
    for i in ids:
        m = tree.get(i)
        if m is None or m.kind != member_kind or m.enterprise != owner.enterprise:
            raise missing("ID", i, member_kind)
        if getattr(m, scope) != getattr(owner, scope):
            raise conflict("ID", f"{member_kind} {i} ({m.data.get('name') or m.data.get('userName')!r}) is in "
                           f"another {scope} than {owner.kind} {owner.data.get('name')!r}",
                           "Cross-domain reference" if scope == "domain" else "Cross-enterprise reference")
        out[i] = None
    return list(out)


