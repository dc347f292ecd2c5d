"""The controllers' side of a fault: each VSC's `/status` polled every tenth of a second in a thread, so
a step can ask when a VSC stopped answering, lost a VRS or the VSD's stream, applied a revision, saw a
BGP session go down or routes withdrawn, and how many flow-mods it spent.

Flow-mods are counted per connection: a VSC's `sent` counters for a VRS start again at zero when the
VRS reconnects (and all of them when the VSC restarts), so a counter that went down counts from zero."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

POLL = 0.1


@dataclass
class Sample:
    t: float  # time.monotonic()
    vsc: str
    status: dict | None  # None: the VSC did not answer


def flow_mods_of(status: dict | None) -> dict[str, int]:
    """Datapath -> flow-mods the VSC has sent it over its current connection."""
    if status is None:
        return {}
    return {d: sum(v for k, v in (info.get("sent") or {}).items() if k in ("add", "modify", "delete"))
            for d, info in status.get("datapaths", {}).items()}


class StatusWatcher:
    """Polls `vscs` (name -> an object with `.status()`) until `stop()`."""

    def __init__(self, vscs: dict):
        self.vscs = vscs
        self.samples: list[Sample] = []
        self.flow_mods: list[tuple[float, int]] = []  # (time, flow-mods since the watch began), per poll
        self._last: dict[tuple[str, str], tuple[float | None, int]] = {}  # (connection, flow-mods)
        self._total = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread's polls and poll_now's add to one running total
        self._thread = threading.Thread(target=self._run, name="fault-watch", daemon=True)

    def start(self) -> StatusWatcher:
        self._poll()  # a first sample before anything breaks
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def poll_now(self) -> float:
        """A sample taken now (besides the thread's): what the VSCs have sent up to this moment is
        counted, however recently. Its time."""
        return self._poll()

    def _poll(self) -> float:
        with self._lock:
            self._sample()
            return self.flow_mods[-1][0]  # this sample's, not one the thread added since

    def _sample(self) -> None:
        for name, vsc in list(self.vscs.items()):
            t = time.monotonic()
            try:
                st = vsc.status()
            except (OSError, ValueError):
                st = None
            self.samples.append(Sample(t, name, st))
            connections = {d: info.get("connection") for d, info in (st or {}).get("datapaths", {}).items()}
            for dp, n in flow_mods_of(st).items():
                connection, before = self._last.get((name, dp), (None, 0))
                # a new connection counts from zero: a resync after a restart may reach the old count exactly
                self._total += n if connections.get(dp) != connection else max(n - before, 0)
                self._last[(name, dp)] = (connections.get(dp), n)
        self.flow_mods.append((time.monotonic(), self._total))

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            self._poll()

    def flow_mods_between(self, t0: float, t1: float) -> int:
        before = max((n for t, n in self.flow_mods if t <= t0), default=0)
        after = max((n for t, n in self.flow_mods if t <= t1), default=before)
        return after - before

    def first_flow_mods(self, since: float, timeout: float) -> float | None:
        """When the VSCs first sent flow-mods after `since` (they reprogrammed for what changed)."""
        end = time.monotonic() + timeout
        while True:
            before = max((n for t, n in self.flow_mods if t < since), default=0)
            hit = next((t for t, n in list(self.flow_mods) if t >= since and n > before), None)
            if hit is not None or time.monotonic() >= end:
                return hit
            time.sleep(POLL / 2)

    def first(self, since: float, vsc: str | None, test: Callable[[dict | None], bool],
              timeout: float = 0.0) -> float | None:
        """The time of the first sample after `since` (of `vsc`, or of any VSC) that passes `test`;
        waits up to `timeout` seconds for one."""
        end = time.monotonic() + timeout
        seen = 0
        while True:
            samples = self.samples[seen:]
            seen += len(samples)
            for s in samples:
                if s.t >= since and (vsc is None or s.vsc == vsc) and test(s.status):
                    return s.t
            if time.monotonic() >= end:
                return None
            time.sleep(POLL / 2)

    def latest(self, vsc: str) -> dict | None:
        return next((s.status for s in reversed(self.samples) if s.vsc == vsc), None)

    def samples_before(self, t: float, vsc: str) -> dict | None:
        """The VSC's last status sampled before `t` (as the fault found it)."""
        return next((s.status for s in reversed(self.samples) if s.vsc == vsc and s.t < t), None)


# --- what "noticed" means, per kind of fault: predicates over one VSC's status -----------------------

def not_answering(st: dict | None) -> bool:
    return st is None


def stream_lost(st: dict | None) -> bool:
    return st is not None and not st.get("stream_connected", True)


def stream_back(st: dict | None) -> bool:
    return st is not None and st.get("stream_connected", False)


def datapath_lost(dpid: int, before: dict[str, int]) -> Callable[[dict | None], bool]:
    """The VSC shows datapath `dpid` disconnected, or connected anew (its counters started over)."""
    def test(st: dict | None) -> bool:
        if st is None:
            return False
        d = st.get("datapaths", {}).get(str(dpid))
        if d is None or not d.get("connected"):
            return True
        return flow_mods_of(st).get(str(dpid), 0) < before.get(str(dpid), 0) or \
            d.get("sent", {}).get("bundles", 0) < before.get(f"{dpid}/bundles", 0)
    return test


def all_synced(hosts: int) -> Callable[[dict | None], bool]:
    def test(st: dict | None) -> bool:
        return st is not None and sum(d.get("synced", False) for d in st.get("datapaths", {}).values()) >= hosts
    return test


def revision_at_least(revision: int) -> Callable[[dict | None], bool]:
    return lambda st: st is not None and st.get("revision", -1) >= revision


def session_with(address: str, up: bool) -> Callable[[dict | None], bool]:
    """The VSC's BGP session with the speaker at `address` is (up) or is not (not up) established."""
    def test(st: dict | None) -> bool:
        if st is None:
            return False
        sessions = [s for s in (st.get("bgp") or {}).get("sessions", []) if s.get("peer") == address]
        return bool(sessions) and all((s.get("state") == "up") == up for s in sessions)
    return test


def session_since(st: dict | None, address: str) -> float:
    """When (wall clock) the VSC's session with `address` last changed state; 0 if it has none."""
    sessions = [s for s in ((st or {}).get("bgp") or {}).get("sessions", []) if s.get("peer") == address]
    return max((s.get("since", 0.0) for s in sessions), default=0.0)


def session_renewed(address: str, after_wall: float) -> Callable[[dict | None], bool]:
    """The session is up and came up after `after_wall` (wall clock): it went down and up since."""
    return lambda st: session_with(address, up=True)(st) and session_since(st, address) > after_wall


def received_below(count: int) -> Callable[[dict | None], bool]:
    """Fewer BGP routes received than `count`: the peer's routes were withdrawn."""
    return lambda st: st is not None and (st.get("bgp") or {}).get("received", 0) < count


def received_at_least(count: int) -> Callable[[dict | None], bool]:
    return lambda st: st is not None and (st.get("bgp") or {}).get("received", 0) >= count
