"""How fast the teaching page answers for a large lab: 40 simulated hosts x 50 containers (2,000), one
domain of 8 tiers, brought up through the whole control plane by the real command line
(`vsplab run GENERATED.yaml --ui`: VSD REST push, VSC, OpenFlow to 40 simulated VRSs), then each page
fetched over HTTP - topology, its live fragment, policy matrix, a host's flows (all, and filtered),
a trace (request and reply) - and timed. Prints the figures, writes benchmarks/results/ui.json and
exits 1 if a page fails or its median misses the target.

    .venv/bin/python benchmarks/ui.py [--hosts 40 --per-host 50 --repeat 7 --target-ms 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from vsplab.ui.launch import UiProcess

ROOT = Path(__file__).resolve().parent.parent
TIERS = 8


def scenario(hosts: int, per_host: int) -> dict:
    """A chain of tiers: tier i may open tcp/8000+i to tier i+1, statefully; everything else denied."""
    groups = [f"tier{i}" for i in range(TIERS)]
    rules = [{"from": groups[i], "to": groups[i + 1], "protocol": "tcp", "port": 8000 + i, "stateful": True}
             for i in range(TIERS - 1)]
    n = hosts * per_host
    per_subnet = -(-n // TIERS)
    if per_subnet > 250:
        raise SystemExit(f"--hosts x --per-host = {n}: at most {250 * TIERS} containers (one /24 per tier)")
    containers = [{"name": f"c{i}", "host": f"host{i % hosts + 1}", "subnet": f"net{i % TIERS}",
                   "groups": [groups[i % TIERS]], "ip": f"10.{i % TIERS}.{i // TIERS // 250}.{i // TIERS % 250 + 2}"}
                  for i in range(n)]
    return {
        "name": "ui-bench", "description": f"{hosts} hosts x {per_host} containers for the teaching page",
        "controllers": [{"name": "vsc1"}],
        "hosts": [{"name": f"host{h + 1}", "vsc": "vsc1"} for h in range(hosts)],
        "enterprises": [{"name": "acme", "domains": [{
            "name": "prod",
            "zones": [{"name": f"z{t}", "subnets": [{"name": f"net{t}", "address": f"10.{t}.0.0/16"}]}
                      for t in range(TIERS)],
            "policy_groups": groups,
            "ingress": {"default_allow_ip": False, "rules": rules},
            "egress": {"default_allow_ip": False, "rules": rules}}]}],
        "containers": containers,
        "expect": [{"from": "c0", "to": "c1", "protocol": "tcp", "port": 8000, "expect": "allow"},
                   {"from": "c0", "to": "c2", "protocol": "tcp", "port": 8000, "expect": "deny"}],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=40)
    ap.add_argument("--per-host", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=7, help="timed fetches per page, after one untimed")
    ap.add_argument("--target-ms", type=float, default=200.0)
    ap.add_argument("--timeout", type=float, default=600.0, help="s to wait for the lab and its page")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "ui.json"))
    args = ap.parse_args(argv)
    n = args.hosts * args.per_host
    pages = {
        "topology": "",
        "topology fragment (live update)": "fragment/topology",
        "live-update poll": "api/version",
        "policy matrix": "matrix",
        "flows (host1, all)": "flows?host=host1",
        "flows (host1, table 45)": "flows?host=host1&table=45",
        "trace c0 -> c1 tcp/8000 (delivered, request and reply)": "trace?from=c0&to=c1&proto=tcp&port=8000",
        "trace c0 -> c2 tcp/8000 (dropped)": "trace?from=c0&to=c2&proto=tcp&port=8000",
    }
    with tempfile.TemporaryDirectory(prefix="vl-ui-bench-") as tmp:
        path = Path(tmp) / "ui-bench.yaml"
        path.write_text(yaml.safe_dump(scenario(args.hosts, args.per_host), sort_keys=False))
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        with UiProcess(["run", str(path), "--ui"], env={"VSPLAB_LABS_DIR": str(Path(tmp) / "labs")},
                       timeout=args.timeout) as lab, httpx.Client(timeout=60) as http:
            url = lab.url
            up = time.perf_counter() - t0
            print(f"lab of {args.hosts} hosts x {args.per_host} containers up with its page in {up:.1f} s: {url}")
            results, failures = {}, []
            for name, rel in pages.items():
                first_t = time.perf_counter()
                r = http.get(url + rel)
                first = (time.perf_counter() - first_t) * 1000
                times, size = [], len(r.content)
                ok = r.status_code == 200
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = http.get(url + rel)
                    times.append((time.perf_counter() - t) * 1000)
                    ok = ok and r.status_code == 200
                med = statistics.median(times)
                results[name] = {"path": "/" + rel, "status": r.status_code, "bytes": size, "first_ms": round(first, 1),
                                 "median_ms": round(med, 1), "max_ms": round(max(times), 1)}
                verdict = "ok" if ok and med < args.target_ms else "MISSED" if ok else f"FAILED ({r.status_code})"
                if verdict != "ok":
                    failures.append(name)
                print(f"  {name:58s} median {med:6.1f} ms  max {max(times):6.1f}  first {first:6.1f}  "
                      f"{size / 1024:7.1f} KiB  {verdict}")
            counts = http.get(url + "api/version").json()
    ok = not failures and counts["containers"] == n and counts["hosts"] == args.hosts
    out = {"benchmark": "ui", "command": " ".join(["benchmarks/ui.py", *(argv or sys.argv[1:])]),
           "hosts": args.hosts, "containers": n, "lab_seen_by_page": counts, "lab_up_s": round(up, 1),
           "target_ms": args.target_ms, "repeat": args.repeat, "load_at_start": round(load0, 2),
           "pages": results, "ok": ok, "failed": failures}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    worst = max(results.values(), key=lambda r: r["median_ms"])
    print(f"{'all pages' if ok else 'NOT all pages'} under {args.target_ms:.0f} ms (median of {args.repeat}); "
          f"slowest {worst['path']} {worst['median_ms']} ms; page saw {counts['containers']} containers on "
          f"{counts['hosts']} hosts; wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
