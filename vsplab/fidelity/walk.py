"""A packet's walk through an emu lab's real switches, for the teaching page (vsplab/ui): the same
shape as the simulated VRS's walk (vsplab/lab/probe.py `walk_pass`), taken from `ovs-appctl
ofproto/trace` on each host's br-int and followed across VXLAN (vsplab/fidelity/ofptrace.py).

ARP for the next hop first (the MAC the request is sent to is the one OVS answered with), then the
request; for TCP and ICMP the reply, traced as the conntrack state the request's trace left on each
host (+est where it ran ct(commit)). ofproto/trace holds no connections, so this is the pipeline's
verdict for a new connection, as `vsplab fidelity` compares it with the simulator and real packets.

An emu lab answers the page's `walk` through `register_walk` (the lab package never imports this one)."""

from __future__ import annotations

import itertools
import re

from vsc.pipeline import table_name
from vsplab.fidelity.ofptrace import OvsTrace, OvsTracer
from vsplab.fidelity.simcopy import real_ports
from vsplab.lab.control import register_op
from vsplab.lab.probe import next_hop_ip

_COOKIE = re.compile(r",?\s*cookie (0x[0-9a-f]+)")
# the extra fields a request and a reply carry, as flow_string takes them
_REQUEST = {"tcp": {"tcp_flags": "syn"}, "udp": {}, "icmp": {"icmp_type": "8", "icmp_code": "0"}}
_REPLY = {"tcp": {"tcp_flags": "syn|ack"}, "icmp": {"icmp_type": "0", "icmp_code": "0"}}
_source_ports = itertools.count(43000)


def step(host: str, table: int, matched: str | None) -> dict:
    """One table of an ofproto/trace as the page shows a step: the matched flow and its cookie."""
    name = table_name(table)
    cookie = m.group(1) if matched and (m := _COOKIE.search(matched)) else None
    match = _COOKIE.sub("", matched) if matched else None
    return {"switch": host, "table": table, "table_name": name, "flow": matched, "match": match, "actions": [],
            "note": "", "recirc": 0, "cookie": cookie}


def walk_pass(label: str, tr: OvsTrace, at: dict[tuple[str, int], str]) -> dict:
    """One traced packet: `at` names the container behind each (host, ofport)."""
    steps = [step(hp.host, t, m) for hp in tr.passes for t, m in hp.steps]
    tunnels = [f"{a.host} -> {b.host} (vni {a.tun_id & 0xFFFFFF})" for a, b in itertools.pairwise(tr.passes)
               if a.tun_id is not None]
    return {"label": label, "steps": steps, "tunnels": tunnels, "drops": tr.notes,
            "delivered": [{"switch": h, "port": p, "container": at.get((h, p))} for h, p in tr.delivered],
            "text": "\n".join(hp.text for hp in tr.passes)}


class EmuWalker:
    """Walks packets through a running EmuLab's switches (`lab.hosts`, `lab.placed`)."""

    def __init__(self, lab) -> None:
        self.lab = lab
        ports = {h: real_ports(host, [p.name for p in lab.placed.values() if p.host == h])
                 for h, host in lab.hosts.items()}
        self.tracer = OvsTracer(lab.hosts, {h: p.tunnel for h, p in ports.items()})
        self.port_of = {name: (h, ofport) for h, p in ports.items() for name, ofport in p.containers.items()}
        self.at = {where: name for name, where in self.port_of.items()}

    def _mac_for(self, src, target_ip: str) -> tuple[str | None, OvsTrace]:
        host, ofport = self.port_of[src.name]
        headers = {"dl_src": src.mac, "dl_dst": "ff:ff:ff:ff:ff:ff", "arp_op": "1", "arp_spa": src.ip,
                   "arp_tpa": target_ip, "arp_sha": src.mac, "arp_tha": "00:00:00:00:00:00"}
        tr = self.tracer.trace(host, "arp", ofport, headers)
        answered = tr.delivered and tr.passes[-1].final.get("arp_op") == "2"
        return (tr.passes[-1].final.get("arp_sha") if answered else None), tr

    def _ip(self, src, dst_ip: str, mac: str, proto: str, sport: int, dport: int | None, extra: dict,
            ct_next: dict[str, list[str]] | None) -> OvsTrace:
        host, ofport = self.port_of[src.name]
        headers = {"dl_src": src.mac, "dl_dst": mac, "nw_src": src.ip, "nw_dst": dst_ip, "nw_ttl": "64", **extra}
        if proto in ("tcp", "udp"):
            headers.update(tp_src=str(sport), tp_dst=str(dport))
        return self.tracer.trace(host, proto, ofport, headers, ct_next)

    def walk(self, source: str, destination: str, proto: str, port: int | None) -> dict:
        src, dst = self.lab.placed[source], self.lab.placed[destination]
        gateways = self.lab.scenario.gateways()
        passes: list[dict] = []
        mac, arp = self._mac_for(src, next_hop_ip(src, dst, gateways))
        if mac is None:
            passes.append(walk_pass("ARP request", arp, self.at))
            return {"verdict": "deny", "detail": "no answer to the ARP request", "passes": passes}
        sport = next(_source_ports)
        req = self._ip(src, dst.ip, mac, proto, sport, port, _REQUEST[proto], None)
        passes.append(walk_pass("request", req, self.at))
        if self.port_of[dst.name] not in req.delivered:
            return {"verdict": "deny", "detail": "request dropped (ofproto/trace)", "passes": passes}
        if proto not in _REPLY:
            return {"verdict": "allow", "detail": "", "passes": passes}
        back_mac, _ = self._mac_for(dst, next_hop_ip(dst, src, gateways))
        if back_mac is None:
            return {"verdict": "deny", "detail": "reply: no answer to the ARP request", "passes": passes}
        fresh = "trk,inv" if proto == "tcp" else "trk,new"
        ct_next = {h: ["trk,est,rpl" if req.committed_on(h) else fresh] for h in self.lab.hosts}
        rep = self._ip(dst, src.ip, back_mac, proto, port or 0, sport, _REPLY[proto], ct_next)
        passes.append(walk_pass("reply", rep, self.at))
        if self.port_of[src.name] not in rep.delivered:
            return {"verdict": "deny", "detail": "reply dropped (ofproto/trace)", "passes": passes}
        return {"verdict": "allow", "detail": "", "passes": passes}


def _answer(lab, req: dict) -> dict:
    for name in (req.get("from"), req.get("to")):
        if name not in lab.placed:
            raise KeyError(f"no container {name!r}; containers: {', '.join(sorted(lab.placed))}")
    return EmuWalker(lab).walk(req["from"], req["to"], req["proto"], req.get("port"))


def register_walk() -> None:
    """An emu lab's control socket answers `walk` (the teaching page's trace) with ofproto/trace."""
    register_op("walk", _answer)
