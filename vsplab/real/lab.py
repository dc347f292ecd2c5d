"""`vsplab run SCENARIO --mode real --inventory FILE`: a scenario on hosts where the daemons already run
(the Vagrant lab of vagrant/, or machines set up the same way).

    VSD (the inventory's URL)        <-- the scenario's objects, through the REST API (as every mode)
    VSCs (the inventory's status)    --- asked until they have applied the push and placed every endpoint
    hosts (ssh, or a netns here)     <-- `vrs plug` per container; a prober per host sends and receives
                                         the real packets of every expectation (vsplab/real/prober.py)

Nothing is started but the probers: the VSD, VSCs and `vrs run` are the hosts' own (systemd units).
What the run adds it takes away in `close()`: the containers (`vrs unplug`) and the VSD objects it
created, newest first. A scenario whose enterprise already exists in the VSD is refused, so a run
never changes objects it did not make."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console

from vsplab.emu.check import PING_TRIES, PING_WAIT, TCP_TIMEOUT, UDP_TRIES, UDP_WAIT, container_netns
from vsplab.emu.netns import ifname
from vsplab.lab.base import Lab, drive
from vsplab.real.access import RealError
from vsplab.real.inventory import Inventory, check_covers, load_inventory
from vsplab.real.probes import HostProber
from vsplab.report import ExpectationResult, LabReport
from vsplab.scenario.model import Scenario

CONTAINER_MTU = 1450  # VXLAN over a 1500-byte underlay, the usual NIC


class CreationLog:
    """The VSD client, recording what it creates so the run can delete exactly that, newest first."""

    def __init__(self, client) -> None:
        self._client = client
        self.created: list[str] = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create(self, parent_path: str, rest_name: str, obj_or_list):
        out = self._client.create(parent_path, rest_name, obj_or_list)
        self.created += [f"{rest_name}/{o['ID']}" for o in (out if isinstance(out, list) else [out])]
        return out

    def undo(self) -> None:
        from vsd.client import VsdApiError

        for path in reversed(self.created):
            try:
                self._client.delete(path)
            except VsdApiError as e:
                if e.status != 404:  # already gone with its parent
                    raise
        self.created.clear()


class RealLab(Lab):
    MODE = "real"
    STEPS = {"start": "reaching the VSD, the VSCs and the hosts", "push": "pushing the scenario to the VSD",
             "plug": "plugging containers (vrs plug on each host) and waiting for the VSCs",
             "check": "probing with real packets on the hosts", "switches": "hosts"}
    inventory: Inventory  # set by run_real_scenario's subclass

    def __init__(self, scenario: Scenario, vsd_url: str | None = None, console: Console | None = None, **kw):
        super().__init__(scenario, vsd_url=vsd_url, console=console, **kw)
        self.probers: dict[str, HostProber] = {}
        self.plugged: list[tuple[str, str]] = []  # (host, container) in plugging order

    def start(self) -> None:
        import httpx

        from vsd.client import VsdApiError, VsdClient

        t0 = time.perf_counter()
        inv = self.inventory
        try:
            self.client = VsdClient(inv.vsd.api, inv.vsd.user, inv.vsd.password, inv.vsd.org)
        except (OSError, httpx.HTTPError, VsdApiError) as e:
            raise RealError(f"the inventory's VSD at {inv.vsd.api}: {e}") from None
        self.stack.callback(self.client.close)
        self.console.print(f"VSD at {inv.vsd.url} (revision {self.vsd_revision()})")
        for vsc in inv.vscs:
            try:
                st = self._status(vsc.status)
            except OSError as e:
                raise RealError(f"VSC {vsc.name}: no status at {vsc.status}: {e}") from None
            self.console.print(f"VSC {vsc.name} at {vsc.status}: {len(st['datapaths'])} VRSs connected")
        for h in self.scenario.hosts:
            access = inv.access(h.name)
            prober = HostProber(access, inv.bin)
            self.stack.callback(self._quietly, prober.close)
            self.probers[h.name] = prober
            self.console.print(f"host {h.name} ({access.describe()}, VTEP {inv.host(h.name).vtep}): "
                               f"prober up on {prober.hello()}")
        self._check_underlay()
        self._phase("start", t0)

    def _check_underlay(self) -> None:
        """Every host reaches every other's VTEP before any overlay packet depends on it (pairs at once)."""
        def reach(pair: tuple[str, str]) -> str | None:
            a, b = pair
            vtep = self.inventory.host(b).vtep
            try:
                self.probers[a].access.run(["ping", "-c", "3", "-i", "0.2", "-w", "5", "-A", vtep], timeout=15)
            except RuntimeError as e:
                return f"underlay: {a} cannot reach {b}'s VTEP {vtep}: {e}"
            return None

        names = [h.name for h in self.scenario.hosts]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="underlay") as ex:
            problems = [p for p in ex.map(reach, [(a, b) for a in names for b in names if a != b]) if p]
        if problems:
            raise RealError("; ".join(problems))

    @staticmethod
    def _status(url: str) -> dict:
        with urllib.request.urlopen(f"{url}/status", timeout=5) as r:
            return json.loads(r.read())

    def push(self) -> None:
        existing = {e["name"] for e in self.client.list("enterprises")}
        clash = sorted(e.name for e in self.scenario.enterprises if e.name in existing)
        if clash:
            raise RealError(f"the VSD already has enterprise {', '.join(clash)}: a real run only adds and removes "
                            "its own objects (delete it, or rename the scenario's)")
        log = CreationLog(self.client)
        self.client = log
        self.stack.callback(self._quietly, log.undo)
        super().push()

    def plug(self) -> None:
        """`vrs plug` each container on its host, hosts in parallel; each unplugged in `close()`."""
        t0 = time.perf_counter()
        self.stack.callback(self._quietly, self._unplug_all)

        def plug_host(host: str) -> None:
            access, ovsdb = self.inventory.access(host), self.inventory.host(host).ovsdb
            for p in self.placed.values():
                if p.host != host:
                    continue
                sn = self.scenario.subnet(p.enterprise, p.subnet)
                self.plugged.append((host, p.name))
                access.run([f"{self.inventory.bin}/vrs", "plug", p.name, "--netns", container_netns(p.name),
                            "--port", ifname("vl-", p.name), "--mac", p.mac, "--ip", f"{p.ip}/{sn.network.prefixlen}",
                            "--gateway", sn.gateway_ip, "--vport-id", p.vport_id, "--vm-id", p.vm_id,
                            "--mtu", str(CONTAINER_MTU), *(["--db", ovsdb] if ovsdb else [])])

        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="plug") as ex:
            list(ex.map(plug_host, [h.name for h in self.scenario.hosts]))
        self._phase("plug", t0)

    def _unplug_all(self) -> None:
        for host, name in reversed(self.plugged):
            ovsdb = self.inventory.host(host).ovsdb
            self._quietly(lambda host=host, name=name, ovsdb=ovsdb: self.inventory.access(host).run(
                [f"{self.inventory.bin}/vrs", "unplug", name, "--netns", container_netns(name),
                 "--port", ifname("vl-", name), *(["--db", ovsdb] if ovsdb else [])]))
        self.plugged.clear()

    def wait_converged(self, timeout: float = 120.0) -> None:
        """Until every VSC has applied the VSD's revision as it is now and, together, they have placed
        every plugged container."""
        t0 = time.perf_counter()
        revision, end = self.vsd_revision(), time.monotonic() + timeout
        statuses: dict[str, dict] = {}
        while True:
            self._check_running([h.name for h in self.scenario.hosts])
            try:
                statuses = {v.name: self._status(v.status) for v in self.inventory.vscs}
            except OSError:
                statuses = {}
            if statuses and self._converged(statuses, revision):
                break
            if time.monotonic() > end:
                raise TimeoutError(f"VSCs not converged after {timeout:.0f}s: {json.dumps(statuses)[:2000]}")
            time.sleep(0.2)
        self._phase("converge", t0)
        self.report.flows_per_host = self._flows_per_host(statuses)

    def _converged(self, statuses: dict[str, dict], revision: int) -> bool:
        """Each VSC at `revision`, together placing every container; and each that speaks BGP holding a
        route for every endpoint the others placed (a VSC converged on its own hosts alone has no
        tunnel yet to the others' endpoints)."""
        placed = sum(st["endpoints"] for st in statuses.values())
        if placed < len(self.placed):
            return False
        return all(st["converged"] and st["revision"] >= revision
                   and (st.get("bgp") is None or st["bgp"].get("received", 0) >= placed - st["endpoints"])
                   for st in statuses.values())

    def _flows_per_host(self, statuses: dict[str, dict] | None = None) -> dict[str, int]:
        """The flows each VSC wants on each of its VRSs (they hold exactly those once converged)."""
        out: dict[str, int] = {}
        for st in (statuses or {}).values():
            for dp in st["datapaths"].values():
                out[dp.get("name") or "?"] = dp.get("flows_desired", 0)
        return out

    def check(self) -> LabReport:
        t0 = time.perf_counter()
        probe = self._probe
        for x in self.scenario.expect:  # every listener first, so no probe races the server it needs
            dst = self.placed[x.to]
            if x.protocol in ("tcp", "udp"):
                self.probers[dst.host].request(f"{x.protocol}_listen", netns=container_netns(dst.name), ip=dst.ip,
                                               port=x.port)

        def one(x) -> ExpectationResult:
            t = time.perf_counter()
            try:
                observed, detail = probe(x)
            except Exception as e:  # a probe that blows up is a failed check, reported
                observed, detail = "error", f"{type(e).__name__}: {e}"
            return ExpectationResult(x.from_, x.to, x.protocol, x.port, x.expect, observed, detail,
                                     time.perf_counter() - t)

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe") as ex:
            self.report.results = list(ex.map(one, self.scenario.expect))
        self._phase("check", t0)
        return self.report

    def _probe(self, x) -> tuple[str, str]:
        src, dst = self.placed[x.from_], self.placed[x.to]
        at, there = self.probers[src.host], self.probers[dst.host]
        ns, dst_ns = container_netns(src.name), container_netns(dst.name)
        if x.protocol == "tcp":
            r = at.request("tcp", netns=ns, dst=dst.ip, port=x.port, timeout=TCP_TIMEOUT, expect_netns=dst_ns)
            return ("allow", "") if r["ok"] else ("deny", f"TCP {r['why']}")
        if x.protocol == "icmp":
            r = at.request("ping", netns=ns, dst=dst.ip, count=PING_TRIES, timeout=PING_WAIT)
            return ("allow", "") if r["rtts"] else ("deny", f"no echo reply from {dst.name} to {PING_TRIES} requests")
        for n in range(UDP_TRIES):
            token = f"vsplab-probe-{x.from_}-{n}-{time.monotonic_ns()}"
            at.request("udp_send", netns=ns, dst=dst.ip, port=x.port, token=token)
            if there.request("udp_seen", netns=dst_ns, ip=dst.ip, port=x.port, token=token, timeout=UDP_WAIT)["ok"]:
                return "allow", ""
        return "deny", f"{UDP_TRIES} datagrams, none received"

    def _check_running(self, hosts: list[str]) -> None:
        dead = [h for h in hosts if h in self.probers and not self.probers[h].alive()]
        if dead:
            raise RealError(f"the prober on {dead[0]} exited: {self.probers[dead[0]].stderr_tail()}")

    def _control(self, req: dict) -> dict:
        raise ValueError("a real run is not kept: look at the hosts themselves (ovs-ofctl dump-flows br-int)")


def run_real_scenario(path: str, inventory_path: str, console: Console | None = None) -> LabReport:
    """`vsplab run PATH --mode real --inventory FILE`."""
    inventory = load_inventory(inventory_path)
    from vsplab.scenario.check import load_scenario

    check_covers(inventory, load_scenario(path), inventory_path)

    class InventoryLab(RealLab):
        pass

    InventoryLab.inventory = inventory
    return drive(InventoryLab, path, console=console)
