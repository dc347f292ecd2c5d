"""The scenario file format: what a lab holds (controllers, hosts, the VSD objects, the workload) and
what it should do (the expected reachability). One file runs in sim or emu mode.

ACL rules are written from the traffic's point of view, `from` -> `to`; the VSD's templates are
filled in Nuage's convention by `vsplab.scenario.to_vsd`:
- an `ingress` rule governs what a vport sends into the overlay: location = `from`, network = `to`;
- an `egress` rule governs what the overlay delivers to a vport: location = `to`, network = `from`.

A rule end is a policy group name, `any`, or `subnet:NAME`, `zone:NAME`, `macro:NAME`,
`macrogroup:NAME`.

Federation: a `bgp:` section makes the controllers exchange their endpoints over MP-BGP EVPN; each
controller then needs `asn` and `router_id`. `peerings` are pairs of names (two controllers, or a
controller and one of the `route_reflectors` the lab runs on FRR); `hold_time` (default 9) and `md5`
apply to every session. Without `bgp:` the controllers do not federate.

Data plane (emu mode only): `dataplane:` picks each emulated host's OVS port type (`datapath`), the
underlay's MTU and the containers' (see `Dataplane`).

Faults: `faults:` is a list of steps (`FaultStep`), each one action - `kill`/`start`/`restart` of `vsd`,
`vsc NAME`, `vrs HOST`, `ovs-vswitchd HOST`, `ovsdb-server HOST`; `link-down`/`link-up`/`netem`/
`clear-netem` HOST; `tamper-flow` HOST; `delete-acl`; `stop-bgp` VSC; `cut-bgp` [A, B]; `move` - run in
order once the lab is checked (vsplab/faults/; the steps' model in fault_model.py), while the pairs of `probes:` are probed continuously.
What a mode cannot perform is refused when the file is loaded (vsplab/scenario/fault_check.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from .fault_model import FaultStep, Probe
from .strict import Strict


def _ipv4(v: str | None) -> str | None:
    if v is not None:
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 address (a router id is written A.B.C.D)") from None
    return v


class Controller(Strict):
    name: str
    asn: int | None = Field(default=None, ge=1, le=0xFFFFFFFF)  # 4-byte AS numbers; needed with `bgp:`
    router_id: str | None = None  # also the first half of the VSC's route distinguishers

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, v: str | None) -> str | None:
        return _ipv4(v)


class Host(Strict):
    name: str
    vsc: str | None = None  # default: the first controller


class Subnet(Strict):
    name: str
    address: str  # CIDR, e.g. 10.1.0.0/24
    gateway: str | None = None  # default: the first host address

    @field_validator("address")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            net = ipaddress.IPv4Network(v, strict=True)
        except ValueError as e:
            raise ValueError(f"not an IPv4 CIDR with its host bits clear: {e}") from None
        if net.prefixlen > 30:
            raise ValueError("prefix longer than /30 leaves no room for endpoints")
        return str(net)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.address)

    @property
    def gateway_ip(self) -> str:
        """The gateway as the VSD assigns it: the one the file names, else the first host address."""
        return self.gateway or str(next(self.network.hosts()))


class Zone(Strict):
    name: str
    subnets: list[Subnet] = Field(min_length=1)


class NetworkMacro(Strict):
    name: str
    address: str

    @field_validator("address")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            return str(ipaddress.IPv4Network(v, strict=True))
        except ValueError as e:
            raise ValueError(f"not an IPv4 CIDR: {e}") from None


class MacroGroup(Strict):
    name: str
    members: list[str] = Field(min_length=1)


Protocol = Literal["any", "tcp", "udp", "icmp"]


def parse_port_range(v: int | str | None) -> tuple[int, int] | None:
    if v is None or v == "*":
        return None
    if isinstance(v, int):
        lo = hi = v
    else:
        parts = str(v).split("-")
        if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"port {v!r}: expected N or LOW-HIGH")
        lo, hi = int(parts[0]), int(parts[-1])
    if not (0 < lo <= hi <= 65535):
        raise ValueError(f"port {v!r}: must be 1..65535 and LOW <= HIGH")
    return lo, hi


class AclRule(Strict):
    from_: str = Field(alias="from")
    to: str
    protocol: Protocol = "any"
    port: int | str | None = None  # destination port or LOW-HIGH
    src_port: int | str | None = None
    action: Literal["allow", "drop"] = "allow"
    stateful: bool = True
    priority: int | None = None  # default: the rule's position (earlier = evaluated first)

    @field_validator("port", "src_port")
    @classmethod
    def _ports(cls, v):
        parse_port_range(v)
        return v


class AclTemplate(Strict):
    default_allow_ip: bool = False
    default_allow_non_ip: bool = True
    rules: list[AclRule] = []


class Domain(Strict):
    name: str
    zones: list[Zone] = Field(min_length=1)
    policy_groups: list[str] = []
    ingress: AclTemplate | None = None
    egress: AclTemplate | None = None


class Enterprise(Strict):
    name: str
    network_macros: list[NetworkMacro] = []
    macro_groups: list[MacroGroup] = []
    domains: list[Domain] = Field(min_length=1)


class Container(Strict):
    name: str
    host: str
    subnet: str  # NAME, or ENTERPRISE/NAME where subnet names repeat across enterprises
    groups: list[str] = []
    ip: str | None = None
    mac: str | None = None


class Expectation(Strict):
    from_: str = Field(alias="from")
    to: str
    protocol: Literal["tcp", "udp", "icmp"] = "icmp"
    port: int | None = Field(default=None, ge=1, le=65535)
    expect: Literal["allow", "deny"]


class RouteReflector(Strict):
    """An external route reflector the lab runs (FRR's bgpd); VSCs in its AS peering with it are its clients."""

    name: str
    asn: int = Field(ge=1, le=0xFFFFFFFF)
    router_id: str

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, v: str | None) -> str | None:
        return _ipv4(v)


class Bgp(Strict):
    """MP-BGP EVPN between the scenario's VSCs: who peers with whom, the route reflectors to run."""

    peerings: list[tuple[str, str]] = []  # [A, B]: two controllers, or a controller and a route reflector
    route_reflectors: list[RouteReflector] = []
    hold_time: int = 9  # seconds, for every session; keepalives every third of it
    md5: str | None = None  # TCP MD5 password for every session

    @field_validator("hold_time")
    @classmethod
    def _hold(cls, v: int) -> int:
        if v != 0 and not 3 <= v <= 65535:  # RFC 4271 4.2
            raise ValueError("hold time must be 0 or 3..65535 seconds")
        return v

    @field_validator("md5")
    @classmethod
    def _md5(cls, v: str | None) -> str | None:
        if v is not None and (not 0 < len(v) <= 80 or '"' in v):
            raise ValueError("an MD5 password is 1-80 characters without quotes")
        return v


VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8: the userspace datapath does not fragment
# Native XDP on a veth caps its peer's MTU at one 4 KiB page less headroom (3506 on kernel 6.18; the
# kernel refuses more), and OVS's AF_XDP frames are 4 KiB too: jumbo frames do not pass AF_XDP ports
AFXDP_MAX_MTU = 3500


class Dataplane(Strict):
    """How emu mode builds each host's data plane. `netdev` ports (packet sockets) work everywhere;
    `afxdp` ports need a kernel with AF_XDP sockets and an OVS built with them, and each host's
    ovs-vswitchd then busy-polls one core with a PMD thread; `afxdp-nonpmd` polls them from the main
    thread instead (no idle cost, somewhat slower)."""

    datapath: Literal["netdev", "afxdp", "afxdp-nonpmd"] = "netdev"
    # default: 9000 (jumbo frames, as a datacentre underlay has them), the AF_XDP limit with AF_XDP
    underlay_mtu: int | None = Field(default=None, ge=1280, le=9216)
    # default (and "max"): the largest that fits in the underlay with VXLAN's 50 bytes, 8950 on the
    # default underlay: a 1500-byte container moves a sixth of the bytes per frame for the same
    # ovs-vswitchd work (benchmarks/dataplane.py); 1500 for a lab that wants the usual MTU
    container_mtu: int | Literal["max"] | None = None

    @field_validator("container_mtu")
    @classmethod
    def _container(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not 576 <= v <= 9216 - VXLAN_OVERHEAD:
            raise ValueError(f"container MTU {v}: expected 576..{9216 - VXLAN_OVERHEAD} or max")
        return v

    @model_validator(mode="after")
    def _fits(self) -> Dataplane:
        if self.datapath != "netdev" and self.underlay_mtu is not None and self.underlay_mtu > AFXDP_MAX_MTU:
            raise ValueError(f"underlay_mtu {self.underlay_mtu} with datapath {self.datapath}: AF_XDP ports "
                             f"carry at most {AFXDP_MAX_MTU} bytes (one 4 KiB frame)")
        if isinstance(self.container_mtu, int) and self.container_mtu + VXLAN_OVERHEAD > self.underlay:
            raise ValueError(f"container_mtu {self.container_mtu} does not fit in underlay_mtu {self.underlay} "
                             f"with VXLAN's {VXLAN_OVERHEAD} bytes (at most {self.underlay - VXLAN_OVERHEAD})")
        return self

    @property
    def underlay(self) -> int:
        if self.underlay_mtu is not None:
            return self.underlay_mtu
        return 9000 if self.datapath == "netdev" else AFXDP_MAX_MTU

    @property
    def container(self) -> int:
        if isinstance(self.container_mtu, int):
            return self.container_mtu
        return self.underlay - VXLAN_OVERHEAD


class Scenario(Strict):
    name: str
    description: str = ""
    controllers: list[Controller] = Field(default_factory=lambda: [Controller(name="vsc1")])
    hosts: list[Host] = Field(min_length=1)
    enterprises: list[Enterprise] = Field(min_length=1)
    containers: list[Container] = []
    expect: list[Expectation] = []
    bgp: Bgp | None = None
    dataplane: Dataplane = Field(default_factory=Dataplane)
    faults: list[FaultStep] = []  # run after the checks, in order (vsplab/faults/)
    probes: list[Probe] = []  # probed continuously while the faults run
    # what the checks found questionable but not wrong (vsplab/scenario/check.py), for the user to read
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return self._warnings

    def subnets(self) -> Iterator[tuple[Enterprise, Subnet]]:
        """Every subnet with its enterprise (a subnet's name is unique within its enterprise)."""
        for ent in self.enterprises:
            for dom in ent.domains:
                for zone in dom.zones:
                    for sn in zone.subnets:
                        yield ent, sn

    def subnet(self, enterprise: str, name: str) -> Subnet:
        return next(sn for ent, sn in self.subnets() if (ent.name, sn.name) == (enterprise, name))

    def gateways(self) -> dict[tuple[str, str], str]:
        """(enterprise, subnet) -> the subnet's gateway address: where a container sends off-subnet traffic."""
        return {(ent.name, sn.name): sn.gateway_ip for ent, sn in self.subnets()}
