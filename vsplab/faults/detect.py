"""When a fault was noticed, and by whom: the controller (a VSC's `/status`: it stopped answering, lost
a VRS or the VSD's stream, applied the VSD's revision), a BGP peer (its session down, the routes
withdrawn, back up, the routes back), the audit (a tampered flow), or, where nothing in the control
plane can see it (an underlay link), the continuous probes (a peer's packets lost or passing again)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vsplab.faults import watch
from vsplab.faults.watch import StatusWatcher
from vsplab.scenario.fault_model import FaultStep

WAIT = 15.0  # longest wait for a detection before the timeline says "-"


@dataclass
class Detection:
    at: float | None = None
    by: str = ""
    events: dict[str, float] = field(default_factory=dict)  # absolute times (time.monotonic())


def before_counters(watcher: StatusWatcher, vsc: str) -> dict[str, int]:
    """A VSC's per-datapath flow-mod and bundle counters now, to tell a new connection from the old."""
    st = watcher.latest(vsc) or {}
    out = dict(watch.flow_mods_of(st))
    for d, info in st.get("datapaths", {}).items():
        out[f"{d}/bundles"] = (info.get("sent") or {}).get("bundles", 0)
    return out


def by_probes(probers, since: float, passing: bool, wait: float) -> Detection:
    """The first attempt after `since` that failed (or, `passing`, passed), across every probe; waits
    up to `wait` seconds for one. Passing again counts only on a probe that had lost attempts."""
    if passing and not any(_was_lost(p, since) for p in probers):
        return Detection()  # nothing was cut off: nothing to come back
    end = time.monotonic() + wait
    while True:
        hits = [(a.start, p.label) for p in probers for a in list(p.attempts)
                if a.start >= since and a.ok == passing and (not passing or _was_lost(p, since))]
        if hits or time.monotonic() >= end or not probers:
            break
        time.sleep(0.05)
    if not hits:
        return Detection()
    t, label = min(hits)
    return Detection(t, f"probe {label} {'passing again' if passing else 'lost'}")


def _was_lost(prober, since: float) -> bool:
    """The probe's last attempt before `since` failed: it was cut off when the step came."""
    before = [a for a in list(prober.attempts) if a.start < since]
    return bool(before) and not before[-1].ok


def detect(step: FaultStep, ctx: dict, lab, watcher: StatusWatcher, probers, since: float) -> Detection:
    wait = min(step.timeout, WAIT)
    action = step.action
    if action in ("kill", "start", "restart"):
        kind, name = step.process()
        if kind == "vsc":
            if action == "kill":
                return _first(watcher, since, name, watch.not_answering, wait, f"VSC {name} stopped answering")
            return _first(watcher, since, name, watch.all_synced(len(lab.hosts_of(name))), wait,
                          f"VSC {name} up, its VRSs reconnected and synced")
        if kind == "vsd":
            lost = _first(watcher, since, None, watch.stream_lost, 5.0 if action == "restart" else wait,
                          "a VSC lost the VSD's change stream")
            if action == "kill":
                return lost
            back = _first(watcher, lost.at or since, None, watch.stream_back, wait, "the VSCs follow the VSD again")
            if lost.at is not None and back.at is not None:
                lost.events["stream back"] = back.at
                return lost
            return back
        if kind == "ovs-vswitchd":
            vsc = lab.vsc_name(next(h for h in lab.scenario.hosts if h.name == name))
            dpid = _dpid(lab, name)
            d = _first(watcher, since, vsc, watch.datapath_lost(dpid, ctx.get("counters", {})), wait,
                       f"VSC {vsc} saw {name}'s switch disconnect or reconnect")
            if d.at is not None:
                return d
    elif action == "delete-acl":
        per = [_first(watcher, since, v, watch.revision_at_least(ctx["revision"]), wait, "")
               for v in lab.vscs]
        if all(d.at is not None for d in per):
            return Detection(max(d.at for d in per), f"every VSC applied VSD revision {ctx['revision']}")
        return Detection(None, "a VSC did not apply the change")
    elif action in ("stop-bgp", "cut-bgp"):
        return _bgp(step, lab, watcher, since, wait)
    elif action == "move":
        t = watcher.first_flow_mods(since, wait)
        if t is not None:
            return Detection(t, f"the VSC reprogrammed for {step.move.container} on {step.move.to} (flow-mods)")
    elif action == "tamper-flow":
        return Detection(ctx.get("found"), "the drift audit" + (f": {ctx['what']}" if ctx.get("what") else ""))
    passing = action in ("link-up", "clear-netem", "start")
    # a link fault shows only in the data plane; a process restarted may cost no packet at all
    return by_probes(probers, since, passing, wait if action.startswith(("link", "netem", "clear")) else 0.5)


def _first(watcher, since, vsc, test, wait, by) -> Detection:
    t = watcher.first(since, vsc, test, timeout=wait)
    return Detection(t, by if t is not None else "")


def _dpid(lab, host: str) -> int:
    if hasattr(lab, "hosts") and isinstance(lab.hosts, dict) and host in lab.hosts:
        return lab.hosts[host].datapath_id
    return [h.name for h in lab.scenario.hosts].index(host) + 1


def _bgp(step: FaultStep, lab, watcher: StatusWatcher, since: float, wait: float) -> Detection:
    """The peers' view: session down, routes withdrawn, session up, routes back."""
    plan = lab.federation.plan
    if step.action == "stop-bgp":
        victim = step.stop_bgp
        watchers = [p.name for p in plan.peers_of(victim) if p.name in lab.vscs]
    else:
        victim, other = step.cut_bgp
        watchers = [other]
    address = plan.speakers[victim].address
    out = Detection()
    # the speaker stamps each session's last change with the wall clock: a session that went down and came
    # back between two polls shows as one renewed after the injection
    wall = time.time() - time.monotonic()
    renewed = watch.session_renewed(address, since + wall)
    went_down = watch.session_with(address, up=False)
    for peer in watchers:
        had = ((watcher.samples_before(since, peer) or {}).get("bgp") or {}).get("received", 0)
        down = watcher.first(since, peer, lambda st: went_down(st) or renewed(st), timeout=wait)
        if down is None:
            continue
        st = next(s.status for s in watcher.samples if s.t == down and s.vsc == peer)
        if renewed(st):  # never seen down: it was up again by the next poll
            up = watch.session_since(st, address) - wall
            out.events[f"{peer}: session down and up again"] = up
            down = up
            label = f"{peer}: BGP session with {victim} renewed (down and up between two polls)"
        else:
            label = f"{peer}: BGP session with {victim} down"
            out.events[f"{peer}: session down"] = down
            up = watcher.first(down, peer, watch.session_with(address, up=True), timeout=60.0)
            if up is not None:
                out.events[f"{peer}: session up again"] = up
        if out.at is None or down < out.at:
            out.at, out.by = down, label
        withdrawn = watcher.first(since, peer, watch.received_below(had), timeout=2.0)
        if withdrawn is not None:
            out.events[f"{peer}: {victim}'s routes withdrawn"] = withdrawn
        if up is not None:
            back = watcher.first(max(up, withdrawn or up), peer, watch.received_at_least(had), timeout=60.0)
            if back is not None:
                out.events[f"{peer}: routes back ({had})"] = back
    return out
