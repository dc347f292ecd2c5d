"""Where endpoints are: what each VRS reported on the agent channel (docs/interfaces.md section 2).

The VRS is the only source of truth for locations; the VSD says what a vport is, the VRS says where
it is plugged. The same messages come from the real agent beside OVS and from the simulated VRS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from vsc.vsd_objects import ip_int, mac_int

_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
MAX_OFPORT = 0xFFFFFF00  # OFPP_MAX
MAX_ZONES = 1 << 16  # ct_zone is 16 bits
MAX_TEXT = 256  # names, vport IDs, tokens: a VSD ID is 36 characters, an interface name 15


@dataclass(slots=True)
class Port:
    ofport: int
    name: str
    vport_id: str | None
    mac: int | None
    ip: int | None


@dataclass
class Host:
    datapath_id: int
    name: str = ""
    vtep_ip: int = 0
    tunnel_ofport: int | None = None
    ports: dict[int, Port] = field(default_factory=dict)
    verified: bool = False  # its last hello proved the datapath's secret (vsc/identity.py)
    # Conntrack zones this datapath's domains use: ct_zone_base + domain index, the index below
    # ct_zone_count. A hello sets them where datapaths share one conntrack table (Mininet's switches
    # in one userspace datapath), so that no switch finds another's connections.
    ct_zone_base: int = 0
    ct_zone_count: int = MAX_ZONES


class AgentError(ValueError):
    pass


def _number(msg: dict, key: str, low: int, high: int) -> int:
    v = msg.get(key)
    if type(v) is not int or not low <= v <= high:
        raise AgentError(f"{msg.get('op')!r}: {key} must be a number from {low} to {high}, not {v!r:.40}")
    return v


def _text(msg: dict, key: str, optional: bool = True) -> None:
    v = msg.get(key)
    if v is None and optional:
        return
    if not isinstance(v, str) or len(v) > MAX_TEXT:
        raise AgentError(f"{msg.get('op')!r}: {key} must be {'null or ' if optional else ''}a string of at most "
                         f"{MAX_TEXT} characters, not {v!r:.40}")


def _ipv4(msg: dict, key: str, optional: bool) -> None:
    v = msg.get(key)
    if v is None and optional:
        return
    try:
        if not isinstance(v, str):
            raise ValueError
        IPv4Address(v)
    except ValueError:
        raise AgentError(f"{msg.get('op')!r}: {key} must be an IPv4 address{' or null' if optional else ''}, "
                         f"not {v!r:.40}") from None


def check_message(msg: dict) -> dict:
    """Raise AgentError naming the field unless `msg` is a well-formed agent message
    (docs/interfaces.md section 2); fields the VSC does not use are let through unread."""
    op = msg.get("op")
    if op not in ("hello", "openflow", "tunnel", "port-up", "port-down"):
        raise AgentError(f"unknown agent op {op!r:.40}")
    _number(msg, "datapath_id", 0, (1 << 64) - 1)
    if op == "hello":
        _ipv4(msg, "vtep_ip", optional=False)
        _text(msg, "name")
        _text(msg, "proof")
        for key, low in (("ct_zone_base", 0), ("ct_zone_count", 1)):
            if key in msg:
                _number(msg, key, low, MAX_ZONES)
        if msg.get("ct_zone_base", 0) + msg.get("ct_zone_count", 0) > MAX_ZONES:
            raise AgentError(f"'hello': ct_zone_base + ct_zone_count must be at most {MAX_ZONES}")
    elif op == "openflow":
        _text(msg, "dp_desc", optional=False)
    else:
        _number(msg, "ofport", 1, MAX_OFPORT)
        _text(msg, "name")
    if op == "port-up":
        _text(msg, "vport_id")
        mac = msg.get("mac")
        if mac is not None and not (isinstance(mac, str) and _MAC.fullmatch(mac)):
            raise AgentError(f"'port-up': mac must be aa:bb:cc:dd:ee:ff or null, not {mac!r:.40}")
        _ipv4(msg, "ip", optional=True)
    return msg


class Locations:
    """Hosts by datapath id, and the reverse index vport -> (datapath, ofport)."""

    def __init__(self) -> None:
        self.hosts: dict[int, Host] = {}
        self.by_vport: dict[str, tuple[int, int]] = {}

    def host(self, dpid: int) -> Host:
        h = self.hosts.get(dpid)
        if h is None:
            h = self.hosts[dpid] = Host(dpid)
        return h

    def apply(self, msg: dict) -> tuple[set[str], set[int]]:
        """Apply one agent message. Returns (vports whose location changed, hosts whose own settings
        changed: VTEP or tunnel port)."""
        op = check_message(msg)["op"]
        dpid = msg["datapath_id"]
        h = self.host(dpid)
        if op == "hello":
            vtep = int(IPv4Address(msg["vtep_ip"]))
            h.name = msg.get("name") or ""
            changed_host = vtep != h.vtep_ip
            h.vtep_ip = vtep
            h.ct_zone_base = msg.get("ct_zone_base", 0)
            h.ct_zone_count = msg.get("ct_zone_count", MAX_ZONES - h.ct_zone_base)
            # A VTEP move changes every remote flow pointing at this host's endpoints.
            moved = {p.vport_id for p in h.ports.values() if p.vport_id} if changed_host else set()
            return moved, {dpid}
        if op == "openflow":
            return set(), set()
        if op == "tunnel":
            h.tunnel_ofport = msg["ofport"]
            return set(), {dpid}
        if op == "port-up":
            ofport, vport_id = msg["ofport"], msg.get("vport_id") or None
            prev = self.by_vport.get(vport_id) if vport_id else None
            holder = self.hosts.get(prev[0]) if prev and prev[0] != dpid else None
            if holder is not None and holder.verified and not h.verified:
                # A datapath that proved nothing does not move an endpoint away from one that did.
                raise AgentError(f"vport {vport_id} is on datapath {prev[0]}, which proved its identity; "
                                 f"datapath {dpid} did not")
            old = h.ports.get(ofport)
            port = Port(ofport, msg.get("name") or "", vport_id, mac_int(msg.get("mac")), ip_int(msg.get("ip")))
            h.ports[ofport] = port
            changed = set()
            if old is not None and old.vport_id and old.vport_id != port.vport_id:
                self._drop(old.vport_id, dpid, ofport)
                changed.add(old.vport_id)
            if vport_id:
                self.by_vport[vport_id] = (dpid, ofport)
                if prev != (dpid, ofport) or old != port:
                    changed.add(vport_id)
            return changed, set()
        if op == "port-down":
            ofport = msg["ofport"]
            old = h.ports.pop(ofport, None)
            if old is not None and old.vport_id:
                self._drop(old.vport_id, dpid, ofport)
                return {old.vport_id}, set()
        return set(), set()

    def _drop(self, vport_id: str, dpid: int, ofport: int) -> None:
        if self.by_vport.get(vport_id) == (dpid, ofport):
            del self.by_vport[vport_id]
