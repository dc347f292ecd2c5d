"""The agent channel client (docs/interfaces.md section 2): JSON lines to the VSC's agent port.

The VSC keeps no state about a VRS beyond its connection, so after every (re)connect the client replays
the whole current state (hello, tunnel, every port-up) from `snapshot()`; messages sent while
disconnected are dropped because that replay carries them anyway. With a secret (an enrolled VRS),
the client waits for the VSC's challenge and proves the secret in every hello it sends
(vrs/agent/identity.py)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable

from vrs.agent.identity import challenge_nonce, prove, refusal
from vrs.reconnect import Backoff

log = logging.getLogger("vrs.agent.channel")

CHALLENGE_TIMEOUT = 10.0  # s for the VSC's first line


class AgentChannel:
    def __init__(self, host: str, port: int, snapshot: Callable[[], list[dict]], secret: bytes | None = None) -> None:
        self.host, self.port = host, port
        self.snapshot = snapshot
        self.secret = secret
        self.refusal: str | None = None  # the VSC's last `error` answer, for whoever asks why nothing works
        self._nonce: str | None = None
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
        if self.secret is not None:
            msgs = [prove(m, self.secret, self._nonce) if m.get("op") == "hello" else m for m in msgs]
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
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(CHALLENGE_TIMEOUT)
            reader = sock.makefile("rb")
            nonce = self._challenge(reader) if self.secret is not None else None
            if self.secret is not None and nonce is None:
                reader.close()
                sock.close()
                self._stop.wait(delays.next())
                continue
            sock.settimeout(None)
            self.refusal = None
            with self._lock:
                self._sock, self._nonce = sock, nonce
                # replay under the lock so no incremental message overtakes the snapshot
                self._send_locked(self.snapshot())
            log.info("agent channel connected to %s:%d", self.host, self.port)
            self.connected.set()
            try:
                for line in reader:  # reading also notices the VSC closing the connection
                    self._answer(line)
            except OSError:
                pass
            self.connected.clear()
            with self._lock:
                self._sock = None
            reader.close()
            sock.close()
            if self.refusal is None:  # refused: back off, rather than be refused twice a second
                delays.reset()
            if not self._stop.is_set():
                log.info("agent channel to %s:%d lost; reconnecting", self.host, self.port)
                self._stop.wait(delays.next())

    def _challenge(self, reader) -> str | None:
        """The nonce of the VSC's challenge, its first line; None (logged) if it sends none in time."""
        try:
            nonce, msg = challenge_nonce(reader.readline())
        except OSError as e:
            nonce, msg = None, f"{type(e).__name__}: {e}"
        if nonce is not None:
            return nonce
        log.error("VSC at %s:%d sent no challenge (%.80r): cannot prove this VRS's secret", self.host, self.port, msg)
        return None

    def _answer(self, line: bytes) -> None:
        reason = refusal(line)
        if reason is not None:
            self.refusal = reason
            log.error("VSC at %s:%d refused: %s", self.host, self.port, self.refusal)
