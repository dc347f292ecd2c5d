"""The NFD8 workload (or its generalisation to other tier and rule counts, vsplab/bench/tiers.py) as an
orchestrator rolls it out: the domain and its policy first, then containers
arriving in batches, each as the VSD objects a batch creates.

Two models of the same policy (`--model`):
- `tagged`: the workload of `vsplab.workload.tree.nfd8` as it is, 4 policy groups and 13 entries; a
  container joins its groups (a membership list per group, `PUT /policygroups/{id}/vports`).
- `per-pair`: what a controller without tags would need: no policy groups, and one entry per
  (container, container) pair a group-to-group rule allows, plus one per container for each rule whose
  other side is not a group (a network, a macro group, ANY). The container is named by its address,
  with the VSD's own attributes: the location side by `addressOverride` (Nuage: "overrides the source
  IP for ingress and the destination IP for egress"), the network side by an enterprise network
  holding its /32. Entries are added as containers arrive, each new container paired with every one
  already there. The two DROP-all rules become the templates' default verdicts (drop), which is the same
  policy because every container is in the group they name; allow rules never overlap (each names its
  own port), so an entry's position stops mattering once entries outnumber the VSC's priority band.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vsplab.bench.policy import Endpoint, Policy, Rule, ip_int
from vsplab.bench.tiers import chain
from vsplab.workload.tree import nfd8

MODELS = ("tagged", "per-pair")
# What a per-pair entry keeps of the rule it expands (its sides are rewritten).
_ENTRY_ATTRS = ("action", "protocol", "sourcePort", "destinationPort", "etherType", "stateful", "DSCP")


@dataclass(frozen=True, slots=True)
class Member:
    """One container of the workload and where it runs."""

    index: int  # g of anchors.md
    name: str
    vport: str  # workload (tree) IDs
    subnet: str
    host: str
    dpid: int
    vtep: str
    ofport: int
    mac: str
    ip: str
    groups: frozenset[str]

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(ip_int(self.ip), self.groups)


class Workload:
    def __init__(self, hosts: int, per_host: int, model: str = "tagged", tiers: int = 3, acls: int = 7) -> None:
        if model not in MODELS:
            raise ValueError(f"model {model!r}: one of {', '.join(MODELS)}")
        self.hosts_n, self.per_host, self.model = hosts, per_host, model
        # NFD8 itself from its one definition; other shapes from the chain that reduces to it
        tree, placement = nfd8(hosts, per_host) if (tiers, acls) == (3, 7) else chain(hosts, per_host, tiers, acls)
        self.objects = tree.objects
        self.policy = Policy.of_objects(self.objects)
        by_id = {o["entity"]["ID"]: o for o in self.objects}
        groups: dict[str, set[str]] = {}
        for o in self.objects:
            if o["entityType"] == "policygroup":
                for v in o["assoc"]["vport"]:
                    groups.setdefault(v, set()).add(o["entity"]["name"])
        self.members: list[Member] = []
        self.hosts: dict[int, tuple[str, str]] = {}  # dpid -> (name, VTEP)
        for dpid, msgs in placement.hosts.items():
            hello = msgs[0]
            self.hosts[dpid] = (hello["name"], hello["vtep_ip"])
            for m in msgs:
                if m["op"] == "port-up":
                    vp = by_id[m["vport_id"]]["entity"]
                    self.members.append(Member(int(vp["name"][1:]), vp["name"], vp["ID"], vp["parentID"],
                                               hello["name"], dpid, hello["vtep_ip"], m["ofport"], m["mac"], m["ip"],
                                               frozenset(groups.get(vp["ID"], ()))))
        self.members.sort(key=lambda m: m.index)
        self.pair_rules, self.single_rules = self._split_rules()

    @property
    def containers(self) -> int:
        return len(self.members)

    def arrival_order(self) -> list[Member]:
        """Every host fills at once, as in the demo: the first container of each host, then the second..."""
        return sorted(self.members, key=lambda m: (m.index % self.per_host, m.index // self.per_host))

    def base_objects(self) -> list[dict]:
        """The domain, its networks and its policy, before any container: what the first push creates."""
        skip = {"vport", "vminterface"}
        if self.model == "per-pair":
            skip |= {"policygroup", "ingressaclentrytemplate", "egressaclentrytemplate"}
        out = []
        for o in self.objects:
            if o["entityType"] in skip:
                continue
            if o["entityType"] == "policygroup":  # members join as their containers arrive
                o = {**o, "assoc": {"vport": []}}
            out.append(o)
        return out

    def group_ids(self) -> dict[str, str]:
        """Policy group name -> workload ID."""
        return {o["entity"]["name"]: o["entity"]["ID"] for o in self.objects if o["entityType"] == "policygroup"}

    def template_ids(self) -> dict[str, str]:
        """Direction -> the workload ID of its ACL template."""
        return {o["entityType"][: -len("acltemplate")]: o["entity"]["ID"] for o in self.objects
                if o["entityType"] in ("ingressacltemplate", "egressacltemplate")}

    def enterprise_id(self) -> str:
        return next(o["entity"]["ID"] for o in self.objects if o["entityType"] == "enterprise")

    # --- the per-pair model -----------------------------------------------------------------------

    def _split_rules(self) -> tuple[list[Rule], list[Rule]]:
        pairs, singles = [], []
        for direction, rules in self.policy.rules.items():
            for r in rules:
                if r.action == "DROP":
                    if r.network.kind != "ANY" or self.policy.default_allow.get(direction):
                        raise ValueError(f"{direction} entry {r.entity['ID']}: a DROP rule other than "
                                         f"'drop the rest' has no per-pair form here")
                    continue
                if r.location.kind != "POLICYGROUP":
                    raise ValueError(f"{direction} entry {r.entity['ID']}: location {r.location.kind}")
                (pairs if r.network.kind == "POLICYGROUP" else singles).append(r)
        return pairs, singles

    def per_pair_entries(self, new: list[Member], old: list[Member]) -> Iterator[tuple[Rule, Member, Member | None]]:
        """(rule, location-side container, network-side container or None) for every entry that `new`
        containers bring, given the `old` ones already there."""
        for r in self.single_rules:
            for m in new:
                if r.location.group in m.groups:
                    yield r, m, None
        everyone = old + new
        for r in self.pair_rules:
            here_new = [m for m in new if r.location.group in m.groups]
            there_all = [m for m in everyone if r.network.group in m.groups]
            for here in here_new:
                for there in there_all:
                    if there is not here:
                        yield r, here, there
            there_new = [m for m in new if r.network.group in m.groups]
            for here in old:
                if r.location.group in here.groups:
                    for there in there_new:
                        yield r, here, there

    @staticmethod
    def per_pair_body(rule: Rule, here: Member, there_network: str | None, ids: dict[str, str],
                      priority: int) -> dict:
        """The VSD entry for one expansion: `there_network` is the VSD ID of the other container's /32
        enterprise network (None: the rule's own network side)."""
        e = rule.entity
        row = {k: e[k] for k in _ENTRY_ATTRS if k in e}
        row.update(locationType="ANY", addressOverride=f"{here.ip}/32", priority=priority)
        if there_network is not None:
            row.update(networkType="ENTERPRISE_NETWORK", networkID=there_network)
        else:
            row.update(networkType=e["networkType"])
            if e.get("networkID"):
                row["networkID"] = ids[e["networkID"]]
        return row
