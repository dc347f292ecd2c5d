"""Which kind of OVS port carries an emulated host's packets (`Scenario.dataplane.datapath`).

- `netdev`: the userspace datapath reads and writes each veth through a packet socket. Works on any
  kernel; about 87% of ovs-vswitchd's time goes into the kernel's packet sockets (the receiving
  container's TCP stack runs in its context), which is what caps the overlay's throughput.
- `afxdp`: an AF_XDP socket on each veth (an XDP program redirects its frames into a ring OVS shares),
  polled by a PMD thread: one per host's ovs-vswitchd, a whole core while traffic flows. Idle, it
  would spin too (83% of a core, measured); allowed to sleep up to PMD_MAX_SLEEP_US it takes ~5%.
- `afxdp-nonpmd`: the same sockets polled by ovs-vswitchd's main thread: no idle cost, less throughput.

AF_XDP needs the kernel's AF_XDP sockets (CONFIG_XDP_SOCKETS) and an OVS built with libxdp (Debian's
3.1 is; `ovs-vsctl get Open_vSwitch . iface_types` lists `afxdp`). Jumbo frames do not fit its 4 KiB
frames, hence the smaller underlay (vsplab/scenario/model.py, AFXDP_MAX_MTU)."""

from __future__ import annotations

import errno
import socket
import time

from pydantic import ValidationError

from vsplab.emu.ovs import OvsInstance
from vsplab.scenario.model import Dataplane

AF_XDP = 44  # linux/socket.h; Python's socket module has no name for it
# OVS 3.1's (experimental) load-based PMD sleep: a few hosts' PMDs share two cores instead of each
# spinning on one; 500 us kept throughput (measured on one bridge) and bounds the added latency
PMD_MAX_SLEEP_US = 500


class DatapathUnsupported(RuntimeError):
    """The scenario asks for a port type this machine cannot give (the message says why)."""


def port_type(datapath: str) -> str:
    """The Interface `type` OVS needs for a veth: empty (a system device) on plain netdev."""
    return "" if datapath == "netdev" else datapath


def with_datapath(dataplane: Dataplane, datapath: str | None) -> Dataplane:
    """The scenario's data plane with another datapath (`vsplab run --datapath`), checked again: an
    underlay MTU the scenario set for netdev may not fit AF_XDP."""
    if datapath is None or datapath == dataplane.datapath:
        return dataplane
    try:
        return Dataplane.model_validate({**dataplane.model_dump(exclude_unset=True), "datapath": datapath})
    except ValidationError as e:
        raise ValueError(f"--datapath {datapath}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def kernel_lacks_afxdp() -> str | None:
    """Why this kernel cannot open AF_XDP sockets, or None if it can."""
    try:
        socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()
    except OSError as e:
        if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS is off)"
        return f"the kernel refuses an AF_XDP socket: {e.strerror}"
    return None


def ovs_lacks_afxdp(ovs: OvsInstance) -> str | None:
    """Why this Open vSwitch cannot make AF_XDP ports (it lists what it can), or None if it can."""
    types = ovs.vsctl("get", "Open_vSwitch", ".", "iface_types").strip()
    if "afxdp" not in types.strip("[]").replace(" ", "").split(","):
        return f"this Open vSwitch build has no AF_XDP ports (iface_types: {types})"
    return None


def configure_switch(ovs: OvsInstance, datapath: str) -> None:
    """What a switch needs before its first port of `datapath`'s type."""
    if datapath == "afxdp":
        ovs.vsctl("set", "Open_vSwitch", ".", f"other_config:pmd-maxsleep={PMD_MAX_SLEEP_US}")


def set_port_type(ovs: OvsInstance, iface: str, datapath: str, timeout: float = 10.0) -> None:
    """Make `iface` an AF_XDP port (nothing to do on netdev) and wait until OVS has it open: it keeps the
    OpenFlow port number, so the VSC's flows for it stay right. An error OVS reports (no XDP on this
    device, no permission to load the program) makes the datapath unsupported here."""
    kind = port_type(datapath)
    if not kind:
        return
    ovs.vsctl("set", "interface", iface, f"type={kind}")
    end = time.monotonic() + timeout
    while True:
        error = ovs.vsctl("get", "interface", iface, "error").strip()
        if error not in ("[]", ""):
            raise DatapathUnsupported(f"OVS cannot open {iface} as an {kind} port: {error.strip(chr(34))}")
        ofport = ovs.vsctl("get", "interface", iface, "ofport").strip()
        if ofport.lstrip("-").isdigit() and int(ofport) > 0:
            return
        if time.monotonic() > end:
            raise RuntimeError(f"{iface}: OVS gave the {kind} port no OpenFlow port in {timeout:.0f}s")
        time.sleep(0.05)
