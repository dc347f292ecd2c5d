"""The reference paths of benchmarks/dataplane.py and the iperf3 test run over each of them.

- `VethPair`: two namespaces joined by one veth pair, kernel defaults (MTU 1500, TSO and checksum
  offload on): the fastest a packet gets from one namespace to another on this kernel.
- `OneBridge`: one ovs-vswitchd (userspace datapath) in its own namespace with one bridge doing
  `NORMAL` switching between two namespaces, each holding a veth set up as an emulated container's
  (its MTU, TX checksum offload off) and attached as the emulator attaches them (port type, packet
  socket receive buffers: vsplab/emu/sockbuf.py). No conntrack, no tunnel, no controller: the
  ceiling of any overlay built on this datapath, which crosses the same kernel-to-OVS boundary (twice
  on each host) and adds conntrack and VXLAN to it.

Every namespace here is named `vl-bench-*`, and removed on exit (with whatever runs inside it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from vsplab.emu.datapath import configure_switch, set_port_type
from vsplab.emu.netns import netns_add, netns_delete, netns_exists, run
from vsplab.emu.ovs import OvsInstance
from vsplab.emu.sockbuf import enlarge_receive_buffers
from vsplab.scenario.model import Dataplane

PORT = 5201


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cores() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat: user to steal, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


def iperf3(client_ns: str, server_ns: str, server_ip: str, seconds: float, watch: dict[str, int] | None = None) -> dict:
    """One iperf3 TCP test (one stream); the server is started for it and stopped after it (by its pid).
    `watch`: name -> pid of processes whose CPU use during the test is reported (the switches).
    `machine_busy_cores`: the whole machine's busy cores during the test (the kernel's softirq work
    included, wherever it ran): the path's cost, meaningful on an otherwise quiet machine."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip,
                               "-p", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 10
        while f"{server_ip}:{PORT}" not in run("ss", "-ltnH", ns=server_ns, check=False):
            if server.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"iperf3 server in {server_ns} did not start: {server.stderr.read()!r}")
            time.sleep(0.05)
        cpu0, t0, machine0 = {k: cpu_seconds(p) for k, p in (watch or {}).items()}, time.monotonic(), busy_cores()
        out = run("iperf3", "-c", server_ip, "-p", str(PORT), "-t", str(seconds), "-J", ns=client_ns,
                  timeout=seconds + 30)
        machine1, elapsed = busy_cores(), time.monotonic() - t0
        busy = {k: round(100 * (cpu_seconds(p) - cpu0[k]) / elapsed) for k, p in (watch or {}).items()}
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(10)
    doc = json.loads(out)
    if "error" in doc:
        raise RuntimeError(f"iperf3 {client_ns} -> {server_ip}: {doc['error']}")
    end = doc["end"]
    extra = {"cpu_percent_of_one_core": busy} if busy else {}
    cores = (machine1[0] - machine0[0]) / elapsed
    return {**extra, "mbit_s": end["sum_received"]["bits_per_second"] / 1e6, "machine_busy_cores": cores,
            "machine_cores": round((machine1[1] - machine0[1]) / elapsed, 2),
            "retransmits": end["sum_sent"].get("retransmits"),
            "sender_cpu_percent": end["cpu_utilization_percent"]["host_total"],
            "receiver_cpu_percent": end["cpu_utilization_percent"]["remote_total"]}


def packet_socket_drops(namespaces: list[str]) -> int:
    """Frames the kernel dropped at the packet sockets in `namespaces` (full receive buffers), so far."""
    return sum(int(d) for ns in namespaces
               for d in re.findall(r"skmem:\(.*?,d(\d+)\)", run("ss", "-0", "-a", "-m", ns=ns)))


def _refuse_existing(names: tuple[str, ...]) -> None:
    for ns in names:
        if netns_exists(ns):
            raise RuntimeError(f"namespace {ns} exists: another benchmark running, or a leftover "
                               f"(`ip netns del {ns}` once sure it is not in use)")


def _endpoints(names: tuple[str, ...], ips: tuple[str, ...], ns: str | None, ports: tuple[str, ...] | None) -> None:
    """A veth from each endpoint namespace: into the other endpoint (ns None) or into switch namespace
    `ns` as `ports`; addresses on the endpoints' eth0."""
    if ns is None:
        run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", names[1], ns=names[0])
    else:
        for name, port in zip(names, ports, strict=True):
            run("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name, ns=ns)
            run("ip", "link", "set", port, "up", ns=ns)
    for name, ip in zip(names, ips, strict=True):
        run("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=name)
        run("ip", "link", "set", "eth0", "up", ns=name)


class VethPair:
    """Two namespaces and one veth pair between them, kernel defaults; removed on exit."""

    NS, IPS = ("vl-bench-a", "vl-bench-b"), ("10.250.0.1", "10.250.0.2")
    label = "plain veth pair, kernel defaults (MTU 1500, offloads on)"

    def __enter__(self) -> VethPair:
        _refuse_existing(self.NS)
        try:
            for ns in self.NS:
                netns_add(ns)
            _endpoints(self.NS, self.IPS, None, None)
        except BaseException:
            self.__exit__()
            raise
        return self

    def measure(self, seconds: float) -> dict:
        return iperf3(self.NS[0], self.NS[1], self.IPS[1], seconds)

    def __exit__(self, *exc) -> None:
        for ns in self.NS:
            netns_delete(ns)


class OneBridge:
    """One userspace-datapath bridge with `NORMAL` between two container-like namespaces."""

    SWITCH, NS, PORTS = "vl-bench-sw", ("vl-bench-c1", "vl-bench-c2"), ("vl-bench-p1", "vl-bench-p2")
    IPS = ("10.250.1.1", "10.250.1.2")

    def __init__(self, dataplane: Dataplane, tuned: bool = True) -> None:
        self.dataplane, self.tuned = dataplane, tuned
        self.dir = Path(tempfile.mkdtemp(prefix="vsplab-bench-"))
        self.ovs = OvsInstance(self.SWITCH if tuned else self.SWITCH + "0", self.dir)
        if not tuned:  # a second one beside the first
            self.NS, self.PORTS = tuple(n + "0" for n in self.NS), tuple(n + "0" for n in self.PORTS)
            self.IPS = ("10.250.2.1", "10.250.2.2")
        self.label = (f"one {dataplane.datapath} bridge, NORMAL, container MTU {dataplane.container}, "
                      "TX checksum offload off" + ("" if tuned else ", packet sockets at the kernel's "
                                                   "default receive buffer (as OVS leaves them)"))

    def __enter__(self) -> OneBridge:
        _refuse_existing((self.ovs.ns, *self.NS))
        try:
            for ns in (self.ovs.ns, *self.NS):
                netns_add(ns)
            _endpoints(self.NS, self.IPS, self.ovs.ns, self.PORTS)
            mtu = str(self.dataplane.container)
            for ns, port in zip(self.NS, self.PORTS, strict=True):
                run("ip", "link", "set", port, "mtu", mtu, ns=self.ovs.ns)
                run("ip", "link", "set", "eth0", "mtu", mtu, ns=ns)
                # as `vrs plug` does: the userspace datapath forwards partial checksums as they are
                run("ethtool", "-K", "eth0", "tx", "off", ns=ns)
            self.ovs.start()
            configure_switch(self.ovs, self.dataplane.datapath)
            self.ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                           "fail_mode=standalone")
            for port in self.PORTS:
                self.ovs.vsctl("add-port", "br0", port)
                set_port_type(self.ovs, port, self.dataplane.datapath)
            if self.tuned and self.dataplane.datapath == "netdev":  # as the emulator's hosts have them
                enlarge_receive_buffers(self.ovs.pid("ovs-vswitchd"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def measure(self, seconds: float) -> dict:
        drops = packet_socket_drops([self.ovs.ns])
        r = iperf3(self.NS[0], self.NS[1], self.IPS[1], seconds, watch={"ovs-vswitchd": self.ovs.pid("ovs-vswitchd")})
        return {**r, "packet_socket_drops": packet_socket_drops([self.ovs.ns]) - drops}

    def __exit__(self, *exc) -> None:
        self.ovs.stop()
        for ns in (*self.NS, self.ovs.ns):
            netns_delete(ns)
        shutil.rmtree(self.dir, ignore_errors=True)
