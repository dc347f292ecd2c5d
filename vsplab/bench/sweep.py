"""`vsplab bench nfd8 --sweep`: the same rollout at several sizes, tagged and per-pair, on one fixed set
of hosts, so flows per host can be drawn against containers for both models.

Tagged runs every size. Per-pair goes up the same sizes until a run takes longer than the time budget
or the next size would need more entries than the entry budget (the pairs grow with the square of the
containers); the JSON says where and why it stopped. Every point is verified like a single run, and
the exit code is 0 only if every point was.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from rich.console import Console

from vsc.pipeline import ACL_BAND_WIDTH
from vsplab.bench import measure, nfd8

SWEEP_HOSTS = 8
PER_HOST = (1, 2, 3, 4, 6, 12, 25, 50, 125, 250, 625, 1250, 2500)  # 8 ... 20,000 containers on 8 hosts
PAIR_TIME_BUDGET_S = 120.0
PAIR_ENTRY_BUDGET = 300_000
_KEEP = ("model", "hosts", "per_host", "containers", "converged", "convergence_s", "containers_per_s",
         "flows_per_host", "acl_flows_per_host", "flows_total", "acl_entries", "vsd_objects", "flow_mods",
         "peak_rss_total_mb", "verified_pairs", "verified_ok", "phases", "time_series", "load_avg_start",
         "load_avg_end", "verify_s")


def pair_entries(containers: int, direction: str | None = None) -> int:
    """Entries the per-pair model needs for `containers` (counted from the workload's groups and rules),
    of one direction (ingress, egress) or both."""
    from vsplab.bench.workload import Workload

    w = Workload(1, containers, "per-pair")
    size = {}
    for m in w.members:
        for g in m.groups:
            size[g] = size.get(g, 0) + 1
    both = {}
    for m in w.members:
        for r in w.pair_rules:
            if r.location.group in m.groups and r.network.group in m.groups:
                both[id(r)] = both.get(id(r), 0) + 1
    return (sum(size.get(r.location.group, 0) for r in w.single_rules if direction in (None, r.direction))
            + sum(size.get(r.location.group, 0) * size.get(r.network.group, 0) - both.get(id(r), 0)
                  for r in w.pair_rules if direction in (None, r.direction)))


def run_sweep(o, command: str, console: Console, png: Path) -> int:
    out: dict = {"benchmark": "vsplab bench nfd8 --sweep", "command": command, "hosts": SWEEP_HOSTS,
                 "vscs": o.vscs, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load_avg_start": measure.load_average(), "per_pair_budget": {
                     "seconds": PAIR_TIME_BUDGET_S, "entries": PAIR_ENTRY_BUDGET}, "points": []}
    ok = True
    for model in ("tagged", "per-pair"):
        last: tuple[int, float] | None = None  # previous per-pair point: entries, seconds
        for per_host in PER_HOST:
            n = SWEEP_HOSTS * per_host
            if model == "per-pair":
                need = pair_entries(n)
                if need > PAIR_ENTRY_BUDGET:
                    out["per_pair_stopped"] = (f"before {n:,} containers: {need:,} entries needed, over the "
                                               f"budget of {PAIR_ENTRY_BUDGET:,}")
                    break
                # Nuage's entry priorities are unique within a template, so per-pair needs one per entry;
                # the VSC orders at most ACL_BAND_WIDTH distinct ones in a band and refuses the rest.
                widest = max(pair_entries(n, d) for d in ("ingress", "egress"))
                if widest > ACL_BAND_WIDTH:
                    out["per_pair_stopped"] = (f"before {n:,} containers: {widest:,} entries in one direction, "
                                               f"over the {ACL_BAND_WIDTH:,} distinct priorities a VSC band "
                                               "orders (vsc/pipeline.md; the VSC would refuse the rest)")
                    break
                # A run predicted over the budget is not started: its time grows with the flows, i.e. with
                # the entries (every host holds every entry's flows).
                guess = last[1] * need / last[0] if last else 0.0
                if guess > PAIR_TIME_BUDGET_S:
                    out["per_pair_stopped"] = (f"before {n:,} containers ({need:,} entries): predicted "
                                               f"{guess:.0f} s from the previous point (time ~ entries), "
                                               f"over the budget of {PAIR_TIME_BUDGET_S:.0f} s")
                    break
            point = copy.copy(o)
            point.hosts, point.per_host, point.model, point.json = SWEEP_HOSTS, per_host, model, None
            point.timeout = max(o.timeout, 2 * PAIR_TIME_BUDGET_S) if model == "per-pair" else o.timeout
            console.rule(f"{model}: {n:,} containers on {SWEEP_HOSTS} hosts")
            res = nfd8.run_point(point, console, show_progress=False)
            console.print(f"{model} {n:,}: converged in {res.get('convergence_s')} s, flows per host "
                          f"{res.get('flows_per_host')}, ACL flows per host {res.get('acl_flows_per_host')}, "
                          f"verified {res.get('verified_ok')}")
            out["points"].append({k: res.get(k) for k in _KEEP})
            ok = ok and bool(res.get("verified_ok"))
            conv = res.get("convergence_s")
            if model == "per-pair" and conv:
                last = (res["acl_entries"], conv)
            if model == "per-pair" and (conv is None or conv > PAIR_TIME_BUDGET_S):
                out["per_pair_stopped"] = (f"after {n:,} containers: converged in {conv} s, over the budget of "
                                           f"{PAIR_TIME_BUDGET_S:.0f} s" if conv else f"{n:,} containers did not "
                                           f"converge within {point.timeout:.0f} s")
                break
    out["load_avg_end"] = measure.load_average()
    out["verified_ok"] = ok
    path = Path(o.json) if o.json else nfd8.RESULTS / "nfd8-sweep.json"
    nfd8.write_json(out, path)
    console.print(f"wrote {path}; per-pair: {out.get('per_pair_stopped', 'every size ran')}")
    from vsplab.bench.plot import render

    render(nfd8.RESULTS / "nfd8.json", path, png)
    console.print(f"wrote {png}")
    return 0 if ok else 1
