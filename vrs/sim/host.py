"""One simulated VRS host: its switch, its OpenFlow connection and agent channel to the VSC, and its
containers (ports) that come and go at run time. Everything here runs on the hosting event loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from openflow import switchmsg, text
from openflow.consts import OFPPR_ADD, OFPPR_DELETE
from openflow.flow import FlowStats
from vrs.agent.identity import new_token
from vrs.sim.agent import AgentClient, port_down, port_up
from vrs.sim.ofconn import OpenFlowClient
from vrs.sim.packet import ip_int, mac_int
from vrs.sim.switch import Port, SimSwitch


@dataclass
class Container:
    """A container attached to a simulated host: its port name, MAC, IP and Nuage vport."""

    name: str
    mac: int | str
    ip: int | str | None = None
    vport_id: str | None = None
    ofport: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> Container:
        bad = set(d) - set(cls.__dataclass_fields__)
        if bad:
            raise ValueError(f"unknown container field(s): {', '.join(sorted(bad))}")
        if "name" not in d or "mac" not in d:
            raise ValueError("a container needs at least 'name' and 'mac'")
        return cls(**d)


class SimVrs:
    def __init__(self, name: str, datapath_id: int, vtep_ip: int | str, containers=(),
                 controller: tuple[str, int] | None = ("127.0.0.1", 6653),
                 agent: tuple[str, int] | None = ("127.0.0.1", 6634), tunnel_ofport: int = 1,
                 secret: bytes | None = None):
        """secret: the VRS's enrolment secret (`vsc enrol`), proved in the agent channel's hello."""
        self.switch = SimSwitch(name, datapath_id, ip_int(vtep_ip), tunnel_ofport=tunnel_ofport)
        self.of = OpenFlowClient(self.switch, *controller) if controller else None
        self.agent = AgentClient(self.switch, *agent, secret=secret) if agent else None
        if self.agent is not None:
            # names this switch's OpenFlow connection to the VSC (vrs/agent/identity.py)
            self.switch.description = new_token()
        for c in containers:
            self._attach(c)

    @property
    def name(self) -> str:
        return self.switch.name

    def start(self) -> None:
        """Start connecting (call on the event loop)."""
        if self.of:
            self.switch.notify = self.of.send
            self.of.start()
        if self.agent:
            self.agent.start()
        self._expiry = asyncio.get_running_loop().create_task(self._expire_loop(), name=f"expiry-{self.name}")

    async def _expire_loop(self) -> None:
        while True:  # OVS revalidates about once a second; timeouts are seconds anyway
            await asyncio.sleep(1.0)
            self.switch.expire()

    async def stop(self) -> None:
        if getattr(self, "_expiry", None) is not None:
            self._expiry.cancel()
        if self.of:
            await self.of.stop()
        if self.agent:
            await self.agent.stop()

    def _attach(self, c: Container) -> Port:
        sw = self.switch
        if sw.port_by_name(c.name) is not None:
            raise ValueError(f"{sw.name} already has a port named {c.name}")
        ofport = c.ofport if c.ofport is not None else sw.free_ofport()
        if ofport in sw.ports:
            raise ValueError(f"{sw.name} already has ofport {ofport}")
        p = Port(ofport, c.name, mac_int(c.mac), ip_int(c.ip), c.vport_id)
        sw.ports[ofport] = p
        return p

    def add_port(self, c: Container) -> Port:
        """Plug a container in: OpenFlow PORT_STATUS (add) and an agent port-up, as OVS + agent do."""
        p = self._attach(c)
        if self.of:
            self.of.send(switchmsg.port_status(OFPPR_ADD, p.desc()))
        if self.agent:
            self.agent.send(port_up(self.switch, p))
        return p

    def remove_port(self, name: str) -> Port:
        p = self.switch.port_by_name(name)
        if p is None or p.kind != "container":
            raise KeyError(f"{self.name} has no container port {name!r}")
        del self.switch.ports[p.ofport]
        if self.of:
            self.of.send(switchmsg.port_status(OFPPR_DELETE, p.desc()))
        if self.agent:
            self.agent.send(port_down(self.switch, p))
        return p

    def dump_flows(self, table: int | None = None) -> str:
        """The flow table as `ovs-ofctl -O OpenFlow13 dump-flows` prints it (one line per flow)."""
        now = time.monotonic()
        lines = []
        for tid, r in self.switch.flows(table):
            age = now - r.created
            flow = r.flow(tid)
            st = FlowStats(flow, int(age), int(age % 1 * 1e9), r.n_packets, r.n_bytes,
                           {"flags": r.flags} if r.flags else {})
            lines.append(" " + text.format_flow(flow, st))
        return "".join(line + "\n" for line in lines)

    def load_dump(self, dump: str) -> int:
        """Load `ovs-ofctl dump-flows` text (e.g. from a real OVS) into this switch's tables."""
        from openflow.textparse import parse_dump

        return self.switch.load_flows(parse_dump(dump))

    def stats(self) -> dict:
        sw = self.switch
        return {
            "name": sw.name, "datapath_id": sw.datapath_id, "vtep_ip": text.ip_str(sw.vtep_ip),
            "flows": sw.flow_count(), "ports": len(sw.container_ports()),
            "connected": bool(self.of and self.of.connected.is_set()),
            "agent_connected": bool(self.agent and self.agent.connected.is_set()),
            "connects": self.of.connects if self.of else 0, "conntrack": len(sw.conntrack), **sw.stats,
        }


def host_args(spec: dict) -> dict:
    """A host spec (control protocol or lab) checked and turned into SimVrs keyword arguments."""
    bad = set(spec) - {"name", "datapath_id", "vtep_ip", "containers"}
    if bad:
        raise ValueError(f"unknown host field(s): {', '.join(sorted(bad))}")
    missing = {"name", "datapath_id", "vtep_ip"} - set(spec)
    if missing:
        raise ValueError(f"host needs {', '.join(sorted(missing))}")
    return {**spec, "containers": [c if isinstance(c, Container) else Container.from_dict(c)
                                   for c in spec.get("containers", ())]}
