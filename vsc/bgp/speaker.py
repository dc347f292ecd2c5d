"""The VSC's MP-BGP EVPN speaker: an ExaBGP 5 child process, driven through its process API.

    speaker = Speaker(SpeakerConfig(router_id="127.0.0.2", local_as=65001, listen_address="127.0.0.2",
                                    listen_port=1790, peers=[Peer("127.0.0.3", 65002, port=1790)]),
                      on_routes=lambda peer, announced, withdrawn_keys: ...,
                      on_session=lambda peer, state: ...)
    speaker.start(); speaker.advertise(routes); speaker.withdraw(keys); speaker.stop()

ExaBGP runs `python -m vsc.bgp.relay SOCKET` as its API process; the relay connects to the Unix
socket this speaker listens on and copies lines both ways: our text commands (vsc/bgp/announce.py)
to ExaBGP, ExaBGP's JSON (vsc/bgp/exabgp_json.py) to us. Threads: the supervisor (starts ExaBGP,
reads the relay, restarts ExaBGP when it dies, calls the callbacks) and the writer (turns what
changed into commands, in batches, so a burst of single-route calls still makes few UPDATEs).

ExaBGP keeps nothing of ours (`adj-rib-out false`): the speaker holds its table and, per peer, what
that peer was sent. When a session comes up it sends the whole table and withdraws whatever the
peer was sent and no longer exists; when a session goes down every route from that peer is
reported withdrawn.
"""

from __future__ import annotations

import logging
import queue
import shutil
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vsc.bgp.announce import CarrierPool, announce_batches, withdraw_batches
from vsc.bgp.evpn import canonical_key, canonical_route
from vsc.bgp.exabgp_config import Peer, SpeakerConfig, exabgp_env, render_config
from vsc.bgp.exabgp_json import Ack, EvpnUpdate, SessionState, parse_line
from vsc.bgp.exabgp_process import ExabgpProcess, accept_relay, exabgp_command, kill_identified, working_dir
from vsc.bgp.route import MacIpRoute

__all__ = ["Peer", "Speaker", "SpeakerConfig"]

log = logging.getLogger(__name__)

RoutesCallback = Callable[[str, list[MacIpRoute], list[tuple]], None]
SessionCallback = Callable[[str, str], None]
WRITE_CHUNK = 1 << 18
RESTART_DELAY = (0.2, 10.0)  # first and longest wait before restarting a dead ExaBGP


@dataclass
class _PeerState:
    peer: Peer
    state: str = "idle"
    received: dict[tuple, MacIpRoute] = field(default_factory=dict)
    advertised: dict[tuple, MacIpRoute] = field(default_factory=dict)  # sent and not withdrawn
    to_announce: set[tuple] = field(default_factory=set)
    to_withdraw: set[tuple] = field(default_factory=set)

    @property
    def up(self) -> bool:
        return self.state == "up"


class Speaker:
    def __init__(self, config: SpeakerConfig, on_routes: RoutesCallback,
                 on_session: SessionCallback | None = None) -> None:
        self.config = config
        self._tag = f"{config.name} {config.listen_address}"  # for log lines: several speakers per process
        self._on_routes, self._on_session = on_routes, on_session
        self._lock = threading.Condition()
        self._table: dict[tuple, MacIpRoute] = {}
        self._peers = {p.address: _PeerState(p) for p in config.peers}
        self._carriers = CarrierPool(config.carrier_prefix)
        self._stopping = threading.Event()
        self._conn: socket.socket | None = None
        self._connected = threading.Event()
        self._exabgp: ExabgpProcess | None = None
        self._relay: tuple[int, int] | None = None
        self._unacked: deque[str] = deque()
        self._threads: list[threading.Thread] = []
        self._callbacks: queue.SimpleQueue = queue.SimpleQueue()
        self._dir: Path | None = None
        self._listener: socket.socket | None = None
        self._start_failure: tuple[str, str] | None = None
        self.restarts = 0
        self.commands_sent = 0
        self.refused_commands = 0
        self.ignored_routes = 0  # received, and ours: our RD, or our AS on the path

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 15.0) -> None:
        """Start ExaBGP; return once its relay has connected."""
        if self._threads:
            raise RuntimeError("speaker already started")
        self._dir = working_dir(self.config.name)
        sock_path = self._dir / "relay.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(sock_path))
        self._listener.listen(1)
        self._listener.settimeout(0.2)
        relay = [sys.executable, "-m", "vsc.bgp.relay", str(sock_path)]
        (self._dir / "exabgp.conf").write_text(render_config(self.config, relay))
        for target, name in ((self._supervise, "supervisor"), (self._write_loop, "writer"),
                             (self._deliver, "callbacks")):
            thread = threading.Thread(target=target, name=f"{self.config.name}-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.1):
            if self._start_failure is not None or time.monotonic() > deadline:
                exabgp = self._exabgp
                failure = self._start_failure or (
                    f"its API relay did not connect within {timeout:.0f} s",
                    exabgp.last_lines() if exabgp else "")
                self.stop()
                raise RuntimeError(f"{self._tag}: ExaBGP {failure[0]}; ExaBGP said:\n{failure[1]}")

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            conn = self._conn
            self._lock.notify_all()
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        supervisor_and_writer, deliverer = self._threads[:2], self._threads[2:]
        for thread in supervisor_and_writer:
            thread.join(10)
        self._callbacks.put(None)  # after the last "down" the supervisor reported
        for thread in deliverer:
            if thread is not threading.current_thread():  # stop() called from a callback
                thread.join(10)
        if self._exabgp is not None:  # the supervisor stops it; this covers a supervisor that hung
            self._exabgp.stop()
        kill_identified(self._relay)
        if self._listener is not None:
            self._listener.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def exabgp_pid(self) -> int | None:
        return self._exabgp.pid if self._exabgp and self._exabgp.alive() else None

    # ------------------------------------------------------------------ public API

    def advertise(self, routes: Iterable[MacIpRoute]) -> None:
        """Add or replace (by key); a route already advertised as it is costs nothing."""
        canonical = [canonical_route(r) for r in routes]  # raises on a bad field, before any change
        with self._lock:
            for route in canonical:
                if self._table.get(route.key) == route:
                    continue
                self._table[route.key] = route
                for peer in self._peers.values():
                    if peer.up:
                        peer.to_withdraw.discard(route.key)
                        peer.to_announce.add(route.key)
            self._lock.notify_all()

    def withdraw(self, keys: Iterable[tuple]) -> None:
        canonical = [canonical_key(k) for k in keys]
        with self._lock:
            for key in canonical:
                if self._table.pop(key, None) is None:
                    continue
                for peer in self._peers.values():
                    if peer.up:
                        peer.to_announce.discard(key)
                        if key in peer.advertised:
                            peer.to_withdraw.add(key)
            self._lock.notify_all()

    def sessions(self) -> list[dict]:
        with self._lock:
            return [{"peer": p.peer.address, "asn": p.peer.asn, "state": p.state,
                     "routes_received": len(p.received),
                     "routes_advertised": len(p.advertised) if p.up else 0} for p in self._peers.values()]

    def received(self) -> dict[str, dict[tuple, MacIpRoute]]:
        with self._lock:
            return {address: dict(p.received) for address, p in self._peers.items()}

    def advertised(self) -> dict[tuple, MacIpRoute]:
        with self._lock:
            return dict(self._table)

    # ------------------------------------------------------------------ ExaBGP and its relay

    def _supervise(self) -> None:
        delay = RESTART_DELAY[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._run_exabgp()
            except Exception:
                log.exception("%s: ExaBGP supervision failed", self._tag)
            self._all_sessions_down()
            if self._stopping.is_set():
                break
            exabgp = self._exabgp
            if not self._connected.is_set():
                # Never got as far as its relay: a configuration or an address it cannot have.
                # Retrying would only hide that from start(), which reports it.
                self._start_failure = (f"exited with {exabgp.returncode() if exabgp else None} before "
                                       "connecting its API relay", exabgp.last_lines() if exabgp else "")
                return
            log.warning("%s: ExaBGP (pid %s) exited with %s; restarting it in %.1f s. Last words:\n%s",
                        self._tag, exabgp.pid if exabgp else None,
                        exabgp.returncode() if exabgp else None, delay,
                        exabgp.last_lines()[-2000:] if exabgp else "")
            self.restarts += 1
            self._stopping.wait(delay)
            # A process that ran a while earns a quick restart; one that dies at once backs off.
            ran = time.monotonic() - started
            delay = RESTART_DELAY[0] if ran > 30 else min(delay * 2, RESTART_DELAY[1])

    def _run_exabgp(self) -> None:
        env = exabgp_env(self.config, python_path=str(Path(__file__).resolve().parents[2]))
        exabgp = ExabgpProcess(exabgp_command(self._dir / "exabgp.conf"), env, self._dir)
        self._exabgp = exabgp
        exabgp.start()
        conn = None
        try:
            accepted = accept_relay(self._listener, exabgp, self._stopping)
            if accepted is None:
                return
            conn, self._relay = accepted
            with self._lock:
                self._conn = conn
                self._unacked.clear()
                self._lock.notify_all()
            self._connected.set()
            self._read(conn)
        finally:
            with self._lock:
                self._conn = None
            if conn is not None:
                conn.close()
            exabgp.stop()
            kill_identified(self._relay)

    def _read(self, conn: socket.socket) -> None:
        with conn.makefile("rb", buffering=1 << 20) as lines:
            for line in lines:
                event = parse_line(line)
                if isinstance(event, EvpnUpdate):
                    self._received_update(event)
                elif isinstance(event, SessionState):
                    self._session_changed(event.peer, event.state, event.reason)
                elif isinstance(event, Ack):
                    self._acknowledged(event.ok)

    def _acknowledged(self, ok: bool) -> None:
        with self._lock:
            command = self._unacked.popleft() if self._unacked else "?"
        if not ok:
            self.refused_commands += 1
            log.error("%s: ExaBGP refused %s", self._tag, command)

    # ------------------------------------------------------------------ sessions and received routes

    def _session_changed(self, address: str, state: str, reason: str = "") -> None:
        withdrawn: list[tuple] = []
        with self._lock:
            peer = self._peers.get(address)
            if peer is None or peer.state == state:
                return
            was_up, peer.state = peer.up, state
            if state == "up":
                # Everything again: ExaBGP forgot it, and whatever the peer still had from the
                # last session, it is told the truth about.
                peer.to_announce = set(self._table)
                peer.to_withdraw = {k for k in peer.advertised if k not in self._table}
                self._lock.notify_all()
            elif was_up:
                peer.to_announce.clear()
                peer.to_withdraw.clear()
                withdrawn = list(peer.received)
                peer.received.clear()
        log.info("%s: session with %s %s%s", self._tag, address, state, f" ({reason})" if reason else "")
        if withdrawn:
            self._call(self._on_routes, address, [], withdrawn)
        if self._on_session is not None:
            self._call(self._on_session, address, state)

    def _all_sessions_down(self) -> None:
        for address, peer in list(self._peers.items()):
            if peer.state not in ("down", "idle"):
                self._session_changed(address, "down", "ExaBGP stopped")

    def _received_update(self, update: EvpnUpdate) -> None:
        loop = self.config.local_as in update.as_path
        announced, withdrawn = [], []
        with self._lock:
            peer = self._peers.get(update.peer)
            if peer is None:
                return
            for route in update.announced:
                if loop or self.config.rd_is_own(route.rd):
                    # Our own route come back; if it replaces one of the peer's, that one is gone.
                    self.ignored_routes += 1
                    if peer.received.pop(route.key, None) is not None:
                        withdrawn.append(route.key)
                    continue
                if peer.received.get(route.key) != route:
                    peer.received[route.key] = route
                    announced.append(route)
            for key in update.withdrawn:
                if peer.received.pop(key, None) is not None:
                    withdrawn.append(key)
        if announced or withdrawn:
            self._call(self._on_routes, update.peer, announced, withdrawn)

    def _call(self, callback: Callable, *args) -> None:
        self._callbacks.put((callback, args))

    def _deliver(self) -> None:
        """Callbacks, in the order things happened, on a thread of their own: a slow consumer must
        not stop us reading the relay, or ExaBGP blocks on its pipe and stops sending keepalives."""
        while (item := self._callbacks.get()) is not None:
            callback, args = item
            try:
                callback(*args)
            except Exception:
                log.exception("%s: callback %s failed", self._tag, getattr(callback, "__name__", callback))

    # ------------------------------------------------------------------ sending

    def _write_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while not self._stopping.is_set() and not (self._conn and self._has_work()):
                    self._lock.wait(1.0)
                if self._stopping.is_set():
                    return
                conn, work = self._conn, self._take_work()
            self._send(conn, work)

    def _has_work(self) -> bool:
        return any(p.up and (p.to_announce or p.to_withdraw) for p in self._peers.values())

    def _take_work(self) -> list[tuple[list[str], list[MacIpRoute], list[MacIpRoute]]]:
        """What to send, as (peers, routes to announce, routes to withdraw); peers with the same
        changes pending (the usual case) share commands. Called with the lock held."""
        groups: dict[tuple[frozenset, frozenset], list[_PeerState]] = {}
        for peer in self._peers.values():
            if peer.up and (peer.to_announce or peer.to_withdraw):
                groups.setdefault((frozenset(peer.to_announce), frozenset(peer.to_withdraw)), []).append(peer)
        work = []
        for (announce_keys, withdraw_keys), peers in groups.items():
            announce = [self._table[k] for k in announce_keys if k in self._table]
            sent = peers[0].advertised
            withdraw = [sent[k] for k in withdraw_keys if k in sent]
            # The Ethernet Tag is in the NLRI but not in the key: a route moved to another tag is a
            # different route to the peer, so the one under the old tag is withdrawn first.
            withdraw += [sent[r.key] for r in announce if r.key in sent and sent[r.key].ethernet_tag != r.ethernet_tag]
            for peer in peers:
                for key in withdraw_keys:
                    peer.advertised.pop(key, None)
                peer.advertised.update((r.key, r) for r in announce)
                peer.to_announce, peer.to_withdraw = set(), set()
            work.append(([p.peer.address for p in peers], announce, withdraw))
        return work

    def _send(self, conn: socket.socket, work: list) -> None:
        lines, summaries = [], []
        for addresses, announce, withdraw in work:
            selector = " , ".join(f"neighbor {a}" for a in addresses)
            for batch in withdraw_batches(withdraw) + announce_batches(announce):
                carrier = self._carriers.take()
                lines.append(batch.command(carrier, selector) + "\n")
                summaries.append(f"{'withdrawal' if batch.withdraw else 'announcement'} of "
                                 f"{len(batch.nlris)} routes (carrier {carrier}) to {', '.join(addresses)}")
        with self._lock:
            if self._conn is not conn:
                return  # ExaBGP went away meanwhile; the sessions' coming up will resend
            self._unacked.extend(summaries)
            self.commands_sent += len(lines)
        try:
            chunk: list[str] = []
            size = 0
            for line in lines:
                chunk.append(line)
                size += len(line)
                if size >= WRITE_CHUNK:
                    conn.sendall("".join(chunk).encode())
                    chunk, size = [], 0
            if chunk:
                conn.sendall("".join(chunk).encode())
        except OSError as exc:
            log.info("%s: could not write to ExaBGP (%s); it is being restarted", self._tag, exc)
