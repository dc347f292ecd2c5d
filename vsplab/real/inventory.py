"""The inventory of `vsplab run SCENARIO --mode real --inventory FILE`: where the daemons already run.

    vsd: {url: http://192.168.56.10:8443, user: csproot, password: vsplab-lab, org: csp}
    vscs:                                   # their status ports: convergence is asked there
      - {name: vsc1, status: http://192.168.56.21:6635}
    bin: /opt/vsplab/venv/bin               # vrs and python on the hosts (vagrant/provision/install.sh)
    ssh_options: [-F, vagrant/ssh_config]   # given to every ssh
    hosts:                                  # the scenario's hosts by name
      - {name: host1, ssh: vagrant@192.168.56.31, vtep: 192.168.56.31}
      - {name: host2, netns: vl-real-h2, vtep: 172.30.0.2, ovsdb: unix:/run/h2/db.sock}

A host is reached over `ssh` or, emulated on this machine, in its network namespace `netns`;
`ovsdb` is where `vrs plug` finds its Open vSwitch (default Debian's socket). Mistakes are reported
with the file, line and field, as in a scenario file."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import ValidationError, field_validator, model_validator

from vsplab.real.access import HostAccess
from vsplab.scenario.loader import ScenarioError, load_yaml
from vsplab.scenario.strict import Strict

DEFAULT_BIN = "/opt/vsplab/venv/bin"


class VsdAccess(Strict):
    url: str
    user: str = "csproot"
    password: str
    org: str = "csp"

    @property
    def api(self) -> str:
        base = self.url.rstrip("/")
        return base if "/nuage/api/" in base else f"{base}/nuage/api/v6"


class VscStatus(Strict):
    name: str
    status: str  # http://ADDR:PORT of its status interface

    @field_validator("status")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith("http://"):
            raise ValueError("expected http://ADDRESS:PORT (the VSC's --status-port)")
        return v.rstrip("/")


class RealHost(Strict):
    name: str
    ssh: str | None = None
    netns: str | None = None
    vtep: str
    ovsdb: str | None = None

    @field_validator("vtep")
    @classmethod
    def _address(cls, v: str) -> str:
        ipaddress.IPv4Address(v)
        return v

    @model_validator(mode="after")
    def _one_way_in(self) -> RealHost:
        if bool(self.ssh) == bool(self.netns):
            raise ValueError("give exactly one of ssh (user@address) and netns (a namespace on this machine)")
        return self


class Inventory(Strict):
    vsd: VsdAccess
    vscs: list[VscStatus]
    hosts: list[RealHost]
    bin: str = DEFAULT_BIN
    ssh_options: list[str] = []

    @model_validator(mode="after")
    def _unique(self) -> Inventory:
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"host names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
        if not self.vscs:
            raise ValueError("vscs: at least one VSC's status address (convergence is asked there)")
        return self

    def access(self, host: str) -> HostAccess:
        h = next(x for x in self.hosts if x.name == host)
        return HostAccess(h.name, ssh=h.ssh, netns=h.netns, ssh_options=tuple(self.ssh_options))

    def host(self, name: str) -> RealHost:
        return next(x for x in self.hosts if x.name == name)


def load_inventory(path: str | Path) -> Inventory:
    data, lm = load_yaml(path)
    try:
        return Inventory.model_validate(data)
    except ValidationError as e:
        raise ScenarioError([lm.error(tuple(err["loc"]), "unknown field" if err["type"] == "extra_forbidden"
                                      else err["msg"]) for err in e.errors()]) from None


def check_covers(inventory: Inventory, scenario, path: str) -> None:
    """Every host the scenario places containers on must be in the inventory."""
    known = {h.name for h in inventory.hosts}
    missing = [h.name for h in scenario.hosts if h.name not in known]
    if missing:
        raise ScenarioError([(str(path), None, "hosts", f"no host named {', '.join(missing)} (the scenario's; "
                              f"the inventory has {', '.join(sorted(known)) or 'none'})")])
