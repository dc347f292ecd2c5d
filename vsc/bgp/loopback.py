"""Two speakers peered over loopback, and route transfers between them timed: what the speaker
tests and `benchmarks/bgp.py` share.

Sim mode needs no root: Linux answers all of 127.0.0.0/8 on `lo`, so the speakers listen on
127.0.0.2 and 127.0.0.3 at the same free port and each connects to the other's address.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vsc.bgp.exabgp_config import Peer, SpeakerConfig
from vsc.bgp.route import MacIpRoute
from vsc.bgp.speaker import Speaker


def free_port(*addresses: str) -> int:
    """A TCP port free on every address (asked of the first, checked on the others)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {addresses}")


def make_routes(count: int, vtep: str, rd: str, vni: int = 5001, start: int = 0,
                route_targets: tuple[str, ...] = ("65000:5001",),
                communities: tuple[str, ...] = ("5001:3",)) -> list[MacIpRoute]:
    """`count` distinct MAC/IP routes behind one VTEP, numbered from `start`."""
    routes = []
    for n in range(start, start + count):
        mac = "02:00:" + ":".join(f"{(n >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))
        ip = f"10.{(n >> 16) & 0xFF}.{(n >> 8) & 0xFF}.{n & 0xFF}"
        routes.append(MacIpRoute(rd=rd, mac=mac, ip=ip, vni=vni, next_hop=vtep,
                                 route_targets=route_targets, communities=communities))
    return routes


@dataclass
class Recorder:
    """A speaker's callbacks, kept: the routes held per peer and every session change, with waits."""

    routes: dict[str, dict[tuple, MacIpRoute]] = field(default_factory=dict)
    sessions: list[tuple[float, str, str]] = field(default_factory=list)
    withdrawals: list[tuple[float, str, int]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_routes(self, peer: str, announced: list[MacIpRoute], withdrawn: list[tuple]) -> None:
        with self.changed:
            held = self.routes.setdefault(peer, {})
            for key in withdrawn:
                held.pop(key, None)
            if withdrawn:
                self.withdrawals.append((time.monotonic(), peer, len(withdrawn)))
            for route in announced:
                held[route.key] = route
            self.changed.notify_all()

    def on_session(self, peer: str, state: str) -> None:
        with self.changed:
            self.sessions.append((time.monotonic(), peer, state))
            self.changed.notify_all()

    def held(self, peer: str) -> dict[tuple, MacIpRoute]:
        with self.changed:
            return dict(self.routes.get(peer, {}))

    def wait(self, predicate, timeout: float, what: str = "condition") -> float:
        """Seconds until `predicate(self)` held; TimeoutError naming `what` otherwise."""
        start = time.monotonic()
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"{what}: not after {timeout} s")
        return time.monotonic() - start

    def wait_session(self, peer: str, state: str, timeout: float, since: float = 0.0) -> float:
        return self.wait(lambda r: any(t >= since and p == peer and s == state for t, p, s in r.sessions),
                         timeout, f"session with {peer} {state}")


@dataclass
class Side:
    speaker: Speaker
    recorder: Recorder
    address: str


@contextmanager
def loopback_pair(asn_a: int = 65001, asn_b: int = 65002, hold_time: int = 9, name: str = "vl-bgp",
                  addresses: tuple[str, str] = ("127.0.0.2", "127.0.0.3"),
                  carrier_prefix: str = "100.64.0.0/16", timeout: float = 30.0,
                  md5: tuple[str | None, str | None] = (None, None)) -> Iterator[tuple[Side, Side]]:
    """Two started speakers with their sessions up (each side's TCP MD5 password for its peer in
    `md5`); both stopped on the way out, whatever happens."""
    port = free_port(*addresses)
    with ExitStack() as stack:
        sides = []
        for me, other, asn, peer_asn, password in ((addresses[0], addresses[1], asn_a, asn_b, md5[0]),
                                                   (addresses[1], addresses[0], asn_b, asn_a, md5[1])):
            recorder = Recorder()
            config = SpeakerConfig(router_id=me, local_as=asn, listen_address=me, listen_port=port,
                                   peers=[Peer(other, peer_asn, port=port, hold_time=hold_time, md5=password)],
                                   own_rds=frozenset({f"{me}:5001"}), carrier_prefix=carrier_prefix,
                                   name=name)
            speaker = Speaker(config, recorder.on_routes, recorder.on_session)
            stack.callback(speaker.stop)
            speaker.start()
            sides.append(Side(speaker, recorder, me))
        a, b = sides
        a.recorder.wait_session(b.address, "up", timeout)
        b.recorder.wait_session(a.address, "up", timeout)
        yield a, b


def transfer(sender: Side, receiver: Side, routes: list[MacIpRoute], timeout: float = 120.0) -> float:
    """Seconds from `sender.speaker.advertise(routes)` until the receiver holds every one of them,
    equal field for field."""
    expected = {r.key for r in routes}
    start = time.monotonic()
    sender.speaker.advertise(routes)
    receiver.recorder.wait(lambda r: expected <= r.routes.get(sender.address, {}).keys(), timeout,
                           f"{len(routes)} routes from {sender.address}")
    return time.monotonic() - start


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(count: int, name: str = "vl-bgp", timeout: float | None = None) -> dict:
    """`count` routes from one speaker to the other, then as many back: seconds, routes/s, and the
    CPU each ExaBGP and this process (both speakers) spent, per direction."""
    timeout = timeout or max(60.0, count / 100)
    result = {"routes": count}
    with loopback_pair(name=name, timeout=60) as (a, b):
        for label, sender, receiver in (("a_to_b", a, b), ("b_to_a", b, a)):
            routes = make_routes(count, sender.address, f"{sender.address}:5001")
            pids = {"sender_exabgp": sender.speaker.exabgp_pid, "receiver_exabgp": receiver.speaker.exabgp_pid}
            before = {k: cpu_seconds(p) for k, p in pids.items()} | {"speakers": time.process_time()}
            seconds = transfer(sender, receiver, routes, timeout)
            after = {k: cpu_seconds(p) for k, p in pids.items()} | {"speakers": time.process_time()}
            result[label] = {"seconds": round(seconds, 3), "routes_per_s": round(count / seconds),
                             "cpu_s": {k: round(after[k] - before[k], 2) for k in before}}
    return result
