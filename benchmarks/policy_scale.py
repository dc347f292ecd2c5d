"""Policy-group scale benchmark, in this process and with no I/O: ACL flows per host for 64, 500 and 4,000
policy groups in one domain, each with 1,000 and 10,000 endpoints, compiled by the VSC's own compiler
(`vsc.compiler.compile_host`; representation in vsc/tags.py, vsc/pipeline.md "Tags").

    .venv/bin/python benchmarks/policy_scale.py
    .venv/bin/python benchmarks/policy_scale.py --groups 64 500 --endpoints 1000 10000 --hosts 20

Workload (vsplab.workload.tree.tiered): one domain, endpoint i in group i mod G, spread round-robin
over the hosts, a ring of G stateful allow rules gI -> g(I+1) on tcp/1000+I split over ingress and
egress. A rule costs 1 flow between two of the first 64 groups (the bitmap), 4 when one side is a
slot group and 16 when both are. Exits non-zero when the ACL flows of a host change with the number of
endpoints for some group count, when the compiler reports a problem, or when `vsc.acl.predicted_flows`
(what `vsplab lint` predicts) differs from the ACL flows the host got.

Prints the figures and writes benchmarks/results/policy_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsc.acl import predicted_flows  # noqa: E402
from vsc.compiler import compile_host, endpoints_by_domain  # noqa: E402
from vsc.pipeline import Kind, cookie_kind  # noqa: E402
from vsplab.bench.measure import load_average  # noqa: E402
from vsplab.workload.tree import compiler_inputs, tiered  # noqa: E402

ACL_KINDS = (Kind.ACL_ENTRY, Kind.ACL_DEFAULT)


def measure(groups: int, endpoints: int, hosts: int) -> dict:
    tree, placement = tiered(endpoints, hosts, groups, groups)
    t0 = time.perf_counter()
    view, locs = compiler_inputs(tree, placement)
    t1 = time.perf_counter()
    by_domain = endpoints_by_domain(view, locs)
    flows, problems = compile_host(view, locs, 1, by_domain)
    t2 = time.perf_counter()
    kinds = Counter(cookie_kind(f.cookie) for f in flows.values())
    acl = sum(kinds[k] for k in ACL_KINDS)
    (dom,) = view.domains
    predicted = sum(predicted_flows(view, dom).values())
    return {"groups": groups, "endpoints": endpoints, "hosts": hosts, "acl_entries": len(view.acl_entries),
            "acl_flows_per_host": acl, "predicted_acl_flows": predicted, "flows_per_host": len(flows),
            "endpoint_flows_per_host": kinds[Kind.LOCAL_ENDPOINT] + kinds[Kind.REMOTE_ENDPOINT],
            "slot_groups": max(0, groups - 64), "view_load_s": round(t1 - t0, 3), "compile_host_s": round(t2 - t1, 3),
            "problems": problems[:5], "n_problems": len(problems)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, nargs="+", default=[64, 500, 4000])
    ap.add_argument("--endpoints", type=int, nargs="+", default=[1000, 10_000])
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/policy_scale.json"))
    args = ap.parse_args()
    load = load_average()
    runs, failures = [], []
    print(f"{'groups':>7} {'endpoints':>9} {'ACL entries':>11} {'ACL flows/host':>14} {'all flows/host':>14} "
          f"{'compile s':>9}", flush=True)
    for g in args.groups:
        per_g = []
        for n in args.endpoints:
            r = measure(g, n, args.hosts)
            per_g.append(r)
            print(f"{g:>7,} {n:>9,} {r['acl_entries']:>11,} {r['acl_flows_per_host']:>14,} "
                  f"{r['flows_per_host']:>14,} {r['compile_host_s']:>9}", flush=True)
            if r["n_problems"]:
                failures.append(f"{g} groups x {n} endpoints: {r['n_problems']} problems, e.g. {r['problems'][0]}")
            if r["predicted_acl_flows"] != r["acl_flows_per_host"]:
                failures.append(f"{g} groups x {n} endpoints: predicted {r['predicted_acl_flows']} ACL flows, "
                                f"compiled {r['acl_flows_per_host']}")
        if len({r["acl_flows_per_host"] for r in per_g}) != 1:
            failures.append(f"{g} groups: ACL flows per host change with endpoints: "
                            + ", ".join(f"{r['endpoints']:,} -> {r['acl_flows_per_host']:,}" for r in per_g))
        runs += per_g
    result = {"benchmark": "policy_scale", "hosts": args.hosts, "runs": runs,
              "acl_flows_independent_of_endpoints": not any("change with endpoints" in f for f in failures),
              "failures": failures, "load_average_at_start": load, "python": platform.python_version(),
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
