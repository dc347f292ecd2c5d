"""Flows as `ovs-ofctl -O OpenFlow13 dump-flows` prints them, so simulated and real switches can be
compared line by line: OVS's field names (dl_src, nw_dst, tp_dst, tun_dst), its canonical field order
(not wire order), its shorthands (ip, tcp, arp, ...) and its number formats."""

from __future__ import annotations

import ipaddress

from openflow.flow import (
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_LOCAL,
    OFPP_NORMAL,
    OFPP_TABLE,
    Ct,
    DecTtl,
    Flow,
    FlowStats,
    MatchField,
    Move,
    Output,
    SetField,
)

PORT_NAMES = {
    OFPP_IN_PORT: "IN_PORT",
    OFPP_TABLE: "TABLE",
    OFPP_NORMAL: "NORMAL",
    OFPP_FLOOD: "FLOOD",
    OFPP_ALL: "ALL",
    OFPP_CONTROLLER: "CONTROLLER",
    OFPP_LOCAL: "LOCAL",
}

# Match field -> OVS match name; the order of this dict is OVS's printing order (lib/match.c).
MATCH_NAMES = {
    "ct_state": "ct_state",
    "ct_zone": "ct_zone",
    "ct_mark": "ct_mark",
    **{f"reg{i}": f"reg{i}" for i in range(16)},
    "tun_id": "tun_id",
    "tun_ipv4_src": "tun_src",
    "tun_ipv4_dst": "tun_dst",
    "metadata": "metadata",
    "in_port": "in_port",
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "eth_type": "dl_type",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "arp_spa": "arp_spa",
    "arp_tpa": "arp_tpa",
    "ip_proto": "nw_proto",
    "arp_op": "arp_op",
    "arp_sha": "arp_sha",
    "arp_tha": "arp_tha",
    "tcp_src": "tp_src",
    "udp_src": "tp_src",
    "tcp_dst": "tp_dst",
    "udp_dst": "tp_dst",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
}
_ORDER = {n: i for i, n in enumerate(MATCH_NAMES)}

# Field -> name in set_field and in move (NXM names, as ovs-ofctl prints them).
SET_NAMES = {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst", "tun_ipv4_src": "tun_src", "tun_ipv4_dst": "tun_dst",
             "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code"}
NXM_NAMES = {
    "in_port": "NXM_OF_IN_PORT", "eth_dst": "NXM_OF_ETH_DST", "eth_src": "NXM_OF_ETH_SRC",
    "eth_type": "NXM_OF_ETH_TYPE", "ip_proto": "NXM_OF_IP_PROTO", "ipv4_src": "NXM_OF_IP_SRC",
    "ipv4_dst": "NXM_OF_IP_DST", "tcp_src": "NXM_OF_TCP_SRC", "tcp_dst": "NXM_OF_TCP_DST",
    "udp_src": "NXM_OF_UDP_SRC", "udp_dst": "NXM_OF_UDP_DST", "icmpv4_type": "NXM_OF_ICMP_TYPE",
    "icmpv4_code": "NXM_OF_ICMP_CODE", "arp_op": "NXM_OF_ARP_OP", "arp_spa": "NXM_OF_ARP_SPA",
    "arp_tpa": "NXM_OF_ARP_TPA", "arp_sha": "NXM_NX_ARP_SHA", "arp_tha": "NXM_NX_ARP_THA",
    "tun_id": "NXM_NX_TUN_ID", "tun_ipv4_src": "NXM_NX_TUN_IPV4_SRC", "tun_ipv4_dst": "NXM_NX_TUN_IPV4_DST",
    "metadata": "OXM_OF_METADATA", "ct_state": "NXM_NX_CT_STATE", "ct_zone": "NXM_NX_CT_ZONE",
    "ct_mark": "NXM_NX_CT_MARK", **{f"reg{i}": f"NXM_NX_REG{i}" for i in range(16)},
}

_MAC = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}
_IP = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst"}
_DEC = {"ip_proto", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "icmpv4_type", "icmpv4_code", "arp_op",
        "ct_zone"}
_WIDTH = {"metadata": 64, "tun_id": 64, "eth_type": 16, "ct_zone": 16, "ip_proto": 8, "icmpv4_type": 8,
          "icmpv4_code": 8, "tcp_src": 16, "tcp_dst": 16, "udp_src": 16, "udp_dst": 16, "arp_op": 16}
CT_FLAGS = ("new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat")
_SHORTHAND = {(0x0800, None): "ip", (0x0800, 1): "icmp", (0x0800, 6): "tcp", (0x0800, 17): "udp",
              (0x0800, 132): "sctp", (0x0806, None): "arp", (0x86DD, None): "ipv6", (0x8035, None): "rarp"}


def mac_str(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def ip_str(v: int) -> str:
    return str(ipaddress.IPv4Address(v))


def port_str(p: int) -> str:
    return PORT_NAMES.get(p, str(p))


def value_str(name: str, v: int) -> str:
    if name in _MAC:
        return mac_str(v)
    if name in _IP:
        return ip_str(v)
    if name == "in_port":
        return port_str(v)
    if name in _DEC:
        return str(v)
    return hex(v)


def _masked(name: str, v: int, m: int | None) -> str:
    if m is None:
        return value_str(name, v)
    if name in _IP:
        prefix = bin(m).count("1")
        if m == ((1 << prefix) - 1) << (32 - prefix):
            return f"{ip_str(v & m)}/{prefix}"
        return f"{ip_str(v & m)}/{ip_str(m)}"
    if name in _MAC:
        return f"{mac_str(v & m)}/{mac_str(m)}"
    if name == "ct_state":
        return ct_state_str(v, m)
    return f"{hex(v & m)}/{hex(m)}"


def ct_state_str(v: int, m: int | None = None) -> str:
    m = 0xFFFFFFFF if m is None else m
    return "".join(("+" if v & (1 << i) else "-") + f for i, f in enumerate(CT_FLAGS) if m & (1 << i))


def format_match(priority: int, fields: tuple[MatchField, ...]) -> str:
    by = {f.name: f for f in fields}
    out = [] if priority == 0x8000 else [f"priority={priority}"]
    eth, proto = by.get("eth_type"), by.get("ip_proto")
    short = None
    if eth is not None:
        short = _SHORTHAND.get((eth.value, proto.value if proto else None))
        if short is None and proto is not None:
            short = _SHORTHAND.get((eth.value, None))
        elif short is not None and proto is not None:
            proto = None  # folded into the shorthand
    skip = {"eth_type"} if short else set()
    if short and proto is None:
        skip.add("ip_proto")
    placed = False
    for f in sorted(fields, key=lambda f: _ORDER[f.name]):
        if not placed and short and _ORDER[f.name] > _ORDER["ct_mark"]:
            out.append(short)
            placed = True
        if f.name in skip:
            continue
        out.append(f"{MATCH_NAMES[f.name]}={_masked(f.name, f.value, f.mask)}")
    if short and not placed:
        out.append(short)
    return ",".join(out)


def _bits(name: str, ofs: int, n: int) -> str:
    width = _WIDTH.get(name, 48 if name in _MAC else 32)
    if ofs == 0 and n == width:
        return f"{NXM_NAMES[name]}[]"
    return f"{NXM_NAMES[name]}[{ofs}..{ofs + n - 1}]"


def format_action(a) -> str:
    if isinstance(a, Output):
        if a.port == OFPP_CONTROLLER:
            return f"CONTROLLER:{a.max_len}"
        return PORT_NAMES[a.port] if a.port in PORT_NAMES else f"output:{a.port}"
    if isinstance(a, SetField):
        return f"set_field:{value_str(a.name, a.value)}->{SET_NAMES.get(a.name, a.name)}"
    if isinstance(a, Move):
        return f"move:{_bits(a.src, a.src_ofs, a.n_bits)}->{_bits(a.dst, a.dst_ofs, a.n_bits)}"
    if isinstance(a, Ct):
        args = (["commit"] if a.commit else []) + ([f"table={a.table}"] if a.table is not None else [])
        args += [f"zone={a.zone}"] if a.zone else []
        return f"ct({','.join(args)})"
    if isinstance(a, DecTtl):
        return "dec_ttl"
    raise ValueError(f"unknown action {a!r}")


def format_actions(flow: Flow) -> str:
    parts = [format_action(a) for a in flow.actions]
    if flow.write_metadata is not None:
        v, m = flow.write_metadata
        parts.append(f"write_metadata:{hex(v)}" + ("" if m == (1 << 64) - 1 else f"/{hex(m)}"))
    if flow.goto is not None:
        parts.append(f"goto_table:{flow.goto}")
    return ",".join(parts) or "drop"


def format_flow(flow: Flow, stats: FlowStats | None = None, show_stats: bool = True) -> str:
    """One dump-flows line (without the leading space OVS puts in front)."""
    head = []
    if show_stats or flow.cookie:
        head.append(f"cookie={hex(flow.cookie)}")
    st = stats or FlowStats(flow)
    if show_stats:
        head.append(f"duration={duration_str(st.duration_sec, st.duration_nsec)}")
    if show_stats or flow.table:
        head.append(f"table={flow.table}")
    if show_stats:
        head += [f"n_packets={st.packet_count}", f"n_bytes={st.byte_count}"]
    if flow.idle_timeout:
        head.append(f"idle_timeout={flow.idle_timeout}")
    if flow.hard_timeout:
        head.append(f"hard_timeout={flow.hard_timeout}")
    m = format_match(flow.priority, flow.match)
    prefix = ", ".join(head) + (", " if head else "")
    flags = st.extra.get("flags", 0)
    prefix += "".join(f"{name} " for bit, name in FLAG_NAMES if flags & bit)
    return f"{prefix}{m}{' ' if m else ''}actions={format_actions(flow)}"


FLAG_NAMES = ((1, "send_flow_rem"), (2, "check_overlap"), (4, "reset_counts"), (8, "no_packet_counts"),
              (16, "no_byte_counts"))


def duration_str(sec: int, nsec: int) -> str:
    """As OVS prints it: '5s', '5.250s', '5.0000005s' (nine digits, trailing zeros cut to three)."""
    if not nsec:
        return f"{sec}s"
    frac = f"{nsec:09d}".rstrip("0")
    return f"{sec}.{frac.ljust(3, '0')}s"
