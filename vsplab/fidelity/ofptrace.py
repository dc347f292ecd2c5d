"""`ovs-appctl ofproto/trace` on the emulated hosts' real switches, followed across VXLAN.

ofproto/trace stops at the tunnel port: the outer header leaves through br-phy and the trace ends.
So a packet that leaves br-int on the tunnel port is traced again on the host owning its `tun_dst`,
entering there on that host's tunnel port with the `tun_id`, `tun_src` and `tun_dst` the first
trace set, and the inner headers as the first trace left them ("Final flow").

Conntrack: ofproto/trace never consults the real connection table; every ct() it meets resumes
with `--ct-next` flags, default trk|new. A reply is traced with trk|est|rpl on a host exactly when
the request's trace on that host executed ct(commit) - derived from the real switch's own trace,
not from the simulator, so the two sides stay independent."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STEP = re.compile(r"^\s*(\d+)\. (.*)$")
_BRIDGE = re.compile(r'^bridge\("([^"]+)"\)')
_OUTPUT = re.compile(r"^\s+(?:output:(\d+)|(IN_PORT))\s*$")
_TUN_ID = re.compile(r"(?:set_field:|load:)(0x[0-9a-f]+|\d+)->(?:tun_id|NXM_NX_TUN_ID\[\])")
_TUN_DST = re.compile(r"(?:set_field:)(\d+\.\d+\.\d+\.\d+)->(?:tun_dst|tun_ipv4_dst)")
_TUN_DST_LOAD = re.compile(r"load:(0x[0-9a-f]+)->NXM_NX_TUN_IPV4_DST\[\]")
# the packet's own header fields, kept from the sender's "Final flow" for the receiver's trace
_HEADER_KEYS = ("dl_src", "dl_dst", "nw_src", "nw_dst", "nw_tos", "nw_ecn", "nw_ttl", "tp_src", "tp_dst",
                "tcp_flags", "icmp_type", "icmp_code", "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")
# what the pipeline rewrites on the way out (router MAC, ARP responder): compared on delivered copies
DELIVERED_KEYS = ("dl_src", "dl_dst", "nw_src", "nw_dst", "nw_ttl", "arp_op", "arp_spa", "arp_tpa", "arp_sha",
                  "arp_tha", "icmp_type")
_PROTOS = ("tcp", "udp", "icmp", "arp")
MAX_HOPS = 4


@dataclass
class HostPass:
    """What one host's br-int did with the packet (all recirculations of one ofproto/trace)."""

    host: str
    steps: list[tuple[int, str | None]] = field(default_factory=list)  # (table, matched flow or None)
    outputs: list[int | str] = field(default_factory=list)  # ofports, or "IN_PORT"
    committed: bool = False  # an executed ct(commit): replies are +est here
    tun_id: int | None = None
    tun_dst: str | None = None
    final: dict[str, str] = field(default_factory=dict)
    text: str = ""
    warnings: list[str] = field(default_factory=list)  # outputs OVS refused: the packet stopped there
    artifacts: list[str] = field(default_factory=list)  # refusals that only the trace makes


@dataclass
class OvsTrace:
    passes: list[HostPass] = field(default_factory=list)
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (host, ofport)
    headers: list[dict[str, str]] = field(default_factory=list)  # of each delivered copy, as rewritten
    notes: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def committed_on(self, host: str) -> bool:
        return any(p.committed for p in self.passes if p.host == host)


def parse_trace(host: str, text: str) -> HostPass:
    """One ofproto/trace output -> the tables br-int visited, its outputs and the tunnel it set."""
    hp, bridge = HostPass(host, text=text), None
    final_line = ""
    for line in text.splitlines():
        m = _BRIDGE.match(line)
        if m:
            bridge = m.group(1)
            continue
        if line.startswith("Final flow:") and "unchanged" not in line:
            final_line = line
        if bridge != "br-int":
            continue
        m = _STEP.match(line)
        if m:
            hp.steps.append((int(m.group(1)), None if m.group(2) == "No match." else m.group(2)))
            continue
        m = _OUTPUT.match(line)
        if m:
            hp.outputs.append(int(m.group(1)) if m.group(1) else "IN_PORT")
            continue
        s = line.strip()
        if s.startswith(">> ") and hp.outputs:
            warning = s[3:]
            if warning == "skipping output to input port":
                hp.outputs.pop()  # OpenFlow never sends a packet back out of its in_port without IN_PORT
            elif warning == "Not tunneling to our own address":
                # A trace artifact, not the datapath's behaviour: the thawed flow of a recirculation
                # carries the tun_dst set before ct() as if the packet had arrived with it, and xlate
                # refuses to tunnel back to a packet's own tunnel source. The real datapath's thawed
                # packet has no such tunnel metadata and does send it (real packets pass). Kept as
                # an output, recorded so the JSON shows where OVS's own trace says otherwise.
                hp.artifacts.append(f"ofproto/trace: output:{hp.outputs[-1]} '{warning}' (recirculated pass)")
            else:  # any other refusal really stops the packet there
                hp.outputs.pop()
                hp.warnings.append(warning)
            continue
        if s.startswith("ct(") and "commit" in s.split(")")[0]:
            hp.committed = True
        if m := _TUN_ID.search(s):
            hp.tun_id = int(m.group(1), 0)
        if m := _TUN_DST.search(s):
            hp.tun_dst = m.group(1)
        elif m := _TUN_DST_LOAD.search(s):
            v = int(m.group(1), 16)
            hp.tun_dst = ".".join(str(v >> s & 255) for s in (24, 16, 8, 0))
    if final_line:
        for tok in final_line.split(":", 1)[1].strip().split(","):
            k, _, v = tok.partition("=")
            hp.final[k] = v
    return hp


def flow_string(proto: str, in_port: int, headers: dict[str, str], extra: str = "") -> str:
    parts = [proto, f"in_port={in_port}"] + ([extra] if extra else [])
    for k in _HEADER_KEYS:
        if k in headers:
            # the flow parser refuses tp_src after "udp" (a prerequisite check), though dumps print it
            name = {"tp_src": "udp_src", "tp_dst": "udp_dst"}.get(k, k) if proto == "udp" else k
            parts.append(f"{name}={headers[k]}")
    return ",".join(parts)


class OvsTracer:
    """Traces on the lab's real switches. `hosts`: name -> object with `.ovs.appctl` and `vtep_ip`;
    `tunnel_ofports`: name -> the ofport of its vxlan0."""

    def __init__(self, hosts: dict, tunnel_ofports: dict[str, int]) -> None:
        self.hosts = hosts
        self.tunnel_ofports = tunnel_ofports
        self.by_vtep = {h.vtep_ip: name for name, h in hosts.items()}

    def _run(self, host: str, proto: str, in_port: int, headers: dict[str, str], extra: str,
             ct_next: list[str]) -> HostPass:
        args = ["ofproto/trace"]
        for flags in ct_next:
            args += ["--ct-next", flags]
        hp = parse_trace(host, self.hosts[host].ovs.appctl(*args, "br-int",
                                                           flow_string(proto, in_port, headers, extra)))
        if not hp.final:  # "Final flow: unchanged": the headers went through as they came in
            hp.final = {proto: "", **headers}
        return hp

    def trace(self, host: str, proto: str, in_port: int, headers: dict[str, str],
              ct_next: dict[str, list[str]] | None = None) -> OvsTrace:
        """Trace from `host`'s `in_port`, following VXLAN; `ct_next[host]` gives that host's flags."""
        ct_next = ct_next or {}
        out = OvsTrace()
        hp = self._run(host, proto, in_port, headers, "", ct_next.get(host, []))
        for hop in range(MAX_HOPS):
            out.passes.append(hp)
            out.notes += [f"{hp.host}: OVS refused an output: {w}" for w in hp.warnings]
            out.artifacts += [f"{hp.host}: {a}" for a in hp.artifacts]
            tunnel = self.tunnel_ofports[hp.host]
            nxt = None
            for o in hp.outputs:
                if o == "IN_PORT":
                    out.delivered.append((hp.host, in_port if hop == 0 else tunnel))
                    out.headers.append({k: hp.final[k] for k in DELIVERED_KEYS if k in hp.final})
                elif o != tunnel:
                    out.delivered.append((hp.host, o))
                    out.headers.append({k: hp.final[k] for k in DELIVERED_KEYS if k in hp.final})
                else:
                    nxt = self._decap(hp, out)
            if nxt is None:
                break
            dst_host, proto, headers, extra = nxt
            hp = self._run(dst_host, proto, self.tunnel_ofports[dst_host], headers, extra,
                           ct_next.get(dst_host, []))
        else:
            out.notes.append("too many tunnel hops")
        return out

    def _decap(self, hp: HostPass, out: OvsTrace) -> tuple[str, str, dict[str, str], str] | None:
        if hp.tun_dst is None or hp.tun_id is None:
            out.notes.append(f"{hp.host}: output to the tunnel without tun_id/tun_dst set")
            return None
        dst = self.by_vtep.get(hp.tun_dst)
        if dst is None:
            out.notes.append(f"{hp.host}: tunnel to {hp.tun_dst}, no emulated host has that VTEP")
            return None
        headers = {k: v for k, v in hp.final.items() if k in _HEADER_KEYS}
        proto = next((p for p in _PROTOS if p in hp.final), None)
        if proto is None:
            out.notes.append(f"{hp.host}: no final flow to carry through the tunnel")
            return None
        vni = hp.tun_id & 0xFFFFFF  # VXLAN carries 24 bits
        extra = f"tun_id={vni:#x},tun_src={self.hosts[hp.host].vtep_ip},tun_dst={hp.tun_dst}"
        return dst, proto, headers, extra
