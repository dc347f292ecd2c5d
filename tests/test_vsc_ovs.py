"""The VSC programming a real Open vSwitch (userspace datapath, its own network namespace): OVS takes
every flow of the pipeline, a ping between two container namespaces goes through it (proxy-ARP,
routing, ACL, conntrack), and a VSC restart's resync against OVS's own flow dump changes nothing.

Needs root and Open vSwitch (scripts/system-deps); the agent channel is spoken by the test itself,
with the values the vrs agent reads from OVSDB."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from vsc.process import VscProcess
from vsplab.lab.ports import free_port
from vsplab.workload.tree import Tree

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]

DPID = 0x5A1


def sh(*cmd: str, ns: str | None = None, check: bool = True, env: dict | None = None) -> str:
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, env=env)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(full)}: {r.stderr.strip()}")
    return r.stdout


PING = """
import os, socket, struct, sys, time
dst, tries = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.0)
def csum(b):
    n = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    n = (n >> 16) + (n & 0xFFFF)
    return ~(n + (n >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
for seq in range(tries):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"vsplab-ping-payload!"
    s.sendto(body[:2] + struct.pack("!H", csum(body)) + body[4:], (dst, 0))
    end = time.time() + 1.0
    while time.time() < end:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = data[(data[0] & 15) * 4:]
        ok_sum = csum(icmp + b"\\0" * (len(icmp) % 2)) == 0  # raw sockets also get bad checksums
        if addr[0] == dst and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident and ok_sum:
            sys.exit(0)
sys.exit(1)
"""


def ping(ns: str, dst: str, tries: int = 3) -> bool:
    """ICMP echo from inside a namespace (raw socket; the machine has no ping binary)."""
    import sys

    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PING, dst, str(tries)],
                          capture_output=True).returncode == 0


class OvsHost:
    """ovsdb-server + ovs-vswitchd (netdev) in namespace `ns`, br-int with a VXLAN port and
    container namespaces on veths; the controller is reached over a veth pair from the root ns."""

    def __init__(self, tmp, tag: str) -> None:
        self.tag, self.ns, self.dir = tag, f"vl-ovs{tag}", tmp / "ovs"
        self.ctl_ip, self.ns_ip = "169.254.77.1", "169.254.77.2"
        self.env = {**os.environ, "OVS_RUNDIR": str(self.dir), "OVS_LOGDIR": str(self.dir), "OVS_DBDIR": str(self.dir)}
        self.containers: list[str] = []

    def start(self, of_port: int) -> None:
        self.dir.mkdir(parents=True)
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", f"vl-ct{self.tag}", "type", "veth", "peer", "name", f"vl-cn{self.tag}")
        sh("ip", "link", "set", f"vl-cn{self.tag}", "netns", self.ns)
        sh("ip", "addr", "add", f"{self.ctl_ip}/30", "dev", f"vl-ct{self.tag}")
        sh("ip", "link", "set", f"vl-ct{self.tag}", "up")
        for c in (["ip", "addr", "add", f"{self.ns_ip}/30", "dev", f"vl-cn{self.tag}"],
                  ["ip", "link", "set", f"vl-cn{self.tag}", "up"], ["ip", "link", "set", "lo", "up"]):
            sh(*c, ns=self.ns)
        db = str(self.dir / "conf.db")
        sh("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema")
        sock = f"unix:{self.dir}/db.sock"
        sh("ovsdb-server", db, f"--remote=p{sock}", "--pidfile", "--detach", f"--log-file={self.dir}/ovsdb.log",
           ns=self.ns, env=self.env)
        self.vsctl("--no-wait", "init")
        sh("ovs-vswitchd", sock, "--pidfile", "--detach", f"--log-file={self.dir}/vswitchd.log", ns=self.ns,
           env=self.env)
        self.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
                   "protocols=OpenFlow13", f"other-config:datapath-id={DPID:016x}",
                   "other-config:disable-in-band=true")
        self.vsctl("add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan",
                   "options:remote_ip=flow", "options:key=flow", "ofport_request=1")
        self.vsctl("set-controller", "br-int", f"tcp:{self.ctl_ip}:{of_port}")

    def vsctl(self, *args: str) -> str:
        return sh("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", *args, ns=self.ns, env=self.env)

    def ofctl(self, *args: str) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", *args, ns=self.ns, env=self.env)

    def container(self, name: str, ofport: int, mac: str, cidr: str, gateway: str) -> str:
        cns, veth = f"vl-{name}{self.tag}", f"vl-{name}"
        sh("ip", "netns", "add", cns)
        self.containers.append(cns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", cns, ns=self.ns)
        sh("ip", "link", "set", veth, "up", ns=self.ns)
        for c in (["ip", "link", "set", "eth0", "address", mac], ["ip", "addr", "add", cidr, "dev", "eth0"],
                  ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"],
                  ["ip", "route", "add", "default", "via", gateway]):
            sh(*c, ns=cns)
        self.vsctl("add-port", "br-int", veth, "--", "set", "interface", veth, f"ofport_request={ofport}")
        return cns

    def flows(self) -> dict[str, float]:
        """cookie+match -> duration of every flow OVS holds."""
        out = {}
        for line in self.ofctl("dump-flows", "br-int").splitlines()[1:]:
            parts = [p.strip() for p in line.split(",")]
            dur = next(float(p.split("=")[1].rstrip("s")) for p in parts if p.startswith("duration="))
            ident = ",".join(p for p in parts if not p.startswith(("duration=", "n_packets", "n_bytes")))
            out[ident.split(" actions=")[0]] = dur
        return out

    def stop(self) -> None:
        for pidfile in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
            p = self.dir / pidfile
            if p.exists():
                try:
                    os.kill(int(p.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(0.2)
        for cns in self.containers:
            sh("ip", "netns", "del", cns, check=False)
        sh("ip", "link", "del", f"vl-ct{self.tag}", check=False)
        sh("ip", "netns", "del", self.ns, check=False)


def two_subnets() -> tuple[Tree, dict]:
    t = Tree()
    ent = t.enterprise()
    dom = t.domain(ent, "d", 5001)
    web_s = t.subnet(t.zone(dom, "zw"), "web", "10.1.0.0/16")
    db_s = t.subnet(t.zone(dom, "zd"), "db", "10.2.0.0/16")
    web = t.vport(web_s, dom, "web1", "02:00:00:00:00:01", "10.1.0.10")
    db = t.vport(db_s, dom, "db1", "02:00:00:00:00:02", "10.2.0.10")
    pw, pd = t.policy_group(dom, "web", 1, [web]), t.policy_group(dom, "db", 2, [db])
    tin, teg = t.template(dom, "ingress"), t.template(dom, "egress")
    # ICMP from web to db only (stateful: the echo reply comes back), TCP 5432 likewise.
    for proto, port in (("1", "*"), ("6", "5432")):
        t.entry(tin, "ingress", 10 + int(proto), location=("POLICYGROUP", pw), network=("POLICYGROUP", pd),
                protocol=proto, dport=port, stateful=True)
        t.entry(teg, "egress", 10 + int(proto), location=("POLICYGROUP", pd), network=("POLICYGROUP", pw),
                protocol=proto, dport=port, stateful=True)
    return t, {"web": web, "db": db}


def agent_say(port: int, msgs: list[dict]) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))
    return s


def test_real_ovs_takes_the_pipeline_passes_traffic_and_survives_a_vsc_restart(tmp_path):
    tree, ids = two_subnets()
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"revision": 1, "objects": tree.objects}))
    host = OvsHost(tmp_path, str(os.getpid() % 10000))
    of, agent = free_port(), free_port()
    vsc = VscProcess(view_file=view, listen="0.0.0.0", of_port=of, agent_port=agent, status_port=free_port(),
                     state_dir=tmp_path / "state", log_file=tmp_path / "vsc.log")
    conn = None
    try:
        vsc.start()
        host.start(of)
        web = host.container("web1", 10, "02:00:00:00:00:01", "10.1.0.10/16", "10.1.0.1")
        db = host.container("db1", 11, "02:00:00:00:00:02", "10.2.0.10/16", "10.2.0.1")
        hello = [{"op": "hello", "datapath_id": DPID, "name": "vl-ovs", "vtep_ip": "192.168.77.1"},
                 {"op": "tunnel", "datapath_id": DPID, "ofport": 1},
                 {"op": "port-up", "datapath_id": DPID, "ofport": 10, "name": "vl-web1", "vport_id": ids["web"],
                  "mac": "02:00:00:00:00:01", "ip": "10.1.0.10"},
                 {"op": "port-up", "datapath_id": DPID, "ofport": 11, "name": "vl-db1", "vport_id": ids["db"],
                  "mac": "02:00:00:00:00:02", "ip": "10.2.0.10"}]
        conn = agent_say(agent, hello)
        st = vsc.wait_converged(30, datapaths=1, endpoints=2)
        dp = st["datapaths"][str(DPID)]
        assert dp["errors"] == [] and dp["last_sync_ops"][1] == 0
        flows = host.flows()
        assert len(flows) == dp["flows_desired"]
        # Proxy-ARP for the gateway, routing, ingress + egress ACL, conntrack for the echo reply.
        assert ping(web, "10.2.0.10")
        assert ping(db, "10.2.0.1")  # the gateway answers (checksums fixed up by OVS)
        assert not ping(db, "10.1.0.10", tries=1)  # db may not open connections to web
        time.sleep(1.1)  # so that a re-added flow would show a smaller duration
        conn.close()
        vsc.restart()
        conn = agent_say(agent, hello)
        st = vsc.wait_converged(30, datapaths=1, endpoints=2)
        assert st["datapaths"][str(DPID)]["last_sync_ops"] == [0, 0, 0]
        after = host.flows()
        assert after.keys() == flows.keys()
        assert all(after[k] >= flows[k] + 1.0 for k in flows)  # none was deleted and re-added
        assert ping(web, "10.2.0.10")
    finally:
        if conn:
            conn.close()
        vsc.stop()
        host.stop()
