"""`vsplab diff`: what changing one policy state into another changes, read off the compiled pipelines.

Both states are compiled as a VSC compiles them and every case (`vsplab.policy.cases`: each ordered
pair of endpoints x protocol x port class, exact by construction) is traced through each; a case whose
verdict differs is a change, reported with what decided it on each side. The flows each VRS gains and
loses are the difference of the two compiled desired states."""

from __future__ import annotations

from dataclasses import dataclass, field

from openflow.flow import Flow
from openflow.text import format_flow
from vsplab.policy.cases import Case, cases, dimensions
from vsplab.policy.compiled import Compiled, Decider
from vsplab.policy.state import PolicyState
from vsplab.policy.verdicts import Outcome, evaluate


@dataclass
class Change:
    case: Case
    before: Outcome
    after: Outcome

    @property
    def kind(self) -> str:
        return "newly allowed" if self.after.verdict == "allow" else "newly denied"

    def to_dict(self) -> dict:
        return {**self.case.to_dict(), "change": self.kind, "label": self.case.label(),
                "before": _side(self.before), "after": _side(self.after)}


@dataclass
class HostFlows:
    gained: list[Flow] = field(default_factory=list)
    lost: list[Flow] = field(default_factory=list)


@dataclass
class PolicyDiff:
    before: str
    after: str
    traced: int
    changes: list[Change]
    flows: dict[str, HostFlows]
    problems: dict[str, list[str]]
    cookies_compared: bool
    cases: list[Case] = field(default_factory=list)  # every case traced, changed or not

    def changed_cases(self) -> set[tuple]:
        """(src, dst, proto, port class, source port class, new verdict) of every change."""
        return {(c.case.src, c.case.dst, c.case.proto, c.case.dport, c.case.sport, c.after.verdict)
                for c in self.changes}

    def to_dict(self) -> dict:
        return {"before": self.before, "after": self.after, "cases_traced": self.traced,
                "newly_allowed": sum(c.kind == "newly allowed" for c in self.changes),
                "newly_denied": sum(c.kind == "newly denied" for c in self.changes),
                "changes": [c.to_dict() for c in self.changes],
                "flows": {h: {"gained": [format_flow(f, show_stats=False) for f in hf.gained],
                              "lost": [format_flow(f, show_stats=False) for f in hf.lost]}
                          for h, hf in self.flows.items()},
                "cookies_compared": self.cookies_compared, "problems": self.problems}

    def text(self) -> str:
        out = [f"policy diff: {self.before} -> {self.after}",
               f"{self.traced} cases traced on each side (every endpoint pair x protocol x port class)"]
        for kind in ("newly allowed", "newly denied"):
            these = [c for c in self.changes if c.kind == kind]
            out.append(f"{kind}: {len(these)}")
            for c in these:
                out.append(f"  {c.case.label()}")
                out.append(f"      before: {_why(c.before)}")
                out.append(f"      after:  {_why(c.after)}")
        out.append("flows per VRS (+ gained, - lost)" + ("" if self.cookies_compared else
                   "; cookies not compared: the two states' objects have different IDs"))
        for host, hf in self.flows.items():
            out.append(f"  {host}: +{len(hf.gained)} -{len(hf.lost)}")
            out += [f"    + {format_flow(f, show_stats=False)}" for f in hf.gained]
            out += [f"    - {format_flow(f, show_stats=False)}" for f in hf.lost]
        for side, ps in self.problems.items():
            out += [f"compile problem ({side}): {p}" for p in ps]
        return "\n".join(out)


def responsible(o: Outcome) -> list[Decider]:
    """What decided: for an allow, the entries that let the request through; for a deny, the entry
    (or default) that dropped it, if an ACL did."""
    if o.verdict == "allow":
        return o.request.deciders
    return [d for d in o.deciders() if d.action == "DROP"]


def _why(o: Outcome) -> str:
    names = [d.label() for d in responsible(o)]
    text = o.verdict + (": " + "; ".join(names) if names else "")
    return text + (f" ({o.detail})" if o.detail and not names else "")


def _side(o: Outcome) -> dict:
    return {"verdict": o.verdict, "responsible": [d.to_dict() for d in responsible(o)], "detail": o.detail,
            "trace": o.to_dict()}


def _payload(f: Flow, with_cookie: bool) -> tuple:
    return (f.actions, f.goto, f.write_metadata) + ((f.cookie,) if with_cookie else ())


def flow_changes(a: dict[tuple, Flow], b: dict[tuple, Flow], with_cookie: bool) -> HostFlows:
    hf = HostFlows()
    for k, f in b.items():
        old = a.get(k)
        if old is None or _payload(old, with_cookie) != _payload(f, with_cookie):
            hf.gained.append(f)
            if old is not None:
                hf.lost.append(old)
    hf.lost += [f for k, f in a.items() if k not in b]
    return hf


def diff_compiled(a: Compiled, b: Compiled) -> PolicyDiff:
    if [e.name for e in a.state.endpoints] != [e.name for e in b.state.endpoints]:
        missing = {e.name for e in a.state.endpoints} ^ {e.name for e in b.state.endpoints}
        if missing:
            raise ValueError(f"the two states hold different endpoints ({', '.join(sorted(missing))}): "
                             "diff compares one policy change over the same endpoints")
    todo = cases([e.name for e in a.state.endpoints], dimensions([a.view, b.view]))
    before = evaluate(a.fabric(), a, todo)
    after = evaluate(b.fabric(), b, todo)
    changes = [Change(c, before[c], after[c]) for c in todo if before[c].verdict != after[c].verdict]
    # IDs (so cookies) are comparable only between states of one VSD (live and draft, before and after)
    same_ids = bool(set(a.view.domains) & set(b.view.domains))
    flows = {h.name: flow_changes(a.flows.get(h.name, {}), b.flows.get(h.name, {}), same_ids)
             for h in b.state.hosts}
    return PolicyDiff(a.state.label, b.state.label, len(todo), changes, flows,
                      {"before": a.problems, "after": b.problems}, same_ids, todo)


def diff_states(a: PolicyState, b: PolicyState) -> PolicyDiff:
    return diff_compiled(Compiled(a), Compiled(b))
