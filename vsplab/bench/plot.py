"""The NFD8 figure (PNG, matplotlib's Agg backend: no display needed), drawn from the JSON results:

- left: containers up over time, the full-scale tagged run (nfd8.json) and the sweep's largest
  per-pair run with the tagged run of the same size, against the published line (20,000 in 8 minutes);
- right: flows per host (median) against containers for both models, with the ACL flows among them.
"""

from __future__ import annotations

import json
from pathlib import Path

from vsplab.bench.nfd8 import PUBLISHED


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _curve(res: dict) -> tuple[list[float], list[int]]:
    ts = [p for p in res.get("time_series") or [] if p[0] > 0]
    return [p[0] for p in ts], [p[2] for p in ts]


def render(main_json: Path, sweep_json: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main, sweep = _load(main_json), _load(sweep_json)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    t = [0.5, PUBLISHED["seconds"]]
    left.plot(t, [PUBLISHED["containers"] / PUBLISHED["seconds"] * x for x in t], "k--",
              label=f"published: {PUBLISHED['containers']:,} in {PUBLISHED['seconds']} s, {PUBLISHED['machines']} machines")
    if main:
        x, y = _curve(main)
        left.plot(x, y, "C0", lw=2, label=f"tagged, {main['containers']:,} containers, {main['hosts']} hosts, "
                                           f"{main['vscs']} VSCs: {main.get('convergence_s')} s")
    points = (sweep or {}).get("points", [])
    pairs = [p for p in points if p["model"] == "per-pair" and p.get("time_series")]
    if pairs:
        big = max(pairs, key=lambda p: p["containers"])
        same = next((p for p in points if p["model"] == "tagged" and p["containers"] == big["containers"]), None)
        for p, style in ((big, "C3"), (same, "C0:")):
            if p:
                x, y = _curve(p)
                left.plot(x, y, style, lw=1.5, label=f"{p['model']}, {p['containers']:,} containers, {p['hosts']} hosts: "
                                                     f"{p.get('convergence_s')} s")
    left.set(xscale="log", xlabel="seconds since the first REST call (log)", ylabel="containers up",
             title="Rollout: containers up over time", ylim=(0, None))
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    for model, color in (("tagged", "C0"), ("per-pair", "C3")):
        ps = sorted((p for p in points if p["model"] == model and p.get("flows_per_host")), key=lambda p: p["containers"])
        if ps:
            n = [p["containers"] for p in ps]
            right.plot(n, [p["flows_per_host"]["median"] for p in ps], f"{color}o-", label=f"{model}: flows per host")
            right.plot(n, [max(p["acl_flows_per_host"]["median"], 1) for p in ps], f"{color}s--",
                       label=f"{model}: ACL flows per host")
    if sweep:
        right.set_title(f"Flows per host, {sweep['hosts']} hosts, {sweep['vscs']} VSCs")
    right.set(xscale="log", yscale="log", xlabel="containers", ylabel="flows per host")
    right.grid(True, which="both", alpha=0.3)
    if right.lines:
        right.legend(fontsize=8)
    fig.suptitle("vsplab bench nfd8: tagged policy vs one ACL entry per container pair")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
