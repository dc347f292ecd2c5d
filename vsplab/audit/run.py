"""Audit a running lab: the VSD's intent against each VSC's view, each VSC's desired flows against every
datapath it programs (flow stats over the VSC's own OpenFlow connection), and with `repair` a targeted
resync of only the datapaths that differ, then the audit again.

    report = audit_lab(lab)             # AuditReport: .intent, .flows (each named by its VSD object), .clean
    report = audit_lab(lab, repair=True)   # .repairs (flow-mods per datapath), .after_repair

`lab` is any lab of vsplab.lab.base (sim, emu, Mininet): it needs `client` (the VSD), `vscs` (name ->
vsc.process.VscProcess), `placed` and `hosts_of(vsc)`. Intent drift is reported, not repaired: a flow
resync cannot make a VSC's view follow the VSD."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from vsplab.audit.intent import compare_intent
from vsplab.audit.report import AuditReport, FlowDrift, Repair


class AuditError(RuntimeError):
    pass


def _vsc_call(vsc, path: str, method: str = "GET", timeout: float = 30.0) -> dict:
    url = f"http://{vsc.listen}:{vsc.status_port}{path}"
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AuditError(f"{method} {url}: {e.code} {e.read().decode(errors='replace')[:300]}") from None
    except OSError as e:
        raise AuditError(f"{method} {url}: {e}") from None


def vsd_snapshot(client) -> tuple[int, list[dict]]:
    """The VSD's revision and objects, as its change stream's first line gives them to a controller."""
    with client.change_stream(since=0) as lines:
        first = next(lines)
    if first.get("kind") != "snapshot":
        raise AuditError(f"the VSD's change stream began with {first.get('kind')!r}, not a snapshot")
    return int(first["revision"]), first["objects"]


def _intent(lab, name: str, vsc, revision: int, objects: list[dict], dpids: dict[str, int], timeout: float,
            recompile: bool | None, report: AuditReport) -> None:
    end = time.monotonic() + timeout
    path = "/intent" + ("" if recompile is None else f"?recompile={int(recompile)}")
    view = _vsc_call(vsc, path)
    while view["revision"] < revision and time.monotonic() < end:  # a VSC a moment behind is not drift
        time.sleep(0.1)
        view = _vsc_call(vsc, path)
    hosts = set(lab.hosts_of(name))
    placed = {p.vport_id: (p.name, dpids.get(p.host)) for p in lab.placed.values() if p.host in hosts}
    report.intent += compare_intent(name, revision, objects, view, placed)
    if view.get("recompile_skipped"):
        report.notes.append(f"{name}: {view['recompile_skipped']}")


def _audit(lab, timeout: float, recompile: bool | None = None) -> AuditReport:
    report = AuditReport()
    revision, objects = vsd_snapshot(lab.client)
    for name, vsc in lab.vscs.items():
        st = _vsc_call(vsc, "/status")
        dpids = {dp["name"]: int(d) for d, dp in st["datapaths"].items()}
        _intent(lab, name, vsc, revision, objects, dpids, timeout, recompile, report)
        for host in lab.hosts_of(name):
            if host not in dpids or not st["datapaths"][str(dpids[host])]["connected"]:
                report.unsettled.append(f"{host}: not connected to {name}")
                continue
            a = _vsc_call(vsc, f"/audit?dpid={dpids[host]}&timeout={timeout}", timeout=timeout + 5)
            report.datapaths += 1
            if not a["settled"]:
                report.unsettled.append(f"{host}: {a['why']}")
                continue
            report.flows_compared += a["installed"]
            report.flows += [FlowDrift(name, host, dpids[host], d["what"], d["table"], d["priority"], d["cookie"],
                                       d["object"], d["installed"], d["expected"]) for d in a["differences"]]
            if a["not_named"]:
                report.unsettled.append(f"{host}: {a['not_named']} more differences not listed")
    return report


def audit_lab(lab, repair: bool = False, timeout: float = 10.0, recompile: bool | None = None) -> AuditReport:
    """Audit `lab` (see the module doc); with `repair`, resync the datapaths with flow drift, then audit
    again into `after_repair` (a datapath that could not be compared is syncing already, or gone).
    `recompile`: whether each VSC compiles its view from scratch to compare (None: the VSC decides by
    size, vsc/audit.py RECOMPILE_MAX_FLOWS; a skipped one is in `notes`)."""
    report = _audit(lab, timeout, recompile)
    if not repair:
        return report
    targets = {(f.vsc, f.host, f.dpid) for f in report.flows}
    for vsc_name, host, dpid in sorted(targets):
        r = _vsc_call(lab.vscs[vsc_name], f"/resync?dpid={dpid}&timeout={timeout}", "POST", timeout + 5)
        if r.get("errors"):
            raise AuditError(f"{host}: the switch refused the repair: {r['errors'][-1]}")
        report.repairs.append(Repair(vsc_name, host, dpid, r["ops"]["add"], r["ops"]["modify"], r["ops"]["delete"],
                                     r["flow_mods"]))
    report.after_repair = _audit(lab, timeout, recompile)
    return report


def repair(lab, timeout: float = 10.0) -> AuditReport:
    """`audit_lab(lab, repair=True)`: find the drift, resync only what differs, audit again."""
    return audit_lab(lab, repair=True, timeout=timeout)
