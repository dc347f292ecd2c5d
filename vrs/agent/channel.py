"""The agent channel client (docs/interfaces.md section 2): JSON lines to the VSC's agent port.

The VSC keeps no state about a VRS beyond its connection, so after every (re)connect the client replays
the whole current state (hello, tunnel, every port-up) from `snapshot()`; messages sent while
disconnected are dropped because that replay carries them anyway."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable

from vrs.reconnect import Backoff

log = logging.getLogger("vrs.agent.channel")


class AgentChannel:
    def __init__(self, host: str, port: int, snapshot: Callable[[], list[dict]]) -> None:
        self.host, self.port = host, port
        self.snapshot = snapshot
        self.connected = threading.Event()
        self.sent = 0
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-channel", daemon=True)

    def start(self) -> AgentChannel:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(5)

    def send(self, msgs: list[dict]) -> bool:
        with self._lock:
            return self._send_locked(msgs)

    def _send_locked(self, msgs: list[dict]) -> bool:
        if self._sock is None or not msgs:
            return False
        try:
            self._sock.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))
            self.sent += len(msgs)
            return True
        except OSError as e:
            log.warning("agent channel to %s:%d: %s", self.host, self.port, e)
            return False

    def _run(self) -> None:
        delays = Backoff(first=0.5)
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5)
            except OSError as e:
                log.debug("VSC agent port %s:%d unreachable: %s", self.host, self.port, e)
                self._stop.wait(delays.next())
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            delays.reset()
            with self._lock:
                self._sock = sock
                # replay under the lock so no incremental message overtakes the snapshot
                self._send_locked(self.snapshot())
            log.info("agent channel connected to %s:%d", self.host, self.port)
            self.connected.set()
            try:
                while sock.recv(4096):  # acks only; reading notices the VSC closing the connection
                    pass
            except OSError:
                pass
            self.connected.clear()
            with self._lock:
                self._sock = None
            sock.close()
            if not self._stop.is_set():
                log.info("agent channel to %s:%d lost; reconnecting", self.host, self.port)
                self._stop.wait(delays.next())
