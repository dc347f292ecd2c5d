"""Emu checks benchmark: how long checking 1,000 expectations with real packets takes in emu mode, with
the probes one at a time on 8 threads (`sequential`, as before) and many in flight from one event loop
(`concurrent`, vsplab/emu/volley.py), on the same lab in one run.

    .venv/bin/python benchmarks/emu_checks.py                        # 1,000 expectations, both ways
    .venv/bin/python benchmarks/emu_checks.py --expectations 200 --probing concurrent

The lab is the generated three-tier scenario of scenarios/emu-scale.yaml (4 hosts, 40 containers;
vsplab/emu/scale.py) with its expectations extended to `--expectations` by more pairs of the same
policy: web -> app tcp/8080, app -> db tcp/5432 and ICMP within web allowed; the reverse directions,
a skipped tier, other ports and protocols, and UDP denied (about two thirds of them). Concurrent
checks confirm their denials with the datapaths' drop counters (vsplab/emu/drops.py), as a lab does. Prints both times;
writes benchmarks/results/emu_checks.json; exits 1 if any expectation fails or the two ways give
any expectation a different verdict. Needs root and Open vSwitch, and no other emulated lab running.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from rich.console import Console  # noqa: E402

from vsplab.emu.check import PROBING, check_expectations  # noqa: E402
from vsplab.emu.drops import drop_count  # noqa: E402
from vsplab.emu.lab import EmuLab  # noqa: E402
from vsplab.emu.scale import scale_scenario  # noqa: E402
from vsplab.scenario.check import load_scenario  # noqa: E402

# (source tier, destination tier, protocol, port) -> verdict under the generated scenario's policy
KINDS = [("web", "app", "tcp", 8080, "allow"), ("app", "db", "tcp", 5432, "allow"), ("web", "web", "icmp", None, "allow"),
         ("app", "web", "tcp", 8080, "deny"), ("db", "app", "tcp", 5432, "deny"), ("web", "db", "tcp", 5432, "deny"),
         ("web", "app", "tcp", 22, "deny"), ("app", "db", "icmp", None, "deny"), ("web", "app", "udp", 8080, "deny"),
         ("db", "web", "icmp", None, "deny")]


def scenario_with(expectations: int, hosts: int = 4, containers: int = 40) -> dict:
    """The scale scenario with its own expectations first, then more pairs round-robin over KINDS."""
    s = scale_scenario(hosts, containers)
    tiers: dict[str, list[str]] = {}
    for c in s["containers"]:
        tiers.setdefault(c["groups"][0], []).append(c["name"])
    expect = s["expect"][:expectations]
    have = {(x["from"], x["to"], x["protocol"], x.get("port")) for x in expect}
    pairs = [[(a, b, *kind[2:]) for a, b in itertools.product(tiers[kind[0]], tiers[kind[1]]) if a != b]
             for kind in KINDS]
    for batch in itertools.zip_longest(*pairs):
        for p in batch:
            if p is None or len(expect) >= expectations or p[:4] in have:
                continue
            have.add(p[:4])
            x = {"from": p[0], "to": p[1], "protocol": p[2], "expect": p[4]}
            if p[3] is not None:
                x["port"] = p[3]
            expect.append(x)
    if len(expect) < expectations:
        raise SystemExit(f"only {len(expect)} distinct expectations in a lab of {containers} containers")
    s["expect"], s["name"] = expect, "emu-checks"
    return s


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--expectations", type=int, default=1000)
    ap.add_argument("--probing", choices=("both", *PROBING), default="both")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "emu_checks.json"))
    args = ap.parse_args()
    console = Console()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(scenario_with(args.expectations), f, sort_keys=False)
    scenario = load_scenario(f.name)
    os.unlink(f.name)
    ways = list(PROBING)[::-1] if args.probing == "both" else [args.probing]  # the old way first
    runs: dict[str, dict] = {}
    verdicts: dict[str, list[str]] = {}
    result: dict = {"expectations": len(scenario.expect), "hosts": len(scenario.hosts),
                    "containers": len(scenario.containers), "loadavg_at_start": loadavg(),
                    "command": "benchmarks/emu_checks.py " + " ".join(sys.argv[1:])}
    with EmuLab(scenario, console=Console(file=io.StringIO())) as lab:
        with console.status("emu lab: starting, pushing, plugging"):
            lab.start()
            lab.push()
            lab.plug()
            lab.wait_converged(timeout=300)
        for way in ways:
            with console.status(f"checking {len(scenario.expect)} expectations, probing {way}"):
                t0 = time.perf_counter()
                notes: dict[str, str] = {}
                results = check_expectations(lab.listeners, scenario, lab.placed, probing=way, notes=notes,
                                             drops=lambda: drop_count((h.ovs, "br-int") for h in lab.hosts.values()))
                seconds = time.perf_counter() - t0
            failed = [r for r in results if not r.passed]
            verdicts[way] = [r.observed for r in results]
            runs[way] = {"seconds": round(seconds, 2), "passed": len(results) - len(failed), "failed": len(failed),
                         "denied": sum(r.observed == "deny" for r in results), "loadavg_after": loadavg(),
                         "notes": notes, "failures": [f"{r.label}: expected {r.expected}, observed {r.observed} {r.detail}"
                                      for r in failed[:20]]}
            console.print(f"{way:>10}: {len(results)} expectations in {seconds:6.1f} s, "
                          f"{len(results) - len(failed)} passed, {len(failed)} failed")
            for line in notes.values():
                console.print(f"    {line}")
            for line in runs[way]["failures"]:
                console.print(f"    [red]{line}[/]")
    differ = []
    if len(verdicts) == 2:
        a, b = verdicts.values()
        differ = [f"{x.from_} -> {x.to} {x.protocol}/{x.port}: {va} vs {vb}"
                  for x, va, vb in zip(scenario.expect, a, b, strict=True) if va != vb]
        for line in differ[:20]:
            console.print(f"[red]verdicts differ[/] {line}")
        result["speedup"] = round(runs["sequential"]["seconds"] / runs["concurrent"]["seconds"], 1)
        console.print(f"concurrent is {result['speedup']}x faster; verdicts "
                      + ("identical" if not differ else f"differ for {len(differ)}"))
    result.update(runs=runs, verdicts_differ=differ, loadavg_at_end=loadavg())
    ok = not differ and all(r["failed"] == 0 for r in runs.values())
    result["ok"] = ok
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"load {result['loadavg_at_start']} at the start, {result['loadavg_at_end']} at the end; "
                  f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
