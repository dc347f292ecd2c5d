"""The OpenFlow connections to VRSs, and which one the VSC programs for each datapath.

A datapath ID is whatever a switch says in its FEATURES_REPLY, so saying it earns nothing by itself.
A connection is *admitted* (synced, then sent flow-mods) only when it qualifies for its datapath,
as vsc/identity.py says (`need`): with a token named by the datapath's agent session, only a
connection whose OFPMP_DESC dp_desc is that token; with NOBODY (an enrolled datapath whose proven
agent has not named one yet) none; with None, the first to come. At most one connection per datapath
is admitted: a second one that qualifies too is refused and logged, it never takes over (the first is
dropped only when it dies: os-ken's echo probes notice a silent one).

A connection that does not qualify yet waits; one showing another description is asked again, since
a switch applies a new dp-desc a moment after its agent wrote it, and closed after DESC_ASKS answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openflow import encode
from openflow.consts import OFPMP_DESC

log = logging.getLogger("vsc")

DESC_ASKS = 4
DESC_RETRY = 0.5  # s between asks
MAX_WAITING = 8  # connections waiting per datapath; the oldest goes when another comes


@dataclass(eq=False)
class Link:
    """One OpenFlow connection to a VRS."""

    dpid: int
    send: object  # callable(bytes)
    close: Callable[[], None] | None = None
    peer: str = ""
    connected_at: float = field(default_factory=time.monotonic)
    synced: bool = False
    sync_xid: int | None = None
    sync_parts: list = field(default_factory=list)
    installed: dict | None = None  # a completed flow dump waiting for the flusher to diff it
    sync_ops: tuple[int, int, int] | None = None  # (add, modify, delete) of the last full sync
    inflight: set[int] = field(default_factory=set)
    next_xid: int = 0x1000
    sent: dict[str, int] = field(default_factory=lambda: {"add": 0, "modify": 0, "delete": 0, "bundles": 0})
    errors: list[str] = field(default_factory=list)
    resync_after: float = 0.0
    desc: str | None = None  # its dp_desc as last answered
    desc_xid: int | None = None  # the DESC request awaiting an answer
    desc_asks: int = 0
    ask_at: float | None = None

    def xid(self, n: int = 1) -> int:
        x = self.next_xid
        self.next_xid = (self.next_xid + n) & 0xFFFFFFFF or 0x1000
        return x

    def is_from(self, send) -> bool:
        """Whether a message os-ken hands us came on this connection (bound methods: equal, not identical)."""
        return send is None or self.send == send


def fits(link: Link, need) -> bool:
    if need is None:
        return True
    return isinstance(need, str) and link.desc == need


class Links:
    def __init__(self, untrack: Callable[[int], None], report: Callable[[str], None]) -> None:
        self.up: dict[int, Link] = {}  # the admitted connection per datapath
        self.waiting: dict[int, list[Link]] = {}
        self._untrack, self._report = untrack, report

    def connect(self, link: Link, need, now: float) -> None:
        up = self.up.get(link.dpid)
        if up is not None:
            self._refuse(link, f"datapath {link.dpid:016x} is already connected from {up.peer or 'elsewhere'}")
            return
        waiting = self.waiting.setdefault(link.dpid, [])
        if len(waiting) >= MAX_WAITING:
            self._refuse(waiting.pop(0), "too many connections waiting for it")
        waiting.append(link)
        self.admit(link.dpid, need, now)

    def disconnect(self, dpid: int, send) -> Link | None:
        """Forget the connection; returns it if it was the admitted one."""
        up = self.up.get(dpid)
        if up is not None and up.is_from(send):
            del self.up[dpid]
            self._untrack(dpid)
            return up
        waiting = self.waiting.get(dpid, [])
        self.waiting[dpid] = [w for w in waiting if not w.is_from(send)]
        if not self.waiting[dpid]:
            del self.waiting[dpid]
        return None

    def find(self, dpid: int, send) -> Link | None:
        up = self.up.get(dpid)
        if up is not None and up.is_from(send):
            return up
        return next((w for w in self.waiting.get(dpid, ()) if w.is_from(send)), None)

    def described(self, dpid: int, send, xid: int, desc: str, need, now: float) -> None:
        link = self.find(dpid, send)
        if link is None or link.desc_xid != xid:
            return
        link.desc, link.desc_xid = desc, None
        self.admit(dpid, need, now)

    def token_changed(self, dpid: int, need, now: float) -> None:
        """The datapath's agent named a (new) token: whatever a connection answered before is stale."""
        for link in [self.up.get(dpid), *self.waiting.get(dpid, ())]:
            if link is not None and not fits(link, need):
                link.desc = link.desc_xid = link.ask_at = None
                link.desc_asks = 0
        self.admit(dpid, need, now)

    def admit(self, dpid: int, need, now: float) -> None:
        up = self.up.get(dpid)
        if up is not None and not fits(up, need):
            # Its agent now names a token it has not shown: hold it back until it does.
            del self.up[dpid]
            self._untrack(dpid)
            up.synced, up.sync_xid, up.installed = False, None, None
            self.waiting.setdefault(dpid, []).insert(0, up)
        waiting = self.waiting.get(dpid, [])
        for w in list(waiting):
            if fits(w, need):
                waiting.remove(w)
                if dpid in self.up:
                    self._refuse(w, f"datapath {dpid:016x} is already connected from {self.up[dpid].peer or 'elsewhere'}")
                else:
                    self.up[dpid] = w
                    log.info("datapath %016x connected from %s", dpid, w.peer or "(in process)")
            elif isinstance(need, str) and w.desc is not None:
                if w.desc_asks >= DESC_ASKS:
                    waiting.remove(w)
                    self._refuse(w, f"it describes itself as {w.desc[:40]!r}, not with the token datapath "
                                    f"{dpid:016x}'s agent named")
                elif w.ask_at is None:
                    w.ask_at = now + DESC_RETRY
            elif need is not None and w.desc is None and w.desc_xid is None and w.ask_at is None:
                self._ask(w)
        if not waiting:
            self.waiting.pop(dpid, None)

    def retry(self, now: float) -> None:
        """Ask again the waiting connections whose time has come (the flusher calls this)."""
        for waiting in self.waiting.values():
            for w in waiting:
                if w.ask_at is not None and now >= w.ask_at:
                    w.desc = w.ask_at = None
                    self._ask(w)

    def _ask(self, link: Link) -> None:
        link.desc_xid, link.desc_asks = link.xid(), link.desc_asks + 1
        try:
            link.send(encode.multipart_request(link.desc_xid, OFPMP_DESC))
        except Exception as e:  # the connection died under us; os-ken reports it separately
            log.debug("datapath %016x: description request failed: %s", link.dpid, e)

    def _refuse(self, link: Link, why: str) -> None:
        self._report(f"OpenFlow connection from {link.peer or '(in process)'} as datapath {link.dpid:016x} "
                     f"refused: {why}")
        if link.close is not None:
            link.close()
