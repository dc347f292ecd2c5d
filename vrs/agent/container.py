"""A container as the VRS sees it: a network namespace holding `eth0`, one end of a veth pair whose
other end is a port of the integration bridge. Run in the host's namespace (the one ovs-vswitchd runs
in), since the netdev datapath opens the bridge-side veth by name there."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from dataclasses import dataclass

from vrs.agent.ovsdb import Ovsdb, OvsdbError

# Room for the VXLAN header on a 1500-byte underlay: the userspace datapath does not fragment and
# logs "Message too long" for anything bigger (../shared/notes/userspace-ovs.md).
CONTAINER_MTU = 1450


class PlugError(RuntimeError):
    pass


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # the port's name on the bridge (<= 15 characters: it is a Linux interface)
    netns: str
    mac: str
    ip: str | None  # with prefix length, e.g. 10.1.0.11/24
    gateway: str | None
    vport_id: str | None
    mtu: int = CONTAINER_MTU
    vm_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.name) > 15:
            raise PlugError(f"port name {self.name!r} is longer than 15 characters (a Linux interface name)")
        if self.ip is not None and "/" not in self.ip:
            raise PlugError(f"ip {self.ip!r} needs a prefix length (e.g. {self.ip}/24)")


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode:
        raise PlugError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()}")
    return r


def _netns_exists(name: str) -> bool:
    return _ip("ip", "netns", "exec", name, "true", check=False).returncode == 0


def plug(db: Ovsdb, bridge: str, c: ContainerSpec, timeout: float = 10.0) -> int:
    """Create (or complete) the container's namespace and veth, attach it to `bridge` with its identity
    in external_ids; the ofport OVS gave it."""
    try:  # `vrs run` may have started a moment ago and not made the bridge yet
        db.wait_until(lambda: db.bridge(bridge) is not None, timeout, f"bridge {bridge}")
    except OvsdbError:
        raise PlugError(f"no bridge {bridge!r} in {db.remote} after {timeout}s: is `vrs run` up?") from None
    if not _netns_exists(c.netns):
        _ip("ip", "netns", "add", c.netns)
    if _ip("ip", "link", "show", c.name, check=False).returncode != 0:
        _ip("ip", "link", "add", c.name, "mtu", str(c.mtu), "type", "veth", "peer", "name", "eth0",
            "mtu", str(c.mtu), "netns", c.netns)
    _ip("ip", "link", "set", c.name, "up")
    # no RS/DAD noise on the overlay; plain sh, since sysctl (procps) is missing from slim systems
    inside = [["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"],
              ["ip", "link", "set", "lo", "up"],
              ["ip", "link", "set", "eth0", "address", c.mac, "mtu", str(c.mtu)],
              ["ip", "addr", "replace", c.ip, "dev", "eth0"] if c.ip else None,
              ["ip", "link", "set", "eth0", "up"],
              ["ip", "route", "replace", "default", "via", c.gateway] if c.gateway else None,
              # the userspace datapath forwards the partial checksums TX offload leaves: TCP hangs
              ["ethtool", "-K", "eth0", "tx", "off"]]
    for cmd in filter(None, inside):
        _ip(*cmd, netns=c.netns)
    ip = str(ipaddress.IPv4Interface(c.ip).ip) if c.ip else None
    db.add_port(bridge, c.name, c.vport_id, c.mac.lower(), ip, c.vm_id)
    return db.wait_ofport(bridge, c.name, timeout)


def unplug(db: Ovsdb, bridge: str, name: str, netns: str | None) -> bool:
    """Detach and remove the container's port and namespace; True if anything was there."""
    found = db.del_port(bridge, name)
    if _ip("ip", "link", "show", name, check=False).returncode == 0:
        _ip("ip", "link", "del", name, check=False)
        found = True
    if netns and _netns_exists(netns):
        # a process left inside would keep the namespace (and its eth0) alive after `ip netns del`
        for pid in _ip("ip", "netns", "pids", netns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _ip("ip", "netns", "del", netns, check=False)
        found = True
    return found
