"""`vsplab explain SRC DST --proto P --port N`: one packet exchange on a running lab, told in the
order the packet meets things: the source vport and its groups, the ingress ACL's decider, the flows
and tables on the source host, the tunnel and remote VTEP (and, between federated VSCs, the EVPN route
it rides), the egress ACL's decider, the delivery or the exact drop point, and the reply's path.

The packets are traced through the lab's own switches (the flows its VSCs programmed: the simulated
VRSs of a sim lab, `ofproto/trace` on an emu lab's Open vSwitch, vsplab/policy/emu_explain.py); cookies
are turned back into VSD objects with the lab's VSD as it is now."""

from __future__ import annotations

from vrs.sim.fabric import TraceResult
from vsc.pipeline import Table, table_name
from vsplab.policy.cases import ECHO, EPHEMERAL, Case
from vsplab.policy.compiled import Compiled
from vsplab.policy.verdicts import Leg, Outcome


def case_for(src: str, dst: str, proto: str, port: int | None) -> Case:
    if proto in ("tcp", "udp"):
        if port is None or not 0 < port <= 0xFFFF:
            raise ValueError(f"--port: {proto} needs a port 1-65535")
        return Case(src, dst, proto, (port, port), EPHEMERAL)
    if proto == "icmp":
        if port is not None:
            raise ValueError("--port: icmp has no port")
        return Case(src, dst, "icmp", ECHO)
    raise ValueError(f"--proto: {proto!r} is not tcp, udp or icmp")


def _hops(res: TraceResult | None) -> list[dict]:
    if res is None:
        return []
    return [{"switch": s.switch, "table": s.table, "table_name": table_name(s.table), "pass": s.recirc,
             "flow": s.flow, "actions": s.actions, "note": s.note} for s in res.steps]


def _walked_hops(walk: dict | None) -> list[dict]:
    """The steps of an ofproto/trace walk (emu labs), in the shape of `_hops`."""
    return [{"switch": s["switch"], "table": s["table"], "table_name": s["table_name"], "pass": s["recirc"],
             "flow": s["match"], "actions": s["actions"], "note": s["note"]} for s in (walk or {}).get("steps", ())]


def _leg(name: str, leg: Leg | None) -> dict | None:
    if leg is None:
        return None
    acl = {d.direction: d.to_dict() for d in leg.deciders}
    hops = _hops(leg.trace) if leg.walk is None else _walked_hops(leg.walk)
    tunnels = leg.trace.tunnels if leg.trace else (leg.walk or {}).get("tunnels", [])
    # conntrack knew the connection: the state table's matched flow is an established one
    skipped = [h for h in hops if h["table"] in (Table.INGRESS_STATE, Table.EGRESS_STATE)
               and "+est" in (h["flow"] or "")]
    return {"leg": name, "delivered": leg.delivered, "ingress_acl": acl.get("ingress"), "egress_acl": acl.get("egress"),
            "conntrack_established": bool(skipped), "tunnels": tunnels, "drop": leg.drop, "hops": hops}


def evpn_route(bgp: dict | None, ip: str, vtep: str) -> dict | None:
    """The route (from the source VSC's `GET /bgp`) that carries `ip` with next hop `vtep`, with the
    peer it came from; None when that VSC received none."""
    for peer, routes in ((bgp or {}).get("received") or {}).items():
        for r in routes:
            if r.get("ip") == ip and r.get("next_hop") == vtep:
                return {**r, "peer": peer}
    return None


def explanation(compiled: Compiled, case: Case, outcome: Outcome, vscs: dict[str, str],
                bgp: dict | None = None) -> dict:
    """The answer as data (`--json`); `render` words it. `bgp`: the source VSC's `GET /bgp` when it
    federates with the destination's."""
    eps = {e.name: e for e in compiled.state.endpoints}
    hosts = {h.name: h for h in compiled.state.hosts}
    view = compiled.view

    def port(name: str) -> dict:
        e = eps[name]
        groups = sorted(view.policy_groups[g].name for g in view.groups_of_vport.get(e.vport_id, ()))
        vp = view.vports.get(e.vport_id)
        return {"name": name, "vport_id": e.vport_id, "vport": compiled.entities.get(e.vport_id, {}).get("name"),
                "ip": e.ip, "mac": e.mac, "host": e.host, "vtep_ip": hosts[e.host].vtep_ip, "vsc": vscs.get(e.host),
                "subnet": compiled.entities.get(vp.subnet_id, {}).get("name") if vp else None, "groups": groups}

    src, dst = port(case.src), port(case.dst)
    route = None
    if src["host"] != dst["host"]:
        route = {"remote_vtep": dst["vtep_ip"], "via": "VXLAN"}
        if src["vsc"] != dst["vsc"]:
            r = evpn_route(bgp, dst["ip"], dst["vtep_ip"])
            route["evpn"] = r
            route["bgp"] = (f"EVPN MAC/IP route RD {r['rd']} {r['mac']} {r['ip']} vni {r['vni']} next hop "
                            f"{r['next_hop']}, received by {src['vsc']} from {r['peer']} (advertised by {dst['vsc']}), "
                            + ("imported" if r.get("imported") else f"not imported: {r.get('reason')}")
                            if r else f"{src['vsc']} holds no EVPN route for {dst['ip']} via {dst['vtep_ip']}")
    return {"case": case.label(), "verdict": outcome.verdict, "detail": outcome.detail,
            "source": src, "destination": dst, "route": route,
            "request": _leg("request", outcome.request), "reply": _leg("reply", outcome.reply)}


def _decider(d: dict | None, table: str) -> str:
    if d is None:
        return f"{table}: not reached"
    if d["entry_id"] is None:
        return f"{table}: no entry matched -> default {d['action']} of template {d['template']}"
    state = "stateful" if d["stateful"] else "stateless"
    return (f"{table}: entry {d['description']!r} (template {d['template']}), priority {d['priority']}, "
            f"{d['action']} {state}, ID {d['entry_id']}")


def _leg_text(leg: dict, src: dict, dst: dict) -> list[str]:
    """One direction's walk; `dst` is where this leg goes (the source, for the reply)."""
    out = []
    for h in leg["hops"]:
        note = f"  ({h['note']})" if h["note"] else ""
        out.append(f"    {h['switch']} table {h['table']:>2} {h['table_name']:<13} {h['flow'] or 'no match'}{note}")
    skipped = leg["conntrack_established"]
    if skipped:
        out.append("    conntrack: +est, the connection the request committed: the ACLs are skipped")
    if not skipped or leg["ingress_acl"]:
        out.append("  " + _decider(leg["ingress_acl"], "ingress ACL (table 45, sender's host)"))
    for t in leg["tunnels"]:
        out.append(f"  tunnel: {t}, remote VTEP {dst['vtep_ip']}")
    if not skipped or leg["egress_acl"]:
        out.append("  " + _decider(leg["egress_acl"], "egress ACL (table 55, receiver's host)"))
    out.append(f"  -> delivered to {dst['name']}" if leg["delivered"] else f"  -> DROPPED at {leg['drop']}")
    return out


def render(x: dict) -> str:
    s, d = x["source"], x["destination"]
    out = [f"explain {x['case']}: {x['verdict'].upper()}" + (f" ({x['detail']})" if x["detail"] else ""),
           f"source:      {s['name']} {s['ip']} on {s['host']} (VTEP {s['vtep_ip']}, {s['vsc']}), vport {s['vport']} "
           f"[{s['vport_id']}], subnet {s['subnet']}, groups: {', '.join(s['groups']) or 'none'}",
           f"destination: {d['name']} {d['ip']} on {d['host']} (VTEP {d['vtep_ip']}, {d['vsc']}), vport {d['vport']} "
           f"[{d['vport_id']}], subnet {d['subnet']}, groups: {', '.join(d['groups']) or 'none'}"]
    r = x["route"]
    if r:
        out.append(f"path:        VXLAN to remote VTEP {r['remote_vtep']}" + (f"; {r['bgp']}" if r.get("bgp") else ""))
    else:
        out.append("path:        both on one host, no tunnel")
    out.append("request:")
    out += _leg_text(x["request"], s, d)
    if x["reply"] is not None:
        out.append("reply:")
        out += _leg_text(x["reply"], d, s)
    elif x["request"]["delivered"]:
        out.append("reply: none expected (no reply is checked for this protocol)")
    return "\n".join(out)
