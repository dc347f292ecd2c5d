"""`vsplab run SCENARIO --mode mininet`: the scenario on Mininet 2.3, for users who live in Mininet.

    VSD (subprocess, 127.0.0.1)  <-- the scenario, through the REST API (as in sim and emu mode)
      | change stream
    VSC per controller (subprocess) on vl-ctl-mn 169.254.101.1 = Mininet's RemoteController
      | OpenFlow from each switch; agent channel from `MininetVrs` threads in this process
    vl-mn namespace: the lab's own ovsdb-server + ovs-vswitchd; Mininet (Debian's python3,
      vsplab/mininet/driver.py) with one OVSSwitch (datapath=user, OpenFlow13, failMode=secure,
      dpid = host index) per scenario host and one Host per container (MAC/IP as the VSD assigned,
      MTU 1450, TX checksum offload off); VXLAN between switches: vsplab/mininet/fabric.py

Conntrack: every Mininet switch lives in one userspace datapath, so all share ONE conntrack table. Each
switch's agent therefore asks the VSC for conntrack zones of its own (`switch_zones`: an equal share of
the 65,536 per switch, zone = share start + domain index), so a connection committed on one "host" is
not found by another, and stateful/stateless mixes get the verdicts of sim and emu mode
(tests/test_ct_zones.py measures one that used to differ).

Probes are real sockets inside the Mininet hosts' namespaces. `close()` (success, failure, Ctrl-C)
stops the agents, has Mininet `net.stop()`, then removes the namespaces with whatever is left in them
(all started by this lab), the lab's OVS, the VSC and the VSD.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from rich.console import Console

from vrs.agent.daemon import AgentConfig
from vrs.agent.ovsdb import IP_KEY, MAC_KEY, OWNER_KEY, VM_KEY, VPORT_KEY
from vsc.locations import MAX_ZONES
from vsplab.emu.check import rtt_summary
from vsplab.emu.drops import drop_count
from vsplab.emu.netns import ifname, run
from vsplab.emu.probes import Listeners, ping, tcp_connect
from vsplab.lab.base import Lab, drive
from vsplab.mininet import leftovers
from vsplab.mininet.agent import MininetVrs
from vsplab.mininet.check import check_expectations
from vsplab.mininet.fabric import VSC_IP, MininetFabric, host_netns, switch_name, tunnel_port, vtep_ip
from vsplab.report import LabReport
from vsplab.scenario.model import Scenario

MININET_PYTHON = "/usr/bin/python3"  # the interpreter Debian's `mininet` package is built for
DRIVER = Path(__file__).with_name("driver.py")
REQUIRED_TOOLS = ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip",
                  "ethtool", "mnexec", "ifconfig")
CONTAINER_MTU = 1450


class MininetError(RuntimeError):
    pass


def switch_zones(index: int, switches: int) -> tuple[int, int]:
    """(first zone, number of zones) of switch `index` (1-based) of `switches`: equal shares of the
    16-bit zone space, so the VSC's domain indexes (from 1) stay below each share's size."""
    size = MAX_ZONES // switches
    return (index - 1) * size, size


class MininetLab(Lab):
    """One scenario's lab on Mininet. Use as a context manager; `close()` removes everything."""

    MODE = "mininet"
    STEPS = {"start": "starting the VSD, the VSC and the lab's Open vSwitch",
             "plug": "building the Mininet network and waiting for the VSC to program every switch",
             "check": "probing with real packets from the Mininet hosts", "switches": "Mininet switches"}

    def keep_hint(self) -> str:
        return f" or `ip netns exec {host_netns(self.scenario.containers[0].name)} ip addr`"

    def __init__(self, scenario: Scenario, vsd_url: str | None = None, console: Console | None = None,
                 workdir: Path | None = None):
        super().__init__(scenario, vsd_url=vsd_url, console=console, workdir=workdir)
        self.fabric: MininetFabric | None = None
        self.driver: subprocess.Popen | None = None
        self.agents: dict[str, MininetVrs] = {}
        self.host_pids: dict[str, int] = {}
        self.listeners = Listeners()
        self.recorded = False  # the manifest names this lab (vsplab/mininet/leftovers.py)

    # --- bring-up -------------------------------------------------------------------------------

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise MininetError("mininet mode needs root (network namespaces, Open vSwitch)")
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise MininetError(f"missing {', '.join(missing)}: run scripts/system-deps (mininet, "
                               "openvswitch-switch, iproute2, ethtool, net-tools)")
        r = subprocess.run([MININET_PYTHON, "-c", "import mininet.net"], capture_output=True, text=True)
        if r.returncode:
            raise MininetError(f"{MININET_PYTHON} cannot import mininet (Debian package `mininet`): "
                               f"{r.stderr.strip()[-300:]}")
        leftovers.check_clean()

    def start(self) -> None:

        self._preflight()
        self._fresh_workdir()
        leftovers.record(self.workdir)
        self.recorded = True
        t0 = time.perf_counter()
        base = self.start_vsd()
        self.fabric = MininetFabric(self.workdir, len(self.scenario.hosts))
        self.stack.callback(self._quietly, self.fabric.stop)
        self.fabric.start()
        self.start_vscs(base, listen=VSC_IP, note=" (Mininet's remote controller)")
        # popped first at close: probes, agents, then Mininet itself, before the fabric goes
        self.stack.callback(self._quietly, self._stop_driver)
        self.stack.callback(self._quietly, self._stop_agents)
        self.stack.callback(self._quietly, self.listeners.close)
        self._phase("start", t0)

    def topology(self) -> dict:
        """What the Mininet driver builds (see driver.py)."""
        index = {h.name: i + 1 for i, h in enumerate(self.scenario.hosts)}
        hosts = []
        for p in self.placed.values():
            sn = self.scenario.subnet(p.enterprise, p.subnet)
            hosts.append({"name": p.name, "switch": switch_name(index[p.host]), "port": ifname("vl-p-", p.name),
                          "mac": p.mac, "ip": f"{p.ip}/{sn.network.prefixlen}", "gateway": sn.gateway_ip,
                          "mtu": CONTAINER_MTU})
        return {"controllers": [{"name": n, "ip": VSC_IP, "port": v.ports["of_port"]} for n, v in self.vscs.items()],
                "switches": [{"name": switch_name(index[h.name]), "dpid": index[h.name],
                              "controller": self.vsc_name(h)} for h in self.scenario.hosts],
                "hosts": hosts}

    def plug(self, timeout: float = 60.0) -> None:
        """Mininet builds the network; each host's namespace gets a name; the switches get their VXLAN
        port and each container port its VSD identity; then one agent per switch reports to the VSC."""
        t0 = time.perf_counter()
        topo = self.topology()
        env = {**self.fabric.ovs.env, "PYTHONDONTWRITEBYTECODE": "1"}
        err = open(self.workdir / "mininet.log", "ab")
        self.driver = subprocess.Popen(["ip", "netns", "exec", self.fabric.ovs.ns, MININET_PYTHON, str(DRIVER)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                       text=True, cwd=str(self.workdir))
        err.close()
        self.driver.stdin.write(json.dumps(topo) + "\n")
        self.driver.stdin.flush()
        answer = self._driver_answer(timeout)
        for name, pid in answer["hosts"].items():
            run("ip", "netns", "attach", host_netns(name), str(pid))
            self.host_pids[name] = pid
        identities = [(h["port"], self._identity(self.placed[h["name"]])) for h in topo["hosts"]]
        self.fabric.add_tunnels_and_identities(identities)
        for i, h in enumerate(self.scenario.hosts, start=1):
            vsc = self.vscs[self.vsc_name(h)]
            config = AgentConfig(db=self.fabric.ovs.db_remote, vsc_host=VSC_IP, of_port=vsc.ports["of_port"],
                                 agent_port=vsc.ports["agent_port"], bridge=switch_name(i), vtep_ip=vtep_ip(i),
                                 datapath_id=i, name=h.name, secret=self.enrol(h.name, i, vtep_ip(i)))
            zones = switch_zones(i, len(self.scenario.hosts))
            self.agents[h.name] = MininetVrs(config, tunnel_port(i), zones).spawn()
        self._phase("plug", t0)

    @staticmethod
    def _identity(p) -> dict[str, str]:
        return {OWNER_KEY: "vrs", VPORT_KEY: p.vport_id, MAC_KEY: p.mac.lower(), IP_KEY: p.ip, VM_KEY: p.vm_id}

    def _driver_answer(self, timeout: float) -> dict:
        """The driver's one answer line (its stdout carries nothing else)."""
        if select.select([self.driver.stdout], [], [], timeout)[0]:
            line = self.driver.stdout.readline()
            try:
                msg = json.loads(line)
            except ValueError:
                msg = {"error": f"unexpected output {line[:200]!r}" if line else "exited"}
            if "hosts" in msg:
                return msg
            log = (self.workdir / "mininet.log").read_text(errors="replace")[-1500:]
            raise MininetError(f"Mininet: {msg.get('error')}\n{msg.get('trace', '')}{log}")
        raise MininetError(f"Mininet did not start the network in {timeout:.0f}s (log: {self.workdir / 'mininet.log'})")

    def _check_running(self, hosts: list[str]) -> None:
        if self.driver.poll() is not None:
            raise MininetError(f"the Mininet driver exited ({self.driver.returncode}); see "
                               f"{self.workdir / 'mininet.log'}")
        dead = [h for h in hosts if not self.agents[h].alive()]
        if dead:
            raise MininetError(f"VRS agent of {dead[0]} stopped: {self.agents[dead[0]].error}")

    def _flows_per_host(self) -> dict[str, int]:
        return {h.name: self.fabric.flow_count(switch_name(i)) for i, h in enumerate(self.scenario.hosts, start=1)}

    def check(self) -> LabReport:
        t0 = time.perf_counter()
        bridges = [(self.fabric.ovs, switch_name(i)) for i in range(1, len(self.scenario.hosts) + 1)]
        self.report.results = check_expectations(self.listeners, self.scenario, self.placed, notes=self.figures,
                                                 drops=lambda: drop_count(bridges))
        self._phase("check", t0)
        self._measure()
        return self.report

    def _measure(self) -> None:
        """Round trips on a quiet lab (the checks ran in parallel and are no measure of latency): TCP
        connect + echo through the first allowed TCP pair, ICMP where the scenario allows it; and the
        memory of the one OVS that carries every switch."""
        for proto in ("tcp", "icmp"):
            x = next((x for x in self.scenario.expect if x.expect == "allow" and x.protocol == proto), None)
            if x is None:
                continue
            src, dst = self.placed[x.from_], self.placed[x.to]
            if proto == "tcp":
                rtts = [r[2] for r in (tcp_connect(host_netns(src.name), dst.ip, x.port, 1.0,
                                                   expect_netns=host_netns(dst.name)) for _ in range(10)) if r[0]]
                self.figures["TCP connect + echo"] = f"{src.name} -> {dst.name}: {rtt_summary(rtts, 'connections')}"
            else:
                rtts = ping(host_netns(src.name), dst.ip, count=10, timeout=0.5)
                self.figures["ping RTT"] = f"{src.name} -> {dst.name}: {rtt_summary(rtts)}"
        rss = sum(self.fabric.ovs.rss_kb().values())
        self.figures["OVS memory"] = (f"{rss / 1024:.1f} MB RSS for all {len(self.scenario.hosts)} switches "
                                      "(one ovsdb-server + ovs-vswitchd)")

    # --- a kept lab answers `vsplab flows` / `vsplab trace` ----------------------------------------

    def _control(self, req: dict) -> dict:
        from vsplab.mininet.check import probe

        if req.get("op") == "flows":
            names = [h.name for h in self.scenario.hosts]
            if req.get("host") not in names:
                raise KeyError(f"no host {req.get('host')!r}; hosts: {', '.join(names)}")
            return {"text": self.fabric.ovs.ofctl("dump-flows", switch_name(names.index(req["host"]) + 1))}
        if req.get("op") == "trace":
            src, dst = self.placed[req["from"]], self.placed[req["to"]]
            verdict, detail = probe(self.listeners, src, dst, req["proto"], req.get("port"))
            return {"text": f"{src.name} -> {dst.name}: {' '.join(filter(None, (verdict, detail)))} "
                            "(real packets from Mininet hosts)", "verdict": verdict}
        raise ValueError(f"unknown op {req.get('op')!r}")

    # --- teardown -------------------------------------------------------------------------------

    def _stop_agents(self) -> None:
        for a in self.agents.values():
            a.join()

    def _stop_driver(self, timeout: float = 30.0) -> None:
        """Closing its stdin makes the driver run `net.stop()`; SIGTERM does the same, SIGKILL is the
        last resort (the fabric's teardown then removes the hosts' namespaces and shells)."""
        if self.driver is None:
            return
        if self.driver.poll() is None:
            self.driver.stdin.close()
            try:
                self.driver.wait(timeout)
            except subprocess.TimeoutExpired:
                self.driver.terminate()
                try:
                    self.driver.wait(10)
                except subprocess.TimeoutExpired:
                    self.driver.kill()
                    self.driver.wait()
        self.driver.stdout.close()

    def close(self) -> None:
        # a second Ctrl-C (or a SIGTERM) must not cut the teardown short and leave half a lab behind
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.stack.close()
            if self.recorded:
                left = MininetFabric.leftovers() + [f"process {p}" for p in leftovers.lab_processes(str(self.workdir))]
                if left:
                    self.console.print("[red]cleanup left:[/] " + "; ".join(left)
                                       + f" (remove with `{leftovers.CLEANUP_COMMAND}`)")
                else:
                    shutil.rmtree(self.workdir, ignore_errors=True)
                    leftovers.MANIFEST.unlink(missing_ok=True)
                self.recorded = False
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_mininet_scenario(path: str, vsd_url: str | None = None, keep: bool = False,
                         console: Console | None = None) -> LabReport:
    """`vsplab run PATH --mode mininet`: the same steps and table as the other modes."""
    return drive(MininetLab, path, vsd_url=vsd_url, keep=keep, console=console)
