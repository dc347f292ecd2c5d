"""Where endpoints are: what each VRS reported on the agent channel (docs/interfaces.md section 2).

The VRS is the only source of truth for locations; the VSD says what a vport is, the VRS says where
it is plugged. The same messages come from the real agent beside OVS and from the simulated VRS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from vsc.view import ip_int, mac_int


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


class AgentError(ValueError):
    pass


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
        op = msg.get("op")
        try:
            dpid = int(msg["datapath_id"])
        except (KeyError, TypeError, ValueError):
            raise AgentError(f"{op!r} message without a valid datapath_id") from None
        h = self.host(dpid)
        if op == "hello":
            try:
                vtep = int(IPv4Address(msg["vtep_ip"]))
            except (KeyError, ValueError):
                raise AgentError("hello without a valid vtep_ip") from None
            h.name = str(msg.get("name", ""))
            changed_host = vtep != h.vtep_ip
            h.vtep_ip = vtep
            # A VTEP move changes every remote flow pointing at this host's endpoints.
            moved = {p.vport_id for p in h.ports.values() if p.vport_id} if changed_host else set()
            return moved, {dpid}
        if op == "tunnel":
            h.tunnel_ofport = int(msg["ofport"])
            return set(), {dpid}
        if op == "port-up":
            ofport = int(msg["ofport"])
            old = h.ports.get(ofport)
            port = Port(ofport, str(msg.get("name", "")), msg.get("vport_id") or None, mac_int(msg.get("mac")),
                        ip_int(msg.get("ip")))
            h.ports[ofport] = port
            changed = set()
            if old is not None and old.vport_id and old.vport_id != port.vport_id:
                self._drop(old.vport_id, dpid, ofport)
                changed.add(old.vport_id)
            if port.vport_id:
                prev = self.by_vport.get(port.vport_id)
                self.by_vport[port.vport_id] = (dpid, ofport)
                if prev != (dpid, ofport) or old != port:
                    changed.add(port.vport_id)
            return changed, set()
        if op == "port-down":
            ofport = int(msg["ofport"])
            old = h.ports.pop(ofport, None)
            if old is not None and old.vport_id:
                self._drop(old.vport_id, dpid, ofport)
                return {old.vport_id}, set()
            return set(), set()
        raise AgentError(f"unknown agent op {op!r}")

    def _drop(self, vport_id: str, dpid: int, ofport: int) -> None:
        if self.by_vport.get(vport_id) == (dpid, ofport):
            del self.by_vport[vport_id]
