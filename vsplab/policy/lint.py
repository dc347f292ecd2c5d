"""`vsplab lint`: what in a policy can never matter or cannot work, and what it costs in flows.

Read off the compiled ACL tables (one entry = the flows carrying its cookie) and off traces of every
case (vsplab.policy.cases) through them:
- shadowed: every flow of the entry is covered by a flow of higher priority of another entry with a
  different action, so it never decides anything;
- redundant: covered the same way by entries with its own action, or it only repeats the default
  with nothing below it deciding otherwise;
- empty group: the entry names a policy group without members;
- contradiction: traffic an ingress entry allows that the egress side drops, or an egress entry allows
  that the ingress side drops (traced with the ingress side opened: an ingress drop hides the egress
  table from the packet);
- stateless allow without its reply: a request an entry lets through whose reply is dropped;
- cost: flows per VRS predicted (vsplab.policy.cost) against what the compiler produced."""

from __future__ import annotations

from dataclasses import dataclass, field

from openflow.fields import FIELDS
from openflow.flow import Flow
from vsc.pipeline import Kind, Table, cookie, cookie_kind
from vsplab.policy.cases import cases, dimensions
from vsplab.policy.compiled import Compiled, Decider
from vsplab.policy.cost import HostCost, predict
from vsplab.policy.verdicts import evaluate

_DIRECTION = {Table.INGRESS_ACL: "ingress", Table.EGRESS_ACL: "egress"}


@dataclass
class Finding:
    kind: str  # shadowed | redundant | empty-group | contradiction | stateless-no-reply | compile-problem
    entry: Decider | None
    text: str
    other: Decider | None = None
    example: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "example": self.example,
                "entry": self.entry.to_dict() if self.entry else None,
                "other": self.other.to_dict() if self.other else None}


@dataclass
class LintReport:
    source: str
    findings: list[Finding] = field(default_factory=list)
    costs: list[HostCost] = field(default_factory=list)

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_dict(self) -> dict:
        return {"source": self.source, "findings": [f.to_dict() for f in self.findings],
                "flows_per_vrs": [c.to_dict() for c in self.costs],
                "prediction_ok": all(c.ok for c in self.costs)}

    def text(self) -> str:
        out = [f"lint {self.source}: {len(self.findings)} finding(s)"]
        for f in self.findings:
            out.append(f"  {f.kind}: {f.text}" + (f" (e.g. {f.example})" if f.example else ""))
        out.append("flows per VRS: predicted / compiled")
        for c in self.costs:
            parts = ", ".join(f"{k} {v}" for k, v in c.parts.items() if v)
            out.append(f"  {c.host}: {c.predicted} / {c.compiled} {'ok' if c.ok else 'MISMATCH'} ({parts})")
        return "\n".join(out)


def _covers(a: Flow, b: Flow) -> bool:
    """Every packet `b` matches, `a` matches too."""
    bf = {f.name: f for f in b.match}
    for f in a.match:
        g = bf.get(f.name)
        if g is None:
            return False
        full = (1 << FIELDS[f.name].bits) - 1
        am, bm = full if f.mask is None else f.mask, full if g.mask is None else g.mask
        if am & ~bm or (f.value ^ g.value) & am:
            return False
    return True


def _overlap(a: Flow, b: Flow) -> bool:
    bf = {f.name: f for f in b.match}
    for f in a.match:
        g = bf.get(f.name)
        if g is None:
            continue
        full = (1 << FIELDS[f.name].bits) - 1
        am, bm = full if f.mask is None else f.mask, full if g.mask is None else g.mask
        if (f.value ^ g.value) & am & bm:
            return False
    return True


def _acl_tables(compiled: Compiled) -> dict[tuple[int, int], list[Flow]]:
    """(table, domain index) -> its ACL flows, highest priority first, over all hosts (deduplicated)."""
    seen: dict[tuple, Flow] = {}
    for flows in compiled.flows.values():
        for k, f in flows.items():
            if f.table in _DIRECTION:
                seen[k] = f
    out: dict[tuple[int, int], list[Flow]] = {}
    for f in seen.values():
        md = next((m.value for m in f.match if m.name == "metadata"), 0)
        out.setdefault((f.table, md), []).append(f)
    for fs in out.values():
        fs.sort(key=lambda f: -f.priority)
    return out


def _coverage(compiled: Compiled, report: LintReport) -> None:
    for (table, _), flows in _acl_tables(compiled).items():
        direction = _DIRECTION[table]
        by_entry: dict[int, list[Flow]] = {}
        for f in flows:
            if cookie_kind(f.cookie) == Kind.ACL_ENTRY:
                by_entry.setdefault(f.cookie, []).append(f)
        default = next((f for f in flows if cookie_kind(f.cookie) == Kind.ACL_DEFAULT), None)
        for ck, mine in by_entry.items():
            me = compiled.decider(ck, direction)
            coverers = []
            for f in mine:
                g = next((g for g in flows if g.priority > f.priority and g.cookie != ck and _covers(g, f)), None)
                if g is None:
                    coverers = None
                    break
                coverers.append(compiled.decider(g.cookie, direction))
            if coverers:
                odd = next((c for c in coverers if c.action != me.action), None)
                if odd is not None:
                    report.findings.append(Finding("shadowed", me, f"{me.label()} is never reached: "
                                                   f"{odd.label()} decides all its traffic first", odd))
                else:
                    report.findings.append(Finding("redundant", me, f"{me.label()} repeats {coverers[0].label()}, "
                                                   "which already decides all its traffic", coverers[0]))
                continue
            if default is None:
                continue
            dflt = compiled.decider(default.cookie, direction)
            below = [g for g in flows if g.cookie not in (ck, default.cookie) and any(
                g.priority < f.priority and _overlap(g, f) for f in mine)]
            if dflt.action == me.action and dflt.stateful == me.stateful and all(
                    compiled.decider(g.cookie, direction).action == me.action for g in below):
                report.findings.append(Finding("redundant", me, f"{me.label()} only repeats the {direction} "
                                               f"default ({dflt.action}) and nothing below it decides otherwise", dflt))


def _empty_groups(compiled: Compiled, report: LintReport) -> None:
    view = compiled.view
    for e in view.acl_entries.values():
        for kind, ident, side in ((e.location_type, e.location_id, "location"), (e.network_type, e.network_id, "network")):
            pg = view.policy_groups.get(ident or "") if kind == "POLICYGROUP" else None
            if pg is not None and not pg.vport_ids:
                me = compiled.decider(cookie(Kind.ACL_ENTRY, e.id), e.direction)
                report.findings.append(Finding("empty-group", me, f"{me.label()} names policy group {pg.name!r} "
                                               f"({side}), which has no members: it matches nothing"))


def _ingress_open(objects: list[dict]) -> list[dict]:
    """The same objects with every ingress template allowing all and holding no entry: what reaches
    each egress table when the ingress side lets everything through."""
    out = []
    for o in objects:
        if o["entityType"] == "ingressaclentrytemplate":
            continue
        if o["entityType"] == "ingressacltemplate":
            o = {**o, "entity": {**o["entity"], "defaultAllowIP": True}}
        out.append(o)
    return out


def _contradiction(report: LintReport, seen: set, allow: Decider, deny: Decider, case) -> None:
    key = ("contradiction", allow.entry_id, deny.entry_id)
    if key not in seen:
        seen.add(key)
        report.findings.append(Finding("contradiction", allow, f"{allow.label()} allows traffic that "
                                       f"{deny.label()} drops", deny, case.label()))


def _traced(compiled: Compiled, report: LintReport) -> None:
    todo = cases([e.name for e in compiled.state.endpoints], dimensions([compiled.view]))
    # an ingress drop hides the egress table from the packet: trace the egress side on its own too
    opened = Compiled(compiled.state.replace_objects(_ingress_open(compiled.state.objects), "ingress opened"))
    egress_alone = evaluate(opened.fabric(), opened, todo)
    seen: set[tuple] = set()
    for case, o in evaluate(compiled.fabric(), compiled, todo).items():
        ds = {d.direction: d for d in o.request.deciders}
        ing, eg = ds.get("ingress"), ds.get("egress")
        if ing and eg and ing.action == "FORWARD" and eg.action == "DROP" and ing.entry_id:
            _contradiction(report, seen, ing, eg, case)
        if ing and ing.action == "DROP":
            eg = next((d for d in egress_alone[case].request.deciders if d.direction == "egress"), None)
            if eg is not None and eg.entry_id and eg.action == "FORWARD":
                _contradiction(report, seen, eg, ing, case)
        if o.request.delivered and o.reply is not None and not o.reply.delivered:
            loose = next((d for d in o.request.deciders if d.action == "FORWARD" and not d.stateful), None)
            if loose is not None and ("reply", loose.entry_id) not in seen:
                seen.add(("reply", loose.entry_id))
                report.findings.append(Finding("stateless-no-reply", loose, f"{loose.label()} lets requests "
                                               f"through but their replies are dropped ({o.reply.drop})",
                                               example=case.label()))


def lint_compiled(compiled: Compiled) -> LintReport:
    report = LintReport(compiled.state.label)
    report.findings += [Finding("compile-problem", None, p) for p in compiled.problems]
    _coverage(compiled, report)
    _empty_groups(compiled, report)
    _traced(compiled, report)
    report.costs = predict(compiled)
    return report
