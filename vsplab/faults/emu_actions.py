"""Emu mode's host faults, on the real things: a host's `vrs run`, `ovs-vswitchd` and `ovsdb-server`
killed with SIGKILL by their PIDs and started again the way the lab started them; its underlay link
(the veth `vl-u<i>` on the underlay bridge, and its peer `vl-ul0` in the host) set down and up with
`ip link`, or given loss and delay with `tc qdisc ... netem` on both ends (removed again after); a flow
of its br-int changed behind the VSC's back with `ovs-ofctl mod-flows`, then found and put right by
the lab's drift audit (vsplab/audit); a container unplugged from one host and plugged on another."""

from __future__ import annotations

import time

from vsc.pipeline import Table
from vsplab.emu.check import container_netns
from vsplab.emu.host import UNDERLAY_IF, UNDERLAY_NS
from vsplab.emu.netns import CommandError, ifname, run
from vsplab.faults.actions import Actions, FaultError, sigkill
from vsplab.scenario.fault_model import FaultStep


class EmuActions(Actions):
    def started(self, pid: int, marker: str) -> None:
        if self.lab.manifest is not None:
            self.lab.manifest.add_process(pid, marker)

    # --- processes on a host ---------------------------------------------------------------------------

    def kill_on_host(self, kind: str, host: str) -> None:
        h = self.lab.hosts[host]
        if kind == "vrs":
            if not h.agent_alive():
                raise FaultError(f"the vrs agent on {host} is not running")
            sigkill(h.agent.pid)
            h.agent.wait()
        else:
            pid = h.ovs.pid(kind)
            if pid is None:
                raise FaultError(f"{kind} on {host} has no pidfile")
            sigkill(pid)
            end = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.02)

    def start_on_host(self, kind: str, host: str) -> None:
        h = self.lab.hosts[host]
        if kind == "vrs":
            if not h.agent_alive():
                vsc = self.lab.vsc_of(host)
                h.start_agent(self.lab.fabric.mgmt_ip, vsc.ports["of_port"], vsc.ports["agent_port"],
                              self.lab.secret_files.get(host))
        elif kind == "ovsdb-server":
            if not _alive(h.ovs.pid("ovsdb-server")):
                h.ovs.start_ovsdb()
        elif not _alive(h.ovs.pid("ovs-vswitchd")):
            # br-phy's address and the tunnel neighbours go with the datapath: put them back too
            h.restart_vswitchd(list(self.lab.hosts.values()))

    # --- the underlay link ------------------------------------------------------------------------------

    def _ends(self, host: str) -> list[tuple[str, str]]:
        """(namespace, interface) of both ends of the host's underlay veth."""
        h = self.lab.hosts[host]
        return [(UNDERLAY_NS, h.underlay_if), (h.ns, UNDERLAY_IF)]

    def _link(self, host: str, state: str) -> None:
        ns, dev = self._ends(host)[0]
        run("ip", "link", "set", dev, state, ns=ns)

    def do_link_down(self, step: FaultStep) -> dict:
        self._link(step.link_down, "down")
        self.undo[f"link {step.link_down}"] = lambda: self._link(step.link_down, "up")
        return {}

    def do_link_up(self, step: FaultStep) -> dict:
        self._link(step.link_up, "up")
        self.undo.pop(f"link {step.link_up}", None)
        return {}

    def _clear_netem(self, host: str) -> None:
        for ns, dev in self._ends(host):
            run("tc", "qdisc", "del", "dev", dev, "root", ns=ns, check=False)

    def do_netem(self, step: FaultStep) -> dict:
        args = []
        if step.loss:
            args += ["loss", f"{step.loss:g}%"]
        if step.delay_ms:
            args += ["delay", f"{step.delay_ms:g}ms"]
        for ns, dev in self._ends(step.netem):
            try:
                run("tc", "qdisc", "replace", "dev", dev, "root", "netem", *args, ns=ns)
            except CommandError as e:
                if "kind is unknown" in str(e):
                    raise FaultError("this kernel has no netem queueing discipline (module sch_netem): tc cannot "
                                     "add loss or delay here") from None
                raise
        self.undo[f"netem {step.netem}"] = lambda: self._clear_netem(step.netem)
        return {}

    def do_clear_netem(self, step: FaultStep) -> dict:
        self._clear_netem(step.clear_netem)
        self.undo.pop(f"netem {step.clear_netem}", None)
        return {}

    # --- a flow changed behind the VSC's back -----------------------------------------------------------

    def do_tamper_flow(self, step: FaultStep) -> dict:
        """The host's ingress ACL flows for an allowed TCP expectation sent from it turned into drops
        (`ovs-ofctl mod-flows`); the audit then finds and repairs the difference (`Actions.run`)."""
        host = step.tamper_flow
        x = self.tamper_target(host)
        ovs = self.lab.hosts[host].ovs
        match = f"table={int(Table.INGRESS_ACL)},tcp,tp_dst={x.port}"
        if "cookie=" not in ovs.ofctl("dump-flows", "br-int", match):
            raise FaultError(f"{host} has no flow {match} to tamper with")
        ovs.ofctl("mod-flows", "br-int", f"{match},actions=drop")
        return {"tampered": match}

    # --- a container moved -------------------------------------------------------------------------------

    def move(self, name: str, to: str) -> None:
        """Unplug `name` from its host and plug it on `to` (same vport, MAC and address): the VSC
        learns the new place from the agent's report."""
        p = self.lab.placed[name]
        self.lab.hosts[p.host].vrs("unplug", name, "--netns", container_netns(name))
        sn = self.lab.scenario.subnet(p.enterprise, p.subnet)
        host = self.lab.hosts[to]
        host.vrs("plug", name, "--netns", container_netns(name), "--port", ifname("vl-", name), "--mac", p.mac,
                 "--ip", f"{p.ip}/{sn.network.prefixlen}", "--gateway", sn.gateway_ip, "--vport-id", p.vport_id,
                 "--vm-id", p.vm_id, "--mtu", str(self.lab.container_mtu))
        host.use_datapath(ifname("vl-", name))
        p.host = to


def _alive(pid: int | None) -> bool:
    from vsplab.emu.netns import _alive as alive

    return bool(pid) and alive(pid)
