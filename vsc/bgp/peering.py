"""A VSC's BGP side at run time: the ExaBGP speaker, fed with what `Federation` computes and feeding
back what the peers send, and its part of `/status` and of convergence.

The speaker calls back on its own thread; the callbacks go through the core's inputs, under the core's
lock. The other way, a thread of its own hands the speaker the announcements and withdrawals the
federation computes, outside the core's lock: a speaker that blocks on its pipe to ExaBGP stalls only
this thread, never the flusher or the OpenFlow side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from vsc.bgp.listing import route_listing

if TYPE_CHECKING:
    from vsc.bgp.speaker import SpeakerConfig
    from vsc.core import Vsc

log = logging.getLogger("vsc.bgp")

RETRY = 1.0  # s before handing the speaker again what it refused
UP = "up"  # the speaker's word for an established session
# A VRS that syncs before the peers' routes are in would lose its BGP-learned flows until they come
# (a restarted VSC must cost no traffic): syncs wait until every session has been up and quiet this long,
SETTLE = 0.5  # s
SETTLE_MAX = 10.0  # s after start at most, so a peer that never answers keeps no VRS unsynced


class Peering:
    def __init__(self, core: Vsc, config: SpeakerConfig, speaker_factory: Callable | None = None) -> None:
        if speaker_factory is None:
            from vsc.bgp.speaker import Speaker as speaker_factory
        self.core, self.config = core, config
        self.speaker = speaker_factory(config, on_routes=self._on_routes, on_session=self._on_session)
        self.kick = threading.Event()
        self._stop = threading.Event()
        self._backlog: list[tuple[str, list]] = []  # ("withdraw" | "advertise", items) not yet taken
        self.handed = {"advertised": 0, "withdrawn": 0}
        self._thread: threading.Thread | None = None
        self.started = time.monotonic()
        self.first_up: dict[str, float] = {}  # peer -> when its session first came up
        self.since: dict[str, float] = {}  # peer -> wall-clock time its session last changed state, as told
        self.last_update = 0.0

    def start(self) -> Peering:
        with self.core.lock:
            self.core.prog.fed.enable(self.config.router_id)
            self.core.peering = self
        self.speaker.start()
        self._thread = threading.Thread(target=self._run, name="vsc-bgp", daemon=True)
        self._thread.start()
        self.kick.set()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.kick.set()
        self.speaker.stop()

    # --- speaker -> core -------------------------------------------------------------------------

    def _on_routes(self, peer: str, announced: list, withdrawn: list) -> None:
        self.last_update = time.monotonic()
        self.core.on_bgp_routes(peer, announced, withdrawn)

    def _on_session(self, peer: str, state: str) -> None:
        self.since[peer] = time.time()
        if state == UP:
            self.first_up.setdefault(peer, time.monotonic())
        else:
            # A session that is not up has taken back everything it sent (RFC 4271 section 8). The
            # speaker reports those routes withdrawn itself; this makes sure nothing of the peer stays.
            self.core.on_bgp_down(peer)

    def settled(self, now: float) -> bool:
        """Whether the peers' tables are in (see SETTLE); read under the core's lock, asks no one."""
        if now - self.started >= SETTLE_MAX:
            return True
        if len(self.first_up) < len(self.config.peers):
            return False
        return now - max(self.last_update, *self.first_up.values(), 0.0) >= SETTLE

    # --- core -> speaker -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self.kick.wait(RETRY if self._backlog else None)
            self.kick.clear()
            if self._stop.is_set():
                return
            try:
                self.hand_over()
            except Exception:
                log.exception("handing routes to the speaker failed")

    def hand_over(self) -> None:
        """Take what federation computed and give it to the speaker, withdrawals first (a key that
        moved to another endpoint is withdrawn before it is announced again)."""
        with self.core.lock:
            announce, withdraw = self.core.prog.fed.take_adverts()
        if withdraw:
            self._backlog.append(("withdraw", withdraw))
        if announce:
            self._backlog.append(("advertise", announce))
        while self._backlog:
            op, items = self._backlog[0]
            try:
                getattr(self.speaker, op)(items)
            except Exception as e:  # kept, in order, and handed again after RETRY
                log.warning("speaker refused %d route(s) to %s: %s", len(items), op, e)
                return
            self._backlog.pop(0)
            self.handed["advertised" if op == "advertise" else "withdrawn"] += len(items)

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> dict:
        """Sessions as the speaker reports them, routes as federation holds them, and whether BGP is
        converged: every configured session up, every route a peer sent handed to federation (it
        programs them at once, so the datapaths' own convergence then covers their flows), and
        nothing of ours left to hand to the speaker."""
        sessions = [dict(s, since=self.since.get(s["peer"], 0.0))  # since: benchmarks time from an "up"
                    for s in self.speaker.sessions()]  # outside the core's lock: the speaker answers on its own
        with self.core.lock:
            fed = self.core.prog.fed
            pending = len(fed.dirty) + sum(len(items) for _, items in self._backlog)
            counts = {"advertised": len(fed.advertised), "received": fed.received(),
                      "imported": len(self.core.prog.learned)}
            behind = [s["peer"] for s in sessions if s.get("routes_received", 0) != fed.per_peer.get(s["peer"], 0)]
        down = [s["peer"] for s in sessions if s.get("state") != UP]
        return {"sessions": sessions, **counts, "pending": pending, "sessions_down": down,
                "converged": not down and not behind and not pending}

    def routes(self) -> dict:
        """`GET /bgp`: every route received, per peer, with whether and where it is programmed (or why
        not), and every route advertised (vsc/bgp/listing.py)."""
        with self.core.lock:
            listing = route_listing(self.core.prog.fed)
            reflected = self.core.prog.fed.ignored
        for peer in self.config.peers:
            listing["received"].setdefault(peer.address, [])
        # our own routes come back (eBGP, a reflector); the speaker drops them by RD before federation
        reflected += getattr(self.speaker, "ignored_routes", 0)
        return {"router_id": self.config.router_id, "asn": self.config.local_as, **listing,
                "own_routes_ignored": reflected}
