"""Walking one simulated switch's OpenFlow pipeline with a packet, the way `ofproto/trace` does:
table by table, apply-actions in order (an output sends a copy of the packet as it is at that
point), then write-metadata, then goto-table; ct(table=N) continues a copy in table N with ct_state
filled in once the current pass is done ("recirc")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from openflow import text
from openflow.flow import (
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_NORMAL,
    OFPP_TABLE,
    Ct,
    DecTtl,
    Move,
    Output,
    SetField,
)

if TYPE_CHECKING:  # only annotations: the switch itself runs this walker for its packet-outs
    from vrs.sim.switch import SimSwitch

MAX_STEPS = 1024  # OVS gives up on a translation after a few thousand resubmits; so do we, sooner
MAX_RECIRC = 8


@dataclass
class Step:
    switch: str
    table: int
    flow: str | None  # the matched flow in dump-flows form; None for a table miss
    actions: list[str] = field(default_factory=list)
    note: str = ""
    recirc: int = 0  # 0 for the first pass, then 1, 2, ... after each ct(table=N)
    cookie: int = 0
    match: str = ""  # the matched flow as ofproto/trace shows it: "ip,in_port=2, priority 100, cookie 0x5"

    def to_dict(self) -> dict:
        return {"switch": self.switch, "table": self.table, "flow": self.flow, "match": self.match,
                "actions": self.actions, "note": self.note, "recirc": self.recirc}


@dataclass
class Emit:
    """A copy of the packet leaving the pipeline through `port` (a resolved, real port number)."""

    switch: SimSwitch
    port: int
    fields: dict[str, int]


@dataclass
class PassResult:
    steps: list[Step] = field(default_factory=list)
    emits: list[Emit] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    to_controller: list[str] = field(default_factory=list)


def _move(f: dict[str, int], a: Move) -> None:
    mask = (1 << a.n_bits) - 1
    v = (f[a.src] >> a.src_ofs) & mask
    f[a.dst] = (f[a.dst] & ~(mask << a.dst_ofs)) | (v << a.dst_ofs)


class _Pass:
    """One packet's walk through one switch: the recirculation queue and the step budget."""

    def __init__(self, sw: SimSwitch, commit: bool, length: int):
        self.sw, self.commit, self.length = sw, commit, length
        self.res = PassResult()
        self.queue: list[tuple[int, dict[str, int], int]] = []
        self.n = 0

    def actions(self, f: dict[str, int], actions, step: Step, depth: int) -> bool:
        """Apply an action list in order; False when the packet dies (TTL)."""
        sw, res = self.sw, self.res
        for a in actions:
            c = a.__class__
            step.actions.append(text.format_action(a))
            if c is Output:
                _output(sw, f, a.port, res, step, self, depth)
            elif c is SetField:
                f[a.name] = a.value
            elif c is Move:
                if a.src not in f or a.dst not in f:
                    step.actions[-1] += "  (field absent in this packet: skipped)"
                    continue
                _move(f, a)
            elif c is DecTtl:
                ttl = f.get("ip_ttl")
                if ttl is not None and ttl <= 1:
                    step.note = "dec_ttl: TTL expired, packet dropped"
                    res.drops.append(f"{sw.name} table {step.table}: TTL expired")
                    return False
                if ttl is not None:
                    f["ip_ttl"] = ttl - 1
            elif c is Ct:
                state = sw.conntrack.process(f, a.zone, a.commit, dry_run=not self.commit)
                if a.table is not None:
                    if depth + 1 > MAX_RECIRC:
                        res.drops.append(f"{sw.name}: too many recirculations")
                        continue
                    g = dict(f)
                    g["ct_state"], g["ct_zone"] = state, a.zone
                    self.queue.append((a.table, g, depth + 1))
                    step.actions[-1] += f"  -> recirc to table {a.table} with ct_state={_ct(state)}"
                # As in OVS, the packet that goes on after ct() is untracked again: only the
                # recirculated copy carries the conntrack state.
                f["ct_state"] = f["ct_zone"] = f["ct_mark"] = 0
        return True

    def tables(self, table: int | None, f: dict[str, int], depth: int) -> None:
        sw, res = self.sw, self.res
        while table is not None:
            self.n += 1
            if self.n > MAX_STEPS:
                res.drops.append(f"{sw.name}: too many steps (loop?), dropped")
                self.queue.clear()
                return
            t = sw.tables[table]
            rule = t.lookup(f) if t is not None else None
            if rule is None:
                res.steps.append(Step(sw.name, table, None, [], "no match: drop (table miss)", depth))
                res.drops.append(f"{sw.name} table {table}: no matching flow")
                return
            if self.commit:
                rule.n_packets += 1
                rule.n_bytes += self.length
                sw.touch(rule)
            flow = rule.flow(table)
            step = Step(sw.name, table, text.format_flow(flow, show_stats=False), [], "", depth, rule.cookie,
                        trace_match(flow))
            res.steps.append(step)
            actions, goto, md = rule.instr[:3]
            if not self.actions(f, actions, step, depth):
                return
            if md is not None:
                f["metadata"] = (f["metadata"] & ~md[1]) | (md[0] & md[1])
                step.actions.append(f"write_metadata:{hex(md[0])}/{hex(md[1])}")
            if goto is not None:
                step.actions.append(f"goto_table:{goto}")
            elif not any(x.__class__ is Output for x in actions) and not any(
                x.__class__ is Ct and x.table is not None for x in actions
            ):
                step.note = step.note or "no output: packet dropped here"
            table = goto

    def drain(self) -> PassResult:
        while self.queue:
            table, f, depth = self.queue.pop(0)
            self.tables(table, f, depth)
        res = self.res
        if not res.emits and not res.drops and not res.to_controller:
            res.drops.append(f"{self.sw.name}: pipeline ended without output")
        return res


def run(sw: SimSwitch, f: dict[str, int], commit: bool = True, length: int = 64, table: int = 0) -> PassResult:
    """Run the packet (field dict, modified in place) through `sw` from `table`."""
    p = _Pass(sw, commit, length)
    p.queue.append((table, f, 0))
    return p.drain()


def run_actions(sw: SimSwitch, f: dict[str, int], actions, length: int = 64) -> PassResult:
    """A packet-out: apply `actions` to the packet; an output to TABLE runs the pipeline from table 0."""
    p = _Pass(sw, True, length)
    step = Step(sw.name, -1, "packet-out", [], "", 0)
    p.res.steps.append(step)
    p.actions(f, actions, step, 0)
    return p.drain()


def trace_match(flow) -> str:
    m = text.format_match(0x8000, flow.match)  # the priority goes after the match, not in it
    return f"{m}, priority {flow.priority}" + (f", cookie {hex(flow.cookie)}" if flow.cookie else "")


def _ct(state: int) -> str:
    return "".join("+" + name for i, name in enumerate(text.CT_FLAGS) if state & (1 << i))


def _output(sw: SimSwitch, f: dict[str, int], port: int, res: PassResult, step: Step, p: _Pass,
            depth: int) -> None:
    in_port = f["in_port"]
    if port == OFPP_IN_PORT:
        port = in_port
    elif port == OFPP_TABLE:
        p.queue.append((0, dict(f), depth))
        return
    elif port == OFPP_CONTROLLER:
        res.to_controller.append(f"{sw.name} table {step.table}")
        if p.commit:
            sw.packet_in(f, step.table, step.cookie, p.length)
        return
    elif port in (OFPP_FLOOD, OFPP_ALL, OFPP_NORMAL):
        for p in sw.container_ports():
            if p.ofport != in_port:
                res.emits.append(Emit(sw, p.ofport, dict(f)))
        return
    elif port == in_port:
        step.actions[-1] += "  (skipped: output to the input port needs IN_PORT)"
        return
    if port not in sw.ports:
        step.actions[-1] += f"  (port {port} does not exist: dropped)"
        res.drops.append(f"{sw.name}: output to nonexistent port {port}")
        return
    res.emits.append(Emit(sw, port, dict(f)))
