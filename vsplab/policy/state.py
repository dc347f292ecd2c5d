"""A policy state: the VSD's objects as its change stream hands them to a VSC, and the endpoints that
exist (which container sits on which host, with its vport). Read from a running VSD, or made from a
scenario file by pushing it into a VSD of its own (the real one, on a temporary database, so defaults
and IDs are the VSD's and not a second guess of them)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HostPlan:
    name: str
    dpid: int
    vtep_ip: str


@dataclass(frozen=True)
class PlacedEndpoint:
    """A container that exists: its host, vport and addresses."""

    name: str
    host: str
    vport_id: str
    mac: str
    ip: str


@dataclass
class PolicyState:
    objects: list[dict]  # stream objects: {"entityType", "entity", "assoc"}
    hosts: list[HostPlan]
    endpoints: list[PlacedEndpoint]
    label: str = ""
    revision: int = 0
    warnings: list[str] = field(default_factory=list)

    def replace_objects(self, objects: list[dict], label: str) -> PolicyState:
        """The same endpoints under other VSD objects (a draft of the same domain)."""
        return PolicyState(objects, self.hosts, self.endpoints, label, self.revision)


def snapshot(client) -> tuple[int, list[dict]]:
    """(revision, objects) of the VSD as a controller would first receive them (the stream's snapshot)."""
    with client.change_stream(0) as lines:
        for line in lines:
            if line.get("kind") == "snapshot":
                return int(line["revision"]), list(line["objects"])
    raise ConnectionError("the VSD's change stream ended before its snapshot")


def plan_hosts(scenario) -> list[HostPlan]:
    """The hosts numbered as the sim lab numbers them (`SimLab.plug`): datapath i+1, VTEP VTEP_BASE.(i+1)."""
    from vsplab.lab.run import VTEP_BASE

    return [HostPlan(h.name, i + 1, f"{VTEP_BASE}{i + 1}") for i, h in enumerate(scenario.hosts)]


def placed_endpoints(placed: dict) -> list[PlacedEndpoint]:
    """The lab's placement (vsplab.scenario.to_vsd.PlacedContainer by name) as endpoints."""
    return [PlacedEndpoint(p.name, p.host, p.vport_id, p.mac, p.ip) for p in placed.values()]


def from_lab(lab) -> PolicyState:
    """What a running lab's VSD holds now, over the lab's containers."""
    revision, objects = snapshot(lab.client)
    return PolicyState(objects, plan_hosts(lab.scenario), placed_endpoints(lab.placed),
                       f"lab {lab.scenario.name} (VSD revision {revision})", revision)


def from_scenario(path: str | Path) -> PolicyState:
    """Push the scenario into a VSD of its own (temporary SQLite) and read it back."""
    from vsd.client import VsdClient
    from vsd.server import EmbeddedVsd
    from vsplab.scenario.check import load_scenario
    from vsplab.scenario.to_vsd import push_scenario

    scenario = load_scenario(path)
    with tempfile.TemporaryDirectory(prefix="vl-pol-") as tmp, \
            EmbeddedVsd(db_url=f"sqlite:///{Path(tmp) / 'vsd.db'}", log_path=str(Path(tmp) / "vsd.log")) as vsd:
        client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        try:
            pushed = push_scenario(client, scenario)
            revision, objects = snapshot(client)
        finally:
            client.close()
    return PolicyState(objects, plan_hosts(scenario), placed_endpoints(pushed.containers), str(path), revision,
                       list(scenario.warnings))
