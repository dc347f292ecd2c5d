"""The agent channel server (docs/interfaces.md section 2): every VRS, real or simulated, reports its
datapath, VTEP, tunnel port and container ports here as JSON lines. Plain threads, one per VRS.

The server opens each session with a challenge, and answers a hello with `welcome` or an `error`
saying why the session may not go on (vsc/identity.py decides who speaks for which datapath); a
message it cannot use gets an `error` naming the field and the session goes on. Nothing an agent
sends ends the server: lines are bounded, a session must say hello within HELLO_TIMEOUT, and
sessions that have not said hello yet are capped."""

from __future__ import annotations

import logging
import socket
import socketserver
import struct

import orjson

from vsc.core import Vsc
from vsc.identity import AgentRefused
from vsc.lograte import LogRate

log = logging.getLogger("vsc.agent")
_rated = LogRate(log, burst=50)  # a flood of sessions or bad lines must not fill the disk

MAX_LINE = 64 * 1024  # bytes; a hello or port-up is a few hundred
HELLO_TIMEOUT = 30.0  # s from connecting to a hello
SEND_TIMEOUT = 5.0  # s an answer may wait for an agent that does not read
MAX_UNBOUND = 4096  # sessions without a hello yet; each holds a thread


class _Handler(socketserver.StreamRequestHandler):
    server: AgentServer

    def _say(self, msg: dict) -> None:
        try:
            self.wfile.write(orjson.dumps(msg) + b"\n")
        except OSError:
            pass  # an agent that stopped reading: the session ends when its connection does

    def _close(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle(self) -> None:
        core = self.server.core
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(SEND_TIMEOUT), 0))
        with core.lock:
            if core.sessions.unbound >= MAX_UNBOUND:
                core.input_error(f"agent {peer}: refused, {MAX_UNBOUND} sessions have not said hello yet")
                return
            session = core.sessions.open(peer, self._close)
        _rated.log("sessions", logging.INFO, "agent %s connected", peer)
        sock.settimeout(HELLO_TIMEOUT)
        self._say({"op": "challenge", "nonce": session.nonce})
        try:
            self._serve(core, session, peer)
        except (OSError, ValueError) as e:  # a timeout before hello, a reset, a closed file
            log.info("agent %s: %s", peer, e or type(e).__name__)
        finally:
            with core.lock:
                core.sessions.close(session)
        _rated.log("sessions", logging.INFO, "agent %s disconnected", peer)

    def _serve(self, core: Vsc, session, peer: str) -> None:
        while True:
            raw = self.rfile.readline(MAX_LINE + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE:
                core.input_error(f"agent {peer}: a line longer than {MAX_LINE} bytes; closing the session")
                self._say({"op": "error", "error": f"line longer than {MAX_LINE} bytes"})
                return
            line = raw.strip()
            if not line:
                continue
            try:
                msg = orjson.loads(line)
                if not isinstance(msg, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                core.input_error(f"agent {peer}: bad line {line[:80]!r}: {e}")
                self._say({"op": "error", "error": f"not a JSON object: {e}"})
                continue
            try:
                refused = core.on_agent(msg, session)
            except Exception:  # a bug, not the agent's fault: keep serving it and the others
                _rated.log("bug", logging.ERROR, "agent %s: message %.200r failed", peer, msg, exc_info=True)
                self._say({"op": "error", "error": "internal error"})
                continue
            if refused is not None:
                self._say({"op": "error", "error": str(refused)})
                if isinstance(refused, AgentRefused):
                    return
            elif msg.get("op") == "hello":
                self.connection.settimeout(None)  # a bound agent may stay quiet for as long as nothing changes
                self._say({"op": "welcome", "datapath_id": session.datapath_id, "verified": session.verified})


class AgentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, core: Vsc, host: str, port: int) -> None:
        self.core = core
        super().__init__((host, port), _Handler)
