"""FRR 8.4 for the tests that peer with it (tests/test_bgp_frr.py, tests/test_vsc_frr_external.py): a
bgpd of the test's own (`FrrBgpd`), its configuration, its EVPN table as records, and FRR as a VTEP
(`FrrVtep`: zebra + bgpd in a `vl-` namespace with kernel VXLAN devices in bridges).

Daemons run as children of the test (not daemonised, so their PIDs are the test's to end), as the frr
user (bgpd refuses root) in a temporary directory owned by frr:frr. Facts behind it:
../shared/notes/exabgp-evpn.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

BGPD = Path("/usr/lib/frr/bgpd")
ZEBRA = Path("/usr/lib/frr/zebra")
NAME = "vl-bgp-frrtest"

needs_frr = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bgpd needs root to start (it then runs as frr)"),
    pytest.mark.skipif(not BGPD.exists() or shutil.which("vtysh") is None, reason="FRR is not installed"),
]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(0.2)


def ip_cmd(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=20)


def _end(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class FrrBgpd:
    """One bgpd in a directory of its own, asked questions through vtysh."""

    def __init__(self, config: str, listen: str, port: int, prefix: str = NAME) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.listen, self.port = listen, port
        (self.dir / "bgpd.conf").write_text(config)
        shutil.chown(self.dir, "frr", "frr")
        shutil.chown(self.dir / "bgpd.conf", "frr", "frr")
        self.proc: subprocess.Popen | None = None

    def start(self, extra: list[str] | None = None, prefix_argv: list[str] | None = None) -> FrrBgpd:
        argv = [*(prefix_argv or []), str(BGPD), "-u", "frr", "-g", "frr", "-f", str(self.dir / "bgpd.conf"),
                "-i", str(self.dir / "bgpd.pid"), "--vty_socket", str(self.dir), "-P", "0",
                "-p", str(self.port), "--log", f"file:{self.dir / 'bgpd.log'}", *(extra or [])]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.dir / "bgpd.vty").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bgpd did not start: {self.log()[-2000:]}")
            time.sleep(0.05)
        return self

    def vtysh(self, command: str) -> str:
        return subprocess.run(["vtysh", "--vty_socket", str(self.dir), "-d", "bgpd", "-c", command],
                              capture_output=True, text=True, timeout=20, check=True).stdout

    def json(self, command: str) -> dict:
        return json.loads(self.vtysh(command) or "{}")

    def log(self) -> str:
        try:
            return (self.dir / "bgpd.log").read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        _end(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


# `disable-connected-check`: the speaker's routes name its VRSs' VTEPs as next hops, not its own peering
# address, and over single-hop eBGP FRR would mark them unreachable ("Must be Connected").
def bgpd_config(router_id: str, asn: int, neighbor: str, neighbor_as: int, neighbor_port: int,
                extra_bgp: str = "", extra_evpn: str = "", extra_top: str = "") -> str:
    """`extra_top` goes before `router bgp` (route maps), `extra_bgp` inside it, `extra_evpn` into its
    l2vpn evpn address family; each a block of lines ending in a newline."""
    return f"""frr defaults traditional
hostname {NAME}
{extra_top}router bgp {asn}
 bgp router-id {router_id}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {neighbor} remote-as {neighbor_as}
 neighbor {neighbor} port {neighbor_port}
 neighbor {neighbor} update-source {router_id}
 neighbor {neighbor} disable-connected-check
 neighbor {neighbor} timers 3 9
 neighbor {neighbor} timers connect 1
 neighbor {neighbor} advertisement-interval 0
{extra_bgp} address-family ipv4 unicast
  neighbor {neighbor} activate
 exit-address-family
 address-family l2vpn evpn
  neighbor {neighbor} activate
{extra_evpn} exit-address-family
"""


def evpn_routes(frr: FrrBgpd) -> dict[tuple, dict]:
    """FRR's type-2 routes as (rd, mac, ip) -> what the route's (first) path says. `... route detail
    json`: the plain form leaves out communities and the VNI."""
    table = frr.json("show bgp l2vpn evpn route detail json")
    seen = {}
    for rd, prefixes in table.items():
        if not isinstance(prefixes, dict):
            continue  # numPrefix, numPaths
        for prefix, route in prefixes.items():
            if prefix == "rd" or route.get("routeType") != 2:
                continue
            path = route["paths"][0][0]
            extended = path.get("extendedCommunity", {}).get("string", "").split()
            seen[(rd, route["mac"], route.get("ip"))] = {
                "vni": int(path["VNI"]), "ethernet_tag": route["ethTag"],
                "next_hop": path["nexthops"][0]["ip"],
                "route_targets": sorted(c[3:] for c in extended if c.startswith("RT:")),
                "encapsulation": [c for c in extended if c.startswith("ET:")],
                "communities": sorted(path.get("community", {}).get("list", [])),
                "as_path": path.get("aspath", {}).get("string", ""),
                "valid": bool(path.get("valid")),
            }
    return seen


class FrrVtep:
    """FRR as a VTEP: zebra + bgpd in a namespace of their own, each VNI a kernel VXLAN device in a
    bridge (zebra learns it, bgpd's `advertise-all-vni` makes type-2/3 routes of what the bridge
    holds), a veth as each bridge's access port, and a veth pair to the root namespace where the
    test's BGP speaker listens on `ours`; bgpd listens on `theirs`, both on `port`. The VTEP address
    sits on the namespace's loopback: never in 127/8, which FRR takes for martian.

        with FrrVtep(65000, 65001, {5001: "10.2.200.254/24"}) as frr:
            ... a speaker at frr.ours:frr.port peering with frr.theirs ...
            frr.add_endpoint(5001, "02:00:0b:00:00:01", "10.2.200.1")
    """

    def __init__(self, asn: int, peer_as: int, vnis: dict[int, str], vtep: str = "192.168.78.10",
                 routed: tuple[str, ...] = (), route_map_out: str = "",
                 route_targets: dict[int, str] | None = None) -> None:
        """`routed`: prefixes routed to the test's side (the peer's VTEPs); `route_map_out`: a route map's
        lines, applied to every EVPN route bgpd sends the peer; `route_targets`: VNI -> the route target
        it imports and exports instead of FRR's automatic ASN:VNI."""
        suffix = os.urandom(2).hex()
        self.ns, self.host_if, self.ns_if = f"vl-bgpfrr-{suffix}", f"vl-bf{suffix}h", f"vl-bf{suffix}n"
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        octet = next(n for n in range(16, 250) if f"10.251.{n}." not in used)
        self.ours, self.theirs, self.vtep = f"10.251.{octet}.1", f"10.251.{octet}.2", vtep
        self.port, self.asn, self.vnis, self.routed = 17900 + octet, asn, dict(vnis), routed
        evpn, top = "  advertise-all-vni\n", ""
        if route_map_out:
            top = f"route-map {NAME}-out permit 10\n{route_map_out.rstrip()}\n!\n"
            evpn += f"  neighbor {self.ours} route-map {NAME}-out out\n"
        for vni, rt in (route_targets or {}).items():
            evpn += f"  vni {vni}\n   route-target import {rt}\n   route-target export {rt}\n  exit-vni\n"
        self.bgpd = FrrBgpd(bgpd_config(self.theirs, asn, self.ours, peer_as, self.port, extra_top=top,
                                        extra_evpn=evpn), self.theirs, self.port)
        (self.bgpd.dir / "zebra.conf").write_text(f"hostname {NAME}-zebra\n")
        shutil.chown(self.bgpd.dir / "zebra.conf", "frr", "frr")
        self.zebra: subprocess.Popen | None = None

    def __enter__(self) -> FrrVtep:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        ns, ns_if = self.ns, self.ns_if
        ip_cmd("netns", "add", ns)
        ip_cmd("link", "add", self.host_if, "type", "veth", "peer", "name", ns_if)
        ip_cmd("link", "set", ns_if, "netns", ns)
        ip_cmd("addr", "add", f"{self.ours}/30", "dev", self.host_if)
        ip_cmd("link", "set", self.host_if, "up")
        steps = [["addr", "add", f"{self.theirs}/30", "dev", ns_if], ["addr", "add", f"{self.vtep}/32", "dev", "lo"]]
        up = ["lo", ns_if]
        for vni, address in self.vnis.items():
            br, vx, acc, peer = f"vl-br{vni}", f"vl-vx{vni}", f"vl-ac{vni}", f"vl-ap{vni}"
            steps += [["link", "add", br, "type", "bridge"],
                      ["link", "add", vx, "type", "vxlan", "id", str(vni), "local", self.vtep, "dstport", "4789",
                       "nolearning"],
                      ["link", "set", vx, "master", br],
                      ["link", "add", acc, "type", "veth", "peer", "name", peer],
                      ["link", "set", acc, "master", br],
                      ["addr", "add", address, "dev", br]]
            up += [br, vx, acc, peer]
        steps += [["link", "set", device, "up"] for device in up]
        # zebra marks an EVPN route invalid while its next hop is unroutable here
        steps += [["route", "add", prefix, "via", self.ours] for prefix in self.routed]
        for args in steps:
            ip_cmd("-n", ns, *args)
        d = self.bgpd.dir
        self.zebra = subprocess.Popen(["ip", "netns", "exec", ns, str(ZEBRA), "-u", "frr", "-g", "frr",
                                       "-f", str(d / "zebra.conf"), "-i", str(d / "zebra.pid"), "--vty_socket",
                                       str(d), "-z", str(d / "zserv.api"), "-P", "0",
                                       "--log", f"file:{d / 'zebra.log'}"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: (d / "zserv.api").exists(), 10, "zebra's socket")
        self.bgpd.start(["-z", str(d / "zserv.api")], prefix_argv=["ip", "netns", "exec", ns])

    def add_endpoint(self, vni: int, mac: str, ip: str) -> None:
        """An endpoint behind the access port: its MAC in the bridge's fdb, its IP as a neighbour (replacing
        one zebra installed for a peer's route: FRR then advertises the address as moved here)."""
        subprocess.run(["bridge", "-n", self.ns, "fdb", "add", mac, "dev", f"vl-ac{vni}", "master", "static"],
                       check=True)
        ip_cmd("-n", self.ns, "neigh", "replace", ip, "lladdr", mac, "dev", f"vl-br{vni}", "nud", "permanent")

    def remove_endpoint(self, vni: int, mac: str, ip: str) -> None:
        ip_cmd("-n", self.ns, "neigh", "del", ip, "dev", f"vl-br{vni}")
        subprocess.run(["bridge", "-n", self.ns, "fdb", "del", mac, "dev", f"vl-ac{vni}", "master"], check=True)

    def remote_vteps(self, vni: int) -> dict[str, str]:
        """MAC -> the VTEP the kernel sends it to over VNI `vni`: what zebra made of the peer's routes."""
        out = subprocess.run(["bridge", "-n", self.ns, "fdb", "show", "dev", f"vl-vx{vni}"], capture_output=True,
                             text=True, check=True).stdout
        return {w[0]: w[w.index("dst") + 1] for w in (line.split() for line in out.splitlines()) if "dst" in w}

    def stop(self) -> None:
        self.bgpd.stop()
        _end(self.zebra)
        ip_cmd("link", "del", self.host_if, check=False)  # the namespace's end goes with the namespace
        ip_cmd("netns", "delete", self.ns, check=False)
