"""The packet a trace follows: a small spec (enough header fields for the pipeline to match on), built
by hand or from a scapy packet, turned into the field dict the classifier reads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

PROTOS = {"icmp": 1, "tcp": 6, "udp": 17}
TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def mac_int(v: int | str | None) -> int | None:
    if v is None or isinstance(v, int):
        return v
    return int(v.replace(":", "").replace("-", ""), 16)


def ip_int(v: int | str | None) -> int | None:
    if v is None or isinstance(v, int):
        return v
    return int(ipaddress.IPv4Address(v))


@dataclass(frozen=True)
class Packet:
    """A packet entering a simulated switch. Either `source` (a container name: in_port, eth_src and
    ip_src come from it) or `host` + `in_port`. Unset eth_dst is filled by the fabric with the MAC
    of the container owning ip_dst (the overlay's L2 view). `proto` is 'tcp', 'udp', 'icmp', 'arp'
    or an IP protocol number; `tcp_flags` like 'S', 'SA', 'A' (None: a SYN for a new connection)."""

    proto: str | int = "tcp"
    dst_ip: int | str | None = None
    dst_port: int | None = None
    source: str | None = None
    host: str | None = None
    in_port: int | None = None
    src_ip: int | str | None = None
    src_port: int = 40000
    eth_src: int | str | None = None
    eth_dst: int | str | None = None
    tcp_flags: str | None = None
    icmp_type: int = 8
    icmp_code: int = 0
    icmp_id: int = 0  # echo identifier: conntrack tells two pings between the same hosts apart by it
    arp_op: int = 1
    arp_sha: int | str | None = None
    arp_tha: int | str | None = 0
    ttl: int = 64
    length: int = 64
    # A non-IP, non-ARP frame (e.g. 0x88cc LLDP): only the Ethernet header is matched.
    eth_type: int | None = None
    # An ICMP error (type 3, 4, 5, 11, 12) quotes the packet that caused it: (ip_proto, src, sport,
    # dst, dport) of that packet as it was sent; conntrack marks the error +rel to its connection.
    icmp_inner: tuple | None = None

    @property
    def ip_proto(self) -> int | None:
        if self.proto == "arp":
            return None
        return PROTOS[self.proto] if isinstance(self.proto, str) else int(self.proto)

    def with_(self, **kw) -> Packet:
        return replace(self, **kw)

    @classmethod
    def from_scapy(cls, pkt, source: str | None = None, host: str | None = None,
                   in_port: int | None = None) -> Packet:
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.l2 import ARP, Ether

        kw: dict = {"source": source, "host": host, "in_port": in_port, "length": len(pkt)}
        if Ether in pkt:
            kw.update(eth_src=pkt[Ether].src, eth_dst=pkt[Ether].dst)
        if ARP in pkt:
            a = pkt[ARP]
            kw.update(proto="arp", arp_op=a.op, src_ip=a.psrc, dst_ip=a.pdst, arp_sha=a.hwsrc, arp_tha=a.hwdst)
            return cls(**kw)
        if IP not in pkt:
            raise ValueError("only IPv4 and ARP packets can be traced")
        ip = pkt[IP]
        kw.update(proto=ip.proto, src_ip=ip.src, dst_ip=ip.dst, ttl=ip.ttl)
        if TCP in pkt:
            kw.update(proto="tcp", src_port=pkt[TCP].sport, dst_port=pkt[TCP].dport, tcp_flags=str(pkt[TCP].flags))
        elif UDP in pkt:
            kw.update(proto="udp", src_port=pkt[UDP].sport, dst_port=pkt[UDP].dport)
        elif ICMP in pkt:
            kw.update(proto="icmp", icmp_type=pkt[ICMP].type, icmp_code=pkt[ICMP].code, icmp_id=pkt[ICMP].id or 0)
            from scapy.layers.inet import IPerror, TCPerror, UDPerror

            if IPerror in pkt:
                e = pkt[IPerror]
                l4 = pkt[TCPerror] if TCPerror in pkt else pkt[UDPerror] if UDPerror in pkt else None
                kw["icmp_inner"] = (e.proto, e.src, l4.sport if l4 else 0, e.dst, l4.dport if l4 else 0)
        return cls(**kw)

    @classmethod
    def from_dict(cls, d: dict) -> Packet:
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown packet field(s): {', '.join(sorted(bad))}")
        return cls(**d)

    def fields(self, in_port: int, eth_src: int, eth_dst: int, src_ip: int | None) -> dict[str, int]:
        """The header fields as the classifier sees them; pipeline metadata starts at zero."""
        f: dict[str, int] = {"in_port": in_port, "eth_src": eth_src, "eth_dst": eth_dst, "metadata": 0,
                             "tun_id": 0, "tun_ipv4_src": 0, "tun_ipv4_dst": 0, "ct_state": 0, "ct_zone": 0,
                             "ct_mark": 0, **{f"reg{i}": 0 for i in range(16)}}
        dst = ip_int(self.dst_ip)
        if self.eth_type is not None and self.eth_type not in (0x0800, 0x0806):
            f["eth_type"] = self.eth_type
            return f
        if self.proto == "arp":
            f.update(eth_type=0x0806, arp_op=self.arp_op, arp_spa=src_ip or 0, arp_tpa=dst or 0,
                     arp_sha=mac_int(self.arp_sha) if self.arp_sha is not None else eth_src,
                     arp_tha=mac_int(self.arp_tha) or 0)
            return f
        proto = self.ip_proto
        f.update(eth_type=0x0800, ip_proto=proto, ipv4_src=src_ip or 0, ipv4_dst=dst or 0, ip_ttl=self.ttl)
        if proto == 6:
            f.update(tcp_src=self.src_port, tcp_dst=self.dst_port or 0)
            f["tcp_flags"] = tcp_flags_int(self.tcp_flags)
        elif proto == 17:
            f.update(udp_src=self.src_port, udp_dst=self.dst_port or 0)
        elif proto == 1:
            f.update(icmpv4_type=self.icmp_type, icmpv4_code=self.icmp_code)
            f["icmp_id"] = self.icmp_id  # not an OpenFlow field: only conntrack reads it
            if self.icmp_inner is not None:
                p, s, sp, d, dp = self.icmp_inner
                f["icmp_inner"] = (p, ip_int(s), sp, ip_int(d), dp)  # type: ignore[assignment]
        return f


def tcp_flags_int(flags: str | None) -> int:
    if flags is None:
        return TCP_FLAG_BITS["S"]
    return sum(TCP_FLAG_BITS[c] for c in flags.upper() if c in TCP_FLAG_BITS)


def fields_to_bytes(f: dict[str, int]) -> bytes:
    """The packet a field dict describes, as Ethernet bytes (for packet-ins), built with scapy."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether

    def mac(v: int) -> str:
        return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))

    def ip(v: int) -> str:
        return str(ipaddress.IPv4Address(v))

    eth = Ether(src=mac(f["eth_src"]), dst=mac(f["eth_dst"]), type=f.get("eth_type", 0x0800))
    if "ip_proto" not in f and f.get("eth_type") != 0x0806:
        return bytes(eth)
    if f.get("eth_type") == 0x0806:
        return bytes(eth / ARP(op=f["arp_op"], hwsrc=mac(f["arp_sha"]), psrc=ip(f["arp_spa"]),
                               hwdst=mac(f["arp_tha"]), pdst=ip(f["arp_tpa"])))
    if f.get("eth_type") != 0x0800:
        return bytes(eth)
    l3 = IP(src=ip(f["ipv4_src"]), dst=ip(f["ipv4_dst"]), proto=f["ip_proto"], ttl=f.get("ip_ttl", 64))
    proto = f["ip_proto"]
    if proto == 6:
        flags = "".join(c for c, bit in TCP_FLAG_BITS.items() if f.get("tcp_flags", 0) & bit)
        return bytes(eth / l3 / TCP(sport=f["tcp_src"], dport=f["tcp_dst"], flags=flags))
    if proto == 17:
        return bytes(eth / l3 / UDP(sport=f["udp_src"], dport=f["udp_dst"]))
    if proto == 1:
        return bytes(eth / l3 / ICMP(type=f["icmpv4_type"], code=f["icmpv4_code"]))
    return bytes(eth / l3)
