"""The scenario's `bgp:` section checked as a whole: every peering names two known speakers, at most one
of them a route reflector, router ids are unique, every controller has its AS number. Problems name
the file, line and field; what is legal but probably not meant (two VSCs of one AS that would never
learn each other's endpoints) comes back as a warning."""

from __future__ import annotations

from itertools import combinations

from .loader import LineMap
from .model import Scenario


def check_bgp(s: Scenario, lm: LineMap) -> tuple[list, list[str]]:
    """(problems, warnings) of the scenario's BGP settings."""
    problems: list = []
    err = problems.append
    if s.bgp is None:
        given = [i for i, c in enumerate(s.controllers) if c.asn is not None or c.router_id is not None]
        warnings = [f"{lm.file}:{lm.line_of(('controllers', i))}: controllers[{i}]: asn/router_id are ignored "
                    "without a bgp: section" for i in given]
        return problems, warnings

    controllers = {c.name: c for c in s.controllers}
    reflectors = {r.name: r for r in s.bgp.route_reflectors}
    for i, c in enumerate(s.controllers):
        for key in ("asn", "router_id"):
            if getattr(c, key) is None:
                err(lm.error(("controllers", i), f"{key} is required: the scenario has a bgp: section"))
    seen: dict[str, int] = {}
    for ri, r in enumerate(s.bgp.route_reflectors):
        if r.name in controllers:
            err(lm.error(("bgp", "route_reflectors", ri, "name"), f"{r.name!r} is already a controller's name"))
        elif r.name in seen:
            err(lm.error(("bgp", "route_reflectors", ri, "name"), f"duplicate route reflector name {r.name!r}"))
        seen[r.name] = ri

    ids: dict[str, tuple] = {}
    speakers = [(("controllers", i), c) for i, c in enumerate(s.controllers)]
    speakers += [(("bgp", "route_reflectors", i), r) for i, r in enumerate(s.bgp.route_reflectors)]
    for path, sp in speakers:
        if sp.router_id is None:
            continue
        if sp.router_id in ids:
            err(lm.error(path + ("router_id",), f"router id {sp.router_id} is already {ids[sp.router_id][1]}'s "
                                                f"(line {lm.line_of(ids[sp.router_id][0])})"))
        else:
            ids[sp.router_id] = (path + ("router_id",), sp.name)

    pairs: set[frozenset[str]] = set()
    for pi, (a, b) in enumerate(s.bgp.peerings):
        pp = ("bgp", "peerings", pi)
        unknown = [n for n in (a, b) if n not in controllers and n not in reflectors]
        if unknown:
            known = sorted(controllers) + sorted(reflectors)
            err(lm.error(pp, f"unknown peer {unknown[0]!r} (controllers and route reflectors: {', '.join(known)})"))
        elif a == b:
            err(lm.error(pp, f"{a!r} cannot peer with itself"))
        elif a in reflectors and b in reflectors:
            err(lm.error(pp, f"{a} and {b} are both route reflectors: a peering needs a controller on one end"))
        elif frozenset((a, b)) in pairs:
            err(lm.error(pp, f"{a} and {b} already peer"))
        pairs.add(frozenset((a, b)))
    return problems, ([] if problems else _unreachable_pairs(s, pairs, lm))


def _unreachable_pairs(s: Scenario, pairs: set[frozenset[str]], lm: LineMap) -> list[str]:
    """iBGP: two VSCs of one AS that neither peer nor share a route reflector never hear of each other's
    endpoints (an iBGP speaker passes on nothing it learned over iBGP; only a reflector does)."""
    reflectors = {r.name for r in s.bgp.route_reflectors}
    warnings = []
    for a, b in combinations(s.controllers, 2):
        if a.asn != b.asn or frozenset((a.name, b.name)) in pairs:
            continue
        if any(frozenset((a.name, r)) in pairs and frozenset((b.name, r)) in pairs for r in reflectors):
            continue
        warnings.append(f"{lm.file}:{lm.line_of(('bgp',))}: bgp: {a.name} and {b.name} are both in AS {a.asn} with "
                        "no iBGP session between them and no route reflector they both peer with: they will "
                        "not learn each other's endpoints (add a peering or a route reflector)")
    return warnings
