"""One case traced the way a container would send it, through whatever fabric holds the flows (the
switches of `Compiled.fabric()`, or a running sim lab's): ARP for the next hop, the first packet, and
for TCP and ICMP echo the reply from the other side, as `vsplab.lab.probe` checks expectations. The
answer names what decided in each ACL table the packets crossed."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from vrs.sim.fabric import SimFabric, TraceResult
from vrs.sim.packet import Packet
from vsc.pipeline import ACL_DIRECTION
from vsplab.lab.probe import resolve_mac, why_dropped
from vsplab.policy.cases import ECHO, Case, pick
from vsplab.policy.compiled import Compiled, Decider

_conn = itertools.count(1)  # varies source ports and echo IDs: every exchange is a new connection


@dataclass
class Leg:
    """One packet's trip: delivered or not, and the decider of each ACL table it met."""

    delivered: bool
    deciders: list[Decider] = field(default_factory=list)
    drop: str = ""
    trace: TraceResult | None = None  # on a simulated fabric
    walk: dict | None = None  # on real switches: a pass of vsplab.fidelity.walk (ofproto/trace)

    def to_dict(self) -> dict:
        return {"delivered": self.delivered, "deciders": [d.to_dict() for d in self.deciders], "drop": self.drop}


@dataclass
class Outcome:
    verdict: str  # allow | deny
    request: Leg
    reply: Leg | None = None
    detail: str = ""

    def deciders(self) -> list[Decider]:
        return self.request.deciders + (self.reply.deciders if self.reply else [])

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "detail": self.detail, "request": self.request.to_dict(),
                "reply": self.reply.to_dict() if self.reply else None}


class _Named:
    """What `resolve_mac` needs of a container: its name."""

    def __init__(self, name: str):
        self.name = name


def next_hop(compiled: Compiled, src: str, dst: str) -> str:
    """The address `src` ARPs for: `dst` on its own subnet, else its subnet's gateway."""
    view = compiled.view
    eps = {e.name: e for e in compiled.state.endpoints}
    a, b = view.vports.get(eps[src].vport_id), view.vports.get(eps[dst].vport_id)
    if a is None or b is None or a.subnet_id == b.subnet_id:
        return eps[dst].ip
    gw = view.subnets[a.subnet_id].gateway
    return str(IPv4Address(gw)) if gw is not None else eps[dst].ip


def acl_deciders(compiled: Compiled, hits: Iterable[tuple[int, int]]) -> list[Decider]:
    """What decided in each ACL table a packet met: `hits` are its (table, matched flow's cookie) steps."""
    out = []
    for table, ck in hits:
        direction = ACL_DIRECTION.get(table)
        if direction and (d := compiled.decider(ck, direction)) is not None:
            out.append(d)
    return out


def leg(compiled: Compiled, res: TraceResult, dst: str) -> Leg:
    deciders = acl_deciders(compiled, ((s.table, s.cookie) for s in res.steps if s.flow is not None))
    ok = res.delivered_to(dst)
    return Leg(ok, deciders, "" if ok else why_dropped(res), res)


def exchange(fabric: SimFabric, compiled: Compiled, case: Case, member: int | None = None,
             keep_traces: bool = False) -> Outcome:
    """Trace one case. `member` picks which port of the class (default: varied per call)."""
    n = next(_conn)
    ip = {e.name: e.ip for e in compiled.state.endpoints}
    mac, why = resolve_mac(fabric, _Named(case.src), next_hop(compiled, case.src, case.dst))
    if mac is None:
        return Outcome("deny", Leg(False, drop=why), detail=why)
    proto: str | int = case.proto if case.proto in ("tcp", "udp", "icmp") else int(case.proto)
    dport = sport = 0
    icmp_type, icmp_code = ECHO
    if case.proto in ("tcp", "udp"):
        dport = pick(case.dport, n if member is None else member)
        sport = pick(case.sport, n)
    elif case.proto == "icmp":
        icmp_type, icmp_code = case.dport
    req = Packet(proto=proto, source=case.src, dst_ip=ip[case.dst], dst_port=dport or None, src_port=sport,
                 eth_dst=mac, tcp_flags="S", icmp_type=icmp_type, icmp_code=icmp_code, icmp_id=n & 0xFFFF)
    first = leg(compiled, fabric.trace(req), case.dst)
    if not keep_traces:
        first.trace = None
    if not first.delivered:
        return Outcome("deny", first, detail=f"request: {first.drop}")
    if case.proto not in ("tcp", "icmp") or (case.proto == "icmp" and case.dport != ECHO):
        return Outcome("allow", first)
    back, why = resolve_mac(fabric, _Named(case.dst), next_hop(compiled, case.dst, case.src))
    if back is None:
        return Outcome("deny", first, Leg(False, drop=why), f"reply: {why}")
    rep = Packet(proto=proto, source=case.dst, dst_ip=ip[case.src], dst_port=sport or None, src_port=dport,
                 eth_dst=back, tcp_flags="SA", icmp_type=0, icmp_id=n & 0xFFFF)
    second = leg(compiled, fabric.trace(rep), case.src)
    if not keep_traces:
        second.trace = None
    if not second.delivered:
        return Outcome("deny", first, second, f"reply: {second.drop}")
    return Outcome("allow", first, second)


def evaluate(fabric: SimFabric, compiled: Compiled, todo: list[Case]) -> dict[Case, Outcome]:
    return {c: exchange(fabric, compiled, c) for c in todo}
