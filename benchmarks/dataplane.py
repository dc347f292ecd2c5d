"""Data-plane benchmark: iperf3 TCP through the overlay against a plain veth pair, on this machine, in
one run.

    .venv/bin/python benchmarks/dataplane.py                 # 3 rounds of 5 s per path
    .venv/bin/python benchmarks/dataplane.py --seconds 10 --rounds 5

Paths, measured in alternating rounds so a change in the machine's load hits each alike:
- overlay: an emulated lab (vsplab/emu: two hosts, each a namespace with its own netdev ovs-vswitchd
  and `vrs`, the VSC programming them) with one container per host; iperf3 -s in one container's
  namespace, iperf3 -c in the other's, so every packet crosses the VSC's pipeline (conntrack, ACLs)
  and VXLAN in the userspace datapath on both hosts. Once per underlay MTU (default 1500, the
  emulator's default, then 9000: jumbo frames, as a datacentre underlay would have);
- veth: two fresh namespaces joined by one veth pair, kernel defaults (MTU 1500, offloads on): the
  project's anchor (overlay >= 80% of this);
- veth with the containers' settings (MTU = underlay MTU - 50, TX checksum offload off, which also
  turns TSO off), to show how much of the gap is those settings rather than the switch.

Prints Mbit/s of each path and the ratios; writes benchmarks/results/dataplane.json. Needs root, Open
vSwitch and iperf3 (scripts/system-deps), and no other emulated lab running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from vsplab.emu.check import container_netns  # noqa: E402
from vsplab.emu.lab import EmuLab  # noqa: E402
from vsplab.emu.netns import netns_add, netns_delete, run  # noqa: E402
from vsplab.scenario.check import load_scenario  # noqa: E402

ANCHOR = 0.80  # overlay TCP throughput / plain veth pair
PORT = 5201
VETH_NS = ("vl-bench-a", "vl-bench-b")
VETH_IPS = ("10.250.0.1", "10.250.0.2")

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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def iperf3(client_ns: str, server_ns: str, server_ip: str, seconds: float, watch: dict[str, int] | None = None) -> dict:
    """One iperf3 TCP test; the server is started for it and stopped after it (by its pid). `watch`:
    name -> pid of processes whose CPU use during the test is reported (the switches)."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip,
                               "-p", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 10
        while f"{server_ip}:{PORT}" not in run("ss", "-ltnH", ns=server_ns, check=False):
            if server.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"iperf3 server in {server_ns} did not start: {server.stderr.read()!r}")
            time.sleep(0.05)
        cpu0, t0 = {k: cpu_seconds(p) for k, p in (watch or {}).items()}, time.monotonic()
        out = run("iperf3", "-c", server_ip, "-p", str(PORT), "-t", str(seconds), "-J", ns=client_ns,
                  timeout=seconds + 30)
        busy = {k: round(100 * (cpu_seconds(p) - cpu0[k]) / (time.monotonic() - t0)) for k, p in (watch or {}).items()}
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(10)
    doc = json.loads(out)
    if "error" in doc:
        raise RuntimeError(f"iperf3 {client_ns} -> {server_ip}: {doc['error']}")
    end = doc["end"]
    extra = {"cpu_percent_of_one_core": busy} if busy else {}
    return {**extra, "mbit_s": end["sum_received"]["bits_per_second"] / 1e6,
            "retransmits": end["sum_sent"].get("retransmits"),
            "sender_cpu_percent": end["cpu_utilization_percent"]["host_total"],
            "receiver_cpu_percent": end["cpu_utilization_percent"]["remote_total"]}


class VethPair:
    """Two namespaces and one veth pair between them, removed on exit."""

    def __enter__(self) -> VethPair:
        for ns in VETH_NS:
            if Path(f"/var/run/netns/{ns}").exists():
                raise RuntimeError(f"namespace {ns} exists: another benchmark running, or a leftover "
                                   f"(`ip netns del {ns}` once sure it is not in use)")
        try:
            for ns in VETH_NS:
                netns_add(ns)
            run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", VETH_NS[1],
                ns=VETH_NS[0])
            for ns, ip in zip(VETH_NS, VETH_IPS, strict=True):
                run("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
                run("ip", "link", "set", "eth0", "up", ns=ns)
            self.defaults()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _set(self, mtu: int, tx: str) -> None:
        for ns in VETH_NS:
            run("ip", "link", "set", "eth0", "mtu", str(mtu), ns=ns)
            run("ethtool", "-K", "eth0", "tx", tx, ns=ns)

    def defaults(self) -> None:
        self._set(1500, "on")

    def as_container(self, mtu: int) -> None:
        self._set(mtu, "off")

    def __exit__(self, *exc) -> None:
        for ns in VETH_NS:
            netns_delete(ns)


def machine() -> dict:
    load = os.getloadavg()
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in load],
            "ovs": run("ovs-vswitchd", "--version").splitlines()[0],
            "iperf3": run("iperf3", "--version").splitlines()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each iperf3 test")
    ap.add_argument("--rounds", type=int, default=3, help="tests per path (alternating paths)")
    ap.add_argument("--underlay-mtu", type=int, nargs="+", default=[1500, 9000],
                    help="one emulated lab per underlay MTU (the first is the emulator's default)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dataplane.json"))
    args = ap.parse_args()
    console = Console()
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataplane.yaml"
        path.write_text(SCENARIO)
        scenario = load_scenario(str(path))
    runs: dict[str, list[dict]] = {"veth": []}
    ovs_rss = {}
    for mtu in args.underlay_mtu:
        with EmuLab(scenario, console=console, underlay_mtu=mtu) as lab, VethPair() as veth:
            lab.start()
            lab.push()
            lab.plug()
            lab.wait_converged(timeout=60)
            report = lab.check()
            if not report.ok:
                report.print(console)
                raise SystemExit("the lab's expectations fail: no throughput to measure")
            client, server = lab.placed["iperf-c"], lab.placed["iperf-s"]
            overlay, settings = f"overlay, underlay MTU {mtu}", f"veth, MTU {lab.container_mtu}, TX csum off"
            runs[overlay], runs[settings] = [], []
            for r in range(args.rounds):
                switches = {f"ovs-vswitchd {h.name}": h.ovs.pid("ovs-vswitchd") for h in lab.hosts.values()}
                runs[overlay].append(iperf3(container_netns(client.name), container_netns(server.name), server.ip,
                                            args.seconds, watch=switches))
                veth.defaults()
                runs["veth"].append(iperf3(VETH_NS[0], VETH_NS[1], VETH_IPS[1], args.seconds))
                veth.as_container(lab.container_mtu)
                runs[settings].append(iperf3(VETH_NS[0], VETH_NS[1], VETH_IPS[1], args.seconds))
                console.print(f"underlay MTU {mtu}, round {r + 1}/{args.rounds}: " + ", ".join(
                    f"{k} {runs[k][-1]['mbit_s']:.0f} Mbit/s" for k in (overlay, "veth", settings)))
            ovs_rss[f"underlay MTU {mtu}"] = {h.name: h.ovs.rss_kb() for h in lab.hosts.values()}
    median = {k: statistics.median(x["mbit_s"] for x in v) for k, v in runs.items()}
    # the anchor is about the emulator as it runs by default: the first underlay MTU given (1500)
    anchor_key = f"overlay, underlay MTU {args.underlay_mtu[0]}"
    ratios = {k: round(v / median["veth"], 4) for k, v in median.items() if k.startswith("overlay")}
    ratio = median[anchor_key] / median["veth"]
    result = {
        "benchmark": "dataplane", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": info,
        "seconds_per_test": args.seconds, "rounds": args.rounds,
        "median_mbit_s": {k: round(v, 1) for k, v in median.items()},
        "overlay_over_veth": ratios,
        "anchor": ANCHOR, "anchor_measured_on": anchor_key, "anchor_ratio": round(ratio, 4),
        "meets_anchor": ratio >= ANCHOR,
        "runs": {k: [{f: (round(val, 2) if isinstance(val, float) else val) for f, val in x.items()} for x in v]
                 for k, v in runs.items()},
        "ovs_rss_kb": ovs_rss,
        "overlay_path": "container veth -> br-int (netdev datapath, the VSC's pipeline with conntrack) -> vxlan0 "
                        "-> br-phy -> underlay veth -> Linux bridge -> the peer host, the same way up; container "
                        "MTU = underlay MTU - 50, TX checksum offload off (needed by the userspace datapath)",
        "veth_path": "two namespaces, one veth pair, kernel defaults (MTU 1500, TSO/GSO and checksum offload on)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for k, v in median.items():
        console.print(f"{k:<40} {v:8.0f} Mbit/s" + (f"  ({v / median['veth']:.1%} of plain veth)"
                                                     if k.startswith("overlay") else ""))
    console.print(f"anchor: overlay >= {ANCHOR:.0%} of a plain veth pair; measured {ratio:.1%} "
                  f"({anchor_key}): {'met' if ratio >= ANCHOR else 'NOT met'}")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
