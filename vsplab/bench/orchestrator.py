"""The orchestrator of the rollout: what a container platform sends the VSD's REST API, and the
containers it starts on their hosts.

First the domain and its policy (`vsplab.workload.vsd_push.push`, bulk). Then the containers in
batches at the arrival rate (or back to back): per batch one bulk POST of vports per subnet, one bulk
POST /vms with their interfaces, and then either (tagged) one PUT of each touched policy group's member
list - the VSD's API sets a group's members as a whole list - or (per-pair) one bulk POST of /32
enterprise networks and bulk POSTs of the batch's entries. A batch's containers start on their hosts
(an OpenFlow port-status and an agent port-up each, on their simulated VRSs) once the VSD has answered
for them, while the next batch is being defined: a container takes a moment to start, and the change
stream a moment to bring its policy to the VSC (a VSC that sees the port before the policy places the
endpoint untagged and modifies its flows everywhere a moment later).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vsplab.bench.workload import Member, Workload
from vsplab.workload.tree import Tree
from vsplab.workload.vsd_push import push


@dataclass
class Rollout:
    """What the orchestrator did, for the results."""

    batches: int = 0
    created: int = 0  # containers whose VSD objects exist
    attached: int = 0  # containers plugged into their VRS
    entries: int = 0  # ACL entries created (per-pair model: grows with the pairs)
    objects: int = 0  # VSD objects created, all kinds
    rest_calls: int = 0
    rest_s: float = 0.0  # wall time inside REST calls
    base_s: float = 0.0
    push_done_s: float = 0.0  # since the clock started, when the last REST call returned
    attach_done_s: float = 0.0
    ids: dict[str, str] = field(default_factory=dict)  # workload ID -> VSD ID


class Orchestrator:
    def __init__(self, workload: Workload, client, runtime, rate: float | None = None, batch: int = 1000,
                 tick: float = 1.0) -> None:
        self.w, self.client, self.runtime = workload, client, runtime
        self.rate = rate if rate and rate > 0 else None
        self.batch = max(1, round(self.rate * tick)) if self.rate else max(1, batch)
        self.done = Rollout()
        self.vport_ids: dict[str, str] = {}  # member name -> VSD vport ID, as the VRSs report it
        self._members: dict[str, list[str]] = {}  # policy group workload ID -> VSD vport IDs so far
        self._nets: dict[str, str] = {}  # member name -> VSD ID of its /32 enterprise network
        self._priority = {"ingress": 0, "egress": 0}
        self._t0 = 0.0

    def _call(self, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.done.rest_s += time.perf_counter() - t
            self.done.rest_calls += 1

    def run(self, t0: float, progress=None) -> Rollout:
        """Everything, paced from `t0` (perf_counter, the clock's start)."""
        self._t0 = t0
        base = self.w.base_objects()
        t = time.perf_counter()
        self.done.ids = self._call(push, self.client, Tree(objects=base))
        self.done.base_s = time.perf_counter() - t
        self.done.objects += len(base)
        order = self.w.arrival_order()
        arrived: list[Member] = []
        starting: list[Member] = []  # defined in the VSD, starting on their hosts during the next batch
        for k in range(0, len(order), self.batch):
            new = order[k:k + self.batch]
            if self.rate:
                delay = t0 + k / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self._define(new, arrived)
            self.done.created += len(new)
            self.done.push_done_s = time.perf_counter() - t0
            self.done.batches += 1
            arrived += new
            self._start(starting)
            starting = new
            if progress is not None:
                progress()
        self._start(starting)
        return self.done

    def _start(self, members: list[Member]) -> None:
        if members:
            self._attach(members)
            self.done.attached += len(members)
            self.done.attach_done_s = time.perf_counter() - self._t0

    # --- one batch ------------------------------------------------------------------------------

    def _define(self, new: list[Member], old: list[Member]) -> None:
        ids, c = self.done.ids, self.client
        by_subnet: dict[str, list[Member]] = {}
        for m in new:
            by_subnet.setdefault(m.subnet, []).append(m)
        for subnet, ms in by_subnet.items():
            made = self._call(c.create, f"subnets/{ids[subnet]}", "vports",
                              [{"name": m.name, "type": "CONTAINER", "addressSpoofing": "INHERITED"} for m in ms])
            for m, v in zip(ms, made, strict=True):
                self.vport_ids[m.name] = v["ID"]
        self._call(c.create, "", "vms", [
            {"name": m.name, "UUID": self.vport_ids[m.name], "interfaces": [
                {"name": "eth0", "MAC": m.mac, "IPAddress": m.ip, "VPortID": self.vport_ids[m.name]}]} for m in new])
        self.done.objects += 3 * len(new)  # vport, VM, interface
        if self.w.model == "tagged":
            self._join_groups(new)
        else:
            self._pair_entries(new, old)

    def _join_groups(self, new: list[Member]) -> None:
        names = self.w.group_ids()
        for group, wid in names.items():
            joining = [self.vport_ids[m.name] for m in new if group in m.groups]
            if joining:
                members = self._members.setdefault(wid, [])
                members += joining
                self._call(self.client.assign, f"policygroups/{self.done.ids[wid]}/vports", members)

    def _pair_entries(self, new: list[Member], old: list[Member]) -> None:
        ids, c = self.done.ids, self.client
        made = self._call(c.create, f"enterprises/{ids[self.w.enterprise_id()]}", "enterprisenetworks",
                          [{"name": f"{m.name}-addr", "address": m.ip, "netmask": "255.255.255.255"} for m in new])
        for m, n in zip(new, made, strict=True):
            self._nets[m.name] = n["ID"]
        self.done.objects += len(new)
        rows: dict[str, list[dict]] = {"ingress": [], "egress": []}
        for rule, here, there in self.w.per_pair_entries(new, old):
            self._priority[rule.direction] += 1
            rows[rule.direction].append(self.w.per_pair_body(
                rule, here, self._nets[there.name] if there else None, ids, self._priority[rule.direction]))
        templates = self.w.template_ids()
        for direction, body in rows.items():
            if body:
                self._call(c.create, f"{direction}acltemplates/{ids[templates[direction]]}",
                           f"{direction}aclentrytemplates", body)
                self.done.entries += len(body)
                self.done.objects += len(body)

    def _attach(self, new: list[Member]) -> None:
        from vrs.sim.host import Container

        rt, vports = self.runtime, self.vport_ids

        def plug() -> None:
            for m in new:
                rt.hosts[m.host].add_port(Container(f"vl-{m.name}", m.mac, m.ip, vports[m.name], m.ofport))
        rt.call(plug)
