"""The policy matrix: per domain, sources x destinations (policy groups, and the subnets, zones and
macros the ACL entries name), each cell the rules that apply in the VSD's own terms, beside what the
scenario's checks expected and observed between containers of those groups. Pure: VSD objects and
the lab's description in, a model for the page out."""

from __future__ import annotations

from dataclasses import dataclass, field

from vsplab.ui.source import Policy

PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "ANY": "any"}


@dataclass(frozen=True)
class Rule:
    direction: str  # ingress (what the source sends) | egress (what the destination receives)
    protocol: str
    port: str
    action: str  # allow | deny
    stateful: bool
    priority: int
    name: str  # the entry's description in the VSD (ACL entries have no name attribute)


@dataclass(frozen=True)
class Check:
    source: str
    destination: str
    protocol: str
    port: int | None
    expected: str
    observed: str
    passed: bool


@dataclass
class DomainMatrix:
    name: str
    defaults: dict[str, str]  # direction -> allow | deny, the templates' defaultAllowIP
    ends: list[str]  # row and column labels, policy groups first
    cells: dict[tuple[str, str], list[Rule]] = field(default_factory=dict)
    checks: dict[tuple[str, str], list[Check]] = field(default_factory=dict)


def end_label(policy: Policy, kind: str | None, oid: str | None) -> str:
    if kind in (None, "ANY") or oid is None:
        return "any"
    what, name = policy.ends.get(oid, ("?", oid))
    return name if what == "group" else f"{what}:{name}"


def rule_of(policy: Policy, entry: dict) -> tuple[str, str, Rule]:
    """(from, to, rule): ingress entries sit at their source (location), egress at their destination."""
    loc = end_label(policy, entry.get("locationType"), entry.get("locationID"))
    net = end_label(policy, entry.get("networkType"), entry.get("networkID"))
    src, dst = (loc, net) if entry["direction"] == "ingress" else (net, loc)
    proto = PROTOCOLS.get(str(entry.get("protocol", "ANY")), str(entry.get("protocol")))
    port = entry.get("destinationPort") or "*" if proto in ("tcp", "udp") else ""
    return src, dst, Rule(entry["direction"], proto, port, "allow" if entry.get("action") == "FORWARD" else "deny",
                          bool(entry.get("stateful")), int(entry.get("priority") or 0),
                          entry.get("description") or entry.get("name") or entry["ID"])


def build(policy: Policy, lab: dict) -> list[DomainMatrix]:
    groups_of = {c["name"]: c["groups"] for c in lab["containers"]}
    out = []
    for did, dom in sorted(policy.domains.items(), key=lambda kv: kv[1]["name"]):
        tmpl = {tid: t for tid, t in policy.templates.items() if t.get("parentID") == did}
        defaults = {t["direction"]: "allow" if t.get("defaultAllowIP") else "deny" for t in tmpl.values()}
        groups = sorted(name for oid, (kind, name) in policy.ends.items() if kind == "group"
                        and _parent_domain(policy, oid, did))
        m = DomainMatrix(dom["name"], defaults, list(groups))
        for entry in policy.entries.values():
            if entry.get("parentID") not in tmpl:
                continue
            src, dst, rule = rule_of(policy, entry)
            for end in (src, dst):
                if end not in m.ends:
                    m.ends.append(end)
            m.cells.setdefault((src, dst), []).append(rule)
        for cell in m.cells.values():
            cell.sort(key=lambda r: (r.direction != "ingress", r.priority))
        for r in lab.get("results", []):
            if r["source"] not in groups_of or r["destination"] not in groups_of:
                continue
            check = Check(r["source"], r["destination"], r["protocol"], r["port"], r["expected"], r["observed"],
                          r["passed"])
            for g in groups_of[r["source"]]:
                for h in groups_of[r["destination"]]:
                    if g in groups and h in groups:
                        m.checks.setdefault((g, h), []).append(check)
        out.append(m)
    return out


def _parent_domain(policy: Policy, group_id: str, domain_id: str) -> bool:
    return policy.group_domain.get(group_id) == domain_id
