"""A simulated twin of a running emu lab: one simulated VRS per emulated host with the same name,
datapath id, VTEP, tunnel ofport and container ports (ofport, MAC, IP), holding exactly the flows the
real OVS holds (its `ovs-ofctl dump-flows` text, loaded through openflow/textparse.py).

The twin has no controller and no agent: nothing may change its tables behind the comparison."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vrs.sim.fabric import SimFabric
from vrs.sim.host import Container, SimVrs
from vsplab.emu.netns import ifname

# (host name, dump text) -> dump text to load instead; tests use it to prove a difference is caught
Tamper = Callable[[str, str], str]


@dataclass
class HostPorts:
    tunnel: int
    containers: dict[str, int]  # container name -> ofport on br-int


def real_ports(host, containers: list[str]) -> HostPorts:
    """The ofports OVS gave vxlan0 and each container's port (named by `vrs plug` as vl-<name>)."""
    def ofport(iface: str) -> int:
        v = int(host.ovs.vsctl("get", "Interface", iface, "ofport").strip())
        if v <= 0:
            raise RuntimeError(f"{host.name}: interface {iface} has no ofport ({v})")
        return v

    return HostPorts(ofport("vxlan0"), {c: ofport(ifname("vl-", c)) for c in containers})


@dataclass
class SimTwin:
    fabric: SimFabric
    hosts: dict[str, SimVrs]
    ports: dict[str, HostPorts]
    flows: dict[str, int]  # flows loaded per host
    dumps: dict[str, str]  # the real dump text per host (as taken, before any tamper)


def build_twin(lab, tamper: Tamper | None = None) -> SimTwin:
    """Dump every emulated host's br-int and load it into a fresh simulated fabric."""
    fabric, hosts, ports, flows, dumps = SimFabric(), {}, {}, {}, {}
    for name, host in lab.hosts.items():
        placed = [p for p in lab.placed.values() if p.host == name]
        hp = real_ports(host, [p.name for p in placed])
        ports[name] = hp
        containers = [Container(p.name, p.mac, p.ip, p.vport_id, ofport=hp.containers[p.name]) for p in placed]
        vrs = SimVrs(name, host.datapath_id, host.vtep_ip, containers, controller=None, agent=None,
                     tunnel_ofport=hp.tunnel)
        fabric.add(vrs.switch)
        dump = host.ovs.ofctl("dump-flows", "br-int")
        dumps[name] = dump
        text = tamper(name, dump) if tamper else dump
        flows[name] = vrs.load_dump(text)
        real = sum(1 for line in dump.splitlines() if "actions=" in line)
        if tamper is None and flows[name] != real:
            raise RuntimeError(f"{name}: loaded {flows[name]} of the real switch's {real} flows")
        hosts[name] = vrs
    return SimTwin(fabric, hosts, ports, flows, dumps)
