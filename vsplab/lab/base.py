"""What every lab mode shares (sim in vsplab/lab/run.py, emu in vsplab/emu, Mininet in
vsplab/mininet): a work directory, the VSD (embedded on SQLite in the lab directory, or the user's
`--vsd`), one VSC process per controller of the scenario, the push of the scenario through the VSD's
REST API, the wait until every VSC has programmed its hosts, a control socket for a kept lab, and
teardown in reverse order of bring-up. `drive()` takes any mode's lab through the same steps. With a
`bgp:` section the VSCs federate over MP-BGP EVPN (vsplab/bgp/federation.py): each VSC's speaker on
its own loopback address, route reflectors on FRR, convergence that waits for every VSC's routes.

A mode subclasses `Lab` and supplies start, plug, check, the control answers and two convergence
hooks; this package never imports a mode (the command line picks the lab class)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from abc import ABC, abstractmethod
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from vsplab.bgp import frr
from vsplab.bgp.federation import LabFederation
from vsplab.lab.control import EXTRA_OPS, LABS_DIR, LabControlServer
from vsplab.lab.ports import free_port, free_port_on
from vsplab.report import LabReport
from vsplab.scenario.check import load_scenario
from vsplab.scenario.model import Host, Scenario
from vsplab.scenario.to_vsd import PlacedContainer, push_scenario


class Lab(ABC):
    """One scenario's lab. Use as a context manager; `close()` stops everything that was started."""

    MODE = ""
    # what `drive` shows while each step runs
    STEPS = {"start": "starting VSD and VSC", "push": "pushing the scenario to the VSD",
             "plug": "plugging containers and waiting for the VSC to program every host",
             "check": "checking every expectation", "switches": "hosts"}

    def __init__(self, scenario: Scenario, vsd_url: str | None = None, console: Console | None = None,
                 workdir: Path | None = None):
        if scenario.bgp is not None and scenario.bgp.route_reflectors:
            frr.preflight()  # before anything starts: say at once that this lab cannot run here
        self.scenario = scenario
        self.console = console or Console(stderr=True)
        self.external_vsd = vsd_url
        self.workdir = workdir or LABS_DIR / f"{scenario.name}-{os.getpid()}"
        self.stack = ExitStack()
        self.vsd = None
        self.client = None
        self.vscs: dict[str, object] = {}
        self.federation: LabFederation | None = None  # BGP between the VSCs, if the scenario has it
        self.placed: dict[str, PlacedContainer] = {}
        self.secret_files: dict[str, Path] = {}  # host -> the secret its VRS proves to its VSC
        self.report = LabReport(scenario=scenario.name, mode=self.MODE, hosts=len(scenario.hosts),
                                containers=len(scenario.containers))
        self.figures: dict[str, str] = {}  # measured numbers worth printing after the table (RTT, memory)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _phase(self, name: str, t0: float) -> None:
        self.report.timings[name] = time.perf_counter() - t0

    # --- what each mode does its own way ----------------------------------------------------------

    @abstractmethod
    def start(self) -> None:
        """Bring up the VSD, the VSCs and the hosts; `_phase("start", ...)`."""

    @abstractmethod
    def plug(self) -> None:
        """Connect every placed container (`self.placed`) to its host; `_phase("plug", ...)`."""

    @abstractmethod
    def check(self) -> LabReport:
        """Check every expectation of the scenario into `self.report.results`."""

    @abstractmethod
    def _control(self, req: dict) -> dict:
        """The answer to one `vsplab flows` / `vsplab trace` request (vsplab/lab/control.py)."""

    @abstractmethod
    def _check_running(self, hosts: list[str]) -> None:
        """Raise if a part these hosts need has died: waiting for convergence would then only time out."""

    @abstractmethod
    def _flows_per_host(self) -> dict[str, int]:
        """Host name -> flows its switch holds, for the report once converged."""

    # --- the scenario's layout ----------------------------------------------------------------------

    def vsc_name(self, host: Host) -> str:
        return host.vsc or self.scenario.controllers[0].name

    def vsc_of(self, host: str):
        return self.vscs[self.vsc_name(next(h for h in self.scenario.hosts if h.name == host))]

    def hosts_of(self, vsc: str) -> list[str]:
        return [h.name for h in self.scenario.hosts if self.vsc_name(h) == vsc]

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
        """One VSC subprocess per controller of the scenario, on free ports of `listen`; with BGP, the
        route reflectors first and each VSC with its speaker's options. The VSCs serve enrolled VRSs
        only: the lab enrols each host before its VRS starts (`enrol`)."""
        from vsc.process import VscProcess

        self.federation = LabFederation.of(self.scenario, self.workdir, free_port_on)
        if self.federation is not None:
            self.federation.start_reflectors(self.stack, self.console)
        for c in self.scenario.controllers:
            ports = dict(of_port=free_port(), agent_port=free_port(), status_port=free_port())
            bgp = self.federation.vsc_options(c.name) if self.federation else None
            vsc = VscProcess(vsd_url=vsd_base, state_dir=self.workdir / c.name,
                             log_file=self.workdir / f"{c.name}.log", listen=listen, bgp=bgp,
                             require_enrolment=True, **ports)
            self.stack.callback(self._quietly, vsc.stop)
            vsc.start()
            vsc.ports = ports
            self.vscs[c.name] = vsc
            federated = f"; {self.federation.describe(c.name)}" if self.federation else ""
            self.console.print(f"VSC {c.name}: OpenFlow on {listen}:{ports['of_port']}{note}{federated}")

    def enrol(self, host: str, datapath_id: int, vtep_ip: str) -> bytes:
        """Enrol `host`'s VRS with its VSC (vsc/enrolment.py): a secret in the VSC's table and in a file
        of the lab's for the VRS (`secret_files`), its VTEP pinned. Returns the secret."""
        path = self.workdir / "secrets" / f"{host}.secret"
        secret = self.vsc_of(host).enrol(datapath_id, path, vtep_ip)
        self.secret_files[host] = path
        return secret

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

    # --- convergence --------------------------------------------------------------------------------

    def vsd_revision(self) -> int:
        """The revision the VSD committed last: every change made so far, the push's included."""
        return self.client.request("GET", "vsplab/health").json()["committed"]

    def wait_converged(self, timeout: float = 120.0) -> None:
        """Until every VSC has applied the VSD's revision as it is now (so at least what the push
        produced: a VSC still on an older view would count as converged on stale policy) and programmed
        each of its hosts with all of their endpoints. Asked in slices of a second, so that a part of the
        lab that died (`_check_running`) ends the wait at once instead of at the timeout."""
        t0 = time.perf_counter()
        end = time.monotonic() + timeout
        revision = self.vsd_revision()
        local = {name: sum(1 for p in self.placed.values() if p.host in self.hosts_of(name)) for name in self.vscs}
        for name, vsc in self.vscs.items():
            hosts = self.hosts_of(name)
            # with BGP, also every route its peers owe it: a VSC converged on its own hosts alone still
            # has no tunnel to the other VSCs' endpoints
            federated = {"bgp_received": self.federation.routes_expected(name, local)} if self.federation else {}
            while True:
                self._check_running(hosts)
                if self.federation is not None:
                    self.federation.check_running()
                try:
                    vsc.wait_converged(timeout=min(1.0, max(end - time.monotonic(), 0.01)), min_revision=revision,
                                       datapaths=len(hosts), endpoints=local[name], **federated)
                    break
                except TimeoutError:
                    if time.monotonic() > end:
                        raise
        self._phase("converge", t0)
        self.report.flows_per_host = self._flows_per_host()

    # --- after the checks -------------------------------------------------------------------------

    def print_figures(self) -> None:
        for name, text in self.figures.items():
            self.console.print(f"{name}: {text}")

    def keep_hint(self) -> str:
        return ""

    def vsc_statuses(self) -> dict[str, dict | None]:
        """Each VSC's `/status`; None for one that does not answer (the report says so, the run goes on)."""
        out: dict[str, dict | None] = {}
        for name, vsc in self.vscs.items():
            try:
                out[name] = vsc.status()
            except OSError:
                out[name] = None
        return out

    def record_bgp(self) -> None:
        """The BGP sessions as the speakers report them now, into the report (after the checks)."""
        if self.federation is not None:
            self.report.bgp_sessions = self.federation.sessions(self.vsc_statuses())

    def describe(self) -> dict:
        """The lab as the teaching page (vsplab/ui) draws it: VSCs with their status URLs, hosts,
        containers where they sit, the checks' results and the BGP sessions. Read-only."""
        statuses = self.vsc_statuses() if self.federation is not None else {}
        return {
            "scenario": self.scenario.name, "mode": self.MODE, "vsd": self.client.api if self.client else None,
            "vscs": [{"name": n, "status_url": f"http://{v.listen}:{v.status_port}", "hosts": self.hosts_of(n)}
                     for n, v in self.vscs.items()],
            "hosts": [{"name": h.name, "vsc": self.vsc_name(h)} for h in self.scenario.hosts],
            "containers": [{"name": p.name, "host": p.host, "enterprise": p.enterprise, "domain": p.domain,
                            "subnet": p.subnet, "ip": p.ip, "groups": list(p.groups)} for p in self.placed.values()],
            "results": [{**vars(r), "passed": r.passed} for r in self.report.results],
            "reflectors": sorted(self.federation.reflectors) if self.federation else [],
            "bgp": [{**vars(s), "up": s.up} for s in self.federation.sessions(statuses)] if self.federation else [],
        }

    def _answer(self, req: dict) -> dict:
        if req.get("op") == "reset":  # `vsplab reset`: back to the scenario's initial state, still running
            from vsplab.lab.reset import reset_lab

            return reset_lab(self)
        if req.get("op") in EXTRA_OPS:  # explain, lint, diff (vsplab/policy/ops.py)
            return EXTRA_OPS[req["op"]](self, req)
        if req.get("op") == "lab":
            return self.describe()
        if req.get("op") == "audit":  # `vsplab audit [--repair]` (vsplab/audit)
            from vsplab.audit import audit_lab

            report = audit_lab(self, repair=bool(req.get("repair")), recompile=req.get("recompile"))
            return {"text": "\n".join(report.lines()), "report": json.loads(report.to_json()), "clean": report.ok}
        if req.get("op") == "bgp":
            if self.federation is None:
                raise ValueError(f"scenario {self.scenario.name} has no bgp: section; its VSCs do not federate")
            routes = self.federation.routes(self.vscs) if req.get("routes") else None
            return {"text": self.federation.report_text(self.vsc_statuses(), routes)}
        return self._control(req)

    def serve_control(self) -> Path:
        """A kept lab answers `vsplab flows` / `trace` / `bgp` on a socket in its directory."""
        path = self.workdir / "control.sock"
        server = LabControlServer(path, self._answer)
        self.stack.callback(server.close)
        return path

    def close(self) -> None:
        self.stack.close()
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)


def drive(lab_class: type[Lab], path: str, vsd_url: str | None = None, keep: bool = False,
          console: Console | None = None, after_check=None,
          skip_impossible_faults: bool = False, on_keep=None) -> LabReport:
    """The steps every mode takes, with the words of its lab class (`STEPS`): start, push, plug and
    converge, check, print; then `after_check(lab)`, the lab's figures, and with `keep` serve the lab
    until Ctrl-C (`on_keep(lab, control_socket)` first: the teaching page, vsplab/ui)."""
    console = console or Console()
    scenario = load_scenario(path, mode=lab_class.MODE, skip_impossible_faults=skip_impossible_faults)
    for warning in scenario.warnings:
        console.print(f"[yellow]warning[/] {warning}", highlight=False)
    steps = {**Lab.STEPS, **lab_class.STEPS}
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
                lab.record_bgp()
            report.print(console)
            if after_check is not None:
                after_check(lab)
            lab.print_figures()
            if keep:
                sock = lab.serve_control()
                if on_keep is not None:
                    on_keep(lab, sock)
                console.print(f"lab running; control socket {sock}. Try `vsplab flows {scenario.hosts[0].name}`"
                              f"{lab.keep_hint()}{', `vsplab bgp`' if lab.federation else ''}. Ctrl-C stops it.")
                while True:
                    time.sleep(3600)
            return report
    finally:
        signal.signal(signal.SIGTERM, previous)
