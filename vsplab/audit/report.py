"""What a drift audit found, layer by layer: the VSD's intent against each VSC's view (`IntentFinding`),
each VSC's desired flows against what each datapath holds (`FlowDrift`), and what a repair sent."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class IntentFinding:
    """The VSD and a VSC's view disagree about one object (or the VSC is behind the VSD)."""

    vsc: str
    # behind, missing-in-view, stale-in-view, differs, unowned-cookie, compiled-differs, not-placed, misplaced,
    # refused (the VSC's compiler refused the object: no flow enforces it, and no resync can)
    what: str
    object_id: str | None
    entity_type: str | None
    detail: str

    def text(self) -> str:
        obj = f"{self.entity_type} {self.object_id}" if self.object_id else "-"
        return f"{self.vsc}: intent {self.what}: {obj}: {self.detail}"


@dataclass
class FlowDrift:
    """One flow that differs between a VSC's expectation and a datapath (OpenFlow flow stats)."""

    vsc: str
    host: str
    dpid: int
    what: str  # missing (expected, not installed), extra (installed, not expected), changed
    table: int
    priority: int
    cookie: str
    owner: dict  # the VSD object the cookie names: kind, entityType, ID, name
    installed: str | None
    expected: str | None

    def object_text(self) -> str:
        o = self.owner
        if o.get("ID"):
            return f"{o.get('kind')} {o.get('entityType')} {o['ID']}" + (f" ({o['name']})" if o.get("name") else "")
        return f"{o.get('kind') or 'unknown kind'}, no VSD object"

    def text(self) -> str:
        flow = self.installed if self.what == "extra" else self.expected
        return f"{self.host}: {self.what} flow cookie={self.cookie} [{self.object_text()}]: {flow}"


@dataclass
class Repair:
    """One datapath's targeted resync: the flow-mods the VSC sent to put it right."""

    vsc: str
    host: str
    dpid: int
    add: int
    modify: int
    delete: int
    flow_mods: int


@dataclass
class AuditReport:
    intent: list[IntentFinding] = field(default_factory=list)
    flows: list[FlowDrift] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)  # datapaths whose dump could not be compared
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    datapaths: int = 0
    flows_compared: int = 0
    repairs: list[Repair] = field(default_factory=list)
    after_repair: AuditReport | None = None

    @property
    def clean(self) -> bool:
        return not (self.intent or self.flows or self.unsettled)

    @property
    def ok(self) -> bool:
        """Clean now: as found, or after the repair."""
        return self.after_repair.clean if self.after_repair is not None else self.clean

    @property
    def repair_flow_mods(self) -> int:
        return sum(r.flow_mods for r in self.repairs)

    def lines(self) -> list[str]:
        out = [f.text() for f in self.intent] + [f.text() for f in self.flows]
        out += [f"not compared: {u}" for u in self.unsettled]
        out += [f"note: {n}" for n in self.notes]
        verdict = "no drift" if self.clean else f"{len(self.intent) + len(self.flows)} differences"
        out.append(f"audit: {verdict} ({self.datapaths} datapaths, {self.flows_compared} flows compared)")
        if self.after_repair is not None:
            per = ", ".join(f"{r.host} +{r.add} ~{r.modify} -{r.delete}" for r in self.repairs) or "nothing to send"
            n = self.repair_flow_mods
            out.append(f"repair: {n} flow-mod{'s' if n != 1 else ''} ({per})")
            out += ["after repair: " + line for line in self.after_repair.lines()]
        return out

    def to_json(self) -> str:
        data = asdict(self)
        data.update(clean=self.clean, ok=self.ok, repair_flow_mods=self.repair_flow_mods)
        return json.dumps(data, indent=2)
