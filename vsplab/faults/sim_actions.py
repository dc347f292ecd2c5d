"""Sim mode's host faults: its underlay is the simulated fabric (vrs/sim/fabric.py), whose links a
fault takes down, makes lose a share of the frames crossing them, or delay them; a simulated switch's
flow is tampered with in its table, as `ovs-ofctl mod-flows ... actions=drop` would; a container is
moved from one simulated host to another. Changed on the
simulator's loop thread, so no trace sees half a change."""

from __future__ import annotations

from vsc.pipeline import Table
from vsplab.faults.actions import Actions, FaultError
from vsplab.scenario.fault_model import FaultStep


class SimActions(Actions):
    def _set_link(self, host: str, **state) -> None:
        fabric = self.lab.runtime.fabric

        def change() -> None:
            link = fabric.link(host)
            for k, v in state.items():
                setattr(link, k, v)
        self.lab.runtime.call(change)

    def do_link_down(self, step: FaultStep) -> dict:
        self._set_link(step.link_down, up=False)
        self.undo[f"link {step.link_down}"] = lambda: self._set_link(step.link_down, up=True)
        return {}

    def do_link_up(self, step: FaultStep) -> dict:
        self._set_link(step.link_up, up=True)
        self.undo.pop(f"link {step.link_up}", None)
        return {}

    def do_netem(self, step: FaultStep) -> dict:
        self._set_link(step.netem, loss=step.loss or 0.0, delay_ms=step.delay_ms or 0.0)
        self.undo[f"netem {step.netem}"] = lambda: self._set_link(step.netem, loss=0.0, delay_ms=0.0)
        return {}

    def do_clear_netem(self, step: FaultStep) -> dict:
        self._set_link(step.clear_netem, loss=0.0, delay_ms=0.0)
        self.undo.pop(f"netem {step.clear_netem}", None)
        return {}

    def do_tamper_flow(self, step: FaultStep) -> dict:
        host = step.tamper_flow
        x = self.tamper_target(host)
        switch = self.lab.runtime.fabric.switches[host]
        table = int(Table.INGRESS_ACL)

        def tamper() -> int:
            hit = [r for _, r in switch.flows(table)
                   if dict(zip(r.sub.names, r.values, strict=True)).get("tcp_dst") == x.port]
            for r in hit:
                r.instr = ((), None, None, *r.instr[3:])  # no actions, no goto: a drop
            return len(hit)
        if not self.lab.runtime.call(tamper):
            raise FaultError(f"{host} has no flow in table {table} for tcp/{x.port} to tamper with")
        return {"tampered": f"table={table},tcp,tp_dst={x.port}"}

    def move(self, name: str, to: str) -> None:
        """Unplug `name` from its simulated host and plug it on `to` (same vport, MAC and address): port
        down and up on the agent channel, as `vrs unplug` / `vrs plug` would report them."""
        from vrs.sim.host import Container

        p = self.lab.placed[name]
        c = Container(name=p.name, mac=p.mac, ip=p.ip, vport_id=p.vport_id)
        hosts = self.lab.runtime.hosts
        self.lab.runtime.call(lambda: (hosts[p.host].remove_port(name), hosts[to].add_port(c)))
        p.host = to
