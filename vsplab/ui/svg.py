"""The topology drawn as SVG, server-side: controllers and route reflectors, host cards with their
containers coloured by policy group, OpenFlow sessions, VXLAN tunnels and BGP sessions with their
state and route counts. Every piece carries `data-name` so a test (or a script) can find it."""

from __future__ import annotations

from html import escape

from vsplab.ui.layout import LABELLED, Topology

# colour-blind-safe (Okabe-Ito), then greys; a policy group keeps its colour while the lab runs
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000",
           "#7f7f7f", "#b0b0b0")
NO_GROUP = "#d0d0d0"


def group_colours(lab: dict) -> dict[str, str]:
    groups = sorted({g for c in lab["containers"] for g in c["groups"]})
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


def _a(v: object) -> str:
    return escape(str(v), quote=True)


def topology_svg(topo: Topology, lab: dict, statuses: dict[str, dict | None]) -> str:
    colours = group_colours(lab)
    info = {c["name"]: c for c in lab["containers"]}
    per_host: dict[str, list[str]] = {}
    for c in topo.containers:
        per_host.setdefault(info[c]["host"], []).append(c)
    out = [f'<svg id="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {topo.width:.0f} {topo.height:.0f}" '
           f'role="img" aria-label="lab topology">']
    n = topo.nodes
    out.append('<g class="tunnels">')
    for a, b, shared in topo.tunnels:
        out.append(f'<line class="tunnel" data-name="{_a(a)}~{_a(b)}" x1="{n[a].x:.0f}" y1="{n[a].y:.0f}" '
                   f'x2="{n[b].x:.0f}" y2="{n[b].y:.0f}"><title>VXLAN {_a(a)} - {_a(b)} '
                   f'({shared} domain{"s" if shared > 1 else ""})</title></line>')
    out.append('</g><g class="openflow">')
    for v, h in topo.openflow:
        out.append(f'<line class="ofsession" x1="{n[v].x:.0f}" y1="{n[v].y:.0f}" x2="{n[h].x:.0f}" y2="{n[h].y:.0f}">'
                   f'<title>OpenFlow 1.3 {_a(v)} - {_a(h)}</title></line>')
    out.append('</g><g class="bgp">')
    for s in topo.bgp:
        a, b = n.get(s["vsc"]), n.get(s["peer"])
        if a is None or b is None:
            continue
        up = s.get("up", s["state"].lower() == "established")
        label = f'{s["state"]} rx {s["routes_received"]} tx {s["routes_advertised"]}'
        out.append(f'<g class="bgpsession {"up" if up else "down"}" data-name="{_a(s["vsc"])}~{_a(s["peer"])}">'
                   f'<line x1="{a.x:.0f}" y1="{a.y:.0f}" x2="{b.x:.0f}" y2="{b.y:.0f}"/>'
                   f'<text x="{(a.x * 2 + b.x) / 3:.0f}" y="{(a.y * 2 + b.y) / 3:.0f}">{_a(s["vsc"])}: {_a(label)}</text>'
                   f'<title>BGP {_a(s["vsc"])} - {_a(s["peer"])}: {_a(label)}</title></g>')
    out.append('</g>')
    for node in n.values():
        left, top = node.x - node.w / 2, node.y - node.h / 2
        if node.kind == "host":
            out.append(_host(node, left, top, topo, per_host.get(node.name, []), info, colours))
            continue
        st = statuses.get(node.name)
        sub = "route reflector (FRR)" if node.kind == "reflector" else vsc_line(st)
        out.append(f'<g class="node {node.kind}" data-name="{_a(node.name)}">'
                   f'<rect x="{left:.0f}" y="{top:.0f}" width="{node.w:.0f}" height="{node.h:.0f}" rx="6"/>'
                   f'<text class="title" x="{node.x:.0f}" y="{top + 16:.0f}">{_a(node.name)}</text>'
                   f'<text class="sub" x="{node.x:.0f}" y="{top + 31:.0f}">{_a(sub)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def vsc_line(st: dict | None) -> str:
    if st is None:
        return "VSC not answering"
    synced = sum(1 for d in st.get("datapaths", {}).values() if d.get("synced"))
    return f"VSC, {synced} VRS synced" + (", converged" if st.get("converged") else ", busy")


def _host(node, left: float, top: float, topo: Topology, names: list[str], info: dict,
          colours: dict[str, str]) -> str:
    out = [f'<g class="node host" data-name="{_a(node.name)}">'
           f'<rect x="{left:.0f}" y="{top:.0f}" width="{node.w:.0f}" height="{node.h:.0f}" rx="6"/>'
           f'<text class="title" x="{node.x:.0f}" y="{top + 16:.0f}">{_a(node.name)} '
           f'<tspan class="sub">VRS, {len(names)} containers</tspan></text>']
    labelled = len(names) <= LABELLED
    for c in names:
        x, y = topo.containers[c]
        ci = info[c]
        colour = colours.get(ci["groups"][0], NO_GROUP) if ci["groups"] else NO_GROUP
        tip = f'{c} {ci["ip"]} on {node.name}; groups: {", ".join(ci["groups"]) or "none"}; subnet {ci["subnet"]}'
        out.append(f'<g class="container" data-name="{_a(c)}" data-group="{_a(",".join(ci["groups"]))}">'
                   f'<title>{_a(tip)}</title><circle cx="{x:.0f}" cy="{y:.0f}" r="{6 if labelled else 4.5}" '
                   f'fill="{colour}"/>')
        if labelled:
            out.append(f'<text class="cname" x="{x + 12:.0f}" y="{y + 4:.0f}">{_a(c)} {_a(ci["ip"])}</text>')
        out.append("</g>")
    out.append("</g>")
    return "".join(out)


def legend(lab: dict) -> str:
    items = "".join(f'<li><span class="swatch" style="background:{colour}"></span>{escape(g)}</li>'
                    for g, colour in group_colours(lab).items())
    return (f'<ul class="legend">{items}<li><span class="line tunnel"></span>VXLAN tunnel</li>'
            '<li><span class="line ofsession"></span>OpenFlow</li><li><span class="line bgp"></span>BGP</li></ul>')
