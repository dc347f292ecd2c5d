"""Real packets between container namespaces: ICMP echo, TCP connect (with a few bytes echoed back),
UDP datagram. Sockets are opened inside a namespace by a short-lived thread that joins it with
setns(2) (a network namespace is per thread), so probes need no process per packet and the socket
keeps its namespace after the thread is gone."""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
PAYLOAD = b"vsplab-probe"


def socket_in(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    result: list = []

    def make() -> None:
        try:
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, kind, proto))
        except OSError as e:
            result.append(e)

    t = threading.Thread(target=make, name=f"netns-{netns}")
    t.start()
    t.join()
    if isinstance(result[0], Exception):
        raise result[0]
    return result[0]


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    n = sum(struct.unpack(f"!{len(b) // 2}H", b))
    n = (n >> 16) + (n & 0xFFFF)
    return ~(n + (n >> 16)) & 0xFFFF


def echo_request(ident: int, seq: int, token: bytes) -> bytes:
    """An ICMP echo request carrying `token`, checksummed."""
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + token
    return body[:2] + struct.pack("!H", _csum(body)) + body[4:]


def ping(netns: str, dst: str, count: int = 3, timeout: float = 1.0, stop_on_reply: bool = False,
         witness: str | None = None) -> list[float]:
    """Echo requests from inside `netns`; the round-trip times (seconds) of the replies that came back
    (after the first one if `stop_on_reply`). With `witness` (the destination's namespace), a reply
    counts only if that namespace saw the request: another container with the same address (overlapping
    tenants) answering is not the destination answering."""
    s = socket_in(netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    w = socket_in(witness, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) if witness else None
    ident = int.from_bytes(os.urandom(2), "big")
    rtts = []
    try:
        for seq in range(count):
            token = PAYLOAD + os.urandom(8)
            request = echo_request(ident, seq, token)
            body = request[:2] + b"\0\0" + request[4:]
            s.sendto(request, (dst, 0))
            t0 = time.perf_counter()
            end = t0 + timeout
            while (left := end - time.perf_counter()) > 0:
                if not select.select([s], [], [], left)[0]:
                    break
                data, addr = s.recvfrom(2048)
                icmp = data[(data[0] & 15) * 4:]
                if addr[0] == dst and icmp[0] == 0 and icmp[4:] == body[4:]:
                    if w is None or _saw_request(w, token):
                        rtts.append(time.perf_counter() - t0)
                    break
            if rtts and stop_on_reply:
                break
    finally:
        s.close()
        if w is not None:
            w.close()
    return rtts


def _saw_request(w: socket.socket, token: bytes) -> bool:
    """Whether the witness socket holds an echo request carrying `token` (the reply is already back,
    so the request, if it came here, is queued)."""
    while select.select([w], [], [], 0)[0]:
        data = w.recv(2048)
        icmp = data[(data[0] & 15) * 4:]
        if icmp[0] == 8 and icmp[8:] == token:
            return True
    return False


class Listeners:
    """TCP (echoing) and UDP (recording) listeners in destination containers, opened on first use."""

    def __init__(self) -> None:
        # keyed by namespace too: tenants may use the same address in different containers
        self.tcp: dict[tuple[str, str, int], socket.socket] = {}
        self.udp: dict[tuple[str, str, int], socket.socket] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def tcp_on(self, netns: str, ip: str, port: int) -> None:
        if (netns, ip, port) in self.tcp:
            return
        s = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(4096)  # a check's probes arrive in bursts (vsplab/emu/volley.py)
        self.tcp[(netns, ip, port)] = s
        t = threading.Thread(target=self._serve_tcp, args=(s, netns), daemon=True, name=f"tcp-{ip}:{port}")
        t.start()
        self._threads.append(t)

    def _serve_tcp(self, s: socket.socket, netns: str) -> None:
        s.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = s.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:  # the echo says who answered, so the client knows it reached the right container
                    conn.sendall(conn.recv(64) + b"@" + netns.encode())
                except OSError:
                    pass

    def udp_on(self, netns: str, ip: str, port: int) -> socket.socket:
        if (netns, ip, port) not in self.udp:
            s = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
            s.setblocking(False)
            self.udp[(netns, ip, port)] = s
        return self.udp[(netns, ip, port)]

    def close(self) -> None:
        self._stop.set()
        for s in [*self.tcp.values(), *self.udp.values()]:
            s.close()
        for t in self._threads:
            t.join(1)


def tcp_connect(netns: str, dst: str, port: int, timeout: float = 1.0,
                expect_netns: str | None = None) -> tuple[bool, str, float]:
    """Connect from `netns`, send a token, expect it echoed by a `Listeners` server (in `expect_netns`
    when given): (passed, why not, seconds)."""
    s = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    token = PAYLOAD + os.urandom(8).hex().encode()
    t0 = time.perf_counter()
    try:
        s.connect((dst, port))
        s.sendall(token)
        got = b""
        while chunk := s.recv(256):  # the server closes after its one answer
            got += chunk
        answered_by = got[len(token) + 1:].decode(errors="replace")
        if not got.startswith(token + b"@"):
            return False, f"connected but the echo came back as {got[:40]!r}", time.perf_counter() - t0
        if expect_netns and answered_by != expect_netns:
            return False, f"answered by {answered_by} (same address, another container)", time.perf_counter() - t0
        return True, "", time.perf_counter() - t0
    except TimeoutError:
        return False, f"no answer in {timeout:.1f}s", time.perf_counter() - t0
    except OSError as e:
        return False, e.strerror or str(e), time.perf_counter() - t0
    finally:
        s.close()


def udp_send(netns: str, dst: str, port: int, listener: socket.socket, timeout: float = 1.0) -> tuple[bool, str]:
    """One datagram with a unique token; passed if the listener received that token."""
    while True:  # drop what earlier probes left in the listener's queue
        try:
            listener.recv(2048)
        except BlockingIOError:
            break
    token = PAYLOAD + os.urandom(8).hex().encode()
    s = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(token, (dst, port))
    finally:
        s.close()
    end = time.perf_counter() + timeout
    while (left := end - time.perf_counter()) > 0:
        if not select.select([listener], [], [], left)[0]:
            break
        if listener.recv(2048) == token:
            return True, ""
    return False, f"datagram not received in {timeout:.1f}s"
