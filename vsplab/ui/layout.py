"""Where the topology's pieces go: networkx lays out the graph of controllers, route reflectors and
hosts (OpenFlow sessions, BGP sessions and VXLAN tunnels as its edges); each host's containers sit in a
grid on its card. Pure; the layout of a given graph is computed once (`_positions` is cached), so a
page polled every few seconds costs only the drawing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations

import networkx as nx

CARD_W = 150  # a host card's width; its height grows with its containers
DOT = 12  # grid pitch of container dots
LABELLED = 8  # hosts with at most this many containers show their names on the card
ROW = 20  # pitch of named containers


@dataclass
class Node:
    name: str
    kind: str  # vsc | reflector | host
    x: float
    y: float
    w: float = 110
    h: float = 40


@dataclass
class Topology:
    width: float
    height: float
    nodes: dict[str, Node] = field(default_factory=dict)
    containers: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> centre
    openflow: list[tuple[str, str]] = field(default_factory=list)  # (vsc, host)
    tunnels: list[tuple[str, str, int]] = field(default_factory=list)  # (host, host, domains shared)
    bgp: list[dict] = field(default_factory=list)  # the lab's sessions (vsc/reflector, peer, state, routes)


def card_height(n: int) -> float:
    if n <= LABELLED:
        return 30 + ROW * n
    return 30 + DOT * math.ceil(n / ((CARD_W - 12) // DOT))


@lru_cache(maxsize=8)
def _positions(nodes: tuple[tuple[str, str], ...], edges: tuple[tuple[str, str], ...]) -> dict[str, tuple]:
    g = nx.Graph()
    g.add_nodes_from(n for n, _ in nodes)
    g.add_edges_from(edges)
    # controllers on an outer shell, hosts inside: a class reads it as "the control plane around the hosts"
    shells = [[n for n, k in nodes if k != "host"], [n for n, k in nodes if k == "host"]]
    shells = [s for s in shells if s]
    if len(shells[-1]) > 12:  # many hosts: a force layout keeps each VSC's hosts together
        pos = nx.spring_layout(g, seed=7, iterations=60)
    else:
        pos = nx.shell_layout(g, shells[::-1] if len(shells) > 1 else shells)
    return {n: (float(x), float(y)) for n, (x, y) in pos.items()}


def lay_out(lab: dict) -> Topology:
    per_host: dict[str, list[str]] = {h["name"]: [] for h in lab["hosts"]}
    domains: dict[str, set[str]] = {h: set() for h in per_host}
    for c in lab["containers"]:
        per_host.setdefault(c["host"], []).append(c["name"])
        domains.setdefault(c["host"], set()).add(f"{c['enterprise']}/{c['domain']}")
    kinds = [(v["name"], "vsc") for v in lab["vscs"]] + [(r, "reflector") for r in lab.get("reflectors", [])]
    kinds += [(h, "host") for h in per_host]
    openflow = [(v["name"], h) for v in lab["vscs"] for h in v["hosts"]]
    tunnels = [(a, b, len(domains[a] & domains[b])) for a, b in combinations(per_host, 2) if domains[a] & domains[b]]
    bgp_edges = {tuple(sorted((s["vsc"], s["peer"]))) for s in lab.get("bgp", [])}
    edges = tuple(sorted(set(openflow) | bgp_edges))
    pos = _positions(tuple(kinds), edges)
    # scale: enough room for the largest card between neighbours
    tallest = max((card_height(len(v)) for v in per_host.values()), default=40)
    n = max(len(kinds), 1)
    span = max(700.0, math.sqrt(n) * (CARD_W + 60), math.sqrt(n) * (tallest + 40))
    margin = max(tallest, 80)
    topo = Topology(width=span + 2 * margin, height=span + 2 * margin, openflow=openflow, tunnels=tunnels,
                    bgp=list(lab.get("bgp", [])))
    for name, kind in kinds:
        x, y = pos.get(name, (0.0, 0.0))
        cx, cy = margin + (x + 1) / 2 * span, margin + (y + 1) / 2 * span
        if kind == "host":
            names = per_host[name]
            node = Node(name, kind, cx, cy, CARD_W, card_height(len(names)))
            topo.containers.update(_container_spots(node, names))
        else:
            node = Node(name, kind, cx, cy, 170, 40)
        topo.nodes[name] = node
    return _cropped(topo)


def _cropped(topo: Topology, pad: float = 40) -> Topology:
    """Shifted so the drawing starts at `pad` and ends `pad` past its last card: no empty band on a projector."""
    if not topo.nodes:
        return topo
    x0 = min(n.x - n.w / 2 for n in topo.nodes.values()) - pad
    y0 = min(n.y - n.h / 2 for n in topo.nodes.values()) - pad
    topo.width = max(n.x + n.w / 2 for n in topo.nodes.values()) + pad - x0
    topo.height = max(n.y + n.h / 2 for n in topo.nodes.values()) + pad - y0
    for n in topo.nodes.values():
        n.x, n.y = n.x - x0, n.y - y0
    topo.containers = {c: (x - x0, y - y0) for c, (x, y) in topo.containers.items()}
    return topo


def _container_spots(card: Node, names: list[str]) -> dict[str, tuple[float, float]]:
    left, top = card.x - card.w / 2, card.y - card.h / 2
    if len(names) <= LABELLED:
        return {c: (left + 14, top + 30 + ROW * i + ROW / 2 - 4) for i, c in enumerate(sorted(names))}
    cols = int((CARD_W - 12) // DOT)
    return {c: (left + 12 + DOT * (i % cols), top + 30 + DOT * (i // cols) + DOT / 2)
            for i, c in enumerate(sorted(names))}
