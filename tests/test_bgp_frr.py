"""Interop with FRR 8.4's bgpd: a `Speaker` peers with it over eBGP and FRR shows every advertised
EVPN route as sent (RD, RT, encapsulation, VNI, MAC, IP, next hop, communities); a withdrawal
removes it. FRR reflects the routes back to us (AS path [65100, 65101]): the speaker ignores them.

bgpd runs as a child of the test (not daemonised, so its PID is ours to end), without zebra, on
127.0.0.4 at a free port (`-l ADDR -p PORT`, which also keeps it off the kernel's routing table), in
a temporary directory owned by frr:frr (bgpd refuses to run as root). Needs root; skipped without
root or FRR. See ../shared/notes/exabgp-evpn.md for the facts this builds on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from vsc.bgp.evpn import canonical_route
from vsc.bgp.exabgp_config import Peer, SpeakerConfig
from vsc.bgp.loopback import Recorder, free_port
from vsc.bgp.route import MacIpRoute
from vsc.bgp.speaker import Speaker

BGPD = Path("/usr/lib/frr/bgpd")
FRR_ADDRESS, FRR_AS = "127.0.0.4", 65100
OUR_ADDRESS, OUR_AS = "127.0.0.5", 65101
NAME = "vl-bgp-frrtest"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bgpd needs root to start (it then runs as frr)"),
    pytest.mark.skipif(not BGPD.exists() or shutil.which("vtysh") is None, reason="FRR is not installed"),
]


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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def bgpd_config(router_id: str, asn: int, neighbor: str, neighbor_as: int, neighbor_port: int,
                extra_bgp: str = "", extra_evpn: str = "") -> str:
    return f"""frr defaults traditional
hostname {NAME}
router bgp {asn}
 bgp router-id {router_id}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {neighbor} remote-as {neighbor_as}
 neighbor {neighbor} port {neighbor_port}
 neighbor {neighbor} update-source {router_id}
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
    """FRR's EVPN table as (rd, mac, ip) -> what the route's (first) path says."""
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
            }
    return seen


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(0.2)


# FRR treats a next hop in 127/8 as martian and the UPDATE as a withdrawal: VTEPs are elsewhere.
ROUTES = [
    MacIpRoute(rd=f"{OUR_ADDRESS}:5001", mac="02:00:0a:01:00:01", ip="10.1.0.1", vni=5001,
               next_hop="192.168.77.1", route_targets=("65000:5001",), communities=("5001:3", "5001:9")),
    MacIpRoute(rd=f"{OUR_ADDRESS}:5001", mac="02:00:0a:01:00:02", ip="10.1.0.2", vni=5001,
               next_hop="192.168.77.2", route_targets=("65000:5001",), communities=("5001:4",)),
    MacIpRoute(rd=f"{OUR_ADDRESS}:5001", mac="02:00:0a:01:00:03", ip=None, vni=5001,
               next_hop="192.168.77.1", route_targets=("65000:5001",)),
    MacIpRoute(rd="65101:6000", mac="02:00:0a:01:00:04", ip="2001:db8::4", vni=6000,
               next_hop="192.168.77.3", route_targets=("65000:6000", "192.0.2.1:6", "4200000000:6"),
               communities=("6000:1",)),
]


@pytest.fixture
def frr_and_speaker():
    port = free_port(FRR_ADDRESS, OUR_ADDRESS)
    frr = FrrBgpd(bgpd_config(FRR_ADDRESS, FRR_AS, OUR_ADDRESS, OUR_AS, port), FRR_ADDRESS, port)
    recorder = Recorder()
    speaker = Speaker(SpeakerConfig(router_id=OUR_ADDRESS, local_as=OUR_AS, listen_address=OUR_ADDRESS,
                                    listen_port=port, peers=[Peer(FRR_ADDRESS, FRR_AS, port=port)],
                                    own_rds=frozenset({f"{OUR_ADDRESS}:5001"}), name=NAME),
                      recorder.on_routes, recorder.on_session)
    try:
        frr.start(["-Z", "-l", FRR_ADDRESS, "-z", str(frr.dir / "zserv.api")])
        speaker.start()
        recorder.wait_session(FRR_ADDRESS, "up", 30)
        yield frr, speaker, recorder
    finally:
        speaker.stop()
        frr.stop()


def test_frr_shows_what_we_advertise_and_drops_what_we_withdraw(frr_and_speaker):
    frr, speaker, recorder = frr_and_speaker
    speaker.advertise(ROUTES)
    expected = {r.key: canonical_route(r) for r in ROUTES}
    seen = wait_for(lambda: t if len(t := evpn_routes(frr)) == len(ROUTES) else None, 15, "routes in FRR")
    for key, route in expected.items():
        got = seen[key]
        assert got["vni"] == route.vni and got["ethernet_tag"] == route.ethernet_tag
        assert got["next_hop"] == route.next_hop
        assert got["route_targets"] == sorted(route.route_targets)
        assert got["encapsulation"] == ["ET:8"]  # RFC 9012 tunnel type 8, VXLAN
        assert got["communities"] == sorted(route.communities)
        assert got["as_path"] == str(OUR_AS)
    # FRR sends them all back over eBGP; not one is taken for a route of FRR's.
    wait_for(lambda: speaker.ignored_routes >= len(ROUTES), 10, "our routes back from FRR")
    assert speaker.received()[FRR_ADDRESS] == {}

    speaker.withdraw([ROUTES[1].key, ROUTES[3].key])
    wait_for(lambda: set(evpn_routes(frr)) == {ROUTES[0].key, ROUTES[2].key}, 10, "withdrawals in FRR")
    moved = dataclasses.replace(ROUTES[0], next_hop="192.168.77.9")
    speaker.advertise([moved])
    wait_for(lambda: evpn_routes(frr)[moved.key]["next_hop"] == "192.168.77.9", 10, "replaced route in FRR")

    # The Ethernet Tag is part of FRR's prefix: moving a route to another tag must not leave the old one.
    retagged = dataclasses.replace(ROUTES[2], ethernet_tag=7)
    speaker.advertise([retagged])

    def tags_of(mac: str) -> list[int]:
        table = frr.json("show bgp l2vpn evpn route json")
        return sorted(route["paths"][0][0]["ethTag"] for prefixes in table.values() if isinstance(prefixes, dict)
                      for prefix, route in prefixes.items() if prefix != "rd" and mac in prefix)

    wait_for(lambda: tags_of(retagged.mac) == [7], 10, "the route under its new Ethernet Tag only")

    assert speaker.refused_commands == 0


# ---------------------------------------------------------------- the other way: FRR originates


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=20)


@pytest.fixture
def frr_vtep():
    """FRR as a VTEP: zebra + bgpd in a namespace of their own, VNI 5001 as a kernel VXLAN device in
    a bridge (zebra learns it, bgpd `advertise-all-vni` makes type-2/3 routes of what the bridge
    holds), a veth as the access port, a veth pair to the root namespace where the speaker runs."""
    suffix = os.urandom(2).hex()
    ns, host_if, ns_if = f"vl-bgpfrr-{suffix}", f"vl-bf{suffix}h", f"vl-bf{suffix}n"
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    octet = next(n for n in range(16, 250) if f"10.251.{n}." not in used)
    ours, theirs, vtep = f"10.251.{octet}.1", f"10.251.{octet}.2", "192.168.77.10"
    port = 17900 + octet
    frr = FrrBgpd(bgpd_config(theirs, FRR_AS, ours, OUR_AS, port, extra_evpn="  advertise-all-vni\n"),
                  theirs, port)
    (frr.dir / "zebra.conf").write_text(f"hostname {NAME}-zebra\n")
    shutil.chown(frr.dir / "zebra.conf", "frr", "frr")
    recorder = Recorder()
    speaker = Speaker(SpeakerConfig(router_id=ours, local_as=OUR_AS, listen_address=ours, listen_port=port,
                                    peers=[Peer(theirs, FRR_AS, port=port)], name=NAME),
                      recorder.on_routes, recorder.on_session)
    zebra = None
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{ours}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        for args in (["addr", "add", f"{theirs}/30", "dev", ns_if], ["addr", "add", f"{vtep}/32", "dev", "lo"],
                     ["link", "add", "vl-br5001", "type", "bridge"],
                     ["link", "add", "vl-vx5001", "type", "vxlan", "id", "5001", "local", vtep,
                      "dstport", "4789", "nolearning"],
                     ["link", "set", "vl-vx5001", "master", "vl-br5001"],
                     ["link", "add", "vl-acc0", "type", "veth", "peer", "name", "vl-acc1"],
                     ["link", "set", "vl-acc0", "master", "vl-br5001"],
                     ["addr", "add", "10.2.0.254/24", "dev", "vl-br5001"]):
            _ip("-n", ns, *args)
        for device in ("lo", ns_if, "vl-br5001", "vl-vx5001", "vl-acc0", "vl-acc1"):
            _ip("-n", ns, "link", "set", device, "up")
        zebra = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/lib/frr/zebra", "-u", "frr", "-g", "frr",
                                  "-f", str(frr.dir / "zebra.conf"), "-i", str(frr.dir / "zebra.pid"),
                                  "--vty_socket", str(frr.dir), "-z", str(frr.dir / "zserv.api"), "-P", "0",
                                  "--log", f"file:{frr.dir / 'zebra.log'}"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: (frr.dir / "zserv.api").exists(), 10, "zebra's socket")
        frr.start(["-z", str(frr.dir / "zserv.api")], prefix_argv=["ip", "netns", "exec", ns])
        speaker.start()
        recorder.wait_session(theirs, "up", 30)
        yield ns, theirs, vtep, speaker, recorder
    finally:
        speaker.stop()
        frr.stop()
        if zebra is not None:
            zebra.terminate()
            try:
                zebra.wait(5)
            except subprocess.TimeoutExpired:
                zebra.kill()
                zebra.wait(5)
        _ip("link", "del", host_if, check=False)  # the namespace's end goes with the namespace
        _ip("netns", "delete", ns, check=False)


def test_frr_originated_type2_routes_arrive_decoded(frr_vtep):
    ns, frr_address, vtep, speaker, recorder = frr_vtep
    mac, ip = "02:00:0b:00:00:01", "10.2.0.1"
    subprocess.run(["bridge", "-n", ns, "fdb", "add", mac, "dev", "vl-acc0", "master", "static"], check=True)
    _ip("-n", ns, "neigh", "add", ip, "lladdr", mac, "dev", "vl-br5001", "nud", "permanent")

    def held(key_ip):
        return [r for r in recorder.held(frr_address).values() if r.mac == mac and r.ip == key_ip]

    for key_ip in (ip, None):  # the MAC/IP route and the MAC-only one
        (route,) = wait_for(lambda k=key_ip: held(k), 20, f"FRR's type-2 route for {mac} {key_ip}")
        assert route.rd.startswith(f"{frr_address}:")  # FRR's automatic RD, router-id:n
        assert (route.vni, route.next_hop, route.route_targets, route.ethernet_tag) == (
            5001, vtep, (f"{FRR_AS}:5001",), 0)
    assert speaker.received()[frr_address] == recorder.held(frr_address)

    _ip("-n", ns, "neigh", "del", ip, "dev", "vl-br5001")
    subprocess.run(["bridge", "-n", ns, "fdb", "del", mac, "dev", "vl-acc0", "master"], check=True)
    wait_for(lambda: not held(ip) and not held(None), 20, "FRR's withdrawals")
