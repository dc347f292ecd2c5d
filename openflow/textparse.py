"""Flows back from text: a line of `ovs-ofctl -O OpenFlow13 dump-flows` output (or ovs-ofctl's
add-flow syntax) -> Flow, for the fields and actions the codec knows, so real OVS dumps can be loaded
into the simulated VRS and compared. Anything else raises ValueError naming the token."""

from __future__ import annotations

import ipaddress
import re

from openflow.fields import FIELDS
from openflow.flow import Ct, DecTtl, Flow, MatchField, Move, Output, SetField
from openflow.text import CT_FLAGS, MATCH_NAMES, NXM_NAMES, PORT_NAMES, SET_NAMES

_SHORTHAND = {"ip": (0x0800, None), "icmp": (0x0800, 1), "tcp": (0x0800, 6), "udp": (0x0800, 17),
              "sctp": (0x0800, 132), "arp": (0x0806, None), "ipv6": (0x86DD, None), "rarp": (0x8035, None)}
_MATCH = {v: k for k, v in MATCH_NAMES.items() if not k.startswith(("tcp_", "udp_"))}
_MATCH.update({n: n for n in FIELDS}, ip_src="ipv4_src", ip_dst="ipv4_dst", tun_ipv4_src="tun_ipv4_src",
              tun_ipv4_dst="tun_ipv4_dst", eth_type="eth_type", ip_proto="ip_proto")
_SET = {v: k for k, v in SET_NAMES.items()} | {n: n for n in FIELDS} | {"dl_src": "eth_src", "dl_dst": "eth_dst"}
_NXM = {v: k for k, v in NXM_NAMES.items()} | {f"OXM_OF_{k.upper()}": k for k in FIELDS}
_PORTS = {v: k for k, v in PORT_NAMES.items()}
_IGNORED = {"duration", "n_packets", "n_bytes", "idle_age", "hard_age", "importance"}
_FLAGS = {"send_flow_rem", "check_overlap", "reset_counts", "no_packet_counts", "no_byte_counts"}
_MOVE = re.compile(r"^([A-Z0-9_]+)\[(?:(\d+)(?:\.\.(\d+))?)?\]$")


def _int(s: str) -> int:
    return int(s, 0)


def _value(field: str, s: str) -> int:
    if field in ("eth_src", "eth_dst", "arp_sha", "arp_tha") and ":" in s:
        return int(s.replace(":", ""), 16)
    if field in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst") and "." in s:
        return int(ipaddress.IPv4Address(s))
    if field == "in_port" and s in _PORTS:
        return _PORTS[s]
    return _int(s)


def _masked(field: str, s: str) -> tuple[int, int | None]:
    if field == "ct_state":
        return _ct_state(s)
    if "/" not in s:
        return _value(field, s), None
    v, m = s.split("/", 1)
    if field in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst") and "." not in m:
        bits = int(m)
        return _value(field, v), ((1 << bits) - 1) << (32 - bits)
    return _value(field, v), _value(field, m)


def _ct_state(s: str) -> tuple[int, int | None]:
    if not s or s[0] not in "+-":
        v, _, m = s.partition("/")
        return _int(v), _int(m) if m else None
    value = mask = 0
    for sign, name in re.findall(r"([+-])([a-z]+)", s):
        if name not in CT_FLAGS:
            raise ValueError(f"unknown ct_state flag {name!r}")
        bit = 1 << CT_FLAGS.index(name)
        mask |= bit
        value |= bit if sign == "+" else 0
    return value, mask


def _split(s: str) -> list[str]:
    """Split on commas outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur.append(ch)
    if cur:
        out.append("".join(cur))
    return [x.strip() for x in out if x.strip()]


def _move_field(s: str) -> tuple[str, int, int | None]:
    m = _MOVE.match(s)
    if not m or m.group(1) not in _NXM:
        raise ValueError(f"unsupported move field {s!r}")
    name = _NXM[m.group(1)]
    if m.group(2) is None:
        return name, 0, None
    lo = int(m.group(2))
    hi = int(m.group(3)) if m.group(3) is not None else lo
    return name, lo, hi - lo + 1


def parse_action(tok: str):
    if tok in _PORTS:
        return Output(_PORTS[tok])
    if tok.isdigit():
        return Output(int(tok))
    if tok.startswith("output:"):
        p = tok[7:]
        return Output(_PORTS[p] if p in _PORTS else int(p))
    if tok.startswith("CONTROLLER:"):
        return Output(_PORTS["CONTROLLER"], int(tok[11:]))
    if tok.startswith("set_field:"):
        val, _, name = tok[10:].partition("->")
        if name not in _SET or "/" in val:
            raise ValueError(f"unsupported set_field {tok!r}")
        return SetField(_SET[name], _value(_SET[name], val))
    if tok.startswith("move:"):
        src, _, dst = tok[5:].partition("->")
        sname, sofs, sbits = _move_field(src)
        dname, dofs, dbits = _move_field(dst)
        n = sbits or dbits or FIELDS[sname].bits
        return Move(sname, dname, n, sofs, dofs)
    if tok == "dec_ttl":
        return DecTtl()
    if tok == "ct" or tok.startswith("ct("):
        commit, zone, table = False, 0, None
        for arg in _split(tok[3:-1] if tok.startswith("ct(") else ""):
            key, _, val = arg.partition("=")
            if key == "commit":
                commit = True
            elif key == "zone" and val:
                zone = _int(val)
            elif key == "table" and val:
                table = _int(val)
            else:
                raise ValueError(f"unsupported ct() argument {arg!r}")
        return Ct(commit, zone, table)
    raise ValueError(f"unsupported action {tok!r}")


def parse_flow(line: str) -> Flow:
    """One flow in dump-flows or add-flow syntax -> Flow (match in the codec's canonical order)."""
    line = line.strip()
    head, sep, acts = line.partition("actions=")
    if not sep:
        raise ValueError(f"no actions= in {line!r}")
    kw: dict = {"table": 0, "priority": 0x8000, "cookie": 0, "idle_timeout": 0, "hard_timeout": 0}
    fields: dict[str, tuple[int, int | None]] = {}
    proto_tp: list[tuple[str, str]] = []
    for tok in re.split(r"[,\s]+", head.strip().rstrip(",")):
        if not tok or tok in _FLAGS:
            continue
        key, eq, val = tok.partition("=")
        if not eq:
            if tok not in _SHORTHAND:
                raise ValueError(f"unknown match keyword {tok!r}")
            eth, proto = _SHORTHAND[tok]
            fields["eth_type"] = (eth, None)
            if proto is not None:
                fields["ip_proto"] = (proto, None)
            continue
        if key in _IGNORED:
            continue
        if key in ("table", "priority", "idle_timeout", "hard_timeout"):
            kw[key] = _int(val)
        elif key == "cookie":
            kw["cookie"] = _int(val.split("/")[0])
        elif key in ("tp_src", "tp_dst"):
            proto_tp.append((key, val))
        elif key in _MATCH:
            name = _MATCH[key]
            fields[name] = _masked(name, val)
        else:
            raise ValueError(f"unknown match field {key!r}")
    for key, val in proto_tp:
        proto = fields.get("ip_proto", (None, None))[0]
        kind = {6: "tcp", 17: "udp", 1: "icmpv4"}.get(proto)
        if kind is None or kind == "icmpv4":
            raise ValueError(f"{key} needs tcp or udp")
        name = f"{kind}_{key[3:]}"
        fields[name] = _masked(name, val)
    actions, goto, md = [], None, None
    for tok in _split(acts):
        if tok == "drop":
            continue
        if tok.startswith("goto_table:"):
            goto = _int(tok[11:])
        elif tok.startswith("write_metadata:"):
            v, _, m = tok[15:].partition("/")
            md = (_int(v), _int(m) if m else (1 << 64) - 1)
        else:
            actions.append(parse_action(tok))
    match = tuple(MatchField(n, v, m) for n, (v, m) in fields.items())
    return Flow(match=match, actions=tuple(actions), goto=goto, write_metadata=md, **kw).canonical()


def parse_dump(text: str) -> list[Flow]:
    """Every flow line of a dump (header lines like 'OFPST_FLOW reply' or 'NXST_FLOW' are skipped)."""
    return [parse_flow(x) for x in text.splitlines() if "actions=" in x]
