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


def ping(netns: str, dst: str, count: int = 3, timeout: float = 1.0, stop_on_reply: bool = False) -> list[float]:
    """Echo requests from inside `netns`; the round-trip times (seconds) of the replies that came back
    (after the first one if `stop_on_reply`)."""
    s = socket_in(netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = (os.getpid() ^ threading.get_ident()) & 0xFFFF
    rtts = []
    try:
        for seq in range(count):
            body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + PAYLOAD
            s.sendto(body[:2] + struct.pack("!H", _csum(body)) + body[4:], (dst, 0))
            t0 = time.perf_counter()
            end = t0 + timeout
            while (left := end - time.perf_counter()) > 0:
                if not select.select([s], [], [], left)[0]:
                    break
                data, addr = s.recvfrom(2048)
                icmp = data[(data[0] & 15) * 4:]
                if addr[0] == dst and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
                    rtts.append(time.perf_counter() - t0)
                    break
            if rtts and stop_on_reply:
                break
    finally:
        s.close()
    return rtts


class Listeners:
    """TCP (echoing) and UDP (recording) listeners in destination containers, opened on first use."""

    def __init__(self) -> None:
        self.tcp: dict[tuple[str, int], socket.socket] = {}
        self.udp: dict[tuple[str, int], socket.socket] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def tcp_on(self, netns: str, ip: str, port: int) -> None:
        if (ip, port) in self.tcp:
            return
        s = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(64)
        self.tcp[(ip, port)] = s
        t = threading.Thread(target=self._serve_tcp, args=(s,), daemon=True, name=f"tcp-{ip}:{port}")
        t.start()
        self._threads.append(t)

    def _serve_tcp(self, s: socket.socket) -> None:
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
                try:
                    conn.sendall(conn.recv(64))
                except OSError:
                    pass

    def udp_on(self, netns: str, ip: str, port: int) -> socket.socket:
        if (ip, port) not in self.udp:
            s = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
            s.setblocking(False)
            self.udp[(ip, port)] = s
        return self.udp[(ip, port)]

    def close(self) -> None:
        self._stop.set()
        for s in [*self.tcp.values(), *self.udp.values()]:
            s.close()
        for t in self._threads:
            t.join(1)


def tcp_connect(netns: str, dst: str, port: int, timeout: float = 1.0) -> tuple[bool, str, float]:
    """Connect from `netns`, send a few bytes, expect them echoed: (passed, why not, seconds)."""
    s = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    t0 = time.perf_counter()
    try:
        s.connect((dst, port))
        s.sendall(PAYLOAD)
        got = b""
        while len(got) < len(PAYLOAD):
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        if got != PAYLOAD:
            return False, f"connected but the echo came back as {got!r}", time.perf_counter() - t0
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
