"""Sim mode's host faults: its underlay is the simulated fabric (vrs/sim/fabric.py), whose links a
fault takes down, makes lose a share of the frames crossing them, or delay them. Changed on the
simulator's loop thread, so no trace sees half a change."""

from __future__ import annotations

from vsplab.faults.actions import Actions
from vsplab.scenario.model import FaultStep


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
