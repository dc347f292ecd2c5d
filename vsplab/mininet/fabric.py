"""Where a Mininet lab lives: its own network namespace with its own Open vSwitch, a management veth
to the root namespace (the VSC listens there), and a userspace VXLAN underlay inside one vswitchd.

    root namespace:  vl-ctl-mn 169.254.101.1/30 <- the VSC (OpenFlow, agent channel)
                       | veth
    vl-mn:           vl-ctl0 169.254.101.2/30
                     ovsdb-server + ovs-vswitchd (netdev), OVS_RUNDIR = the lab's directory
                     vl-mn-ul: underlay bridge, local port holds every VTEP (172.30.1.i/24)
                     one Mininet switch (bridge) per scenario host, each with vl-vx<i>:
                         vxlan, remote_ip=flow, key=flow, local_ip=<its VTEP>
    vl-mn-c-<c>:     a name (`ip netns attach`) for each Mininet host's namespace, for the probes

Why this underlay (measured on OVS 3.1, ../shared/notes/userspace-ovs.md): Mininet's switches share
one ovs-vswitchd, hence one userspace datapath and one `vxlan_sys_4789` tunnel vport, so tunnel ports
must differ in config: `local_ip` makes each switch's port claim packets for its own VTEP. The VTEPs
are addresses of one netdev bridge's local port, so OVS routes every tunnel through that bridge
(`tunneling to 172.30.1.j via vl-mn-ul`) with the bridge's own MAC as next hop (tnl/neigh/set). The
encapsulated packet then enters vl-mn-ul from LOCAL; one flow sends it back out IN_PORT, i.e. to
LOCAL, where OVS recognises a local tunnel endpoint and decapsulates it: the datapath flow is
`tnl_push(... src=VTEP_i, dst=VTEP_j ...),tnl_pop(vxlan_sys_4789)` and the receiving switch's vxlan
port matches on its local_ip. NORMAL alone would drop it (the destination MAC is behind the input
port). Real VXLAN headers are built and parsed; only the wire between the hosts is missing.
"""

from __future__ import annotations

from pathlib import Path

from vsplab.emu.netns import link_delete, netns_add, netns_delete, netns_exists, run
from vsplab.emu.ovs import OvsInstance

NETNS = "vl-mn"
# not "vl-m...": emu tooling treats root links named so as its own
ROOT_MGMT_IF, MGMT_IF = "vl-ctl-mn", "vl-ctl0"
VSC_IP, MGMT_IP = "169.254.101.1", "169.254.101.2"
UNDERLAY_BRIDGE, UNDERLAY_NET = "vl-mn-ul", "172.30.1."
UNDERLAY_MAC = "02:76:6c:00:01:fe"  # fixed, so every tunnel neighbour entry can name it up front
HOST_NETNS_PREFIX = "vl-mn-c-"


def host_netns(container: str) -> str:
    return f"{HOST_NETNS_PREFIX}{container}"


def switch_name(index: int) -> str:
    return f"vl-s{index}"


def tunnel_port(index: int) -> str:
    return f"vl-vx{index}"


def vtep_ip(index: int) -> str:
    return f"{UNDERLAY_NET}{index}"


class MininetFabric:
    def __init__(self, workdir: Path, hosts: int) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError(f"{hosts} hosts: mininet mode holds 1..250")
        self.hosts = hosts
        self.ovs = OvsInstance(NETNS, Path(workdir) / "ovs")

    @staticmethod
    def leftovers() -> list[str]:
        found = [f"network namespace {NETNS}"] if netns_exists(NETNS) else []
        found += [f"network namespace {n.name}" for n in Path("/var/run/netns").glob(f"{HOST_NETNS_PREFIX}*")]
        if Path(f"/sys/class/net/{ROOT_MGMT_IF}").exists():
            found.append(f"link {ROOT_MGMT_IF}")
        return found

    def start(self) -> None:
        netns_add(NETNS)
        run("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6", ns=NETNS)
        run("ip", "link", "add", ROOT_MGMT_IF, "type", "veth", "peer", "name", MGMT_IF, "netns", NETNS)
        run("ip", "addr", "add", f"{VSC_IP}/30", "dev", ROOT_MGMT_IF)
        run("ip", "link", "set", ROOT_MGMT_IF, "up")
        run("ip", "addr", "add", f"{MGMT_IP}/30", "dev", MGMT_IF, ns=NETNS)
        run("ip", "link", "set", MGMT_IF, "up", ns=NETNS)
        self.ovs.start()
        self.ovs.vsctl("add-br", UNDERLAY_BRIDGE, "--", "set", "bridge", UNDERLAY_BRIDGE, "datapath_type=netdev",
                       "fail_mode=secure", f"other-config:hwaddr={UNDERLAY_MAC}")
        for i in range(1, self.hosts + 1):
            run("ip", "addr", "add", f"{vtep_ip(i)}/24", "dev", UNDERLAY_BRIDGE, ns=NETNS)
        run("ip", "link", "set", UNDERLAY_BRIDGE, "up", ns=NETNS)
        self.ovs.ofctl("add-flow", UNDERLAY_BRIDGE, "priority=100,in_port=LOCAL,udp,tp_dst=4789,actions=in_port")
        for i in range(1, self.hosts + 1):
            # OVS learns tunnel neighbours only from ARP it sends itself; nobody would answer here
            self.ovs.appctl("tnl/neigh/set", UNDERLAY_BRIDGE, vtep_ip(i), UNDERLAY_MAC)

    def add_tunnels_and_identities(self, ports: list[tuple[str, dict[str, str]]]) -> None:
        """After Mininet made the switches: each switch's flow-based VXLAN port, and the VSD identity
        (external_ids the VRS agent reads) on every container port, in one OVSDB transaction."""
        args: list[str] = []
        for i in range(1, self.hosts + 1):
            sw, vx = switch_name(i), tunnel_port(i)
            args += ["--", "add-port", sw, vx, "--", "set", "interface", vx, "type=vxlan",
                     "options:remote_ip=flow", "options:key=flow", f"options:local_ip={vtep_ip(i)}"]
        for port, ext in ports:
            args += ["--", "set", "interface", port, *(f'external_ids:{k}="{v}"' for k, v in ext.items())]
        self.ovs.vsctl(*args)

    def flow_count(self, bridge: str) -> int:
        out = self.ovs.ofctl("dump-aggregate", bridge)
        return int(out.split("flow_count=")[1].split()[0])

    def stop(self) -> None:
        """Every process left in the lab's namespaces (OVS, the Mininet driver and its hosts' shells,
        all started by this lab) goes with them."""
        for n in Path("/var/run/netns").glob(f"{HOST_NETNS_PREFIX}*"):
            netns_delete(n.name)
        self.ovs.stop()
        netns_delete(NETNS)
        link_delete(ROOT_MGMT_IF)
