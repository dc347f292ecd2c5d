"""Walking one simulated switch's OpenFlow pipeline with a packet, the way `ofproto/trace` does:
table by table, apply-actions in order (an output sends a copy of the packet as it is at that
point), then write-metadata, then goto-table; ct(table=N) continues a copy in table N with ct_state
filled in once the current pass is done ("recirc")."""

from __future__ import annotations

from dataclasses import dataclass, field

from vrs.sim.switch import SimSwitch
from vsplab.openflow import text
from vsplab.openflow.flow import (
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_NORMAL,
    Ct,
    DecTtl,
    Move,
    Output,
    SetField,
)

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

    def to_dict(self) -> dict:
        return {"switch": self.switch, "table": self.table, "flow": self.flow, "actions": self.actions,
                "note": self.note, "recirc": self.recirc}


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


def run(sw: SimSwitch, f: dict[str, int], commit: bool = True, length: int = 64, table: int = 0) -> PassResult:
    """Run the packet (field dict, modified in place) through `sw` from `table`."""
    res = PassResult()
    queue = [(table, f, 0)]
    n = 0
    while queue:
        table, f, depth = queue.pop(0)
        while table is not None:
            n += 1
            if n > MAX_STEPS:
                res.drops.append(f"{sw.name}: too many steps (loop?), dropped")
                return res
            t = sw.tables[table]
            rule = t.lookup(f) if t is not None else None
            if rule is None:
                res.steps.append(Step(sw.name, table, None, [], "no match: drop (table miss)", depth))
                res.drops.append(f"{sw.name} table {table}: no matching flow")
                break
            if commit:
                rule.n_packets += 1
                rule.n_bytes += length
            flow = rule.flow(table)
            step = Step(sw.name, table, text.format_flow(flow, show_stats=False), [], "", depth)
            res.steps.append(step)
            actions, goto, md = rule.instr
            stop = False
            for a in actions:
                c = a.__class__
                step.actions.append(text.format_action(a))
                if c is Output:
                    _output(sw, f, a.port, res, step)
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
                        res.drops.append(f"{sw.name} table {table}: TTL expired")
                        stop = True
                        break
                    if ttl is not None:
                        f["ip_ttl"] = ttl - 1
                elif c is Ct:
                    state = sw.conntrack.process(f, a.zone, a.commit, dry_run=not commit)
                    if a.table is not None:
                        if depth + 1 > MAX_RECIRC:
                            res.drops.append(f"{sw.name}: too many recirculations")
                            continue
                        g = dict(f)
                        g["ct_state"], g["ct_zone"] = state, a.zone
                        queue.append((a.table, g, depth + 1))
                        step.actions[-1] += f"  -> recirc to table {a.table} with ct_state={_ct(state)}"
            if stop:
                break
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
    if not res.emits and not res.drops and not res.to_controller and not queue:
        res.drops.append(f"{sw.name}: pipeline ended without output")
    return res


def _ct(state: int) -> str:
    return "".join("+" + name for i, name in enumerate(text.CT_FLAGS) if state & (1 << i))


def _output(sw: SimSwitch, f: dict[str, int], port: int, res: PassResult, step: Step) -> None:
    in_port = f["in_port"]
    if port == OFPP_IN_PORT:
        port = in_port
    elif port == OFPP_CONTROLLER:
        res.to_controller.append(f"{sw.name} table {step.table}")
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
