"""Raw OpenFlow peers over TCP for the malformed-input tests: a controller the simulated VRS connects to,
and a switch that connects to the VSC. Plain blocking sockets, so a test can send any bytes at all."""

from __future__ import annotations

import socket
import struct
import time

from openflow import encode
from openflow.consts import (
    OFPT_ECHO_REPLY,
    OFPT_ECHO_REQUEST,
    OFPT_FEATURES_REPLY,
    OFPT_FEATURES_REQUEST,
    OFPT_HELLO,
)


class Peer:
    """One end of an OpenFlow connection, framing what it reads and answering echo requests."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.buf = b""
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float) -> bool:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def recv(self, timeout: float = 10) -> bytes | None:
        """The next whole message (echo requests answered on the way), or None at EOF or timeout."""
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 8 and len(self.buf) >= int.from_bytes(self.buf[2:4], "big") >= 8:
                n = int.from_bytes(self.buf[2:4], "big")
                msg, self.buf = self.buf[:n], self.buf[n:]
                if msg[1] == OFPT_ECHO_REQUEST:
                    self.send(bytes([msg[0], OFPT_ECHO_REPLY]) + msg[2:])
                    continue
                return msg
            if self.eof or not self._fill(end - time.monotonic()):
                return None

    def until(self, pred, timeout: float = 10) -> tuple[bytes | None, list[bytes]]:
        """Read until a message satisfying pred: (that message or None, the messages before it)."""
        seen = []
        end = time.monotonic() + timeout
        while (msg := self.recv(end - time.monotonic())) is not None:
            if pred(msg):
                return msg, seen
            seen.append(msg)
        return None, seen

    def closed_within(self, timeout: float) -> float | None:
        """Seconds until the other end closed the connection (reading and discarding), or None."""
        t0 = time.monotonic()
        end = t0 + timeout
        while not self.eof and time.monotonic() < end:
            self.buf = b""
            self._fill(end - time.monotonic())
        return time.monotonic() - t0 if self.eof else None

    def close(self) -> None:
        self.sock.close()


class Controller:
    """Listens where the simulated VRS connects; `accept()` returns the next connection as a Peer."""

    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]

    def accept(self, timeout: float = 15) -> Peer:
        self.srv.settimeout(timeout)
        sock, _ = self.srv.accept()
        return Peer(sock)

    def handshake(self, timeout: float = 15) -> Peer:
        """Accept a switch, exchange hellos, and check it answers a features request."""
        peer = self.accept(timeout)
        hello = peer.recv()
        assert hello is not None and hello[1] == OFPT_HELLO
        peer.send(encode.hello(1))
        peer.send(encode.features_request(2))
        feat, _ = peer.until(lambda m: m[1] == OFPT_FEATURES_REPLY)
        assert feat is not None
        return peer

    def close(self) -> None:
        self.srv.close()


def barrier(peer: Peer, xid: int, timeout: float = 30) -> list[bytes]:
    """Send a barrier and return everything the other end said before its reply (AssertionError if
    the reply never comes: the connection no longer serves)."""
    peer.send(encode.barrier_request(xid))
    reply, seen = peer.until(lambda m: m[1] == 21 and int.from_bytes(m[4:8], "big") == xid, timeout)
    assert reply is not None, f"no barrier reply (eof={peer.eof})"
    return seen


def connect_switch(port: int, datapath_id: int, timeout: float = 10) -> Peer:
    """A switch connecting to a controller: hello both ways, then the features reply it asks for."""
    end = time.monotonic() + timeout
    while True:  # the controller may still be starting its listener
        try:
            peer = Peer(socket.create_connection(("127.0.0.1", port), timeout=timeout))
            break
        except ConnectionRefusedError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
    peer.send(encode.hello(1))
    hello, _ = peer.until(lambda m: m[1] == OFPT_HELLO, timeout)
    assert hello is not None
    req, _ = peer.until(lambda m: m[1] == OFPT_FEATURES_REQUEST, timeout)
    assert req is not None
    body = struct.pack("!QIBB2xII", datapath_id, 0, 254, 0, 0x4F, 0)
    peer.send(encode.header(OFPT_FEATURES_REPLY, int.from_bytes(req[4:8], "big"), body))
    return peer


def error_of(msg: bytes) -> tuple[int, int]:
    """(type, code) of an OFPT_ERROR."""
    assert msg[1] == 1, msg.hex()
    return struct.unpack_from("!HH", msg, 8)
