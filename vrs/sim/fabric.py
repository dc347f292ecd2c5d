"""All simulated switches of a process, keyed by VTEP, and traces that follow a packet through VXLAN
from one switch's tunnel port into the destination switch's pipeline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from openflow import text
from vrs.sim import pipeline
from vrs.sim.packet import Packet, ip_int, mac_int
from vrs.sim.switch import Port, SimSwitch

MAX_HOPS = 8
BROADCAST = 0xFFFFFFFFFFFF
_PACKET_FIELDS = ("eth_src", "eth_dst", "eth_type", "ip_proto", "ipv4_src", "ipv4_dst", "ip_ttl", "tcp_src",
                  "tcp_dst", "udp_src", "udp_dst", "tcp_flags", "icmpv4_type", "icmpv4_code", "arp_op",
                  "arp_spa", "arp_tpa", "arp_sha", "arp_tha", "icmp_inner")


@dataclass
class Delivery:
    switch: str
    port: int
    container: str | None  # None for the bridge's LOCAL port
    packet: dict[str, int]  # header fields as delivered

    def to_dict(self) -> dict:
        return {"switch": self.switch, "port": self.port, "container": self.container,
                "packet": {k: self.packet[k] for k in _PACKET_FIELDS if k in self.packet}}


@dataclass
class TraceResult:
    steps: list[pipeline.Step] = field(default_factory=list)
    delivered: list[Delivery] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    to_controller: list[str] = field(default_factory=list)
    tunnels: list[str] = field(default_factory=list)  # "h1 -> h2 (vni 5)"

    @property
    def verdict(self) -> str:
        return "delivered" if self.delivered else "dropped"

    def delivered_to(self, container: str) -> bool:
        return any(d.container == container for d in self.delivered)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "delivered": [d.to_dict() for d in self.delivered], "drops": self.drops,
                "to_controller": self.to_controller, "tunnels": self.tunnels,
                "steps": [s.to_dict() for s in self.steps]}

    def text(self) -> str:
        """ofproto/trace-like: per bridge, each table's matched flow and the actions it applied."""
        out, cur = [], None
        for s in self.steps:
            if (s.switch, s.recirc) != cur:
                cur = (s.switch, s.recirc)
                title = f'bridge("{s.switch}")' + (f" recirc #{s.recirc}" if s.recirc else "")
                out += ["", title, "-" * len(title)]
            out.append(f"{s.table:2d}. {s.match if s.flow is not None else 'No match.'}")
            out += [f"    {a}" for a in s.actions]
            if s.note:
                out.append(f"    -> {s.note}")
        out.append("")
        for t in self.tunnels:
            out.append(f"Tunnel: {t}")
        for d in self.delivered:
            out.append(f"Delivered: {d.switch} port {d.port}" + (f" ({d.container})" if d.container else ""))
        for r in self.drops:
            out.append(f"Dropped: {r}")
        for c in self.to_controller:
            out.append(f"To controller: {c}")
        out.append(f"Final verdict: {self.verdict}")
        return "\n".join(out).lstrip("\n")


@dataclass
class UnderlayLink:
    """A simulated host's link into the underlay, as a fault leaves it: down, losing a share of the
    frames that cross it (percent), or delaying them (a trace reports the delay; it does not wait)."""

    up: bool = True
    loss: float = 0.0
    delay_ms: float = 0.0


class SimFabric:
    """The switches one process simulates. Containers are found by name and IP across all of them."""

    def __init__(self) -> None:
        self.switches: dict[str, SimSwitch] = {}
        self.by_vtep: dict[int, SimSwitch] = {}
        self.links: dict[str, UnderlayLink] = {}  # host -> its underlay link, once a fault touched it
        self._loss = random.Random()

    def link(self, host: str) -> UnderlayLink:
        if host not in self.switches:
            raise KeyError(f"no simulated host {host!r}")
        return self.links.setdefault(host, UnderlayLink())

    def path_delay_ms(self, a: str, b: str) -> float:
        """The underlay delay one way between hosts a and b (none on the same host)."""
        if a == b:
            return 0.0
        return sum(self.links[h].delay_ms for h in (a, b) if h in self.links)

    def add(self, sw: SimSwitch) -> SimSwitch:
        if sw.name in self.switches or sw.vtep_ip in self.by_vtep:
            raise ValueError(f"switch {sw.name} or its VTEP {text.ip_str(sw.vtep_ip)} already exists")
        self.switches[sw.name] = sw
        self.by_vtep[sw.vtep_ip] = sw
        sw.fabric = self
        return sw

    def remove(self, name: str) -> None:
        sw = self.switches.pop(name)
        self.by_vtep.pop(sw.vtep_ip, None)

    def container(self, name: str) -> tuple[SimSwitch, Port]:
        for sw in self.switches.values():
            p = sw.port_by_name(name)
            if p is not None and p.kind == "container":
                return sw, p
        raise KeyError(f"no container named {name!r}")

    def container_by_ip(self, ip: int) -> tuple[SimSwitch, Port] | None:
        for sw in self.switches.values():
            for p in sw.container_ports():
                if p.ip == ip:
                    return sw, p
        return None

    def trace(self, packet: Packet, commit: bool = True) -> TraceResult:
        """Follow `packet` from its source through every pipeline and tunnel it reaches.
        commit=False is a dry run: conntrack records nothing and flow counters stay as they are."""
        if packet.source is not None:
            sw, port = self.container(packet.source)
            in_port = port.ofport
        elif packet.host is not None and packet.in_port is not None:
            sw = self.switches[packet.host]
            in_port = packet.in_port
            port = sw.ports.get(in_port)
        else:
            raise ValueError("a packet needs a source container, or a host and an in_port")
        eth_src = mac_int(packet.eth_src)
        if eth_src is None:
            eth_src = port.mac if port is not None else 0
        src_ip = ip_int(packet.src_ip)
        if src_ip is None and port is not None:
            src_ip = port.ip
        eth_dst = mac_int(packet.eth_dst)
        if eth_dst is None:
            dst = self.container_by_ip(ip_int(packet.dst_ip)) if packet.dst_ip is not None else None
            eth_dst = BROADCAST if dst is None or packet.proto == "arp" else dst[1].mac
        fields = packet.fields(in_port, eth_src, eth_dst, src_ip)
        return self.trace_fields(sw, fields, commit, packet.length)

    def trace_fields(self, sw: SimSwitch, fields: dict[str, int], commit: bool = True,
                     length: int = 64, actions=None) -> TraceResult:
        """Trace a packet given as a field dict; with `actions`, the first switch applies those
        instead of starting in table 0 (a packet-out)."""
        res = TraceResult()
        work = [(sw, fields, 0)]
        while work:
            sw, f, hops = work.pop(0)
            if actions is not None and hops == 0:
                p = pipeline.run_actions(sw, f, actions, length)
            else:
                p = pipeline.run(sw, f, commit, length)
            res.steps += p.steps
            res.drops += p.drops
            res.to_controller += p.to_controller
            for e in p.emits:
                port = e.switch.ports[e.port]
                if port.kind != "tunnel":
                    res.delivered.append(Delivery(e.switch.name, e.port,
                                                  port.name if port.kind == "container" else None, e.fields))
                    continue
                nxt = self._decap(e, hops, res)
                if nxt is not None:
                    work.append(nxt)
        return res

    def _decap(self, e: pipeline.Emit, hops: int, res: TraceResult):
        f = e.fields
        dst_ip = f.get("tun_ipv4_dst", 0)
        remote = self.by_vtep.get(dst_ip)
        where = f"{e.switch.name} -> {text.ip_str(dst_ip)}"
        if remote is None:
            res.drops.append(f"{where}: no simulated VRS has that VTEP")
            return None
        if remote is e.switch:
            res.drops.append(f"{where}: tunnel to itself")
            return None
        if hops + 1 > MAX_HOPS:
            res.drops.append(f"{where}: too many tunnel hops")
            return None
        for host in (e.switch.name, remote.name):
            link = self.links.get(host)
            if link is not None and not link.up:
                res.drops.append(f"{where}: the underlay link of {host} is down")
                return None
            if link is not None and link.loss and self._loss.random() * 100 < link.loss:
                res.drops.append(f"{where}: lost on the underlay link of {host} ({link.loss:g}% loss)")
                return None
        vni = f.get("tun_id", 0) & 0xFFFFFF  # VXLAN carries 24 bits of tun_id
        res.tunnels.append(f"{e.switch.name} -> {remote.name} (vni {vni})")
        g = {k: f[k] for k in _PACKET_FIELDS if k in f}
        g.update({"in_port": remote.tunnel_ofport, "tun_id": vni, "tun_ipv4_src": e.switch.vtep_ip,
                  "tun_ipv4_dst": remote.vtep_ip, "metadata": 0, "ct_state": 0, "ct_zone": 0, "ct_mark": 0,
                  **{f"reg{i}": 0 for i in range(16)}})
        return remote, g, hops + 1
