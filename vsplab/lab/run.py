"""`vsplab run SCENARIO --mode sim`: the whole control plane on loopback.

    VSD (subprocess, SQLite in the lab dir)  <-- the scenario's objects, through the REST API
      | change stream
    VSC per controller (subprocess: os-ken, OpenFlow 1.3 on TCP)
      | OpenFlow + agent channel
    simulated VRSs (this process, one asyncio thread) --- traces check every expectation

Everything started here is stopped in `SimLab.close()`, which runs on success, failure and Ctrl-C.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console

from vsplab.lab.base import Lab, drive
from vsplab.lab.probe import check_expectations, probe, walk_pass
from vsplab.report import LabReport

VTEP_BASE = "172.30.0."  # underlay addresses of simulated hosts (never leave the process)


class SimLab(Lab):
    """One scenario's lab in sim mode. Use as a context manager; `close()` stops everything."""

    MODE = "sim"
    STEPS = {"check": "tracing every expectation", "switches": "simulated VRSs"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime = None

    # --- bring-up -------------------------------------------------------------------------------

    def start(self) -> None:
        from vrs.sim.runtime import SimRuntime

        self._fresh_workdir()
        t0 = time.perf_counter()
        self.start_vscs(self.start_vsd())
        self.runtime = SimRuntime(controller=None, agent=None).run_in_thread()
        self.stack.callback(self.runtime.stop)
        self._phase("start", t0)

    def plug(self) -> None:
        """Create the simulated hosts, each with its containers, connected to its VSC."""
        from vrs.sim.host import Container

        t0 = time.perf_counter()
        specs = []
        for i, h in enumerate(self.scenario.hosts):
            vsc = self.vscs[self.vsc_name(h)]
            containers = [Container(name=p.name, mac=p.mac, ip=p.ip, vport_id=p.vport_id)
                          for p in self.placed.values() if p.host == h.name]
            vtep = f"{VTEP_BASE}{i + 1}"
            specs.append(dict(name=h.name, datapath_id=i + 1, vtep_ip=vtep, containers=containers,
                              controller=("127.0.0.1", vsc.ports["of_port"]),
                              agent=("127.0.0.1", vsc.ports["agent_port"]), secret=self.enrol(h.name, i + 1, vtep)))
        self.runtime.call(lambda: [self.runtime.add_host_now(**spec) for spec in specs])
        self._phase("plug", t0)

    def check(self) -> LabReport:
        t0 = time.perf_counter()
        # traces run on the simulator's loop thread so they never race OpenFlow traffic
        self.report.results = self.runtime.call(check_expectations, self.runtime.fabric, self.scenario, self.placed)
        self._phase("check", t0)
        return self.report

    # --- a kept lab answers `vsplab flows` / `vsplab trace` ----------------------------------------

    def _control(self, req: dict) -> dict:
        if req.get("op") == "flows":
            if req.get("host") not in self.runtime.hosts:
                raise KeyError(f"no host {req.get('host')!r}; hosts: {', '.join(self.runtime.hosts)}")
            table = req.get("table")  # the teaching page: one table's lines, and every table's count
            if table is None and not req.get("counts"):
                return {"text": self.runtime.dump_flows(req["host"])}
            counts = self.runtime.call(lambda: Counter(t for t, _ in self.runtime.hosts[req["host"]].switch.flows(None)))
            return {"text": self.runtime.dump_flows(req["host"], table), "per_table": dict(sorted(counts.items()))}
        if req.get("op") == "trace":
            src, dst = self.placed[req["from"]], self.placed[req["to"]]
            from vrs.sim.packet import Packet

            verdict, detail = self.runtime.call(probe, self.runtime.fabric, src, dst, req["proto"], req.get("port"),
                                                self.scenario.gateways())
            pkt = Packet(proto=req["proto"], source=src.name, dst_ip=dst.ip, dst_port=req.get("port"),
                         tcp_flags="S")
            text = self.runtime.trace(pkt, commit=False).text()
            return {"text": f"{text}\n\n{src.name} -> {dst.name}: {verdict} {detail}".rstrip(), "verdict": verdict}
        if req.get("op") == "walk":  # the teaching page's trace: each pass's steps, cookies included
            src, dst = self._placed(req["from"]), self._placed(req["to"])
            traces: list = []
            verdict, detail = self.runtime.call(probe, self.runtime.fabric, src, dst, req["proto"], req.get("port"),
                                                self.scenario.gateways(), traces)
            return {"verdict": verdict, "detail": detail, "passes": [walk_pass(label, res) for label, res in traces]}
        raise ValueError(f"unknown op {req.get('op')!r}")

    def _placed(self, name: str):
        if name not in self.placed:
            raise KeyError(f"no container {name!r}; containers: {', '.join(sorted(self.placed))}")
        return self.placed[name]

    def _check_running(self, hosts: list[str]) -> None:
        if self.runtime.loop is None or not self.runtime.loop.is_running():
            raise RuntimeError("the simulated VRSs' event loop is not running")

    def _flows_per_host(self) -> dict[str, int]:
        return {h["name"]: h["flows"] for h in self.runtime.stats()["hosts"]}


def run_sim_scenario(path: str, vsd_url: str | None = None, keep: bool = False, after_check=None,
                     skip_impossible_faults: bool = False,
                     console: Console | None = None, on_keep=None) -> LabReport:
    """`vsplab run PATH` (sim mode); `on_keep` as in `drive`."""
    return drive(SimLab, path, vsd_url=vsd_url, keep=keep, console=console, after_check=after_check,
                 skip_impossible_faults=skip_impossible_faults, on_keep=on_keep)
