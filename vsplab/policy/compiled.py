"""A policy state compiled the way a VSC compiles it (`vsc.programmer.Programmer`, fed the VSD's
snapshot and the agent messages the VRSs would send), and those flows loaded into simulated switches
that trace packets (`vrs.sim`). Pure apart from building objects in memory: no socket, no process."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from openflow.flow import Flow
from vrs.sim.fabric import SimFabric
from vrs.sim.host import Container, SimVrs
from vsc.acl import DIRECTIONS
from vsc.locations import Locations
from vsc.pipeline import Kind, cookie
from vsc.programmer import Programmer
from vsc.view import View
from vsplab.policy.state import PolicyState

TUNNEL_OFPORT = 1  # as the simulated VRS numbers its vxlan0


@dataclass(frozen=True)
class Decider:
    """What decided a packet in one ACL table: an entry, or the domain's default."""

    direction: str  # ingress | egress
    entry_id: str | None  # None: the default verdict
    description: str
    priority: int | None
    action: str  # FORWARD | DROP
    stateful: bool
    template: str

    def label(self) -> str:
        if self.entry_id is None:
            return f"{self.direction} default {self.action.lower()} ({self.template})"
        state = "stateful" if self.stateful else "stateless"
        return (f"{self.direction} entry {self.description!r} priority {self.priority} {self.action} {state} "
                f"[{self.entry_id}]")

    def to_dict(self) -> dict:
        return {"direction": self.direction, "entry_id": self.entry_id, "description": self.description,
                "priority": self.priority, "action": self.action, "stateful": self.stateful,
                "template": self.template}


class Compiled:
    """One policy state's view, every host's desired flows and the compile problems."""

    def __init__(self, state: PolicyState):
        self.state = state
        self.view = View()
        self.problems: list[str] = list(self.view.load_snapshot(state.revision or 1, state.objects))
        self.prog = Programmer(self.view, Locations())
        for msg in agent_messages(state):
            self.prog.locs.apply(msg)
        self.prog.refresh_all()
        self.problems += [p for ps in self.prog.problems.values() for p in ps]
        self.flows: dict[str, dict[tuple, Flow]] = {
            h.name: dict(self.prog.host_desired(h.dpid)) for h in state.hosts}
        self.entities = {o["entity"]["ID"]: o["entity"] for o in state.objects}
        self.deciders = _deciders(self.view, self.entities)

    def fabric(self) -> SimFabric:
        """Fresh simulated switches (empty conntrack) holding exactly these flows."""
        fabric = SimFabric()
        for h in self.state.hosts:
            containers = [Container(e.name, e.mac, e.ip, e.vport_id) for e in self.state.endpoints if e.host == h.name]
            sw = SimVrs(h.name, h.dpid, h.vtep_ip, containers, controller=None, agent=None,
                        tunnel_ofport=TUNNEL_OFPORT).switch
            sw.load_flows(self.flows[h.name].values())
            fabric.add(sw)
        return fabric

    def decider(self, ck: int, direction: str) -> Decider | None:
        return self.deciders.get(ck) or self.deciders.get((ck, direction))


def agent_messages(state: PolicyState) -> list[dict]:
    """What each host's VRS tells its VSC on the agent channel (docs/interfaces.md section 2), in the
    order it tells it: hello, tunnel port, then a port-up per container (ofports as the simulated VRS
    numbers them: the first free one after the tunnel's)."""
    out = []
    for h in state.hosts:
        out += [{"op": "hello", "datapath_id": h.dpid, "name": h.name, "vtep_ip": h.vtep_ip},
                {"op": "tunnel", "datapath_id": h.dpid, "ofport": TUNNEL_OFPORT}]
        ofport = TUNNEL_OFPORT
        for e in state.endpoints:
            if e.host == h.name:
                ofport += 1
                out.append({"op": "port-up", "datapath_id": h.dpid, "ofport": ofport, "name": e.name,
                            "vport_id": e.vport_id, "mac": e.mac, "ip": str(IPv4Address(e.ip))})
    return out


def _deciders(view: View, entities: dict[str, dict]) -> dict:
    """Cookie -> the VSD object behind an ACL flow (entries by ID; a domain's defaults by (cookie,
    direction): both tables' default flows carry the domain's cookie)."""
    out: dict = {}
    templates = view.acl_templates
    for e in view.acl_entries.values():
        t = templates.get(e.template_id)
        desc = entities.get(e.id, {}).get("description") or ""
        out[cookie(Kind.ACL_ENTRY, e.id)] = Decider(e.direction, e.id, desc, e.priority, e.action, e.stateful,
                                                    t.name if t else "?")
    for d in view.domains:
        for direction in DIRECTIONS:
            ts = view.templates_of(d, direction)
            allow = bool(ts) and ts[0].default_allow_ip
            out[(cookie(Kind.ACL_DEFAULT, d), direction)] = Decider(
                direction, None, "default", None, "FORWARD" if allow else "DROP", allow,
                ts[0].name if ts else "no active template")
    return out

