"""`vrs run`: keep the integration bridge right and tell the VSC what is plugged into it.

One loop: the OVSDB replica changes (a port plugged or unplugged, OVS restarted, someone edited the
bridge) -> `ensure_bridge()` puts the bridge back the way the agent wants it, and the difference
between the container ports OVS now has and what the VSC was last told goes out as port-up/port-down."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field

from vrs.agent.channel import AgentChannel
from vrs.agent.identity import is_token, new_token
from vrs.agent.ovsdb import TUNNEL_PORT, BridgeSpec, Ovsdb, OvsdbError, PortState

log = logging.getLogger("vrs.agent")


@dataclass
class AgentConfig:
    db: str  # OVSDB remote, e.g. unix:/var/run/openvswitch/db.sock
    vsc_host: str
    of_port: int = 6653
    agent_port: int = 6634
    bridge: str = "br-int"
    vtep_ip: str = ""
    datapath_id: int = 1
    name: str = ""
    extra_controllers: list[str] = field(default_factory=list)  # more VSCs: "tcp:IP:PORT"
    # Where another tool owns the bridge (Mininet: one ovs-vswitchd for every switch, bridges made with
    # the VSC as controller), the agent must not create or correct it, and the VXLAN port needs a name
    # of its own per bridge because interface names are unique per vswitchd.
    own_bridge: bool = True
    tunnel_port: str = TUNNEL_PORT
    secret: bytes | None = None  # from `vsc enrol`: the hello proves it (vrs/agent/identity.py)
    datapath_type: str = "netdev"  # "system" on a host with the kernel module (kernel datapath)

    @property
    def spec(self) -> BridgeSpec:
        return BridgeSpec(self.bridge, self.datapath_id,
                          (f"tcp:{self.vsc_host}:{self.of_port}", *self.extra_controllers), self.datapath_type)


def port_up(dpid: int, p: PortState) -> dict:
    return {"op": "port-up", "datapath_id": dpid, "ofport": p.ofport, "name": p.name, "vport_id": p.vport_id,
            "mac": p.mac, "ip": p.ip}


def port_down(dpid: int, p: PortState) -> dict:
    return {"op": "port-down", "datapath_id": dpid, "ofport": p.ofport, "name": p.name}


def port_changes(before: dict[str, PortState], after: dict[str, PortState], dpid: int) -> list[dict]:
    """Messages that turn the VSC's picture `before` into `after`: a port whose ofport or identity
    changed goes down (at its old number) before it comes up again."""
    msgs = [port_down(dpid, p) for n, p in sorted(before.items()) if after.get(n) != p]
    return msgs + [port_up(dpid, p) for n, p in sorted(after.items()) if before.get(n) != p]


class VrsAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.db: Ovsdb | None = None
        self.channel: AgentChannel | None = None
        self.tunnel_ofport: int | None = None
        self.reported: dict[str, PortState] = {}
        self.of_token = ""  # what the bridge describes itself as over OpenFlow; named to the VSC
        self._state_lock = threading.Lock()
        self.stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # lets stop() (e.g. from a signal handler) end a block()

    def stop(self) -> None:
        self.stopping.set()
        os.write(self._wake_w, b"x")

    def _snapshot(self) -> list[dict]:
        c = self.config
        with self._state_lock:
            if self.tunnel_ofport is None:
                return []  # not ready: the main loop sends hello once the tunnel port exists
            msgs = [{"op": "hello", "datapath_id": c.datapath_id, "name": c.name, "vtep_ip": c.vtep_ip},
                    {"op": "openflow", "datapath_id": c.datapath_id, "dp_desc": self.of_token},
                    {"op": "tunnel", "datapath_id": c.datapath_id, "ofport": self.tunnel_ofport}]
            return msgs + [port_up(c.datapath_id, p) for p in sorted(self.reported.values(), key=lambda p: p.ofport)]

    def start(self) -> None:
        c = self.config
        self.db = Ovsdb(c.db)
        existing = self.db.description(c.bridge)
        if c.own_bridge:
            # The token of an agent before this one, if the bridge has it: the VSC keeps trusting the OpenFlow
            # connection it already vouched for, rather than resyncing the switch after every agent restart.
            self.of_token = existing if is_token(existing) else new_token()
        else:
            # A bridge another tool owns keeps the description it gave it (Mininet: the switch's name), and
            # the agent names that: the VSC then tells this switch's connection from another's, no more.
            self.of_token = existing or new_token()
        self._ensure_bridge()
        self.channel = AgentChannel(c.vsc_host, c.agent_port, self._snapshot, c.secret).start()

    def _ensure_bridge(self) -> None:
        c = self.config
        if c.own_bridge:
            self.db.ensure_bridge(dataclasses.replace(c.spec, description=self.of_token))
        elif self.db.bridge(c.bridge) is not None and not self.db.description(c.bridge):
            self.db.ensure_description(c.bridge, self.of_token)

    def step(self) -> None:
        """Bring OVS and the VSC's picture up to date with the replica; cheap when nothing changed."""
        c, db = self.config, self.db
        self._ensure_bridge()
        tunnel = db.ofport(c.bridge, c.tunnel_port)
        ports = {p.name: p for p in db.container_ports(c.bridge)}
        with self._state_lock:
            first = self.tunnel_ofport is None and tunnel is not None
            tunnel_moved = tunnel is not None and self.tunnel_ofport not in (None, tunnel)
            msgs = port_changes(self.reported, ports, c.datapath_id)
            self.tunnel_ofport, self.reported = tunnel, ports
        if first:  # hello + tunnel + every port, as after a reconnect
            self.channel.send(self._snapshot())
            return
        if tunnel_moved:
            msgs.insert(0, {"op": "tunnel", "datapath_id": c.datapath_id, "ofport": tunnel})
        for m in msgs:
            log.info("%s %s ofport %s", m["op"], m.get("name", c.tunnel_port), m["ofport"])
        self.channel.send(msgs)

    def run(self) -> None:
        self.start()
        try:
            healthy = self._try_step()
            while not self.stopping.is_set():
                self.db.block(1000, self._wake_r)
                if self.db.run() or not healthy:
                    healthy = self._try_step()
        finally:
            self.close()

    def _try_step(self) -> bool:
        """A failed transaction (OVS restarting, a racing writer) is retried on the next wake-up
        rather than ending the daemon."""
        try:
            self.step()
            return True
        except OvsdbError as e:
            log.warning("could not bring %s up to date: %s (retrying)", self.config.bridge, e)
            return False

    def close(self) -> None:
        if self.channel is not None:
            self.channel.stop()
        if self.db is not None:
            self.db.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
