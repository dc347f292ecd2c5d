"""Intent against view: whether a VSC compiled from what the VSD holds. The VSD's side is a snapshot of
its change stream (the very input a VSC starts from); the VSC's side its GET /intent (vsc/audit.py):
the view's objects with the attributes it keeps, its placed endpoints, the cookies of desired flows
that name no object of the view. Pure comparison, no I/O."""

from __future__ import annotations

from vsc.vsd_objects import trim
from vsplab.audit.report import IntentFinding


def compare_intent(vsc: str, vsd_revision: int, vsd_objects: list[dict], view: dict,
                   placed: dict[str, tuple[str, int | None]]) -> list[IntentFinding]:
    """`vsd_objects`: the snapshot's objects ({entityType, entity, assoc}); `view`: the VSC's /intent;
    `placed`: vport ID -> (container, the datapath ID it is plugged on) for the hosts this VSC serves.
    A flow the VSC keeps but a compile from scratch would not produce (or the reverse) is intent drift
    too: the desired state no longer follows from the view."""
    out: list[IntentFinding] = []
    if view["revision"] < vsd_revision:
        out.append(IntentFinding(vsc, "behind", None, None,
                                 f"view at revision {view['revision']}, the VSD at {vsd_revision}"))
    kinds = set(view["kinds"])
    held = view["objects"]
    vsd = {o["entity"]["ID"]: o for o in vsd_objects if o["entityType"] in kinds}
    for oid, o in vsd.items():
        mine = held.get(oid)
        if mine is None:
            out.append(IntentFinding(vsc, "missing-in-view", oid, o["entityType"],
                                     f"{o['entity'].get('name') or ''} in the VSD, not in the VSC's view".lstrip()))
        elif mine["entity"] != trim(o["entity"]) or (mine.get("assoc") or {}) != (o.get("assoc") or {}):
            keys = sorted(k for k in set(mine["entity"]) | set(trim(o["entity"]))
                          if mine["entity"].get(k) != o["entity"].get(k))
            what = ", ".join(keys) or "members"
            out.append(IntentFinding(vsc, "differs", oid, o["entityType"], f"the view's copy differs in {what}"))
    for oid, mine in held.items():
        if oid not in vsd:
            out.append(IntentFinding(vsc, "stale-in-view", oid, mine["entityType"],
                                     "in the VSC's view, gone from the VSD"))
    for r in view.get("refused", ()):
        out.append(IntentFinding(vsc, "refused", r["ID"], r["entityType"], f"no flow enforces it: {r['why']}"))
    for c in view["unowned"]:
        out.append(IntentFinding(vsc, "unowned-cookie", None, None,
                                 f"desired flows carry cookie {c}, which names no object of the view"))
    for d in view.get("recompiled", ()):
        o = d["object"]
        flow = d["kept"] or d["compiled"]
        out.append(IntentFinding(vsc, "compiled-differs", o.get("ID"), o.get("entityType"),
                                 f"datapath {d['dpid']:#x}: {d['what']} flow against a compile from scratch, cookie "
                                 f"{d['cookie']}: {flow}"))
    endpoints = view["endpoints"]
    for vport, (container, dpid) in sorted(placed.items()):
        if vport not in vsd:
            out.append(IntentFinding(vsc, "not-placed", vport, "vport", f"{container}'s vport is gone from the VSD"))
        elif vport not in endpoints:
            out.append(IntentFinding(vsc, "not-placed", vport, "vport", f"{container} is not an endpoint of the VSC"))
        elif dpid is not None and endpoints[vport] != dpid:
            out.append(IntentFinding(vsc, "misplaced", vport, "vport",
                                     f"{container} placed on datapath {endpoints[vport]:#x}, plugged on {dpid:#x}"))
    return out
