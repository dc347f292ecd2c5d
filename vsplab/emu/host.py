"""Emulated hosts on one machine: each a network namespace with its own Open vSwitch and `vrs` agent.

    root namespace:  vl-mgmt (Linux bridge, MGMT_NET .1) -- the VSC listens here
                        | vl-m<i> veth
    vl-<host>:       vl-mg0 (MGMT_NET .1+i)            br-phy (netdev, VTEP IP) -- vl-ul0 veth
                     br-int (netdev, the VSC's pipeline, vxlan0, container veths)      |
    vl-underlay:     vl-ul (Linux bridge, no address) ---------------------- vl-u<i> veth

The underlay lives in its own namespace so no lab address or frame touches the root namespace. The
VTEP address sits on br-phy's local port, not on the veth: userspace VXLAN routes and resolves the
outer header through an OVS bridge (../shared/notes/userspace-ovs.md)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from vsplab.emu.datapath import DatapathUnsupported, configure_switch, ovs_lacks_afxdp, set_port_type
from vsplab.emu.netns import link_delete, netns_add, netns_delete, netns_exists, run
from vsplab.emu.ovs import OvsInstance
from vsplab.emu.sockbuf import enlarge_receive_buffers, packet_socket_fds
from vsplab.scenario.model import Dataplane

MGMT_BRIDGE, MGMT_NET = "vl-mgmt", "169.254.100."
UNDERLAY_NS, UNDERLAY_BRIDGE, UNDERLAY_NET = "vl-underlay", "vl-ul", "172.30.0."
MGMT_IF, UNDERLAY_IF = "vl-mg0", "vl-ul0"
ROOT = Path(__file__).resolve().parents[2]  # the checkout, so `python -m vrs.cli` works from any cwd


def host_netns(host: str) -> str:
    return f"vl-{host}"


class EmuFabric:
    """The management bridge (root namespace) and the underlay bridge (its own namespace)."""

    mgmt_ip = f"{MGMT_NET}1"

    def __init__(self) -> None:
        # what this lab made: a start that lost a race with another lab ("File exists") must not
        # take that lab's bridge or namespace away when it cleans up
        self.made_bridge = self.made_underlay = False

    def start(self) -> None:
        run("ip", "link", "add", MGMT_BRIDGE, "type", "bridge")
        self.made_bridge = True
        run("ip", "addr", "add", f"{self.mgmt_ip}/24", "dev", MGMT_BRIDGE)
        run("ip", "link", "set", MGMT_BRIDGE, "up")
        netns_add(UNDERLAY_NS)
        self.made_underlay = True
        run("ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge", ns=UNDERLAY_NS)
        run("ip", "link", "set", UNDERLAY_BRIDGE, "up", ns=UNDERLAY_NS)

    def stop(self) -> None:
        if self.made_underlay:
            netns_delete(UNDERLAY_NS)
        if self.made_bridge:
            link_delete(MGMT_BRIDGE)


class EmuHost:
    """One emulated host. `index` (1..253) fixes its addresses and root-side interface names."""

    def __init__(self, name: str, index: int, workdir: Path, dataplane: Dataplane | None = None) -> None:
        if not 1 <= index <= 253:
            raise ValueError(f"host index {index} out of range 1..253")
        self.name, self.index = name, index
        self.ns = host_netns(name)
        self.dir = Path(workdir) / name
        self.ovs = OvsInstance(self.ns, self.dir)
        self.mgmt_ip = f"{MGMT_NET}{1 + index}"
        self.vtep_ip = f"{UNDERLAY_NET}{index}"
        self.datapath_id = index
        # fixed, so br-phy does not change MAC when its first port is added and peers can be told it
        self.phy_mac = f"02:76:6c:00:00:{index:02x}"
        self.agent: subprocess.Popen | None = None
        self.dataplane = dataplane or Dataplane()
        self.underlay_mtu = self.dataplane.underlay
        self.sockbuf_problem: str | None = None  # why the packet sockets kept the kernel's buffers

    @property
    def root_mgmt_if(self) -> str:
        return f"vl-m{self.index}"

    @property
    def underlay_if(self) -> str:
        return f"vl-u{self.index}"

    def start(self) -> None:
        """Namespace, management and underlay links, OVS with br-phy carrying the VTEP address."""
        netns_add(self.ns)
        # IPv4 only: router solicitations and DAD would only add upcalls and noise to every flow dump
        run("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6", ns=self.ns)
        run("ip", "link", "add", self.root_mgmt_if, "type", "veth", "peer", "name", MGMT_IF, "netns", self.ns)
        run("ip", "link", "set", self.root_mgmt_if, "master", MGMT_BRIDGE, "up")
        run("ip", "addr", "add", f"{self.mgmt_ip}/24", "dev", MGMT_IF, ns=self.ns)
        run("ip", "link", "set", MGMT_IF, "up", ns=self.ns)
        run("ip", "link", "add", self.underlay_if, "mtu", str(self.underlay_mtu), "type", "veth", "peer", "name",
            UNDERLAY_IF, "mtu", str(self.underlay_mtu), "netns", self.ns)
        run("ip", "link", "set", self.underlay_if, "netns", UNDERLAY_NS)
        run("ip", "link", "set", self.underlay_if, "master", UNDERLAY_BRIDGE, "up", ns=UNDERLAY_NS)
        run("ip", "link", "set", UNDERLAY_IF, "up", ns=self.ns)
        self.ovs.start()
        if self.dataplane.datapath != "netdev" and (why := ovs_lacks_afxdp(self.ovs)):
            raise DatapathUnsupported(why)
        configure_switch(self.ovs, self.dataplane.datapath)
        self.ovs.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
                       "fail_mode=standalone", f"other-config:hwaddr={self.phy_mac}", "--",
                       "add-port", "br-phy", UNDERLAY_IF, "--", "set", "interface", "br-phy",
                       f"mtu_request={self.underlay_mtu}")
        self.use_datapath(UNDERLAY_IF)
        self.tune_packet_sockets()
        run("ip", "addr", "add", f"{self.vtep_ip}/24", "dev", "br-phy", ns=self.ns)
        run("ip", "link", "set", "br-phy", "up", ns=self.ns)

    def use_datapath(self, iface: str) -> None:
        """Give a veth port (the underlay's, a container's) the scenario's port type."""
        set_port_type(self.ovs, iface, self.dataplane.datapath)

    def tune_packet_sockets(self, timeout: float = 5.0) -> None:
        """Large receive buffers on ovs-vswitchd's packet sockets (vsplab/emu/sockbuf.py), once it has
        one for each veth port; after ports are added. AF_XDP ports have none."""
        if self.dataplane.datapath != "netdev":
            return
        veths = len(self.ovs.vsctl("--bare", "--columns=name", "find", "interface", 'type=""').split())
        pid, end = self.ovs.pid("ovs-vswitchd"), time.monotonic() + timeout
        try:
            while len(packet_socket_fds(pid)) < veths and time.monotonic() < end:  # a restart reopening them
                time.sleep(0.05)
            enlarge_receive_buffers(pid)
        except OSError as e:  # an old kernel (no pidfd_getfd) or no right to it: slower, still correct
            self.sockbuf_problem = str(e)

    def restart_vswitchd(self, peers: list[EmuHost]) -> None:
        """Restart ovs-vswitchd as a crash or upgrade would. The userspace datapath's taps die with it,
        so br-phy comes back without the VTEP address and the neighbour cache is empty: put both back,
        as a host's network configuration would."""
        self.ovs.restart_vswitchd()
        end = time.monotonic() + 10
        while not Path(f"/proc/{self.ovs.pid('ovs-vswitchd')}").exists() or \
                run("ip", "link", "show", "br-phy", ns=self.ns, check=False) == "":
            if time.monotonic() > end:
                raise RuntimeError(f"{self.name}: br-phy did not come back after restarting ovs-vswitchd")
            time.sleep(0.05)
        run("ip", "addr", "replace", f"{self.vtep_ip}/24", "dev", "br-phy", ns=self.ns)
        run("ip", "link", "set", "br-phy", "up", ns=self.ns)
        self.learn_peers(peers)
        self.tune_packet_sockets()

    def learn_peers(self, peers: list[EmuHost]) -> None:
        """Tell OVS's tunnel neighbour cache every peer VTEP's MAC. It only learns them from ARP it
        sends itself (the kernel's ARP on br-phy is not snooped, measured), dropping the first packet
        towards each VTEP meanwhile: a lost SYN costs a probe one second."""
        for p in peers:
            if p is not self:
                self.ovs.appctl("tnl/neigh/set", "br-phy", p.vtep_ip, p.phy_mac)

    def _in_netns(self) -> list[str]:
        # Only the network namespace: `ip netns exec` also gives the command a private mount namespace,
        # and a container namespace `vrs plug` creates there (a bind mount) would vanish with it.
        return ["nsenter", f"--net=/var/run/netns/{self.ns}"]

    def start_agent(self, vsc_ip: str, of_port: int, agent_port: int, secret_file: Path | None = None) -> None:
        """`vrs run` inside the host's namespace, as on a real host (with its enrolment secret if given)."""
        cmd = [*self._in_netns(), sys.executable, "-m", "vrs.cli", "run", "--db", self.ovs.db_remote,
               "--vsc", vsc_ip, "--of-port", str(of_port), "--agent-port", str(agent_port),
               "--vtep-ip", self.vtep_ip, "--datapath-id", str(self.datapath_id), "--name", self.name,
               "--log-file", str(self.dir / "vrs.log"), *(["--secret-file", str(secret_file)] if secret_file else [])]
        err = open(self.dir / "vrs.stderr", "ab")
        self.agent = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, cwd=str(ROOT))
        err.close()

    def agent_output(self) -> str:
        return "".join((self.dir / f).read_text(errors="replace") for f in ("vrs.stderr", "vrs.log")
                       if (self.dir / f).exists())

    def flow_count(self) -> int:
        out = self.ovs.ofctl("dump-aggregate", "br-int")
        return int(out.split("flow_count=")[1].split()[0])

    def agent_alive(self) -> bool:
        return self.agent is not None and self.agent.poll() is None

    def vrs(self, *args: str) -> str:
        """A `vrs` subcommand (plug/unplug) run in this host's namespace against its OVSDB."""
        r = subprocess.run([*self._in_netns(), sys.executable, "-m", "vrs.cli", *args,
                            "--db", self.ovs.db_remote], capture_output=True, text=True, cwd=str(ROOT), timeout=60)
        if r.returncode:
            raise RuntimeError(f"vrs {' '.join(args[:2])} on {self.name}: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()  # nsenter exec()s `vrs run`: the signal reaches the agent itself
            try:
                self.agent.wait(10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()

    def stop(self) -> None:
        self.stop_agent()
        self.ovs.stop()
        if netns_exists(self.ns):
            netns_delete(self.ns)
        link_delete(self.root_mgmt_if)
        # the underlay end went with the namespace pair; wait for the kernel to finish before a rerun
        end = time.monotonic() + 2
        while time.monotonic() < end and Path(f"/sys/class/net/{self.root_mgmt_if}").exists():
            time.sleep(0.05)
