"""`vsplab bgp --routes`: every route each VSC of a lab advertises and receives, from the VSC's own
`GET /bgp` (vsc/status.py), one line per route: RD, MAC, IP, VNI, next hop, route targets,
communities, and for a received route the domain it is programmed in or why it is not.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping

from vsc.process import VscProcess
from vsplab.bgp.plan import BgpPlan


def fetch_routes(vscs: Mapping[str, VscProcess]) -> dict[str, dict | str]:
    """VSC name -> its `/bgp` answer, or why there is none (the run goes on without it)."""
    out: dict[str, dict | str] = {}
    for name, vsc in vscs.items():
        try:
            with urllib.request.urlopen(f"http://{vsc.listen}:{vsc.status_port}/bgp", timeout=10) as r:
                out[name] = json.loads(r.read())
        except OSError as e:
            out[name] = f"VSC not answering ({e})"
    return out


def route_line(r: dict) -> str:
    communities = " ".join(r["communities"]) or "-"
    return (f"{r['rd']:<22} {r['mac']}  {r['ip'] or '-':<15} vni {r['vni']:<8} nh {r['next_hop']:<15} "
            f"rt {' '.join(r['route_targets']) or '-'}  comm {communities}")


def verdict(r: dict) -> str:
    if r["imported"]:
        return "imported into " + ", ".join(d["name"] for d in r["domains"] if d["state"] == "programmed")
    return f"not imported: {r['reason']}"


def routes_text(plan: BgpPlan, routes: Mapping[str, dict | str]) -> str:
    """Per VSC: its advertised routes, then those received from each peer (by scenario name)."""
    lines: list[str] = []
    for vsc, answer in routes.items():
        if isinstance(answer, str):
            lines += ["", f"{vsc}: routes unavailable: {answer}"]
            continue
        ours = answer["advertised"]
        lines += ["", f"{vsc} advertises {len(ours)} route(s):"]
        lines += [f"  {route_line(r)}  ({r['domain']})" for r in ours]
        for peer, received in answer["received"].items():
            lines.append(f"{vsc} received {len(received)} route(s) from {plan.name_at(peer)}:")
            lines += [f"  {route_line(r)}  -> {verdict(r)}" for r in received]
        if answer.get("own_routes_ignored"):
            lines.append(f"{vsc}: {answer['own_routes_ignored']} of its own routes came back and were ignored")
    return "\n".join(lines).lstrip("\n") + "\n"
