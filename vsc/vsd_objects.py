"""The VSD objects the VSC keeps, typed: one small record per kind, parsed from a stream object's
attributes (`parse`), and only the attributes the pipeline uses (`trim`). `vsc.view.View` indexes them."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address


class ViewError(ValueError):
    pass


def ip_int(text: str | None) -> int | None:
    if not text:
        return None
    return int(IPv4Address(text))


def mac_int(text: str | None) -> int | None:
    if not text:
        return None
    return int(text.replace(":", "").replace("-", ""), 16)


def prefix(address: str, netmask: str) -> tuple[int, int]:
    mask = int(IPv4Address(netmask))
    return int(IPv4Address(address)) & mask, mask


@dataclass(slots=True)
class Enterprise:
    id: str
    name: str


@dataclass(slots=True)
class Domain:
    id: str
    enterprise_id: str
    name: str
    vni: int  # serviceID: the L3 VNI every packet of the domain carries over VXLAN
    route_target: str | None = None
    policy_change: str | None = None  # policyChangeStatus: STARTED while a policy draft is open


@dataclass(slots=True)
class Zone:
    id: str
    domain_id: str
    name: str


@dataclass(slots=True)
class Subnet:
    id: str
    zone_id: str
    name: str
    network: int
    netmask: int
    gateway: int | None
    vni: int | None


@dataclass(slots=True)
class Vport:
    id: str
    subnet_id: str
    domain_id: str | None
    name: str


@dataclass(slots=True)
class VmInterface:
    id: str
    vport_id: str
    mac: int | None
    ip: int | None


@dataclass(slots=True)
class PolicyGroup:
    id: str
    domain_id: str
    name: str
    number: int | None  # policyGroupID
    evpn_tag: str | None  # EVPNCommunityTag: how a federated VSC names this group
    vport_ids: frozenset[str] = frozenset()


@dataclass(slots=True)
class AclTemplate:
    id: str
    direction: str  # "ingress" | "egress"
    domain_id: str
    name: str
    active: bool
    default_allow_ip: bool
    default_allow_non_ip: bool
    priority: int
    priority_type: str


@dataclass(slots=True)
class AclEntry:
    id: str
    direction: str
    template_id: str
    action: str  # FORWARD | DROP
    location_type: str
    location_id: str | None
    network_type: str
    network_id: str | None
    protocol: str
    source_port: str | None
    destination_port: str | None
    ether_type: str
    priority: int
    stateful: bool
    icmp_type: str | None = None
    icmp_code: str | None = None
    address_override: str | None = None  # Nuage's addressOverride: the location side's address instead
    # attributes set that would narrow what the entry matches but that this VSC does not compile:
    # the entry is refused (a problem in /status), never compiled as if they were not there
    uncompiled: tuple[str, ...] = ()


@dataclass(slots=True)
class EnterpriseNetwork:
    id: str
    enterprise_id: str
    network: int
    netmask: int


@dataclass(slots=True)
class NetworkMacroGroup:
    id: str
    enterprise_id: str
    member_ids: frozenset[str] = frozenset()


def _b(v, default: bool = False) -> bool:
    return default if v is None else bool(v)


def parse(kind: str, e: dict, assoc: dict):
    i = e["ID"]
    if kind == "enterprise":
        return Enterprise(i, e.get("name", ""))
    if kind == "domain":
        if e.get("serviceID") is None:
            raise ViewError(f"domain {i} has no serviceID (VNI)")
        return Domain(i, e.get("parentID"), e.get("name", ""), int(e["serviceID"]), e.get("routeTarget"),
                      e.get("policyChangeStatus"))
    if kind == "zone":
        return Zone(i, e.get("parentID"), e.get("name", ""))
    if kind == "subnet":
        net, mask = prefix(e["address"], e["netmask"])
        return Subnet(i, e.get("parentID"), e.get("name", ""), net, mask, ip_int(e.get("gateway")), e.get("vnId"))
    if kind == "vport":
        return Vport(i, e.get("parentID"), e.get("domainID"), e.get("name", ""))
    if kind == "vminterface":
        return VmInterface(i, e.get("VPortID"), mac_int(e.get("MAC")), ip_int(e.get("IPAddress")))
    if kind == "policygroup":
        num = e.get("policyGroupID")
        return PolicyGroup(i, e.get("parentID"), e.get("name", ""), None if num is None else int(num),
                           e.get("EVPNCommunityTag"), frozenset((assoc or {}).get("vport", ())))
    if kind in ("ingressacltemplate", "egressacltemplate"):
        return AclTemplate(i, kind[: -len("acltemplate")], e.get("parentID"), e.get("name", ""),
                           _b(e.get("active"), True), _b(e.get("defaultAllowIP")),
                           _b(e.get("defaultAllowNonIP")), int(e.get("priority") or 0),
                           e.get("priorityType") or "NONE")
    if kind in ("ingressaclentrytemplate", "egressaclentrytemplate"):
        return AclEntry(i, kind[: -len("aclentrytemplate")], e.get("parentID"), e.get("action") or "FORWARD",
                        e.get("locationType") or "ANY", e.get("locationID"), e.get("networkType") or "ANY",
                        e.get("networkID"), str(e.get("protocol") or "ANY"), e.get("sourcePort"),
                        e.get("destinationPort"), e.get("etherType") or "0x0800", int(e.get("priority") or 0),
                        _b(e.get("stateful")), e.get("ICMPType"), e.get("ICMPCode"), e.get("addressOverride"),
                        uncompiled(e))
    if kind == "enterprisenetwork":
        net, mask = prefix(e["address"], e["netmask"])
        return EnterpriseNetwork(i, e.get("parentID"), net, mask)
    if kind == "networkmacrogroup":
        return NetworkMacroGroup(i, e.get("parentID"), frozenset((assoc or {}).get("enterprisenetwork", ())))
    return None


# Entry attributes that select traffic beyond addresses, protocol and ports (DSCP, an L4 service in
# place of protocol and ports, an L7 application, web filters, reputation), with the values that mean
# "no narrowing".
_NARROWING = {"DSCP": (None, "", "*"), "associatedTrafficType": (None, ""), "associatedTrafficTypeID": (None, ""),
              "associatedL7ApplicationSignatureID": (None, ""), "webFilterID": (None, ""),
              "webFilterType": (None, ""), "reputationScore": (None, "")}


def uncompiled(entry: dict) -> tuple[str, ...]:
    """The narrowing attributes an ACL entry sets, each as NAME=VALUE (see `_NARROWING`)."""
    return tuple(f"{k}={entry[k]}" for k, unset in _NARROWING.items() if entry.get(k) not in unset)


# The attributes `parse` reads: all the view keeps of an object (a VSD object carries ~40 more, and
# the view is saved every few seconds during a rollout).
_KEEP = frozenset("""ID parentID parentType name serviceID routeTarget address netmask gateway vnId domainID MAC
IPAddress VPortID policyGroupID EVPNCommunityTag active defaultAllowIP defaultAllowNonIP priority priorityType
action locationType locationID networkType networkID protocol sourcePort destinationPort etherType stateful
ICMPType ICMPCode addressOverride policyChangeStatus""".split()) | frozenset(_NARROWING)


def trim(entity: dict) -> dict:
    return {k: v for k, v in entity.items() if k in _KEEP}
