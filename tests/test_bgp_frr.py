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

import pytest

from tests.frr_support import NAME, FrrBgpd, FrrVtep, bgpd_config, evpn_routes, needs_frr, wait_for
from vsc.bgp.evpn import canonical_route
from vsc.bgp.exabgp_config import Peer, SpeakerConfig
from vsc.bgp.loopback import Recorder, free_port
from vsc.bgp.route import MacIpRoute
from vsc.bgp.speaker import Speaker

FRR_ADDRESS, FRR_AS = "127.0.0.4", 65100
OUR_ADDRESS, OUR_AS = "127.0.0.5", 65101

pytestmark = needs_frr


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


@pytest.fixture
def frr_vtep():
    """FRR as a VTEP (tests/frr_support.py) with VNI 5001, the speaker in the root namespace."""
    vtep = FrrVtep(FRR_AS, OUR_AS, {5001: "10.2.0.254/24"})
    recorder = Recorder()
    speaker = Speaker(SpeakerConfig(router_id=vtep.ours, local_as=OUR_AS, listen_address=vtep.ours,
                                    listen_port=vtep.port, peers=[Peer(vtep.theirs, FRR_AS, port=vtep.port)],
                                    name=NAME),
                      recorder.on_routes, recorder.on_session)
    with vtep:
        try:
            speaker.start()
            recorder.wait_session(vtep.theirs, "up", 30)
            yield vtep, speaker, recorder
        finally:
            speaker.stop()


def test_frr_originated_type2_routes_arrive_decoded(frr_vtep):
    frr, speaker, recorder = frr_vtep
    frr_address, vtep = frr.theirs, frr.vtep
    mac, ip = "02:00:0b:00:00:01", "10.2.0.1"
    frr.add_endpoint(5001, mac, ip)

    def held(key_ip):
        return [r for r in recorder.held(frr_address).values() if r.mac == mac and r.ip == key_ip]

    for key_ip in (ip, None):  # the MAC/IP route and the MAC-only one
        (route,) = wait_for(lambda k=key_ip: held(k), 20, f"FRR's type-2 route for {mac} {key_ip}")
        assert route.rd.startswith(f"{frr_address}:")  # FRR's automatic RD, router-id:n
        assert (route.vni, route.next_hop, route.route_targets, route.ethernet_tag) == (
            5001, vtep, (f"{FRR_AS}:5001",), 0)
    assert speaker.received()[frr_address] == recorder.held(frr_address)

    frr.remove_endpoint(5001, mac, ip)
    wait_for(lambda: not held(ip) and not held(None), 20, "FRR's withdrawals")
