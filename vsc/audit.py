"""Drift audit, the VSC's side: what a VRS really holds, asked over the VSC's own OpenFlow connection
(an OFPMP_FLOW request, as a sync asks), compared with what the VSC has sent it; what the view was
compiled from (for the lab to hold against the VSD); and a targeted resync.

    GET  /audit?dpid=N    installed vs expected flows of one VRS, each difference named by its cookie's
                          VSD object: {"settled", "installed", "expected", "differences": [...]}
    GET  /intent          the view: revision, its objects (ID -> entityType and kept attributes), the
                          placed endpoints (vport -> dpid), desired cookies naming no object of the view,
                          the objects the compiler refused (`refused`: no flow enforces them), and where the desired flows differ from a compile from scratch of the view
                          (by default up to RECOMPILE_MAX_FLOWS; ?recompile=1 or 0 to ask or not)
    POST /resync?dpid=N   a full sync of that VRS now (a fresh flow dump diffed against the desired
                          flows), so only the flows that differ are sent: {"ops": {add, modify, delete}}

"Expected" is the desired state with the changes not yet sent taken back out (Programmer.sent_state):
the flusher, the one sender, sends the audit's flow-stats request after its bundles, so the dump shows
everything sent before it; a bundle sent before the answer came makes that dump moot, and it is asked
again (`settled` false after ATTEMPTS).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from openflow import encode
from openflow.flow import Flow
from openflow.text import format_flow
from vsc.flowops import same
from vsc.pipeline import KIND_MASK, flow_key
from vsc.problems import Problem
from vsc.programmer import Programmer
from vsc.view import _STORES as VIEW_KINDS  # the VSD object types a view follows

ATTEMPTS = 5
# A compile from scratch holds the VSC's lock: measured 3.9 s for 70,000 flows (10 hosts x 500 endpoints)
# on the 2-core machine under load, so beyond this it is done only when asked for (?recompile=1).
RECOMPILE_MAX_FLOWS = 50_000
MAX_NAMED = 1000  # differences listed one by one; beyond that counted (a wrecked VRS is one finding)


@dataclass
class Dump:
    """One audit's flow-stats request: registered by an asker, sent by the flusher, filled by replies."""

    dpid: int
    xid: int | None = None
    bundles: int = -1  # bundles sent to the VRS when the request went out
    parts: list = field(default_factory=list)
    installed: dict | None = None
    expected: dict | None = None
    settled: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Audits:
    """The audits waiting on each VRS (the VSC's lock guards them)."""

    def __init__(self) -> None:
        self.due: list[Dump] = []
        self.asked: dict[tuple[int, int], Dump] = {}

    def send_due(self, links: dict) -> None:
        """The flusher, after its bundles: each due audit's request on its VRS's admitted connection."""
        due, self.due = self.due, []
        for d in due:
            link = links.get(d.dpid)
            if link is None or not link.synced:
                d.done.set()  # not settled: the asker tries again or reports it
                continue
            d.xid, d.bundles = link.xid(), link.sent["bundles"]
            self.asked[(d.dpid, d.xid)] = d
            try:
                link.send(encode.flow_stats_request(d.xid))
            except Exception:  # the connection died under us; os-ken reports it separately
                del self.asked[(d.dpid, d.xid)]
                d.done.set()

    def take(self, link, xid: int, entries: list, more: bool, prog) -> bool:
        """A flow-stats reply part; True if it answers an audit (then it is not a sync's)."""
        d = self.asked.get((link.dpid, xid))
        if d is None:
            return False
        d.parts += entries
        if more:
            return True
        del self.asked[(link.dpid, xid)]
        installed = {}
        for st in d.parts:
            f = st.flow.canonical()
            installed[flow_key(f)] = f
        d.parts, d.installed = [], installed
        d.settled = link.synced and link.sent["bundles"] == d.bundles
        d.expected = dict(prog.sent_state(link.dpid)) if d.settled else None
        d.done.set()
        return True

    def forget(self, dpid: int) -> None:
        for key in [k for k in self.asked if k[0] == dpid]:
            self.asked.pop(key).done.set()


def differences(installed: dict, expected: dict) -> list[tuple[str, Flow | None, Flow | None]]:
    """(what, installed flow, expected flow) per flow key that differs: missing, extra or changed."""
    out: list[tuple[str, Flow | None, Flow | None]] = []
    for k, f in expected.items():
        have = installed.get(k)
        if have is None:
            out.append(("missing", None, f))
        elif not same(have, f):
            out.append(("changed", have, f))
    out += [("extra", f, None) for k, f in installed.items() if k not in expected]
    out.sort(key=lambda d: flow_key(d[1] or d[2]))
    return out


def audit(core, dpid: int, timeout: float = 10.0) -> dict:
    """Installed vs expected flows of one VRS (see the module doc)."""
    end = time.monotonic() + timeout
    d = Dump(dpid)
    for _ in range(ATTEMPTS):
        d = Dump(dpid)
        with core.lock:
            if dpid not in core.locs.hosts:
                raise KeyError(f"no VRS with datapath ID {dpid:#x} reported to this VSC")
            core.audits.due.append(d)
        core.wake.set()
        if not d.done.wait(max(end - time.monotonic(), 0.01)):
            with core.lock:
                core.audits.forget(dpid)
            raise TimeoutError(f"datapath {dpid:#x} did not answer a flow-stats request in {timeout:.0f}s")
        if d.settled:
            break
        time.sleep(0.1)
    with core.lock:
        name = core.locs.hosts[dpid].name if dpid in core.locs.hosts else None
        if not d.settled:
            return {"dpid": dpid, "name": name, "settled": False, "differences": [],
                    "why": "not synced, or flow-mods kept going out while the dump was taken"}
        diffs = differences(d.installed, d.expected)
        named = core.cookie_owners.name(core.view, {(i or e).cookie for _, i, e in diffs[:MAX_NAMED]})
    return {"dpid": dpid, "name": name, "settled": True, "installed": len(d.installed), "expected": len(d.expected),
            "differences": [{"what": what, "table": (i or e).table, "priority": (i or e).priority,
                             "cookie": hex((i or e).cookie), "object": named[(i or e).cookie],
                             "installed": format_flow(i, show_stats=False) if i else None,
                             "expected": format_flow(e, show_stats=False) if e else None}
                            for what, i, e in diffs[:MAX_NAMED]],
            "not_named": max(len(diffs) - MAX_NAMED, 0)}


def recompiled(core) -> list[dict]:
    """Where the desired state, kept up to date change by change, differs from a compile from scratch of
    the same view and locations: an incremental step gone wrong, or flows the view no longer explains.
    Hosts the VSC has synced only (their desired state is complete); BGP-learned flows left out (a
    fresh compile has no routes). The caller holds the lock."""
    fresh = Programmer(core.view, core.locs)
    fresh.refresh_all()
    learned = {rf.cookie for _, _, rf in core.prog.learned.values()}
    out = []
    for dpid in sorted(core.prog.tracked):
        have = {k: f for k, f in core.prog.desired.get(dpid, {}).items() if f.cookie not in learned}
        for what, kept, compiled in differences(have, fresh.host_desired(dpid))[:MAX_NAMED]:
            f = kept or compiled
            out.append({"dpid": dpid, "what": what, "cookie": f.cookie,
                        "kept": format_flow(kept, show_stats=False) if kept else None,
                        "compiled": format_flow(compiled, show_stats=False) if compiled else None})
    return out


def intent(core, recompile: bool | None = None) -> dict:
    """What the view holds and what was compiled from it (see the module doc). The compile from scratch
    runs when `recompile`, or by default up to RECOMPILE_MAX_FLOWS desired flows; skipped, it says so."""
    with core.lock:
        flows = sum(len(d) for d in core.prog.desired.values())
        skipped = None
        if recompile or (recompile is None and flows <= RECOMPILE_MAX_FLOWS):
            again = recompiled(core)
        else:
            again = []
            skipped = (f"no compile from scratch to compare with: {flows:,} desired flows (it would hold the VSC "
                       f"for seconds above {RECOMPILE_MAX_FLOWS:,}; ask for it with recompile)")
        objects = {oid: {"entityType": etype, "entity": ent, "assoc": assoc}
                   for oid, (etype, ent, assoc) in core.view.raw.items()}
        endpoints = {v: ep.dpid for v, ep in core.prog.eps.items()}
        learned = {rf.cookie for _, _, rf in core.prog.learned.values()}  # a federated VSC's objects
        cookies = {f.cookie for flows in core.prog.desired.values() for f in flows.values()} - learned
        cookies = {c for c in cookies if c & ~KIND_MASK}  # the skeleton names no object
        named = core.cookie_owners.name(core.view, cookies | {d["cookie"] for d in again})
        for d in again:
            d["object"], d["cookie"] = named[d["cookie"]], hex(d["cookie"])
        # objects of the view whose intent no flow enforces: the compiler refused them (`/status` problems)
        refused = sorted({p.object_id: p.to_dict() for ps in core.prog.problems.values() for p in ps
                          if isinstance(p, Problem)}.values(), key=lambda r: (r["entityType"], r["ID"]))
        return {"recompiled": again, "recompile_skipped": skipped, "revision": core.view.revision,
                "kinds": sorted(VIEW_KINDS), "objects": objects, "endpoints": endpoints, "refused": refused,
                "unowned": sorted(hex(c) for c in cookies if named[c]["ID"] is None)}


def resync(core, dpid: int, timeout: float = 10.0) -> dict:
    """A full sync of one VRS now: it dumps its flows and gets only the flow-mods for what differs."""
    end = time.monotonic() + timeout
    with core.lock:
        link = core.links.get(dpid)
        if link is None:
            raise KeyError(f"datapath {dpid:#x} is not connected to this VSC")
        core.prog.untrack(dpid)  # the dump's diff covers every change not yet sent
        link.synced, link.sync_xid, link.installed, link.sync_ops, link.resync_after = False, None, None, None, 0.0
        sent = dict(link.sent)
    core.wake.set()
    while time.monotonic() < end:
        with core.lock:
            flow_mods = sum(link.sent[k] - sent[k] for k in ("add", "modify", "delete"))
            # sync_ops is set before its bundle goes out: done when that many were sent and acknowledged
            if link.synced and link.sync_ops is not None and flow_mods >= sum(link.sync_ops) and not link.inflight:
                add, modify, delete = link.sync_ops
                return {"dpid": dpid, "ops": {"add": add, "modify": modify, "delete": delete},
                        "flow_mods": flow_mods, "errors": list(link.errors)}
            if core.links.get(dpid) is not link:
                raise ConnectionError(f"datapath {dpid:#x} disconnected during the resync")
        time.sleep(0.02)
    raise TimeoutError(f"datapath {dpid:#x} not resynced in {timeout:.0f}s")


def answer(core, method: str, path: str, q: dict) -> tuple[int, dict] | None:
    """The status server's audit paths; None for a path that is not one of them. Bad queries raise
    KeyError or ValueError (the server's 400)."""
    try:
        if path == "/audit":
            return 200, audit(core, int(q["dpid"], 0), float(q.get("timeout", 10)))
        if path == "/intent":
            return 200, intent(core, {"1": True, "0": False}.get(q.get("recompile", "")))
        if path == "/resync":
            if method != "POST":
                return 405, {"error": "/resync changes the VRS: POST it"}
            return 200, resync(core, int(q["dpid"], 0), float(q.get("timeout", 10)))
    except (TimeoutError, ConnectionError) as e:
        return 504, {"error": str(e)}
    return None
