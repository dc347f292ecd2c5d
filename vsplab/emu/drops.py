"""The datapath's own word on denied traffic: how many packets the emulated hosts' drop flows (a flow
whose actions are `drop`: the ACLs' deny entries and default verdicts, invalid conntrack state) have
counted. A concurrent check (vsplab/emu/check.py) reads it around its confirming volley: silence alone
could be a packet lost anywhere, a drop flow's counter rising is the pipeline refusing it.

OVS's userspace datapath keeps the counts in its datapath flows and hands them to the OpenFlow flows
when its revalidators next run; `revalidator/wait` waits for that round, so the count is current."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def dropped_by_flows(dump: str) -> int:
    """Packets counted by the drop flows of an `ovs-ofctl dump-flows` text."""
    total = 0
    for line in dump.splitlines():
        if line.rstrip().endswith("actions=drop") and "n_packets=" in line:
            total += int(line.split("n_packets=", 1)[1].split(",", 1)[0])
    return total


def drop_count(bridges) -> int:
    """The drop flows' packets over every (switch, bridge) pair (`vsplab.emu.ovs.OvsInstance`s and bridge
    names: br-int of each emulated host, or Mininet's bridges on one OVS), counts current."""
    by_switch: dict[int, tuple] = {}
    for ovs, bridge in bridges:
        by_switch.setdefault(id(ovs), (ovs, []))[1].append(bridge)

    def one(item) -> int:
        ovs, names = item
        ovs.appctl("revalidator/wait")
        return sum(dropped_by_flows(ovs.ofctl("dump-flows", name)) for name in names)

    items = list(by_switch.values())
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(items))), thread_name_prefix="drops") as ex:
        return sum(ex.map(one, items))
