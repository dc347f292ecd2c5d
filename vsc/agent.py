"""The agent channel server (docs/interfaces.md section 2): every VRS, real or simulated, reports its
datapath, VTEP, tunnel port and container ports here as JSON lines. Plain threads, one per VRS."""

from __future__ import annotations

import logging
import socketserver

import orjson

from vsc.core import Vsc

log = logging.getLogger("vsc.agent")


class _Handler(socketserver.StreamRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        core = self.server.core
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        log.info("agent %s connected", peer)
        for raw in self.rfile:
            line = raw.strip()
            if not line:
                continue
            try:
                msg = orjson.loads(line)
                if not isinstance(msg, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                core.input_error(f"agent {peer}: bad line {line[:80]!r}: {e}")
                continue
            core.on_agent(msg)
        log.info("agent %s disconnected", peer)


class AgentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, core: Vsc, host: str, port: int) -> None:
        self.core = core
        super().__init__((host, port), _Handler)
