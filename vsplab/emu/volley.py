"""Many probes in flight at once: every TCP connect, ICMP echo and UDP datagram of a check driven from
one event loop, each probe with exactly the budget and retries it has on its own (vsplab/emu/check.py's
`Budget`: a SYN unanswered for 2 s, three echo requests half a second apart, three datagrams), so a
denied probe still means what it meant, but the budgets of a whole check run side by side instead of
one after another. At most `in_flight` probes at a time, so a burst of new connections stays within
what the emulated hosts' packet sockets and listeners absorb.

A probe's outcome is (passed, why), as the one-at-a-time probes of vsplab/emu/probes.py report it."""

from __future__ import annotations

import errno
import os
import resource
import selectors
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field

from vsplab.emu.probes import PAYLOAD, Listeners, echo_request, socket_in


@dataclass(frozen=True)
class Budget:
    tcp_timeout: float
    ping_tries: int
    ping_wait: float
    udp_tries: int
    udp_wait: float


@dataclass(eq=False)  # each shot is itself (kept in sets while in flight)
class Shot:
    """One probe: where from, where to, and its progress."""

    src_ns: str
    dst_ns: str
    dst_ip: str
    protocol: str
    port: int | None
    passed: bool | None = None
    why: str = ""
    error: bool = False  # the probe itself failed (no such namespace...), which says nothing of the policy
    started: float = 0.0
    ended: float = 0.0
    next_at: float = 0.0  # the next resend, or the end of its budget
    tries: int = 0
    sock: socket.socket | None = None
    got: bytes = b""
    ident: int = 0
    tokens: list[bytes] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _more_files() -> None:
    """Each TCP probe in flight holds a socket: make sure the soft limit is not what refuses one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 16384):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))


class Volley:
    def __init__(self, listeners: Listeners, budget: Budget) -> None:
        self.listeners, self.budget = listeners, budget
        self.sel = selectors.DefaultSelector()
        self.icmp: dict[str, socket.socket] = {}  # source namespace -> its raw ICMP socket
        self.witness: dict[str, socket.socket] = {}  # destination namespace -> raw ICMP socket seeing requests
        self.seen_requests: dict[str, set[bytes]] = {}
        self.udp_out: dict[str, socket.socket] = {}
        self.udp_seen: dict[tuple, set[bytes]] = {}
        self.by_ident: dict[tuple[str, int], Shot] = {}
        self.udp_waiting: dict[tuple, list[Shot]] = {}
        self.active: set[Shot] = set()
        self._ident = int.from_bytes(os.urandom(2), "big")

    # --- shared sockets -----------------------------------------------------------------------------

    def _raw(self, table: dict, ns: str, role: str) -> socket.socket:
        s = table.get(ns)
        if s is None:
            s = table[ns] = socket_in(ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, (role, ns))
        return s

    def _udp_listener(self, shot: Shot) -> tuple:
        key = (shot.dst_ns, shot.dst_ip, shot.port)
        if key not in self.udp_seen:
            self.udp_seen[key] = set()
            self.sel.register(self.listeners.udp_on(*key), selectors.EVENT_READ, ("udp", key))
        return key

    # --- launching and resending --------------------------------------------------------------------

    def _launch(self, shot: Shot, now: float) -> None:
        shot.started = now
        self.active.add(shot)
        try:
            self._open(shot, now)
        except OSError as e:
            shot.error = True
            self._finish(shot, False, f"{type(e).__name__}: {e}", now)

    def _open(self, shot: Shot, now: float) -> None:
        if shot.protocol == "tcp":
            shot.sock = socket_in(shot.src_ns, socket.AF_INET, socket.SOCK_STREAM)
            shot.sock.setblocking(False)
            err = shot.sock.connect_ex((shot.dst_ip, shot.port))
            if err not in (0, errno.EINPROGRESS):
                return self._finish(shot, False, os.strerror(err), now)
            self.sel.register(shot.sock, selectors.EVENT_WRITE, ("tcp", shot))
            shot.next_at = now + self.budget.tcp_timeout
        elif shot.protocol == "icmp":
            self._raw(self.witness, shot.dst_ns, "witness")
            self._ident = (self._ident + 1) & 0xFFFF
            shot.ident = self._ident
            self.by_ident[(shot.src_ns, shot.ident)] = shot
            self._send_echo(shot, now)
        elif shot.protocol == "udp":
            self.udp_waiting.setdefault(self._udp_listener(shot), []).append(shot)
            self._send_datagram(shot, now)
        else:
            self._finish(shot, False, f"unknown protocol {shot.protocol!r}", now)

    def _send_echo(self, shot: Shot, now: float) -> None:
        token = PAYLOAD + os.urandom(8)
        shot.tokens.append(token)
        self._raw(self.icmp, shot.src_ns, "icmp").sendto(echo_request(shot.ident, shot.tries, token),
                                                          (shot.dst_ip, 0))
        shot.tries += 1
        shot.next_at = now + self.budget.ping_wait

    def _send_datagram(self, shot: Shot, now: float) -> None:
        out = self.udp_out.get(shot.src_ns)
        if out is None:
            out = self.udp_out[shot.src_ns] = socket_in(shot.src_ns, socket.AF_INET, socket.SOCK_DGRAM)
        token = PAYLOAD + os.urandom(8).hex().encode()
        shot.tokens.append(token)
        out.sendto(token, (shot.dst_ip, shot.port))
        shot.tries += 1
        shot.next_at = now + self.budget.udp_wait

    def _timer(self, shot: Shot, now: float) -> None:
        b = self.budget
        if shot.protocol == "tcp":
            self._finish(shot, False, f"no answer in {b.tcp_timeout:.1f}s", now)
        elif shot.protocol == "icmp":
            if shot.tries < b.ping_tries:
                self._send_echo(shot, now)
            else:
                self._finish(shot, False, f"no echo reply to {shot.tries} requests", now)
        elif shot.tries < b.udp_tries:
            self._send_datagram(shot, now)
        else:
            self._finish(shot, False, f"{shot.tries} datagrams, none received", now)

    def _finish(self, shot: Shot, passed: bool, why: str, now: float) -> None:
        shot.passed, shot.why, shot.ended = passed, why, now
        self.active.discard(shot)
        if shot.sock is not None:
            try:
                self.sel.unregister(shot.sock)
            except (KeyError, ValueError):
                pass
            shot.sock.close()
        if shot.protocol == "icmp":
            self.by_ident.pop((shot.src_ns, shot.ident), None)
        elif shot.protocol == "udp":
            waiting = self.udp_waiting.get((shot.dst_ns, shot.dst_ip, shot.port), [])
            if shot in waiting:
                waiting.remove(shot)

    # --- what comes back ----------------------------------------------------------------------------

    def _on_tcp(self, shot: Shot, now: float) -> None:
        s = shot.sock
        if shot.got == b"" and not shot.tokens:  # connect finished (or failed)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return self._finish(shot, False, os.strerror(err), now)
            shot.tokens.append(PAYLOAD + os.urandom(8).hex().encode())
            try:
                s.send(shot.tokens[0])  # a few bytes into an empty send buffer: never partial
            except OSError as e:  # reset as soon as it was up
                return self._finish(shot, False, e.strerror or str(e), now)
            self.sel.modify(s, selectors.EVENT_READ, ("tcp", shot))
            return
        try:
            chunk = s.recv(256)
        except BlockingIOError:
            return
        except OSError as e:
            return self._finish(shot, False, e.strerror or str(e), now)
        if chunk:
            shot.got += chunk
            return
        token = shot.tokens[0]  # the server closes after its one answer
        answered_by = shot.got[len(token) + 1:].decode(errors="replace")
        if not shot.got.startswith(token + b"@"):
            self._finish(shot, False, f"connected but the echo came back as {shot.got[:40]!r}", now)
        elif answered_by != shot.dst_ns:
            self._finish(shot, False, f"answered by {answered_by} (same address, another container)", now)
        else:
            self._finish(shot, True, "", now)

    def _drain(self, s: socket.socket) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(s.recv(2048))
            except BlockingIOError:
                return out

    def _on_witness(self, ns: str) -> None:
        seen = self.seen_requests.setdefault(ns, set())
        for data in self._drain(self.witness[ns]):
            icmp = data[(data[0] & 15) * 4:]
            if icmp[0] == 8:
                seen.add(icmp[8:])

    def _on_icmp(self, ns: str, now: float) -> None:
        while True:
            try:
                data, addr = self.icmp[ns].recvfrom(2048)
            except BlockingIOError:
                return
            icmp = data[(data[0] & 15) * 4:]
            if icmp[0] != 0 or len(icmp) < 8:
                continue
            ident, seq = struct.unpack("!HH", icmp[4:8])
            shot = self.by_ident.get((ns, ident))
            if shot is None or addr[0] != shot.dst_ip or seq >= len(shot.tokens) or icmp[8:] != shot.tokens[seq]:
                continue
            self._on_witness(shot.dst_ns)  # the request is queued there before its reply came back
            if shot.tokens[seq] in self.seen_requests.get(shot.dst_ns, ()):
                self._finish(shot, True, "", now)

    def _on_udp(self, key: tuple, now: float) -> None:
        seen = self.udp_seen[key]
        seen.update(self._drain(self.listeners.udp_on(*key)))
        for shot in list(self.udp_waiting.get(key, ())):
            if any(t in seen for t in shot.tokens):
                self._finish(shot, True, "", now)

    # --- the loop -----------------------------------------------------------------------------------

    def run(self, shots: list[Shot], in_flight: int = 256) -> list[Shot]:
        _more_files()
        todo = deque(shots)
        try:
            while todo or self.active:
                now = time.perf_counter()
                while todo and len(self.active) < in_flight:
                    self._launch(todo.popleft(), now)
                if not self.active:
                    continue
                wait = max(min(s.next_at for s in self.active) - time.perf_counter(), 0)
                for key, _ in self.sel.select(wait):
                    role, what = key.data
                    now = time.perf_counter()
                    if role == "tcp":
                        if what in self.active:
                            self._on_tcp(what, now)
                    elif role == "icmp":
                        self._on_icmp(what, now)
                    elif role == "witness":
                        self._on_witness(what)
                    else:
                        self._on_udp(what, now)
                now = time.perf_counter()
                for shot in [s for s in self.active if s.next_at <= now]:
                    self._timer(shot, now)
        finally:
            for shot in list(self.active):
                self._finish(shot, False, "interrupted", time.perf_counter())
            for s in [*self.icmp.values(), *self.witness.values(), *self.udp_out.values()]:
                s.close()
            self.sel.close()  # the UDP listeners stay open: they belong to `listeners`
        return shots


def fire(listeners: Listeners, shots: list[Shot], budget: Budget, in_flight: int = 256) -> list[Shot]:
    """Run every shot to its outcome (see the module doc)."""
    return Volley(listeners, budget).run(shots, in_flight)
