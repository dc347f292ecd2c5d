"""`vsplab run SCENARIO --mode emu`: the scenario on real Open vSwitch, checked with real packets.

    VSD (subprocess, 127.0.0.1)  <-- the scenario, through the REST API (as in sim mode)
      | change stream
    VSC per controller (subprocess), listening on the management bridge vl-mgmt
      | OpenFlow + agent channel over each host's management veth
    vl-<host> namespaces: ovsdb-server + ovs-vswitchd (netdev) + `vrs run`; br-phy on the underlay
      | VXLAN over the vl-underlay Linux bridge (MTU 9000 by default; containers keep 1500)
    vl-c-<container> namespaces, plugged by `vrs plug`; probes are real sockets inside them

A `vsplab.lab.base.Lab` (start, push, plug, wait_converged, check, close, report, placed).
Everything is recorded in a manifest before it is made and removed in `close()` (success, failure,
Ctrl-C); a lab refuses to start over another's leftovers (vsplab/emu/leftovers.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from vsplab.emu import leftovers
from vsplab.emu.check import check_expectations, container_netns, probe, rtt_summary
from vsplab.emu.datapath import DatapathUnsupported, kernel_lacks_afxdp, with_datapath
from vsplab.emu.drops import drop_count
from vsplab.emu.host import EmuFabric, EmuHost
from vsplab.emu.netns import ifname, netns_delete
from vsplab.emu.probes import Listeners, ping
from vsplab.lab.base import Lab, drive
from vsplab.report import LabReport
from vsplab.scenario.model import Dataplane, Scenario

REQUIRED_TOOLS = ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip", "nsenter",
                  "ethtool")


class EmuError(RuntimeError):
    pass


class EmuLab(Lab):
    """One scenario's lab in emu mode. Use as a context manager; `close()` removes everything."""

    MODE = "emu"
    STEPS = {"start": "starting the VSD, the VSC and the emulated hosts (OVS, vrs)",
             "plug": "plugging containers (vrs plug) and waiting for the VSC to program every host",
             "check": "probing with real packets", "switches": "emulated hosts (flows in OVS)"}

    def keep_hint(self) -> str:
        return f" or `ip netns exec vl-c-{self.scenario.containers[0].name} ip addr`"

    def __init__(self, scenario: Scenario, vsd_url: str | None = None, console: Console | None = None,
                 workdir: Path | None = None, dataplane: Dataplane | None = None):
        super().__init__(scenario, vsd_url=vsd_url, console=console, workdir=workdir)
        # the scenario's unless a caller (`--datapath`, a benchmark) overrides it
        self.dataplane = dataplane or scenario.dataplane
        self.underlay_mtu = self.dataplane.underlay
        self.container_mtu = self.dataplane.container
        self.fabric = EmuFabric()
        self.hosts: dict[str, EmuHost] = {}
        self.listeners = Listeners()
        self.manifest: leftovers.Manifest | None = None
        self.probing = "concurrent"  # or "sequential" (vsplab/emu/check.py)

    # --- bring-up -------------------------------------------------------------------------------

    def _preflight(self) -> list[str]:
        if os.geteuid() != 0:
            raise EmuError("emu mode needs root (network namespaces, Open vSwitch)")
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise EmuError(f"missing {', '.join(missing)}: run scripts/system-deps (openvswitch-switch, "
                           "iproute2, ethtool, util-linux)")
        if self.dataplane.datapath != "netdev" and (why := kernel_lacks_afxdp()):
            raise DatapathUnsupported(why)
        if len(self.scenario.hosts) > 253:
            raise EmuError(f"{len(self.scenario.hosts)} hosts: emu mode holds at most 253")
        planned = [f"vl-{h.name}" for h in self.scenario.hosts]
        planned += [container_netns(c.name) for c in self.scenario.containers]
        leftovers.check_clean(planned)
        return planned

    def start(self) -> None:

        planned = self._preflight()
        self._fresh_workdir()
        self.manifest = leftovers.Manifest(os.getpid(), str(self.workdir), netns=planned,
                                           links=[f"vl-m{i + 1}" for i in range(len(self.scenario.hosts))])
        self.manifest.save()
        t0 = time.perf_counter()
        base = self.start_vsd()
        if self.vsd is not None:
            self.manifest.add_process(self.vsd.proc.pid, "vsd")
        self.stack.callback(self._quietly, self.fabric.stop)
        self.fabric.start()
        for i, h in enumerate(self.scenario.hosts):
            host = EmuHost(h.name, i + 1, self.workdir / "hosts", dataplane=self.dataplane)
            self.hosts[h.name] = host
            self.stack.callback(self._quietly, host.stop)
            host.start()
        self.start_vscs(base, listen=self.fabric.mgmt_ip)
        for vsc in self.vscs.values():
            self.manifest.add_process(vsc.proc.pid, "vsc.cli")
        for rr in (self.federation.reflectors.values() if self.federation else ()):
            self.manifest.add_process(rr.proc.pid, "bgpd")
        for h in self.scenario.hosts:
            vsc, host = self.vscs[self.vsc_name(h)], self.hosts[h.name]
            self.enrol(h.name, host.datapath_id, host.vtep_ip)
            host.start_agent(self.fabric.mgmt_ip, vsc.ports["of_port"], vsc.ports["agent_port"],
                             self.secret_files[h.name])
        self.stack.callback(self._quietly, self._stop_agents)
        self.stack.callback(self._quietly, self._remove_containers)
        self.stack.callback(self._quietly, self.listeners.close)
        self._warm_underlay()
        self._phase("start", t0)

    def _warm_underlay(self) -> None:
        """Seed each OVS's tunnel neighbours, then ping every VTEP from every host over br-phy: the
        underlay works before any overlay packet depends on it."""
        hosts = list(self.hosts.values())
        for h in hosts:
            h.learn_peers(hosts)
        for a in hosts:
            for b in hosts:
                if a is not b and not ping(a.ns, b.vtep_ip, count=5, timeout=0.5, stop_on_reply=True):
                    raise EmuError(f"underlay: {a.name} ({a.vtep_ip}) cannot reach {b.name} ({b.vtep_ip})")

    def plug(self) -> None:
        """`vrs plug` every container on its host (hosts in parallel)."""
        t0 = time.perf_counter()

        def plug_host(host: EmuHost) -> None:
            for p in self.placed.values():
                if p.host != host.name:
                    continue
                sn = self.scenario.subnet(p.enterprise, p.subnet)
                host.vrs("plug", p.name, "--netns", container_netns(p.name), "--port", ifname("vl-", p.name),
                         "--mac", p.mac, "--ip", f"{p.ip}/{sn.network.prefixlen}", "--gateway", sn.gateway_ip,
                         "--vport-id", p.vport_id, "--vm-id", p.vm_id, "--mtu", str(self.container_mtu))
                host.use_datapath(ifname("vl-", p.name))
            host.tune_packet_sockets()

        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="plug") as ex:
            list(ex.map(plug_host, self.hosts.values()))
        self._phase("plug", t0)

    def _check_running(self, hosts: list[str]) -> None:
        dead = [h for h in hosts if not self.hosts[h].agent_alive()]
        if dead:
            host = self.hosts[dead[0]]
            raise EmuError(f"vrs agent on {host.name} exited: {host.agent_output()[-2000:]}")

    def _flows_per_host(self) -> dict[str, int]:
        return {name: h.flow_count() for name, h in self.hosts.items()}

    def check(self) -> LabReport:
        t0 = time.perf_counter()
        self.report.results = check_expectations(
            self.listeners, self.scenario, self.placed, probing=self.probing, notes=self.figures,
            drops=lambda: drop_count((h.ovs, "br-int") for h in self.hosts.values()))
        self._phase("check", t0)
        self._measure()
        return self.report

    def _measure(self) -> None:
        """Round trips on a quiet lab (the checks ran in parallel and are no measure of latency): TCP
        connect + echo through the first allowed TCP pair, ICMP where the scenario allows it; memory."""
        from vsplab.emu.probes import tcp_connect

        for proto in ("tcp", "icmp"):
            x = next((x for x in self.scenario.expect if x.expect == "allow" and x.protocol == proto), None)
            if x is None:
                continue
            src, dst = self.placed[x.from_], self.placed[x.to]
            if proto == "tcp":
                rtts = [r[2] for r in (tcp_connect(container_netns(src.name), dst.ip, x.port, 1.0,
                                                   expect_netns=container_netns(dst.name)) for _ in range(10))
                        if r[0]]
                self.figures["TCP connect + echo"] = f"{src.name} -> {dst.name}: {rtt_summary(rtts, 'connections')}"
            else:
                rtts = ping(container_netns(src.name), dst.ip, count=10, timeout=0.5)
                self.figures["ping RTT"] = f"{src.name} -> {dst.name}: {rtt_summary(rtts)}"
        dp = self.dataplane
        problems = {h.sockbuf_problem for h in self.hosts.values() if h.sockbuf_problem}
        notes = {"afxdp": "; a PMD thread per host polls (a core under traffic)",
                 "netdev": (f"; packet sockets at the kernel's receive buffers ({', '.join(problems)})" if problems
                            else "; 4 MiB receive buffers on OVS's packet sockets")}
        self.figures["data plane"] = (f"{dp.datapath} ports, underlay MTU {dp.underlay}, container MTU {dp.container}"
                                      + notes.get(dp.datapath, ""))
        rss = [sum(h.ovs.rss_kb().values()) for h in self.hosts.values()]
        if rss:
            self.figures["OVS memory"] = f"{max(rss) / 1024:.1f} MB RSS per host (ovsdb-server + ovs-vswitchd)"

    def measure_revocation(self, timeout: float = 5.0) -> float:
        """Delete from the VSD the ingress entry behind the scenario's first allowed TCP expectation
        while connections run; seconds until they stop passing (vsplab/emu/revoke.py). Call after
        `check()`: the lab's policy is one entry short afterwards."""
        from vsplab.emu import revoke

        x = next((x for x in self.scenario.expect if x.expect == "allow" and x.protocol == "tcp"), None)
        if x is None:
            raise revoke.RevocationError("the scenario expects no allowed TCP traffic to revoke")
        r = revoke.measure(self.client, self.listeners, self.placed[x.from_], self.placed[x.to], x.port, timeout)
        self.figures["ACL entry removed"] = r.text()
        self.report.timings["revocation"] = r.denied_after
        return r.denied_after

    # --- disruptions: what a host's operator does to it while the lab runs -----------------------

    def restart_agent(self, host: str) -> None:
        """Stop `vrs run` on `host` and start it again against the same VSC, as an upgrade would."""
        h, vsc = self.hosts[host], self.vsc_of(host)
        h.stop_agent()
        h.start_agent(self.fabric.mgmt_ip, vsc.ports["of_port"], vsc.ports["agent_port"], self.secret_files.get(host))

    def restart_vswitchd(self, host: str) -> None:
        """Kill and restart `ovs-vswitchd` on `host` (datapath and flows gone, database kept); the host
        gets its VTEP address and tunnel neighbours back, the VSC reprograms it on reconnect."""
        self.hosts[host].restart_vswitchd(list(self.hosts.values()))

    def host_flows(self, host: str) -> str:
        return self.hosts[host].ovs.ofctl("dump-flows", "br-int")

    # --- a kept lab answers `vsplab flows` / `vsplab trace` ----------------------------------------

    def _control(self, req: dict) -> dict:
        if req.get("op") == "flows":
            host = self.hosts.get(req.get("host"))
            if host is None:
                raise KeyError(f"no host {req.get('host')!r}; hosts: {', '.join(self.hosts)}")
            dump = host.ovs.ofctl("dump-flows", "br-int")
            if req.get("table") is None and not req.get("counts"):
                return {"text": dump}
            # the teaching page: one table's lines, and every table's count
            lines = [line for line in dump.splitlines() if " table=" in line]
            per_table = Counter(int(line.split(" table=", 1)[1].split(",", 1)[0]) for line in lines)
            if req.get("table") is not None:
                lines = [line for line in lines if f" table={int(req['table'])}," in line]
            return {"text": "".join(line + "\n" for line in lines), "per_table": dict(sorted(per_table.items()))}
        if req.get("op") == "trace":
            src, dst = self.placed[req["from"]], self.placed[req["to"]]
            if req["proto"] in ("tcp", "udp"):
                (self.listeners.tcp_on if req["proto"] == "tcp" else self.listeners.udp_on)(
                    container_netns(dst.name), dst.ip, req["port"])
            verdict, detail = probe(self.listeners, src, dst, req["proto"], req.get("port"))
            return {"text": f"{src.name} -> {dst.name}: {' '.join(filter(None, (verdict, detail)))} (real packets)",
                    "verdict": verdict}
        raise ValueError(f"unknown op {req.get('op')!r}")

    # --- teardown -------------------------------------------------------------------------------

    def _stop_agents(self) -> None:
        for h in self.hosts.values():  # all at once: each takes a moment to say goodbye
            if h.agent_alive():
                h.agent.terminate()
        for h in self.hosts.values():
            h.stop_agent()

    def _remove_containers(self) -> None:
        for c in self.scenario.containers:
            netns_delete(container_netns(c.name))

    def close(self) -> None:
        # a second Ctrl-C (or a SIGTERM) must not cut the teardown short and leave half a lab behind
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.stack.close()
            if self.workdir.exists():
                shutil.rmtree(self.workdir, ignore_errors=True)
            if self.manifest is not None:
                left = leftovers.find(self.manifest.netns)
                if [x for x in left if not x.startswith("manifest")]:
                    self.console.print("[red]cleanup left:[/] " + "; ".join(left)
                                       + f" (remove with `{leftovers.CLEANUP_COMMAND}`)")
                else:
                    leftovers.MANIFEST.unlink(missing_ok=True)
                self.manifest = None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_emu_scenario(path: str, vsd_url: str | None = None, keep: bool = False, revoke: bool = False,
                     console: Console | None = None, datapath: str | None = None, after_check=None,
                     skip_impossible_faults: bool = False, probing: str | None = None, on_keep=None) -> LabReport:
    """`vsplab run PATH --mode emu`, the same steps and table as sim mode; `after_check(lab)` once
    checked (the faults, vsplab/faults); with `revoke`, afterwards delete one allowing ACL entry and print
    how fast real connections stop; `datapath` overrides the scenario's port type (vsplab/emu/datapath.py);
    `probing` the way expectations are probed (vsplab/emu/check.py); `on_keep` as in `drive`."""
    def after(lab: EmuLab) -> None:
        if after_check is not None:
            after_check(lab)
        if revoke:
            with lab.console.status("removing an ACL entry while connections run"):
                lab.measure_revocation()

    class ChosenDatapathLab(EmuLab):
        def __init__(self, scenario: Scenario, **kw) -> None:
            try:
                dataplane = with_datapath(scenario.dataplane, datapath)
            except ValueError as e:
                raise EmuError(str(e)) from None
            super().__init__(scenario, dataplane=dataplane, **kw)
            self.probing = probing or self.probing

    return drive(ChosenDatapathLab, path, vsd_url=vsd_url, keep=keep, console=console, after_check=after,
                 skip_impossible_faults=skip_impossible_faults, on_keep=on_keep)
