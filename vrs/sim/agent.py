"""The agent channel of a simulated VRS (docs/interfaces.md section 2): JSON lines to the VSC's agent
port announcing the datapath, the token its switch describes itself with over OpenFlow, its tunnel
port and every container port, replayed in full after each reconnect so a restarted VSC relearns where
every vport is. With a secret (an enrolled VRS) the hello proves it against the VSC's challenge, as
the real agent's does (vrs/agent/identity.py)."""

from __future__ import annotations

import asyncio
import json
import logging

from openflow import text
from vrs.agent.identity import challenge_nonce, prove, refusal
from vrs.reconnect import Backoff
from vrs.sim.switch import Port, SimSwitch

log = logging.getLogger(__name__)

CHALLENGE_TIMEOUT = 10.0


def port_up(sw: SimSwitch, p: Port) -> dict:
    return {"op": "port-up", "datapath_id": sw.datapath_id, "ofport": p.ofport, "name": p.name,
            "vport_id": p.vport_id, "mac": text.mac_str(p.mac), "ip": text.ip_str(p.ip) if p.ip is not None else None}


def port_down(sw: SimSwitch, p: Port) -> dict:
    return {"op": "port-down", "datapath_id": sw.datapath_id, "ofport": p.ofport, "name": p.name}


class AgentClient:
    def __init__(self, switch: SimSwitch, host: str, port: int, secret: bytes | None = None):
        self.switch = switch
        self.host = host
        self.port = port
        self.secret = secret
        self.refusal: str | None = None  # the VSC's last `error` answer
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

    def _hello(self, nonce: str | None) -> list[dict]:
        sw = self.switch
        hello = {"op": "hello", "datapath_id": sw.datapath_id, "name": sw.name, "vtep_ip": text.ip_str(sw.vtep_ip)}
        msgs = [prove(hello, self.secret, nonce) if self.secret is not None else hello,
                {"op": "openflow", "datapath_id": sw.datapath_id, "dp_desc": sw.description},
                {"op": "tunnel", "datapath_id": sw.datapath_id, "ofport": sw.tunnel_ofport}]
        return msgs + [port_up(sw, p) for p in sorted(sw.container_ports(), key=lambda p: p.ofport)]

    async def _challenge(self, reader: asyncio.StreamReader) -> str | None:
        try:
            nonce, msg = challenge_nonce(await asyncio.wait_for(reader.readline(), CHALLENGE_TIMEOUT))
        except OSError as e:  # TimeoutError is an OSError
            nonce, msg = None, f"{type(e).__name__}: {e}"
        if nonce is not None:
            return nonce
        log.error("%s: VSC at %s:%d sent no challenge (%.80r)", self.switch.name, self.host, self.port, msg)
        return None

    def _answer(self, line: bytes) -> None:
        reason = refusal(line)
        if reason is not None:
            self.refusal = reason
            log.warning("%s: VSC at %s:%d refused: %s", self.switch.name, self.host, self.port, self.refusal)

    async def _run(self) -> None:
        delays = Backoff()
        while not self._stopping:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as e:
                log.debug("%s: agent port %s:%d unreachable (%s)", self.switch.name, self.host, self.port, e)
                await asyncio.sleep(delays.next())
                continue
            nonce = await self._challenge(reader) if self.secret is not None else None
            if self.secret is not None and nonce is None:
                writer.close()
                await asyncio.sleep(delays.next())
                continue
            self.refusal = None
            self.writer = writer
            for m in self._hello(nonce):
                self.send(m)
            self.connected.set()
            try:
                while line := await reader.readline():  # reading also keeps the socket buffers flowing
                    self._answer(line)
            except (ConnectionError, OSError, ValueError):  # ValueError: a line over the reader's limit
                pass
            self.connected.clear()
            self.writer = None
            writer.close()
            if self.refusal is None:  # refused: back off rather than be refused again at once
                delays.reset()
            if not self._stopping:
                await asyncio.sleep(delays.next())
