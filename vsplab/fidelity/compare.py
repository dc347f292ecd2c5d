"""Three verdicts for one case, packet by packet where two of them can be compared packet by packet.

For each case (src -> dst, protocol, port) the packets a container sends are traced on both the
simulated twin and the real switches (ofproto/trace, followed across VXLAN):

    1. ARP for the next hop from src          delivered to / the router MAC answered
    2. the first packet (SYN, echo, datagram)  delivered to, tables and flows matched on each host
    3. ARP for the way back from dst           (TCP and ICMP only, once the request got through)
    4. the reply (SYN-ACK, echo reply)         traced after the request, conntrack as the request left it

and the real packets (vsplab/emu/check.py's probe: a TCP connect echoed back, a ping, a datagram)
give the third verdict. A case agrees when all three verdicts agree and every traced packet went the
same way in the simulator and in OVS."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from openflow import text
from vrs.sim.conntrack import Conntrack
from vrs.sim.fabric import BROADCAST
from vrs.sim.packet import Packet
from vsplab.fidelity.cases import Case
from vsplab.fidelity.ofptrace import OvsTrace, OvsTracer
from vsplab.fidelity.simcopy import SimTwin
from vsplab.lab.probe import next_hop_ip

_sports = itertools.count(42000)  # a fresh source port per case: each is a new connection in both
_REQ = {"tcp": ("tcp_flags=syn", "S"), "udp": ("", None), "icmp": ("icmp_type=8,icmp_code=0", None)}
_REPLY = {"tcp": ("tcp_flags=syn|ack", "SA"), "icmp": ("icmp_type=0,icmp_code=0", None)}


@dataclass
class PacketView:
    """One packet as the simulator and as OVS handled it."""

    name: str
    sim_delivered: list[tuple[str, int]]
    ovs_delivered: list[tuple[str, int]]
    sim_path: dict[str, list]  # host -> [(table, matched flow)]
    ovs_path: dict[str, list]
    notes: list[str] = field(default_factory=list)
    sim_headers: list[dict[str, str]] = field(default_factory=list)  # each delivered copy, as rewritten
    ovs_headers: list[dict[str, str]] = field(default_factory=list)
    ovs_artifacts: list[str] = field(default_factory=list)  # see ofptrace.parse_trace: not differences

    def differences(self) -> list[str]:
        out = []
        if sorted(self.sim_delivered) != sorted(self.ovs_delivered):
            out.append(f"{self.name}: sim delivered to {_where(self.sim_delivered)}, "
                       f"OVS to {_where(self.ovs_delivered)}")
        else:
            sim = sorted(zip(self.sim_delivered, map(_sorted_items, self.sim_headers), strict=True))
            ovs = sorted(zip(self.ovs_delivered, map(_sorted_items, self.ovs_headers), strict=True))
            for (where, a), (_, b) in zip(sim, ovs, strict=True):
                diff = {k: (dict(a).get(k), dict(b).get(k)) for k in dict(a) | dict(b)
                        if dict(a).get(k) != dict(b).get(k)}
                if diff:
                    out.append(f"{self.name} delivered on {where[0]} port {where[1]}: "
                               + ", ".join(f"{k} sim {x} / OVS {y}" for k, (x, y) in sorted(diff.items())))
        for host in sorted(set(self.sim_path) | set(self.ovs_path)):
            s, o = self.sim_path.get(host, []), self.ovs_path.get(host, [])
            if s != o:
                at = next((i for i, (a, b) in enumerate(zip(s, o, strict=False)) if a != b), min(len(s), len(o)))
                sim_at = s[at] if at < len(s) else "(trace ended)"
                ovs_at = o[at] if at < len(o) else "(trace ended)"
                out.append(f"{self.name} on {host}: step {at + 1} sim {sim_at} / OVS {ovs_at}")
        return out + [f"{self.name}: {n}" for n in self.notes]

    def to_dict(self) -> dict:
        return {"packet": self.name, "sim_delivered": self.sim_delivered, "ovs_delivered": self.ovs_delivered,
                "sim_headers": self.sim_headers, "ovs_headers": self.ovs_headers,
                "ovs_trace_artifacts": self.ovs_artifacts,
                "sim_path": self.sim_path, "ovs_path": self.ovs_path, "notes": self.notes}


@dataclass
class CaseResult:
    case: Case
    sim: str = "deny"
    ovs: str = "deny"
    real: str = "deny"
    real_detail: str = ""
    packets: list[PacketView] = field(default_factory=list)

    def differences(self) -> list[str]:
        out = [d for p in self.packets for d in p.differences()]
        verdicts = {self.sim, self.ovs} | ({self.real} if self.real != "skipped" else set())
        if len(verdicts) > 1:
            out.insert(0, f"verdicts: sim {self.sim}, ofproto/trace {self.ovs}, real packets {self.real}"
                       + (f" ({self.real_detail})" if self.real_detail else ""))
        return out

    @property
    def agrees(self) -> bool:
        return not self.differences()

    def to_dict(self) -> dict:
        return {**self.case.to_dict(), "sim": self.sim, "ovs": self.ovs, "real": self.real,
                "real_detail": self.real_detail, "agrees": self.agrees, "differences": self.differences(),
                "packets": [p.to_dict() for p in self.packets]}


def canonical_match(match: str | None) -> str | None:
    """A matched flow as either trace prints it, in one spelling: the simulator writes an empty match
    as ", priority 0" and a zero value as "reg1=0x0" where ofproto/trace writes "priority 0" and
    "reg1=0" - the same flow, so the comparison must not see a difference there."""
    if match is None:
        return None
    out = []
    for tok in match.strip().lstrip(",").split(","):
        tok = tok.strip()
        k, eq, v = tok.partition("=")
        if eq:
            try:
                v = hex(int(v, 0))
            except ValueError:
                pass
            tok = f"{k}={v}"
        if tok:
            out.append(tok)
    return ",".join(out)


def _sorted_items(d: dict[str, str]) -> tuple:
    return tuple(sorted(d.items()))


_SIM_NAMES = {"eth_src": "dl_src", "eth_dst": "dl_dst", "ipv4_src": "nw_src", "ipv4_dst": "nw_dst",
              "ip_ttl": "nw_ttl", "arp_op": "arp_op", "arp_spa": "arp_spa", "arp_tpa": "arp_tpa",
              "arp_sha": "arp_sha", "arp_tha": "arp_tha", "icmpv4_type": "icmp_type"}


def sim_headers(packet: dict[str, int]) -> dict[str, str]:
    """A delivered copy's header fields from the simulator, spelled as ofproto/trace's Final flow."""
    out = {}
    for k, name in _SIM_NAMES.items():
        if k in packet:
            v = packet[k]
            out[name] = (text.mac_str(v) if name in ("dl_src", "dl_dst", "arp_sha", "arp_tha")
                         else text.ip_str(v) if name in ("nw_src", "nw_dst", "arp_spa", "arp_tpa") else str(v))
    return out


def _where(d: list[tuple[str, int]]) -> str:
    return ", ".join(f"{h} port {p}" for h, p in sorted(d)) or "nowhere"


class Comparator:
    """Traces cases on the twin and on the lab's real switches. `lab` is a converged EmuLab."""

    def __init__(self, lab, twin: SimTwin) -> None:
        self.lab, self.twin = lab, twin
        self.placed = lab.placed
        self.gateways = lab.scenario.gateways()
        self.ovs = OvsTracer(lab.hosts, {h: p.tunnel for h, p in twin.ports.items()})

    def _port(self, name: str) -> tuple[str, int]:
        p = self.placed[name]
        return p.host, self.twin.ports[p.host].containers[name]

    def _sim_path(self, res) -> dict[str, list]:
        out: dict[str, list] = {}
        for s in res.steps:
            out.setdefault(s.switch, []).append((s.table, canonical_match(s.match) if s.flow is not None else None))
        return out

    @staticmethod
    def _ovs_path(tr: OvsTrace) -> dict[str, list]:
        out: dict[str, list] = {}
        for hp in tr.passes:
            out.setdefault(hp.host, []).extend((t, canonical_match(m)) for t, m in hp.steps)
        return out

    def arp(self, name: str, src_name: str, target: str) -> tuple[PacketView, int | None, str | None]:
        """ARP from a container for `target`: the view, and the MAC each side answered with."""
        src = self.placed[src_name]
        host, ofport = self._port(src_name)
        res = self.twin.fabric.trace(Packet(proto="arp", source=src_name, dst_ip=target, eth_dst=BROADCAST,
                                            arp_op=1), commit=False)
        sim_mac = next((d.packet.get("arp_sha") for d in res.delivered
                        if d.container == src_name and d.packet.get("arp_op") == 2), None)
        headers = {"dl_src": src.mac, "dl_dst": "ff:ff:ff:ff:ff:ff", "arp_op": "1", "arp_spa": src.ip,
                   "arp_tpa": target, "arp_sha": src.mac, "arp_tha": "00:00:00:00:00:00"}
        tr = self.ovs.trace(host, "arp", ofport, headers)
        ovs_mac = None
        if tr.delivered and tr.passes[-1].final.get("arp_op") == "2":
            ovs_mac = tr.passes[-1].final.get("arp_sha")
        view = PacketView(name, [(d.switch, d.port) for d in res.delivered], tr.delivered, self._sim_path(res),
                          self._ovs_path(tr), tr.notes, [sim_headers(d.packet) for d in res.delivered],
                          tr.headers, tr.artifacts)
        if (sim_mac is None) != (ovs_mac is None) or (sim_mac is not None and text.mac_str(sim_mac) != ovs_mac):
            view.notes.append(f"answered with sim {text.mac_str(sim_mac) if sim_mac is not None else None}, "
                              f"OVS {ovs_mac}")
        return view, sim_mac, ovs_mac

    def ip_packet(self, name: str, src_name: str, dst_ip: str, proto: str, sport: int, dport: int | None,
                  sim_mac: int, ovs_mac: str, reply: bool, ct_next: dict[str, list[str]] | None
                  ) -> tuple[PacketView, OvsTrace]:
        src = self.placed[src_name]
        host, ofport = self._port(src_name)
        ovs_extra, flags = (_REPLY if reply else _REQ)[proto]
        icmp_type = 0 if reply else 8
        res = self.twin.fabric.trace(Packet(proto=proto, source=src_name, dst_ip=dst_ip, dst_port=dport,
                                            src_port=sport, eth_dst=sim_mac, tcp_flags=flags, icmp_type=icmp_type))
        headers = {"dl_src": src.mac, "dl_dst": ovs_mac, "nw_src": src.ip, "nw_dst": dst_ip, "nw_ttl": "64"}
        if proto in ("tcp", "udp"):
            headers.update(tp_src=str(sport), tp_dst=str(dport))
        for kv in filter(None, ovs_extra.split(",")):
            k, v = kv.split("=")
            headers[k] = v
        tr = self.ovs.trace(host, proto, ofport, headers, ct_next)
        view = PacketView(name, [(d.switch, d.port) for d in res.delivered], tr.delivered, self._sim_path(res),
                          self._ovs_path(tr), tr.notes, [sim_headers(d.packet) for d in res.delivered],
                          tr.headers, tr.artifacts)
        return view, tr

    def run(self, case: Case) -> CaseResult:
        """Both traced verdicts; the real one is filled in by the caller (probes run in parallel)."""
        r = CaseResult(case)
        # ofproto/trace holds no connections: every case starts from an empty connection table in the
        # simulator too (its ICMP key has no echo identifier, so an earlier ping between the same
        # addresses would otherwise make this one +est where the real switch sees +new)
        for vrs in self.twin.hosts.values():
            vrs.switch.conntrack = Conntrack()
        src, dst = self.placed[case.src], self.placed[case.dst]
        want_dst, want_src = self._port(case.dst), self._port(case.src)
        arp, sim_mac, ovs_mac = self.arp("ARP request", case.src, next_hop_ip(src, dst, self.gateways))
        r.packets.append(arp)
        if sim_mac is None or ovs_mac is None:
            return r  # no next hop on one side: both stay "deny", the ARP view says which
        sport = next(_sports)
        req, req_tr = self.ip_packet("request", case.src, dst.ip, case.protocol, sport, case.port, sim_mac,
                                     ovs_mac, reply=False, ct_next=None)
        r.packets.append(req)
        sim_ok = want_dst in req.sim_delivered
        ovs_ok = want_dst in req.ovs_delivered
        if case.protocol in _REPLY and sim_ok and ovs_ok:
            back, sim_back, ovs_back = self.arp("ARP for the reply", case.dst, next_hop_ip(dst, src, self.gateways))
            r.packets.append(back)
            if sim_back is None or ovs_back is None:
                sim_ok, ovs_ok = sim_back is not None and sim_ok, ovs_back is not None and ovs_ok
            else:
                # conntrack on each host as the request left it there, seen from the real switch's trace
                fresh = "trk,inv" if case.protocol == "tcp" else "trk,new"
                ct_next = {h: ["trk,est,rpl" if req_tr.committed_on(h) else fresh] for h in self.lab.hosts}
                rep, _ = self.ip_packet("reply", case.dst, src.ip, case.protocol, case.port or 0, sport,
                                        sim_back, ovs_back, reply=True, ct_next=ct_next)
                r.packets.append(rep)
                sim_ok = want_src in rep.sim_delivered
                ovs_ok = want_src in rep.ovs_delivered
        r.sim = "allow" if sim_ok else "deny"
        r.ovs = "allow" if ovs_ok else "deny"
        return r
