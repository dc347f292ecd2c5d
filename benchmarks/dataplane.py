"""Data-plane benchmark: iperf3 TCP through the emulated overlay against its own ceiling (one bridge of
the same datapath) and against a plain veth pair, on this machine, in one run.

    .venv/bin/python benchmarks/dataplane.py                       # 3 rounds of 10 s per path
    .venv/bin/python benchmarks/dataplane.py --quiet-load 0.8       # first wait (up to 25 min) for a quiet machine
    .venv/bin/python benchmarks/dataplane.py --configs netdev --rounds 1 --seconds 3

One configuration is a data plane (vsplab.scenario.model.Dataplane); for each, in alternating rounds
so a change in the machine's load hits every path alike:
- veth: two namespaces, one veth pair, kernel defaults (benchmarks/dataplane_paths.py);
- one bridge: one ovs-vswitchd with one bridge doing NORMAL between two namespaces set up like the
  emulator's containers (same MTU, TX checksum offload off, same port type): the ceiling;
- overlay: an emulated lab (vsplab/emu: two hosts, each a namespace with its own ovs-vswitchd and
  `vrs`, the VSC programming them) with one container per host; every packet crosses the VSC's
  pipeline (conntrack, ACLs) and VXLAN on both hosts;
- netdev only: one bridge again, its packet sockets left at the kernel's default receive buffer as
  OVS leaves them (what vsplab/emu/sockbuf.py is worth; frames dropped there are counted).

Configurations: `netdev` (the emulator's default: underlay MTU 9000, containers at the largest MTU
that fits, 8950), `netdev-1500` (containers at 1500), `afxdp` (AF_XDP ports with a PMD thread per
ovs-vswitchd, underlay 3500, containers 3450; left out, with the reason, where unsupported). The
ratio is overlay / one bridge within a configuration: the same container MTU and port type.

Each path's cost is also taken from the whole machine's busy time during its tests (/proc/stat, so
the kernel's work counts wherever it ran): Mbit/s per busy core, and for the overlay the most the
machine's cores could carry at that cost ("bound"), which says whether the overlay is held by CPU.

Prints Mbit/s per path and the ratios; writes benchmarks/results/dataplane.json, with the machine's
load at the start and the end (figures taken under load mean little). Needs root, Open vSwitch and
iperf3 (scripts/system-deps), and no other emulated lab running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataplane_paths import PORT, OneBridge, VethPair, iperf3, packet_socket_drops  # noqa: E402
from rich.console import Console  # noqa: E402

from vsplab.emu.check import container_netns  # noqa: E402
from vsplab.emu.datapath import DatapathUnsupported, kernel_lacks_afxdp  # noqa: E402
from vsplab.emu.lab import EmuLab  # noqa: E402
from vsplab.emu.netns import run  # noqa: E402
from vsplab.scenario.check import load_scenario  # noqa: E402
from vsplab.scenario.model import Dataplane  # noqa: E402

CONFIGS = {"netdev": Dataplane(), "netdev-1500": Dataplane(container_mtu=1500),
           "afxdp": Dataplane(datapath="afxdp")}
STOCK = "one bridge, default buffers"
TARGET_RATIO = 0.90  # overlay / one bridge, same configuration
TARGET_MBIT_S = 2500  # the overlay with the default (9000-byte) underlay

SCENARIO = f"""
name: dataplane-bench
description: two containers on two emulated hosts, iperf3 allowed between them
hosts: [{{name: host1}}, {{name: host2}}]
enterprises:
  - name: bench
    domains:
      - name: d
        zones: [{{name: z, subnets: [{{name: net, address: 10.9.0.0/24}}]}}]
        policy_groups: [all]
        ingress: {{default_allow_ip: false, rules: [{{from: all, to: all, protocol: tcp, port: {PORT}-{PORT + 1}}}]}}
        egress: {{default_allow_ip: false, rules: [{{from: all, to: all, protocol: tcp, port: {PORT}-{PORT + 1}}}]}}
containers:
  - {{name: iperf-c, host: host1, subnet: net, groups: [all], ip: 10.9.0.11}}
  - {{name: iperf-s, host: host2, subnet: net, groups: [all], ip: 10.9.0.12}}
expect:
  # the lab's own echo listener takes this port for the check; iperf3 gets PORT
  - {{from: iperf-c, to: iperf-s, protocol: tcp, port: {PORT + 1}, expect: allow}}
"""


class Overlay:
    """The emulated lab with one container per host, ready for iperf3."""

    def __init__(self, scenario, dataplane: Dataplane, console: Console) -> None:
        self.lab = EmuLab(scenario, console=console, dataplane=dataplane)
        self.label = (f"overlay: two emulated hosts, {dataplane.datapath} ports, VXLAN over an underlay MTU "
                      f"{dataplane.underlay}, container MTU {dataplane.container}, the VSC's pipeline (conntrack)")

    def __enter__(self) -> Overlay:
        lab = self.lab.__enter__()
        try:
            lab.start()
            lab.push()
            lab.plug()
            lab.wait_converged(timeout=60)
            report = lab.check()
            if not report.ok:
                raise SystemExit("the lab's expectations fail: no throughput to measure")
        except BaseException:
            self.lab.__exit__(*sys.exc_info())
            raise
        return self

    def measure(self, seconds: float) -> dict:
        client, server = self.lab.placed["iperf-c"], self.lab.placed["iperf-s"]
        switches = {f"ovs-vswitchd {h.name}": h.ovs.pid("ovs-vswitchd") for h in self.lab.hosts.values()}
        hosts = [h.ns for h in self.lab.hosts.values()]
        drops = packet_socket_drops(hosts)
        r = iperf3(container_netns(client.name), container_netns(server.name), server.ip, seconds, watch=switches)
        return {**r, "packet_socket_drops": packet_socket_drops(hosts) - drops}

    def rss_kb(self) -> dict:
        return {h.name: h.ovs.rss_kb() for h in self.lab.hosts.values()}

    def __exit__(self, *exc) -> None:
        self.lab.__exit__(*exc)


def wait_quiet(limit: float | None, patience: float, console: Console) -> dict:
    """Poll the 1-minute load every 30 s until it is below `limit` (or `patience` seconds pass)."""
    t0 = time.monotonic()
    while limit is not None and os.getloadavg()[0] >= limit and time.monotonic() - t0 < patience:
        console.print(f"load {os.getloadavg()[0]:.2f} >= {limit}: waiting for a quiet machine "
                      f"({time.monotonic() - t0:.0f}/{patience:.0f} s)")
        time.sleep(30)
    load = os.getloadavg()[0]
    return {"quiet_load_wanted": limit, "waited_s": round(time.monotonic() - t0),
            "quiet": limit is None or load < limit}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "ovs": run("ovs-vswitchd", "--version").splitlines()[0],
            "iperf3": run("iperf3", "--version").splitlines()[0]}


def measure_config(name: str, dataplane: Dataplane, scenario, args, console: Console) -> dict:
    """veth, one bridge and the overlay of one configuration, alternating, `args.rounds` times each; for
    netdev also one bridge as OVS leaves its packet sockets (what the emulator's tuning is worth)."""
    stock = OneBridge(dataplane, tuned=False) if dataplane.datapath == "netdev" else contextlib.nullcontext()
    with VethPair() as veth, OneBridge(dataplane) as bridge, stock as untuned, \
            Overlay(scenario, dataplane, console) as overlay:
        paths = {"veth": veth, "one bridge": bridge, "overlay": overlay}
        if untuned is not None:
            paths[STOCK] = untuned
        runs: dict[str, list[dict]] = {k: [] for k in paths}
        for r in range(args.rounds):
            for key, path in paths.items():
                runs[key].append(path.measure(args.seconds))
            console.print(f"{name}, round {r + 1}/{args.rounds}: "
                          + ", ".join(f"{k} {v[-1]['mbit_s']:.0f} Mbit/s" for k, v in runs.items()))
        rss = overlay.rss_kb()
    median = {k: round(statistics.median(x["mbit_s"] for x in v), 1) for k, v in runs.items()}
    cores = {k: round(statistics.median(x["machine_busy_cores"] for x in v), 2) for k, v in runs.items()}
    per_core = {k: round(median[k] / cores[k], 1) for k in median}
    bound = round(per_core["overlay"] * (os.cpu_count() or 1), 1)
    return {"dataplane": {"datapath": dataplane.datapath, "underlay_mtu": dataplane.underlay,
                          "container_mtu": dataplane.container},
            "paths": {k: p.label for k, p in paths.items()},
            "median_mbit_s": median,
            "overlay_over_one_bridge": round(median["overlay"] / median["one bridge"], 4),
            "machine_busy_cores": cores, "mbit_s_per_busy_core": per_core,
            "overlay_cost_over_one_bridge": round(per_core["one bridge"] / per_core["overlay"], 2),
            "overlay_bound_mbit_s": bound, "overlay_bound_over_one_bridge": round(bound / median["one bridge"], 4),
            "overlay_over_veth": round(median["overlay"] / median["veth"], 4),
            **({"overlay_over_one_bridge_default_buffers": round(median["overlay"] / median[STOCK], 4)}
               if STOCK in median else {}),
            "runs": {k: [{f: (round(val, 2) if isinstance(val, float) else val) for f, val in x.items()} for x in v]
                     for k, v in runs.items()},
            "ovs_rss_kb": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each iperf3 test")
    ap.add_argument("--rounds", type=int, default=3, help="tests per path (alternating paths)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--quiet-load", type=float, help="first wait until the 1-minute load is below this")
    ap.add_argument("--patience", type=float, default=1500, help="seconds to wait for --quiet-load at most")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dataplane.json"))
    args = ap.parse_args()
    console = Console()
    waited = wait_quiet(args.quiet_load, args.patience, console)
    start_load, t0 = loadavg(), time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataplane.yaml"
        path.write_text(SCENARIO)
        scenario = load_scenario(str(path))
    configs, left_out = {}, {}
    for name in args.configs:
        dp = CONFIGS[name]
        try:
            if dp.datapath != "netdev" and (why := kernel_lacks_afxdp()):
                raise DatapathUnsupported(why)
            configs[name] = measure_config(name, dp, scenario, args, console)
        except DatapathUnsupported as e:
            left_out[name] = str(e)
            console.print(f"[yellow]{name} left out[/]: {e}")
    result = {
        "benchmark": "dataplane", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "benchmarks/dataplane.py " + " ".join(sys.argv[1:]), "machine": machine(),
        "load": {**waited, "loadavg_at_start": start_load, "loadavg_at_end": loadavg(),
                 "duration_s": round(time.monotonic() - t0)},
        "seconds_per_test": args.seconds, "rounds": args.rounds, "streams": 1,
        "configs": configs, "left_out": left_out,
        "targets": targets(configs),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, c in configs.items():
        m = c["median_mbit_s"]
        console.print(f"{name}: veth {m['veth']:.0f}, one bridge {m['one bridge']:.0f}, overlay {m['overlay']:.0f} "
                      f"Mbit/s: overlay {c['overlay_over_one_bridge']:.1%} of one bridge, "
                      f"{c['overlay_over_veth']:.1%} of veth; busy cores {c['machine_busy_cores']}; the overlay "
                      f"costs {c['overlay_cost_over_one_bridge']}x the bridge's CPU per bit, so "
                      f"{os.cpu_count()} cores carry at most {c['overlay_bound_mbit_s']:.0f} Mbit/s of it "
                      f"({c['overlay_bound_over_one_bridge']:.0%} of one bridge)")
    for t in result["targets"]:
        console.print(f"target {t['what']}: {t['measured']} ({t['on']}): {'met' if t['met'] else 'NOT met'}")
    console.print(f"load {start_load} at the start, {result['load']['loadavg_at_end']} at the end; wrote {args.out}")
    return 0


def targets(configs: dict) -> list[dict]:
    out = []
    for name in ("netdev", "netdev-1500"):
        if name in configs:
            c = configs[name]
            ratio = c["overlay_over_one_bridge"]
            out.append({"what": f"overlay >= {TARGET_RATIO:.0%} of one bridge, same container MTU",
                        "on": f"{name}: containers {c['dataplane']['container_mtu']} on both paths, the overlay's "
                              "underlay 9000", "measured": ratio, "met": ratio >= TARGET_RATIO})
    if "netdev" in configs:
        mbit = configs["netdev"]["median_mbit_s"]["overlay"]
        out.append({"what": f"overlay >= {TARGET_MBIT_S} Mbit/s with the default underlay (9000)",
                    "on": f"netdev, the emulator's default (container MTU {configs['netdev']['dataplane']['container_mtu']})",
                    "measured": mbit, "met": mbit >= TARGET_MBIT_S})
    return out


if __name__ == "__main__":
    sys.exit(main())
