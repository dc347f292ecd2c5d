"""The Mininet side of `vsplab run --mode mininet`, run by Debian's /usr/bin/python3 (the interpreter
the `mininet` package is built for) inside the lab's own network namespace, with OVS_RUNDIR pointing
at the lab's own Open vSwitch: Mininet's `ovs-vsctl` calls reach that instance, never the system one.

Standard library and Mininet only: this file is not imported by the venv side.

Protocol: one JSON line on stdin (the topology), one JSON line on stdout once the network runs
({"hosts": {name: pid}} or {"error": text}); then it holds the network until stdin closes (the lab
is done, or its process died) or SIGTERM, and stops it with `net.stop()` either way.
SIGINT is ignored: a terminal's Ctrl-C reaches the whole process group, and the lab's own teardown
must be the one to end the network, in order."""

import json
import os
import signal
import sys
import traceback
from functools import partial


def build(spec):
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch, RemoteController

    setLogLevel("warning")
    # Mininet.init() would raise machine-wide limits (fs.file-max...) that other labs share
    Mininet.inited = True
    switch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13", failMode="secure")
    net = Mininet(switch=switch, controller=None, build=False, autoSetMacs=False, autoStaticArp=False,
                  waitConnected=False)
    controllers = {c["name"]: net.addController(f"vl-{c['name']}", controller=RemoteController, ip=c["ip"],
                                                port=c["port"]) for c in spec["controllers"]}
    switches = {s["name"]: net.addSwitch(s["name"], dpid=f"{s['dpid']:016x}") for s in spec["switches"]}
    hosts = {}
    for h in spec["hosts"]:
        host = net.addHost(h["name"], ip=None, mac=None)
        # the host end is created directly inside the host's namespace, so it can be called eth0
        net.addLink(switches[h["switch"]], host, intfName1=h["port"], intfName2="eth0")
        hosts[h["name"]] = host
    return net, hosts, controllers


def start(net, controllers, spec):
    """`net.start()` but each switch with its own VSC (Mininet would give every switch every
    controller): what a scenario's `hosts: [{vsc: ...}]` says."""
    for c in net.controllers:
        c.start()
    for s in spec["switches"]:
        net.nameToNode[s["name"]].start([controllers[s["controller"]]])


def configure(net, hosts, spec):
    """Addresses as the VSD assigned them; MTU 1450 for the VXLAN header; no TX checksum offload,
    since the userspace datapath forwards the partial checksums it leaves (TCP would hang)."""
    for h in spec["hosts"]:
        host = hosts[h["name"]]
        mtu = str(h["mtu"])
        net.nameToNode[h["switch"]].cmd("ip", "link", "set", h["port"], "mtu", mtu, "up")
        for cmd in (["sh", "-c", "'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6'"],
                    ["ip", "link", "set", "eth0", "down"],
                    ["ip", "link", "set", "eth0", "address", h["mac"], "mtu", mtu],
                    ["ip", "addr", "replace", h["ip"], "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "route", "replace", "default", "via", h["gateway"]],
                    ["ethtool", "-K", "eth0", "tx", "off"]):
            out = host.cmd(*cmd, "; echo rc=$?")
            if not out.rstrip().endswith("rc=0"):
                raise RuntimeError(f"{h['name']}: {' '.join(cmd)}: {out.strip()}")


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # stdout carries the answer line only: Mininet's own output (its logger writes to stdout) goes
    # to stderr, the lab's log file
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    spec = json.loads(sys.stdin.readline())
    net = None
    try:
        net, hosts, controllers = build(spec)
        net.build()
        start(net, controllers, spec)
        configure(net, hosts, spec)
        print(json.dumps({"hosts": {name: h.pid for name, h in hosts.items()}}), file=answer, flush=True)
        sys.stdin.read()  # until the lab closes the pipe
    except BaseException as e:
        if not isinstance(e, SystemExit):
            print(json.dumps({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}), file=answer,
                  flush=True)
    finally:
        if net is not None:
            net.stop()


if __name__ == "__main__":
    main()
