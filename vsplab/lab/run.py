"""`vsplab run SCENARIO --mode sim`: the whole control plane on loopback.

    VSD (subprocess, SQLite in the lab dir)  <-- the scenario's objects, through the REST API
      | change stream
    VSC per controller (subprocess: os-ken, OpenFlow 1.3 on TCP)
      | OpenFlow + agent channel
    simulated VRSs (this process, one asyncio thread) --- traces check every expectation

Everything started here is stopped in `SimLab.close()`, which runs on success, failure and Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from vsplab.lab.control import LABS_DIR, LabControlServer
from vsplab.lab.probe import check_expectations, probe
from vsplab.report import LabReport
from vsplab.scenario.check import load_scenario
from vsplab.scenario.model import Scenario
from vsplab.scenario.to_vsd import PlacedContainer, push_scenario

VTEP_BASE = "172.30.0."  # underlay addresses of simulated hosts (never leave the process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimLab:
    """One scenario's lab in sim mode. Use as a context manager; `close()` stops everything."""

    # what `drive` shows while each step runs; other modes' labs override some
    STEPS = {"start": "starting VSD and VSC", "push": "pushing the scenario to the VSD",
             "plug": "plugging containers and waiting for the VSC to program every host",
             "check": "tracing every expectation", "switches": "simulated VRSs"}

    def __init__(self, scenario: Scenario, vsd_url: str | None = None, console: Console | None = None,
                 workdir: Path | None = None):
        self.scenario = scenario
        self.console = console or Console(stderr=True)
        self.external_vsd = vsd_url
        self.workdir = workdir or LABS_DIR / f"{scenario.name}-{os.getpid()}"
        self.stack = ExitStack()
        self.vsd = None
        self.client = None
        self.vscs: dict[str, object] = {}
        self.runtime = None
        self.placed: dict[str, PlacedContainer] = {}
        self.report = LabReport(scenario=scenario.name, mode="sim", hosts=len(scenario.hosts),
                                containers=len(scenario.containers))

    def __enter__(self) -> SimLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _phase(self, name: str, t0: float) -> None:
        self.report.timings[name] = time.perf_counter() - t0

    # --- bring-up -------------------------------------------------------------------------------

    def start(self) -> None:
        from vrs.sim.runtime import SimRuntime

        self._fresh_workdir()
        t0 = time.perf_counter()
        self.start_vscs(self.start_vsd())
        self.runtime = SimRuntime(controller=None, agent=None).run_in_thread()
        self.stack.callback(self.runtime.stop)
        self._phase("start", t0)

    # --- pieces every mode's start-up shares ------------------------------------------------------

    def _fresh_workdir(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)

    def start_vsd(self) -> str:
        """The embedded VSD on SQLite in the lab dir, or the user's (`--vsd`); returns its base URL."""
        from vsd.client import VsdClient
        from vsd.server import EmbeddedVsd

        if self.external_vsd:
            api = self.external_vsd.rstrip("/")
            base = api.split("/nuage/api/")[0]
            self.client = VsdClient(api)
        else:
            self.vsd = self.stack.enter_context(EmbeddedVsd(db_url=f"sqlite:///{self.workdir / 'vsd.db'}",
                                                            log_path=str(self.workdir / "vsd.log")))
            base = self.vsd.url
            self.client = VsdClient(self.vsd.api, self.vsd.user, self.vsd.password, self.vsd.enterprise)
        self.console.print(f"VSD at {base}")
        return base

    def start_vscs(self, vsd_base: str, listen: str = "127.0.0.1", note: str = "") -> None:
        """One VSC subprocess per controller of the scenario, on free ports of `listen`."""
        from vsc.process import VscProcess

        for c in self.scenario.controllers:
            ports = dict(of_port=free_port(), agent_port=free_port(), status_port=free_port())
            vsc = VscProcess(vsd_url=vsd_base, state_dir=self.workdir / c.name,
                             log_file=self.workdir / f"{c.name}.log", listen=listen, **ports)
            self.stack.callback(self._quietly, vsc.stop)
            vsc.start()
            vsc.ports = ports
            self.vscs[c.name] = vsc
            self.console.print(f"VSC {c.name}: OpenFlow on {listen}:{ports['of_port']}{note}")

    def _quietly(self, fn) -> None:
        """Teardown goes on past a failing step: the next steps still remove their part."""
        try:
            fn()
        except Exception as e:
            self.console.print(f"[yellow]cleanup: {getattr(fn, '__qualname__', fn)}: {e}[/]")

    def push(self) -> None:
        t0 = time.perf_counter()
        result = push_scenario(self.client, self.scenario)
        self.placed = result.containers
        self.report.objects = result.objects
        self._phase("push to VSD", t0)
        self.console.print(f"pushed {result.objects} objects to the VSD in {self.report.timings['push to VSD']:.2f}s")

    def plug(self) -> None:
        """Create the simulated hosts, each with its containers, connected to its VSC."""
        from vrs.sim.host import Container

        t0 = time.perf_counter()
        default_vsc = self.scenario.controllers[0].name
        specs = []
        for i, h in enumerate(self.scenario.hosts):
            vsc = self.vscs[h.vsc or default_vsc]
            containers = [Container(name=p.name, mac=p.mac, ip=p.ip, vport_id=p.vport_id)
                          for p in self.placed.values() if p.host == h.name]
            specs.append(dict(name=h.name, datapath_id=i + 1, vtep_ip=f"{VTEP_BASE}{i + 1}", containers=containers,
                              controller=("127.0.0.1", vsc.ports["of_port"]),
                              agent=("127.0.0.1", vsc.ports["agent_port"])))
        self.runtime.call(lambda: [self.runtime.add_host_now(**spec) for spec in specs])
        self._phase("plug", t0)

    def wait_converged(self, timeout: float = 120.0) -> None:
        t0 = time.perf_counter()
        # the revision the VSD committed last: the VSC has converged only once its view reached it
        revision = self.client.request("GET", "vsplab/health").json()["committed"]
        default_vsc = self.scenario.controllers[0].name
        for name, vsc in self.vscs.items():
            hosts = [h.name for h in self.scenario.hosts if (h.vsc or default_vsc) == name]
            endpoints = sum(1 for p in self.placed.values() if p.host in hosts)
            vsc.wait_converged(timeout=timeout, min_revision=revision, datapaths=len(hosts), endpoints=endpoints)
        self._phase("converge", t0)
        stats = self.runtime.stats()
        self.report.flows_per_host = {h["name"]: h["flows"] for h in stats["hosts"]}

    def check(self) -> LabReport:
        t0 = time.perf_counter()
        # traces run on the simulator's loop thread so they never race OpenFlow traffic
        self.report.results = self.runtime.call(check_expectations, self.runtime.fabric, self.scenario, self.placed)
        self._phase("check", t0)
        return self.report

    # --- a kept lab answers `vsplab flows` / `vsplab trace` ----------------------------------------

    def serve_control(self) -> Path:
        path = self.workdir / "control.sock"
        server = LabControlServer(path, self._control)
        self.stack.callback(server.close)
        return path

    def _control(self, req: dict) -> dict:
        if req.get("op") == "flows":
            if req.get("host") not in self.runtime.hosts:
                raise KeyError(f"no host {req.get('host')!r}; hosts: {', '.join(self.runtime.hosts)}")
            return {"text": self.runtime.dump_flows(req["host"])}
        if req.get("op") == "trace":
            src, dst = self.placed[req["from"]], self.placed[req["to"]]
            from vrs.sim.packet import Packet

            gateways = _gateways(self.scenario)
            verdict, detail = self.runtime.call(probe, self.runtime.fabric, src, dst, req["proto"], req.get("port"),
                                                gateways)
            pkt = Packet(proto=req["proto"], source=src.name, dst_ip=dst.ip, dst_port=req.get("port"),
                         tcp_flags="S")
            text = self.runtime.trace(pkt, commit=False).text()
            return {"text": f"{text}\n\n{src.name} -> {dst.name}: {verdict} {detail}".rstrip(), "verdict": verdict}
        raise ValueError(f"unknown op {req.get('op')!r}")

    def close(self) -> None:
        self.stack.close()
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)


def _gateways(scenario: Scenario) -> dict[tuple[str, str], str]:
    import ipaddress

    return {(ent.name, sn.name): sn.gateway or str(next(ipaddress.IPv4Network(sn.address).hosts()))
            for ent in scenario.enterprises for dom in ent.domains for zone in dom.zones for sn in zone.subnets}


def run_scenario(path: str, mode: str = "sim", vsd_url: str | None = None, keep: bool = False,
                 revoke: bool = False, console: Console | None = None) -> LabReport:
    if mode == "emu":
        from vsplab.emu.lab import run_emu_scenario

        return run_emu_scenario(path, vsd_url=vsd_url, keep=keep, revoke=revoke, console=console)
    if revoke:
        raise ValueError("--revoke is measured in emu mode only")
    if mode == "mininet":
        from vsplab.mininet.lab import MininetLab

        return drive(MininetLab, path, vsd_url=vsd_url, keep=keep, console=console)
    if mode != "sim":
        raise ValueError(f"mode {mode!r} is not available")
    return drive(SimLab, path, vsd_url=vsd_url, keep=keep, console=console)


def drive(lab_class, path: str, vsd_url: str | None = None, keep: bool = False, console: Console | None = None,
          after_check=None) -> LabReport:
    """The steps every mode takes, with the words of its lab class (`STEPS`): start, push, plug and
    converge, check, print; then `after_check(lab)`, the lab's figures, and with `keep` serve the lab
    until Ctrl-C."""
    console = console or Console()
    scenario = load_scenario(path)
    steps = {**SimLab.STEPS, **getattr(lab_class, "STEPS", {})}
    # SIGTERM takes the same way out as Ctrl-C, so the lab is torn down either way
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with lab_class(scenario, vsd_url=vsd_url, console=console) as lab:
            with console.status(steps["start"]):
                lab.start()
            with console.status(steps["push"]):
                lab.push()
            with console.status(steps["plug"]):
                lab.plug()
                lab.wait_converged()
            console.print(f"converged in {lab.report.timings['plug'] + lab.report.timings['converge']:.2f}s "
                          f"after the push ({sum(lab.report.flows_per_host.values())} flows on "
                          f"{len(lab.report.flows_per_host)} {steps['switches']})")
            with console.status(steps["check"]):
                report = lab.check()
            report.print(console)
            if after_check is not None:
                after_check(lab)
            if hasattr(lab, "print_figures"):
                lab.print_figures()
            if keep:
                sock = lab.serve_control()
                console.print(f"lab running; control socket {sock}. Try `vsplab flows {scenario.hosts[0].name}`"
                              f"{lab.keep_hint() if hasattr(lab, 'keep_hint') else ''}. Ctrl-C stops it.")
                while True:
                    time.sleep(3600)
            return report
    finally:
        signal.signal(signal.SIGTERM, previous)
