"""The NFD8 policy as the benchmark's own reference: its rules read from the workload's VSD objects
(`vsplab.workload.tree.nfd8`, the definition of ../shared/notes/anchors.md), evaluated with Nuage's
semantics by a few lines of plain Python that share nothing with the VSC's compiler. Every trace of
the benchmark is judged against `Policy.verdict`, so a compiler bug cannot agree with itself.

Semantics (vsc/pipeline.md, "ACLs"): a packet between two endpoints of the domain must pass the
sender's ingress ACL (location = source, network = destination) and the receiver's egress ACL
(location = destination, network = source); in each, the entry with the lowest priority number that
matches decides, and no match falls to the template's `defaultAllowIP`. A stateful allow lets the
reply of an allowed connection through both ACLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}


def ip_int(text: str) -> int:
    return int(IPv4Address(text))


@dataclass(frozen=True, slots=True)
class Side:
    """One side of an entry: ANY, a policy group (by name) or address prefixes (networks, subnets)."""

    kind: str  # ANY | POLICYGROUP | PREFIXES
    group: str | None = None
    prefixes: tuple[tuple[int, int], ...] = ()

    def matches(self, ip: int, groups: frozenset[str]) -> bool:
        if self.kind == "ANY":
            return True
        if self.kind == "POLICYGROUP":
            return self.group in groups
        return any(ip & mask == net for net, mask in self.prefixes)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL entry of the workload (`entity` is the VSD object it was read from)."""

    direction: str  # ingress | egress
    priority: int
    action: str  # FORWARD | DROP
    stateful: bool
    location: Side
    network: Side
    proto: int | None
    sport: tuple[int, int] | None
    dport: tuple[int, int] | None
    entity: dict

    def l4_matches(self, proto: int, sport: int, dport: int) -> bool:
        if self.proto is None:
            return True
        if proto != self.proto:
            return False
        return all(rng is None or rng[0] <= port <= rng[1] for rng, port in ((self.sport, sport), (self.dport, dport)))


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: int
    groups: frozenset[str]


def _ports(spec: str | None) -> tuple[int, int] | None:
    if spec is None or spec in ("", "*"):
        return None
    lo, _, hi = str(spec).partition("-")
    return int(lo), int(hi or lo)


def _mask(text: str) -> int:
    return ip_int(text)


class Policy:
    """The rules of one domain's ingress and egress templates, and their verdict on a packet."""

    def __init__(self, rules: list[Rule], default_allow: dict[str, bool]) -> None:
        self.rules = {d: sorted((r for r in rules if r.direction == d), key=lambda r: r.priority)
                      for d in ("ingress", "egress")}
        self.default_allow = default_allow

    @classmethod
    def of_objects(cls, objects: list[dict]) -> Policy:
        """Read from VSD objects in stream shape ({"entityType", "entity", "assoc"})."""
        by_id = {o["entity"]["ID"]: o for o in objects}
        nets: dict[str, tuple[int, int]] = {}
        for o in objects:
            e = o["entity"]
            if o["entityType"] in ("enterprisenetwork", "subnet"):
                mask = _mask(e["netmask"])
                nets[e["ID"]] = (ip_int(e["address"]) & mask, mask)

        def side(kind: str, ident: str | None) -> Side:
            if kind == "ANY":
                return Side("ANY")
            if kind == "POLICYGROUP":
                return Side("POLICYGROUP", by_id[ident]["entity"]["name"])
            if kind in ("ENTERPRISE_NETWORK", "SUBNET"):
                return Side("PREFIXES", prefixes=(nets[ident],))
            if kind == "NETWORK_MACRO_GROUP":
                return Side("PREFIXES", prefixes=tuple(nets[m] for m in by_id[ident]["assoc"]["enterprisenetwork"]))
            raise ValueError(f"the reference policy does not evaluate {kind} entries")

        rules, defaults = [], {}
        for o in objects:
            kind, e = o["entityType"], o["entity"]
            if kind in ("ingressacltemplate", "egressacltemplate"):
                defaults[kind[: -len("acltemplate")]] = bool(e.get("defaultAllowIP"))
            elif kind in ("ingressaclentrytemplate", "egressaclentrytemplate"):
                proto = e.get("protocol", "ANY")
                rules.append(Rule(kind[: -len("aclentrytemplate")], int(e["priority"]), e.get("action", "FORWARD"),
                                  bool(e.get("stateful")), side(e["locationType"], e.get("locationID")),
                                  side(e["networkType"], e.get("networkID")),
                                  None if proto == "ANY" else int(proto), _ports(e.get("sourcePort")),
                                  _ports(e.get("destinationPort")), e))
        return cls(rules, defaults)

    def decide(self, direction: str, here: Endpoint, there: Endpoint, proto: int, sport: int,
               dport: int) -> tuple[bool, bool]:
        """(allowed, stateful) by one direction's ACL; `here` is the location side."""
        for r in self.rules[direction]:
            if r.location.matches(here.ip, here.groups) and r.network.matches(there.ip, there.groups) \
                    and r.l4_matches(proto, sport, dport):
                return r.action == "FORWARD", r.stateful
        return self.default_allow.get(direction, False), False

    def verdict(self, src: Endpoint, dst: Endpoint, proto: int, sport: int, dport: int) -> tuple[bool, bool]:
        """(delivered, reply delivered) for a new connection from `src` to `dst`."""
        out_ok, out_state = self.decide("ingress", src, dst, proto, sport, dport)
        in_ok, in_state = self.decide("egress", dst, src, proto, sport, dport)
        allowed = out_ok and in_ok
        if allowed and out_state and in_state:
            return True, True
        # The reply as a packet of its own (no connection to belong to).
        back_out, _ = self.decide("ingress", dst, src, proto, dport, sport)
        back_in, _ = self.decide("egress", src, dst, proto, dport, sport)
        return allowed, back_out and back_in

    def ports(self) -> list[tuple[int, int]]:
        """(protocol, port) of every destination port a rule names: what the traces try."""
        out = {(r.proto, r.dport[0]) for d in self.rules.values() for r in d if r.proto and r.dport}
        return sorted(out)
