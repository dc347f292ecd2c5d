"""The VRS agent for a Mininet switch: vrs/agent's `VrsAgent` itself (OVSDB IDL replica, agent
channel with replay on reconnect, port-up/port-down diffs), configured for a bridge Mininet owns.

Mininet's switches share one ovs-vswitchd, so the agent must not create or correct the bridge (Mininet
made it, with the VSC as controller: `own_bridge=False`), and the tunnel port cannot be called `vxlan0`
on every switch (interface names are unique per vswitchd): each switch's agent is told its own. The
agents run as threads of the lab process, one per switch; this class only adds the thread."""

from __future__ import annotations

import dataclasses
import logging
import threading

from vrs.agent.daemon import AgentConfig, VrsAgent

log = logging.getLogger("vsplab.mininet.agent")


class MininetVrs(VrsAgent):
    def __init__(self, config: AgentConfig, tunnel_port: str) -> None:
        super().__init__(dataclasses.replace(config, own_bridge=False, tunnel_port=tunnel_port))
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"vrs-{config.name}", daemon=True)

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
