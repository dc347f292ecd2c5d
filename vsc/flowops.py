"""The flow-mods between two states of a VRS's flows, each state keyed by (table, priority, match)
(`vsc.pipeline.flow_key`): what a sync sends, and what the programmer hands the flusher."""

from __future__ import annotations

from dataclasses import dataclass

from openflow.flow import Flow

Key = tuple


@dataclass(slots=True)
class FlowOps:
    """The flow-mods that take a VRS from what it has to what it should have."""

    add: list[Flow]
    modify: list[Flow]
    delete: list[Flow]

    def __len__(self) -> int:
        return len(self.add) + len(self.modify) + len(self.delete)


def diff(installed: dict[Key, Flow], desired: dict[Key, Flow]) -> FlowOps:
    """Minimal ops from `installed` to `desired`. A flow whose cookie changes is re-added (OpenFlow 1.3
    cannot modify a cookie); one whose only payload changes is modified in place (keeps counters)."""
    if not installed:  # a fresh VRS: everything is an add
        return FlowOps(list(desired.values()), [], [])
    ops = FlowOps([], [], [])
    for k, f in desired.items():
        old = installed.get(k)
        if old is None:
            ops.add.append(f)
        elif not same(old, f):
            (ops.modify if old.cookie == f.cookie else ops.add).append(f)
    ops.delete = [f for k, f in installed.items() if k not in desired]
    return ops


def same(a: Flow, b: Flow) -> bool:
    return (a.cookie == b.cookie and a.actions == b.actions and a.goto == b.goto
            and a.write_metadata == b.write_metadata)
