"""VSC compile benchmark, in this process and with no I/O: the VSD snapshot of the NFD8 workload -> logical
view -> desired flows of every VRS, through the same incremental programmer the VSC runs
(`Programmer.refresh_all`), and what one ACL entry change, one membership change and a burst of 1,000 ACL
entries received one by one cost to recompile.

    .venv/bin/python benchmarks/compile.py                  # NFD8: 40 hosts x 500 containers
    .venv/bin/python benchmarks/compile.py --hosts 8 --per-host 100

Nothing here goes over a wire: the rollout through the whole control plane (VSD REST, change stream,
federated VSCs, OpenFlow to simulated VRSs), verified pair by pair, is `vsplab bench nfd8`
(vsplab/bench/), which replaced this file's end-to-end parts. Exits non-zero when the compiler reports
a problem, loses an endpoint, or gives the hosts (all alike in NFD8) different flow counts.

Prints the figures and writes benchmarks/results/compile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsc.core import tune_gc  # noqa: E402
from vsc.locations import Locations  # noqa: E402
from vsc.programmer import Programmer  # noqa: E402
from vsc.view import View  # noqa: E402
from vsplab.bench.measure import load_average, peak_rss_mb  # noqa: E402
from vsplab.workload.tree import nfd8  # noqa: E402


def compile_only(tree, placement) -> dict:
    tune_gc()  # as `vsc run` does
    t0 = time.perf_counter()
    view = View()
    view.load_snapshot(1, tree.objects)
    t1 = time.perf_counter()
    prog = Programmer(view, Locations())
    for m in placement.messages():
        prog.locs.apply(m)
    prog.refresh_all()
    t2 = time.perf_counter()
    per_host = [len(prog.host_desired(d)) for d in placement.hosts]
    changes = incremental(prog, tree)
    return {**changes, "view_load_s": round(t1 - t0, 3), "compile_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3),
            "flows_total": sum(per_host), "flows_per_host_max": max(per_host), "flows_per_host_min": min(per_host),
            "endpoints": len(prog.eps), "problems": sum(len(p) for p in prog.problems.values())}


def incremental(prog: Programmer, tree) -> dict:
    """What one VSD change costs once everything is installed: recompile + minimal ops for all VRSs."""
    for dpid in prog.locs.hosts:
        prog.track(dpid)

    def timed(fn) -> tuple[float, int]:
        t0 = time.perf_counter()
        fn()
        n = sum(len(prog.take(d)) for d in prog.locs.hosts)
        return round((time.perf_counter() - t0) * 1000, 2), n

    entry = next(o for o in tree.objects if o["entityType"] == "egressaclentrytemplate"
                 and o["entity"].get("destinationPort") == "443")
    acl_ms, acl_ops = timed(lambda: prog.on_vsd("UPDATE", "egressaclentrytemplate",
                                                 {**entry["entity"], "destinationPort": "8443"}))
    pg = next(o for o in tree.objects if o["entityType"] == "policygroup" and o["entity"]["name"] == "web")
    members = pg["assoc"]["vport"]
    pg_ms, pg_ops = timed(lambda: prog.on_vsd("UPDATE", "policygroup", pg["entity"], {"vport": members[1:]}))
    burst_s, burst_ops = timed_s(lambda: acl_burst(prog, tree, BURST))
    return {"acl_entry_change_ms": acl_ms, "acl_entry_change_flow_mods": acl_ops,
            "membership_change_ms": pg_ms, "membership_change_flow_mods": pg_ops,
            "acl_burst_entries": BURST, "acl_burst_s": burst_s, "acl_burst_flow_mods": burst_ops,
            "acl_burst_expected_flow_mods": BURST * len(prog.locs.hosts)}


BURST = 1_000


def timed_s(fn) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return round(time.perf_counter() - t0, 3), n


def acl_burst(prog: Programmer, tree, n: int) -> int:
    """`n` new ACL entries (one tcp port each) received one by one, as a client creating them one POST
    at a time makes the stream send them, then the flow-mods of every VRS taken once, as the flusher
    does after a burst: how much a domain's compile costs per entry."""
    tin = next(o["entity"]["ID"] for o in tree.objects if o["entityType"] == "ingressacltemplate")
    first = len(tree.objects)
    for i in range(n):
        tree.entry(tin, "ingress", 5_000 + i, protocol="6", dport=str(40_000 + i))
    for o in tree.objects[first:]:
        prog.on_vsd("CREATE", o["entityType"], o["entity"], o["assoc"])
    return sum(len(prog.take(d)) for d in prog.locs.hosts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=40)
    ap.add_argument("--per-host", type=int, default=500)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile.json"))
    args = ap.parse_args()
    tree, placement = nfd8(args.hosts, args.per_host)
    print(f"NFD8 workload: {args.hosts} hosts x {args.per_host} containers, "
          f"{len(tree.objects)} VSD objects (in-process compile, no I/O)", flush=True)
    res: dict = {"workload": {"hosts": args.hosts, "per_host": args.per_host, "containers": args.hosts * args.per_host},
                 "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                 "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "command": "benchmarks/compile.py" + "".join(f" {a}" for a in sys.argv[1:])}
    # Other jobs on this 2-core machine slow the clock (not the CPU seconds): record them.
    res["load_avg_at_start"] = load_average()
    res["compile"] = c = compile_only(tree, placement)
    res["peak_rss_mb"] = peak_rss_mb(os.getpid())
    print(f"compile: view {c['view_load_s']} s + desired state {c['compile_s']} s -> {c['flows_total']:,} flows "
          f"({c['flows_per_host_min']:,}-{c['flows_per_host_max']:,} per host), {c['endpoints']:,} endpoints, "
          f"{c['problems']} problems", flush=True)
    print(f"incremental (recompile only, nothing sent): one ACL entry changed -> {c['acl_entry_change_flow_mods']} "
          f"flow-mods computed in {c['acl_entry_change_ms']} ms; one vport leaves a group -> "
          f"{c['membership_change_flow_mods']} flow-mods in {c['membership_change_ms']} ms", flush=True)
    print(f"{c['acl_burst_entries']:,} ACL entries received one by one, then taken once: {c['acl_burst_s']} s, "
          f"{c['acl_burst_flow_mods']:,} flow-mods (expected {c['acl_burst_expected_flow_mods']:,})", flush=True)
    ok = (c["problems"] == 0 and c["endpoints"] == args.hosts * args.per_host
          and c["flows_per_host_min"] == c["flows_per_host_max"]
          and c["acl_burst_flow_mods"] == c["acl_burst_expected_flow_mods"])
    res["ok"] = ok
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not ok:
        print("FAILED: the compile reported problems, lost endpoints, gave hosts different flow counts or the "
              "ACL burst other flow-mods than one add per entry and host")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
