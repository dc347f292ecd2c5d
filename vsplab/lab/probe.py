"""Check one expectation in sim mode by tracing packets the way a container would send them:
ARP for the next hop, the first packet (TCP SYN, ICMP echo, UDP datagram), then the reply
(SYN-ACK, echo reply) from the other side. An `allow` needs the request delivered to the right
container and, for TCP and ICMP, the reply delivered back; anything less is a `deny`, with where it
was dropped as the detail."""

from __future__ import annotations

import itertools
import time

from vrs.sim.fabric import BROADCAST, SimFabric, TraceResult
from vrs.sim.packet import Packet
from vsc.pipeline import table_name
from vsplab.report import ExpectationResult
from vsplab.scenario.to_vsd import PlacedContainer

_ports = itertools.count(41000)  # a fresh source port per probe, so each is a new connection


def next_hop_ip(src: PlacedContainer, dst: PlacedContainer, gateways: dict[tuple[str, str], str]) -> str:
    """The address a container ARPs for: the peer itself on its own subnet, else its gateway."""
    if (src.enterprise, src.subnet) == (dst.enterprise, dst.subnet):
        return dst.ip
    return gateways[(src.enterprise, src.subnet)]


def resolve_mac(fabric: SimFabric, src: PlacedContainer, target_ip: str) -> tuple[int | None, str]:
    """Send an ARP request from `src` for `target_ip`; the MAC its answer carries, if any."""
    res = fabric.trace(Packet(proto="arp", source=src.name, dst_ip=target_ip, eth_dst=BROADCAST,
                              arp_op=1), commit=False)
    for d in res.delivered:
        if d.container == src.name and d.packet.get("arp_op") == 2:
            return d.packet.get("arp_sha"), ""
    why = res.drops[-1] if res.drops else "no ARP reply"
    return None, f"ARP for {target_ip} from {src.name} unanswered ({why})"


def why_dropped(res: TraceResult) -> str:
    """Where a trace ended: the last table it went through and the flow (or miss) it hit there."""
    if res.delivered:
        return "delivered to " + ", ".join(d.container or d.switch for d in res.delivered) + " instead"
    if not res.steps:
        return res.drops[-1] if res.drops else "not delivered"
    last = res.steps[-1]
    return f"{last.switch} table {last.table} ({table_name(last.table)}): {last.flow or 'no flow matched'}"


def probe(fabric: SimFabric, src: PlacedContainer, dst: PlacedContainer, protocol: str, port: int | None,
          gateways: dict[tuple[str, str], str], traces: list | None = None) -> tuple[str, str]:
    """(observed verdict, detail) for traffic from src to dst; `traces` (if given) collects
    ("request" | "reply", TraceResult) for the teaching page's walk (vsplab/ui)."""
    mac, why = resolve_mac(fabric, src, next_hop_ip(src, dst, gateways))
    if mac is None:
        return "deny", why
    sport = next(_ports)
    first = Packet(proto=protocol, source=src.name, dst_ip=dst.ip, dst_port=port, src_port=sport,
                   eth_dst=mac, tcp_flags="S", icmp_type=8, icmp_id=sport & 0xFFFF)
    res = fabric.trace(first)
    if traces is not None:
        traces.append(("request", res))
    if not res.delivered_to(dst.name):
        return "deny", f"request: {why_dropped(res)}"
    if protocol == "udp":
        return "allow", ""
    back_mac, why = resolve_mac(fabric, dst, next_hop_ip(dst, src, gateways))
    if back_mac is None:
        return "deny", f"reply: {why}"
    reply = Packet(proto=protocol, source=dst.name, dst_ip=src.ip, dst_port=sport if protocol == "tcp" else None,
                   src_port=port or 0, eth_dst=back_mac, tcp_flags="SA", icmp_type=0, icmp_id=sport & 0xFFFF)
    res = fabric.trace(reply)
    if traces is not None:
        traces.append(("reply", res))
    if not res.delivered_to(src.name):
        return "deny", f"reply: {why_dropped(res)}"
    return "allow", ""


def walk_pass(label: str, res: TraceResult) -> dict:
    """One traced pass as the teaching page shows it: every step with its table's name and the cookie
    of the flow it matched (the page asks the VSC which VSD object that cookie names)."""
    steps = []
    for s in res.steps:
        steps.append({**s.to_dict(), "table_name": table_name(s.table), "cookie": hex(s.cookie) if s.flow is not None else None})
    return {**res.to_dict(), "label": label, "steps": steps, "text": res.text()}


def check_expectations(fabric: SimFabric, scenario, placed: dict[str, PlacedContainer]) -> list[ExpectationResult]:
    gateways = scenario.gateways()
    results = []
    for x in scenario.expect:
        t0 = time.perf_counter()
        try:
            observed, detail = probe(fabric, placed[x.from_], placed[x.to], x.protocol, x.port, gateways)
        except Exception as e:  # a trace that blows up is a failed check, reported, not a crashed run
            observed, detail = "error", f"{type(e).__name__}: {e}"
        results.append(ExpectationResult(x.from_, x.to, x.protocol, x.port, x.expect, observed, detail,
                                         time.perf_counter() - t0))
    return results
