"""The VRS agent for a Mininet switch: vrs/agent's `VrsAgent` itself (OVSDB IDL replica, agent
channel with replay on reconnect, port-up/port-down diffs), configured for a bridge Mininet owns.

Mininet's switches share one ovs-vswitchd, so the agent must not create or correct the bridge (Mininet
made it, with the VSC as controller: `own_bridge=False`), and the tunnel port cannot be called `vxlan0`
on every switch (interface names are unique per vswitchd): each switch's agent is told its own. The
agents run as threads of the lab process, one per switch; this class adds the thread, and the
conntrack zones of its switch to the hello: the switches share one userspace datapath and so one
conntrack table, and each gets zones of its own from the VSC (`ct_zone_base`, `ct_zone_count`,
docs/interfaces.md section 2) so that no switch finds a connection another one committed."""

from __future__ import annotations

import dataclasses
import logging
import threading

from vrs.agent.daemon import AgentConfig, VrsAgent

log = logging.getLogger("vsplab.mininet.agent")


class MininetVrs(VrsAgent):
    def __init__(self, config: AgentConfig, tunnel_port: str, ct_zones: tuple[int, int] | None = None) -> None:
        super().__init__(dataclasses.replace(config, own_bridge=False, tunnel_port=tunnel_port))
        self.ct_zones = ct_zones  # (base, count), or None: the VSC's default (the domain index)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"vrs-{config.name}", daemon=True)

    def _main(self) -> None:
        try:
            self.run()
        except BaseException as e:  # the lab reports it instead of waiting for a convergence that never comes
            log.exception("agent for %s", self.config.bridge)
            self.error = e

    def _snapshot(self) -> list[dict]:
        msgs = super()._snapshot()
        if self.ct_zones is not None:
            for m in msgs:
                if m["op"] == "hello":
                    m["ct_zone_base"], m["ct_zone_count"] = self.ct_zones
        return msgs

    def spawn(self) -> MininetVrs:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self.stop()
            self._thread.join(timeout)
