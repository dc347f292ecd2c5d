"""The NFD8 figure (PNG, matplotlib's Agg backend: no display needed), drawn from the JSON results:

- left: containers up over time (as a share of each run's containers), the full-scale tagged run
  (nfd8.json) and the sweep's largest per-pair run with the tagged run of the same size, against the
  published line (20,000 in 8 minutes, taken as steady);
- right: flows per host (median) against containers for both models, with the ACL flows among them.
"""

from __future__ import annotations

import json
from pathlib import Path

from vsplab.bench.nfd8 import PUBLISHED


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _draw(ax, res: dict, color: str, lw: float, label: str) -> None:
    """One run as shares of its own total (runs of 48 and of 20,000 containers on one axis): containers
    up (their VRS delivers to them), flows installed (dotted: where per-pair's ACL flows show), and a
    star where the clock stopped (everything installed and acknowledged, every route programmed)."""
    ts = [p for p in res.get("time_series") or [] if p[0] > 0]
    if not ts:
        return
    final = ts[-1][3] or 1
    ax.plot([p[0] for p in ts], [100 * p[2] / res["containers"] for p in ts], color=color, lw=lw, label=label)
    ax.plot([p[0] for p in ts], [100 * p[3] / final for p in ts], color=color, lw=1, ls=":")
    if res.get("convergence_s"):
        ax.plot([res["convergence_s"]], [100], marker="*", ms=11, color=color)


def render(main_json: Path, sweep_json: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main, sweep = _load(main_json), _load(sweep_json)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    t = [0.2, PUBLISHED["seconds"]]
    left.plot(t, [100 * x / PUBLISHED["seconds"] for x in t], "k--",
              label=f"published: {PUBLISHED['containers']:,} in {PUBLISHED['seconds']} s, {PUBLISHED['machines']} machines")
    if main:
        _draw(left, main, "C0", 2, f"tagged, {main['containers']:,} containers, {main['hosts']} hosts, "
                                   f"{main['vscs']} VSCs: converged at {main.get('convergence_s')} s")
    points = (sweep or {}).get("points", [])
    pairs = [p for p in points if p["model"] == "per-pair" and p.get("time_series")]
    if pairs:
        big = max(pairs, key=lambda p: p["containers"])
        same = next((p for p in points if p["model"] == "tagged" and p["containers"] == big["containers"]), None)
        for p, color in ((big, "C3"), (same, "C2")):
            if p:
                _draw(left, p, color, 1.5, f"{p['model']}, {p['containers']:,} containers, {p['hosts']} hosts: "
                                           f"converged at {p.get('convergence_s')} s")
    left.set(xscale="log", xlabel="seconds since the first REST call (log)",
             ylabel="% of the run's containers up (solid) / flows installed (dotted)",
             title="Rollout over time (star: converged)", ylim=(0, 105))
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7.5, loc="lower right")
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
