"""The agent channel of a simulated VRS (docs/interfaces.md section 2): JSON lines to the VSC's agent
port announcing the datapath, its tunnel port and every container port, replayed in full after each
reconnect so a restarted VSC relearns where every vport is."""

from __future__ import annotations

import asyncio
import json
import logging

from openflow import text
from vrs.reconnect import Backoff
from vrs.sim.switch import Port, SimSwitch

log = logging.getLogger(__name__)


def port_up(sw: SimSwitch, p: Port) -> dict:
    return {"op": "port-up", "datapath_id": sw.datapath_id, "ofport": p.ofport, "name": p.name,
            "vport_id": p.vport_id, "mac": text.mac_str(p.mac), "ip": text.ip_str(p.ip) if p.ip is not None else None}


def port_down(sw: SimSwitch, p: Port) -> dict:
    return {"op": "port-down", "datapath_id": sw.datapath_id, "ofport": p.ofport, "name": p.name}


class AgentClient:
    def __init__(self, switch: SimSwitch, host: str, port: int):
        self.switch = switch
        self.host = host
        self.port = port
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.sent = 0
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"agent-{self.switch.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def send(self, obj: dict) -> None:
        """Send now if connected; otherwise the full replay on reconnect carries the current state."""
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(json.dumps(obj).encode() + b"\n")
            self.sent += 1

    def _hello(self) -> list[dict]:
        sw = self.switch
        msgs = [{"op": "hello", "datapath_id": sw.datapath_id, "name": sw.name, "vtep_ip": text.ip_str(sw.vtep_ip)},
                {"op": "tunnel", "datapath_id": sw.datapath_id, "ofport": sw.tunnel_ofport}]
        return msgs + [port_up(sw, p) for p in sorted(sw.container_ports(), key=lambda p: p.ofport)]

    async def _run(self) -> None:
        delays = Backoff()
        while not self._stopping:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as e:
                log.debug("%s: agent port %s:%d unreachable (%s)", self.switch.name, self.host, self.port, e)
                await asyncio.sleep(delays.next())
                continue
            delays.reset()
            self.writer = writer
            for m in self._hello():
                self.send(m)
            self.connected.set()
            try:
                while await reader.readline():  # acks only; reading keeps the socket buffers flowing
                    pass
            except (ConnectionError, OSError):
                pass
            self.connected.clear()
            self.writer = None
            writer.close()
            if not self._stopping:
                await asyncio.sleep(delays.next())
