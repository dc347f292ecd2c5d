"""The VSC's state machine, independent of os-ken: VSD stream and agent-channel input in, bundles of
flow-mods out to each connected VRS, and the status the lab front end polls.

Threads: the stream follower, the agent-channel handlers and os-ken's datapath threads only feed
inputs (under `lock`) and wake the flusher; the flusher alone computes ops and writes to switches,
batching everything that arrived meanwhile into one bundle per VRS.
"""

from __future__ import annotations

import gc
import logging
import reprlib
import threading
import time
from pathlib import Path

import orjson

from openflow import encode
from openflow.flow import Flow
from vsc.audit import Audits
from vsc.bundles import bundle_bytes
from vsc.cookies import CookieOwners
from vsc.enrolment import Enrolment
from vsc.flowops import FlowOps, diff
from vsc.identity import AgentSession, Sessions
from vsc.links import Link, Links
from vsc.locations import AgentError, Locations, check_message
from vsc.lograte import LogRate
from vsc.pipeline import flow_key
from vsc.programmer import Programmer
from vsc.view import View
from vsc.vsd_objects import ViewError

log = logging.getLogger("vsc")
_rated = LogRate(log)  # what switches and agents send: a flood of one kind of mistake logs a few lines

AGENT_SETTLE = 0.3  # s of agent silence after a hello before a VRS's port list counts as complete
STATE_SAVE_INTERVAL = 2.0
SYNC_RETRY = 2.0
COMPILE_PAUSE_MAX = 0.5  # s the flusher may wait after a long compile (see run_flusher)


def tune_gc() -> None:
    """The view and desired state are millions of long-lived small objects: with the default
    thresholds the cyclic GC rescans them over and over during a bulk build (a third of NFD8's
    compile time). They hold no cycles worth collecting often."""
    gc.set_threshold(200_000, 50, 1000)


class Vsc:
    def __init__(self, state_dir: str | Path | None = None, require_enrolment: bool = False) -> None:
        self.lock = threading.RLock()
        self.cookie_owners = CookieOwners()  # which VSD object a flow's cookie names
        self.wake = threading.Event()
        self.view = View()
        self.locs = Locations()
        self.prog = Programmer(self.view, self.locs)
        self.sessions = Sessions(Enrolment(state_dir, require_enrolment))  # who speaks for which VRS
        self.gate = Links(self.prog.untrack, self.input_error)
        self.links: dict[int, Link] = self.gate.up  # the admitted OpenFlow connection of each VRS
        self.view_ready = False
        self.vsd_revision = 0  # newest revision the VSD told us about (events or heartbeats)
        self.stream_connected = False
        self.expect_stream = False  # set when a VSD is configured: then convergence needs the stream
        self.stream_quiet_since = 0.0
        self.agent_last: dict[int, float] = {}
        self.agent_reconfirm: dict[int, set[int]] = {}  # ports to drop if a reconnected VRS does not re-report them
        self.input_errors: list[str] = []
        self.state_dir = Path(state_dir) if state_dir else None
        self.peering = None  # vsc.bgp.peering.Peering once BGP is configured
        self.stream_record = None  # vsc.follower's record of the change stream as received, for /status
        self.audits = Audits()  # drift audits' flow dumps (vsc/audit.py)
        # Seconds spent compiling each kind of input, and diffing + encoding + sending (benchmarks' phases).
        self.busy = {"vsd": 0.0, "agent": 0.0, "bgp": 0.0, "openflow": 0.0}
        self._saved_revision = -1
        self._last_save = 0.0
        self._stop = threading.Event()
        self._restore()

    # --- persistence -------------------------------------------------------------------------------

    def _restore(self) -> None:
        f = self.state_dir / "view.json" if self.state_dir else None
        if f is None or not f.exists():
            return
        data = orjson.loads(f.read_bytes())
        self.view.__dict__.update(View.restore(data).__dict__)
        self.prog.refresh_all()
        self.view_ready = True
        self._saved_revision = self.view.revision
        log.info("restored view at revision %d from %s", self.view.revision, f)

    def save_state(self, force: bool = False) -> None:
        if self.state_dir is None:
            return
        now = time.monotonic()
        with self.lock:
            if self.view.revision == self._saved_revision or (not force and now - self._last_save < STATE_SAVE_INTERVAL):
                return
            data = orjson.dumps(self.view.dump())
            rev = self.view.revision
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / "view.json.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.state_dir / "view.json")
        self._saved_revision, self._last_save = rev, now

    # --- inputs ----------------------------------------------------------------------------------

    def stream_up(self, connected: bool) -> None:
        with self.lock:
            self.stream_connected = connected
            self.stream_quiet_since = time.monotonic()

    def on_stream(self, line: dict) -> None:
        """One line of the VSD change stream (docs/interfaces.md section 1)."""
        kind = line.get("kind")
        with self.lock:
            t0 = time.perf_counter()
            rev = int(line.get("revision", 0))
            self.stream_quiet_since = time.monotonic()
            if kind == "snapshot":
                for problem in self.prog.on_snapshot(rev, line.get("objects", [])):
                    self.input_error(f"VSD snapshot r{rev}: {problem}")
                self.view_ready = True
            elif kind == "event":
                if rev <= self.view.revision:
                    return  # already applied before a reconnect: resuming is idempotent
                try:
                    self.prog.on_vsd(line["type"], line["entityType"], line["entity"], line.get("assoc"))
                except (ViewError, KeyError, ValueError) as e:
                    self.input_error(f"VSD event r{rev} {line.get('entityType')}: {e}")
                self.view.revision = rev
            elif kind == "heartbeat":
                self.view_ready = self.view_ready or rev <= self.view.revision
            self.vsd_revision = max(self.vsd_revision, rev)
            self.busy["vsd"] += time.perf_counter() - t0
        self.wake.set()

    def on_agent(self, msg: dict, session: AgentSession | None = None) -> AgentError | None:
        """One agent-channel message (docs/interfaces.md section 2) from `session`, or from this
        process when None. Returns why it was refused, None when it was applied."""
        with self.lock:
            try:
                op, dpid = check_message(msg)["op"], msg["datapath_id"]
                if session is not None:
                    verified = self.sessions.check(session, msg)
                    if op == "hello":
                        self.locs.host(dpid).verified = verified
                    elif op == "openflow":
                        self.gate.token_changed(dpid, self.sessions.need(dpid), time.monotonic())
                if op == "hello":
                    h = self.locs.hosts.get(dpid)
                    self.agent_reconfirm[dpid] = set(h.ports) if h else set()
                elif op == "port-up":
                    self.agent_reconfirm.get(dpid, set()).discard(msg["ofport"])
                t0 = time.perf_counter()
                self.prog.on_agent(msg)
                self.busy["agent"] += time.perf_counter() - t0
                self.agent_last[dpid] = time.monotonic()
            except AgentError as e:
                where = f" from {session.peer}" if session is not None else ""
                self.input_error(f"agent message{where} {reprlib.repr(msg)}: {e}")
                return e
        self.wake.set()
        return None

    def on_bgp_routes(self, peer: str, announced: list, withdrawn: list) -> None:
        """An EVPN update from a federated VSC (vsc/bgp/federation.py)."""
        with self.lock:
            t0 = time.perf_counter()
            for problem in self.prog.fed.on_routes(peer, announced, withdrawn):
                self.input_error(f"BGP {peer}: {problem}")
            self.busy["bgp"] += time.perf_counter() - t0
        self.wake.set()

    def on_bgp_down(self, peer: str) -> None:
        with self.lock:
            self.prog.fed.drop_peer(peer)
        self.wake.set()

    def input_error(self, text: str) -> None:
        _rated.log("input", logging.ERROR, "%s", text)
        self.input_errors = (self.input_errors + [text])[-20:]

    def datapath_up(self, dpid: int, send, close=None, peer: str = "") -> None:
        """A switch finished its handshake as `dpid` (vsc/links.py decides whether it is the VRS's)."""
        with self.lock:
            self.gate.connect(Link(dpid, send, close, peer), self.sessions.need(dpid), time.monotonic())
        self.wake.set()

    def datapath_down(self, dpid: int, send=None) -> None:
        with self.lock:
            gone = self.gate.disconnect(dpid, send)
        if gone is not None:
            log.info("datapath %016x disconnected", dpid)

    def on_description(self, dpid: int, xid: int, desc: str, send=None) -> None:
        with self.lock:
            self.gate.described(dpid, send, xid, desc, self.sessions.need(dpid), time.monotonic())
        self.wake.set()

    def on_flow_stats(self, dpid: int, xid: int, entries: list, more: bool, send=None) -> None:
        with self.lock:
            link = self.links.get(dpid)
            if link is not None and link.is_from(send) and self.audits.take(link, xid, entries, more, self.prog):
                return
            # only the admitted connection's dump: a waiting one could otherwise fake what is installed
            if link is None or link.sync_xid != xid or not link.is_from(send):
                return
            link.sync_parts += entries
            if more:
                return
            installed = {}
            for st in link.sync_parts:
                f = st.flow.canonical()
                installed[flow_key(f)] = f
            # The flusher computes and sends the diff: one sender keeps bundles in order.
            link.sync_parts, link.sync_xid, link.installed = [], None, installed
        self.wake.set()

    def _finish_sync(self, link: Link) -> FlowOps:
        desired = self.prog.host_desired(link.dpid)
        ops = diff(link.installed, desired)
        self.prog.track(link.dpid)
        link.synced, link.sync_ops = True, (len(ops.add), len(ops.modify), len(ops.delete))
        log.info("datapath %016x synced: %d installed, %d desired, ops add=%d modify=%d delete=%d",
                 link.dpid, len(link.installed), len(desired), *link.sync_ops)
        link.installed = None
        return ops

    def on_barrier(self, dpid: int, xid: int, send=None) -> None:
        with self.lock:
            link = self.links.get(dpid)
            if link is not None and link.is_from(send):
                link.inflight.discard(xid)

    def on_error(self, dpid: int, xid: int, text: str, send=None) -> None:
        """A rejected flow-mod or bundle: nothing of that bundle was applied, so resync the VRS."""
        with self.lock:
            link = self.links.get(dpid)
            if link is None or not link.is_from(send):
                return
            link.errors = (link.errors + [f"xid {xid}: {text}"])[-20:]
            link.synced, link.sync_xid, link.installed = False, None, None
            self.prog.untrack(dpid)
            link.resync_after = time.monotonic() + SYNC_RETRY
        _rated.log(("switch error", dpid), logging.ERROR, "datapath %016x error (xid %d): %.300s; will resync", dpid,
                   xid, text)
        self.wake.set()

    # --- output ----------------------------------------------------------------------------------

    def _send_ops(self, link: Link, ops: FlowOps) -> None:
        if not len(ops):
            return
        with self.lock:
            x0 = link.xid(3)
            link.inflight.add(x0 + 2)
        buf = bundle_bytes(x0, ops)
        try:
            link.send(buf)
        except Exception as e:  # the connection died under us; os-ken reports it separately
            log.warning("datapath %016x send failed: %s", link.dpid, e)
            return
        with self.lock:
            link.sent["add"] += len(ops.add)
            link.sent["modify"] += len(ops.modify)
            link.sent["delete"] += len(ops.delete)
            link.sent["bundles"] += 1

    def _start_sync(self, link: Link) -> None:
        link.sync_xid = link.xid()
        link.sync_parts = []
        link.send(encode.flow_stats_request(link.sync_xid))

    def flush(self) -> None:
        """Send every VRS what changed for it (or its full sync when it is ready for one)."""
        now = time.monotonic()
        todo = []
        with self.lock:
            t0 = time.perf_counter()  # after the wait for the lock: compiling holds it
            self._expire_unconfirmed(now)
            self.gate.retry(now)
            for dpid, link in list(self.links.items()):
                if link.synced:
                    ops = self.prog.take(dpid)
                    if len(ops):
                        todo.append((link, ops))
                elif link.installed is not None:
                    todo.append((link, self._finish_sync(link)))
                elif link.sync_xid is None and self._may_sync(dpid, now) and now >= link.resync_after:
                    self._start_sync(link)
            if self.peering is not None and self.prog.fed.dirty:
                self.peering.kick.set()
        for link, ops in todo:
            self._send_ops(link, ops)
        if self.audits.due:
            with self.lock:  # after the bundles: an audit's dump shows all that was sent
                self.audits.send_due(self.links)
        self.busy["openflow"] += time.perf_counter() - t0

    def _may_sync(self, dpid: int, now: float) -> bool:
        # Syncing against an incomplete picture would delete flows that are still right.
        host = self.locs.hosts.get(dpid)
        return (self.view_ready and host is not None and bool(host.vtep_ip)
                and now - self.agent_last.get(dpid, now) >= AGENT_SETTLE
                and (self.peering is None or self.peering.settled(now)))

    def _expire_unconfirmed(self, now: float) -> None:
        for dpid, ports in list(self.agent_reconfirm.items()):
            if now - self.agent_last.get(dpid, now) < AGENT_SETTLE:
                continue
            for ofport in ports:
                self.prog.on_agent({"op": "port-down", "datapath_id": dpid, "ofport": ofport})
            del self.agent_reconfirm[dpid]

    def run_flusher(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(0.1)
            self.wake.clear()
            try:
                compiled = self.prog.compile_s
                self.flush()
                self.save_state()
            except Exception:
                log.exception("flush failed")
                continue
            # A flush that compiled for C seconds is followed by a pause of C (at most COMPILE_PAUSE_MAX):
            # the changes arriving meanwhile are compiled together, so a burst of N ACL entries costs a few
            # compiles of the domain, not N of them (each as long as the domain is big).
            pause = min(self.prog.compile_s - compiled, COMPILE_PAUSE_MAX)
            if pause > 0.001:
                self._stop.wait(pause)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.run_flusher, name="vsc-flusher", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
        if self.peering is not None:
            self.peering.stop()  # a clean NOTIFICATION: peers withdraw our routes now, not at hold time
        self.save_state(force=True)

    # --- status ----------------------------------------------------------------------------------

    def status(self) -> dict:
        bgp = self.peering.status() if self.peering is not None else None  # asks the speaker: not locked
        with self.lock:
            now = time.monotonic()
            dps = {}
            for dpid, h in self.locs.hosts.items():
                link = self.links.get(dpid)
                dps[str(dpid)] = {
                    "name": h.name, "connected": link is not None, "synced": bool(link and link.synced),
                    "flows_desired": self.prog.desired_size(dpid), "pending": self.prog.pending(dpid),
                    "inflight": len(link.inflight) if link else 0, "sent": dict(link.sent) if link else {},
                    # which connection `sent` counts: a reconnect starts it over, maybe at the same number
                    "connection": link.connected_at if link else None,
                    "last_sync_ops": link.sync_ops if link else None, "errors": list(link.errors) if link else [],
                    "ports": len(h.ports), "verified": h.verified, "waiting": len(self.gate.waiting.get(dpid, ())),
                }
            # Following a VSD: connected, and no line for a moment (lines arrive in bursts).
            stream_ok = not self.expect_stream or (self.stream_connected and now - self.stream_quiet_since >= 0.2)
            converged = (stream_ok and self.view_ready and self.view.revision >= self.vsd_revision
                         and not self.agent_reconfirm
                         and all(d["synced"] and not d["pending"] and not d["inflight"] for d in dps.values())
                         and all(self._may_sync(dpid, now) for dpid in self.locs.hosts)
                         and (bgp is None or bgp["converged"]))
            return {
                "revision": self.view.revision, "vsd_revision": self.vsd_revision, "view_ready": self.view_ready,
                "stream_connected": self.stream_connected, "converged": converged,
                "endpoints": len(self.prog.eps), "datapaths": dps,
                "problems": {d: p for d, p in self.prog.compiled_problems().items() if p},
                "input_errors": list(self.input_errors),
                "bgp": bgp, "busy_s": {k: round(v, 3) for k, v in self.busy.items()},
                "vsd_stream": self.stream_record() if self.stream_record else None,
            }

    def explain(self, value: int) -> dict:
        """Which VSD object a cookie names (cookies hash the object ID)."""
        return self.name_cookies([value])[value]

    def name_cookies(self, cookies: set[int] | list[int]) -> dict[int, dict]:
        """Cookie -> the VSD object it names (vsc/cookies.py); takes the lock."""
        with self.lock:
            return self.cookie_owners.name(self.view, cookies)

    def flows(self, dpid: int) -> list[Flow]:
        with self.lock:
            return sorted(self.prog.desired.get(dpid, {}).values(), key=lambda f: (f.table, -f.priority))
