"""The VRS agent for a Mininet switch: vrs/agent's `VrsAgent` (OVSDB IDL replica, agent channel with
replay on reconnect, port-up/port-down diffs) with the bridge left to Mininet.

Two differences from `vrs run`, both because Mininet's switches share one ovs-vswitchd: the agent
must not create or correct the bridge (Mininet made it, with the VSC as controller), and the tunnel
port cannot be called `vxlan0` on every switch (interface names are unique per vswitchd), so each
switch's agent is told its own. The agents run as threads of the lab process, one per switch."""

from __future__ import annotations

import logging
import threading

from vrs.agent.channel import AgentChannel
from vrs.agent.daemon import AgentConfig, VrsAgent, port_changes
from vrs.agent.ovsdb import Ovsdb

log = logging.getLogger("vsplab.mininet.agent")


class MininetVrs(VrsAgent):
    def __init__(self, config: AgentConfig, tunnel_port: str) -> None:
        super().__init__(config)
        self.tunnel_port = tunnel_port
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"vrs-{config.name}", daemon=True)

    def start(self) -> None:  # VrsAgent.run() calls this: no ensure_bridge()
        self.db = Ovsdb(self.config.db)
        self.channel = AgentChannel(self.config.vsc_host, self.config.agent_port, self._snapshot).start()

    def step(self) -> None:
        c, db = self.config, self.db
        tunnel = db.ofport(c.bridge, self.tunnel_port)
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
        self.channel.send(msgs)

    def _main(self) -> None:
        try:
            self.run()
        except BaseException as e:  # the lab reports it instead of waiting for a convergence that never comes
            log.exception("agent for %s", self.config.bridge)
            self.error = e

    def spawn(self) -> MininetVrs:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self.stop()
            self._thread.join(timeout)
