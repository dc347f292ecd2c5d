"""`GET /bgp` (vsc/bgp/listing.py through `Peering.routes` and the status server): every route a VSC
received says whether it is programmed and into which domain, or why not - a route target no domain
serves, no IP, a local endpoint at the same address, a later route for the same key or address, a
malformed route - and every route it advertises names its vport and domain. Two VSC cores federated
by hand (tests/test_vsc_federation_units.py), no BGP on the wire; over FRR: tests/test_vsc_frr_external.py."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request

import vsc.core as core_mod
from tests.test_vsc_federation_peering import RecordingSpeaker
from tests.test_vsc_federation_units import RID_A, RID_B, Side, exchange
from vrs.sim.fabric import SimFabric
from vsc.bgp.listing import LOCAL_WINS, NO_IP, PROGRAMMED, RT_NOT_SERVED, route_listing
from vsc.bgp.peering import Peering
from vsc.bgp.route import MacIpRoute
from vsc.cli import _parser, bgp_config
from vsc.status import StatusServer
from vsplab.workload.tree import nfd8

DOMAIN = "nfd8/nfd8"  # enterprise/domain


def test_every_received_route_says_where_it_went_or_why_not(monkeypatch):
    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    tree, placement = nfd8(n_hosts=4, per_host=3)
    fabric = SimFabric()
    a = Side(tree, placement, [1, 2], fabric, RID_A)
    b = Side(tree, placement, [3, 4], fabric, RID_B)
    exchange(a, b)
    listing = route_listing(a.core.prog.fed)
    (from_b,) = listing["received"].values()
    assert len(from_b) == 6 and all(r["imported"] and r["reason"] is None for r in from_b)
    assert {(d["name"], d["state"]) for r in from_b for d in r["domains"]} == {(DOMAIN, PROGRAMMED)}
    assert [r["rd"] for r in from_b] == [f"{RID_B}:5001"] * 6 and from_b == sorted(from_b, key=lambda r: r["mac"])
    ours = listing["advertised"]
    assert len(ours) == 6 and {r["domain"] for r in ours} == {DOMAIN}
    assert {r["vport"] for r in ours} == {m["vport_id"] for d in (1, 2) for m in placement.hosts[d][2:]}
    first = ours[0]
    assert (first["vni"], first["route_targets"], first["ethernet_tag"]) == (5001, ["65000:5001"], 0)
    assert first["next_hop"] in ("192.168.77.1", "192.168.77.2") and first["communities"]

    # A third peer C: one route of each kind.
    c_ip = {m["vport_id"]: m["ip"] for m in placement.hosts[1][2:]}
    local_ip = next(iter(c_ip.values()))
    b_route = next(iter(b.core.prog.fed.advertised.values()))
    b_other = list(b.core.prog.fed.advertised.values())[1]

    def route(mac, ip, rt="65000:5001", rd="192.0.2.3:5001"):
        return MacIpRoute(rd, mac, ip, 5001, "192.168.78.10", (rt,), ("65000:2",))

    sent = {
        "rt": route("02:00:0c:00:00:01", "10.2.200.1", rt="65000:9999"),
        "mac only": route("02:00:0c:00:00:02", None),
        "local": route("02:00:0c:00:00:03", local_ip),
        "same key": dataclasses.replace(b_route, next_hop="192.168.78.10"),  # B's route, later from C
        "moved": route("02:00:0c:00:00:04", b_other.ip),  # B's endpoint's address, announced later by C
        "bad": route("02:00:0c:00:00:05", "10.2.0.300"),
        "fine": route("02:00:0c:00:00:06", "10.2.200.2"),
    }
    a.core.on_bgp_routes("C", list(sent.values()), [])
    a.settle()
    listing = route_listing(a.core.prog.fed)
    got = {name: next(r for r in listing["received"]["C"] if (r["rd"], r["mac"], r["ip"]) == s.key)
           for name, s in sent.items()}
    assert got["rt"]["reason"] == f"{RT_NOT_SERVED} (65000:9999)" and not got["rt"]["imported"]
    assert got["mac only"]["reason"] == NO_IP and got["mac only"]["domains"] == []
    assert not got["local"]["imported"] and got["local"]["reason"] == LOCAL_WINS
    assert got["local"]["domains"][0]["state"] == LOCAL_WINS
    assert "10.2.0.300" in got["bad"]["reason"] and "evpn:" in got["bad"]["reason"]
    for name in ("same key", "moved", "fine"):
        assert got[name]["imported"] and got[name]["domains"][0]["state"] == PROGRAMMED, got[name]
    from_b = {(r["rd"], r["mac"], r["ip"]): r for r in listing["received"]["B"]}
    assert from_b[b_route.key]["reason"] == "the same route from C is newer"
    older = from_b[b_other.key]
    assert not older["imported"] and older["reason"].startswith("a route announced later holds this address (evpn:")
    assert got["fine"]["communities"] == ["65000:2"] and got["fine"]["next_hop"] == "192.168.78.10"

    # C goes away: B's routes are programmed again.
    a.core.on_bgp_down("C")
    a.settle()
    listing = route_listing(a.core.prog.fed)
    assert "C" not in listing["received"] and all(r["imported"] for r in listing["received"]["B"])


def test_status_server_answers_bgp_with_the_listing(monkeypatch):
    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    tree, placement = nfd8(n_hosts=4, per_host=3)
    fabric = SimFabric()
    a = Side(tree, placement, [1, 2], fabric, RID_A)
    b = Side(tree, placement, [3, 4], fabric, RID_B)
    config = bgp_config(_parser().parse_args(["run", "--bgp-asn", "65001", "--router-id", RID_A,
                                              "--bgp-peer", "192.0.2.2:65002", "--bgp-peer", "192.0.2.9:65009"]))
    peering = Peering(a.core, config, speaker_factory=RecordingSpeaker)
    peering._run = lambda: None  # the test hands over itself
    server = StatusServer(a.core, "127.0.0.1", 0)
    server.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/bgp"
    try:
        try:
            urllib.request.urlopen(url, timeout=5)
            raise AssertionError("a VSC without BGP answered /bgp")
        except urllib.error.HTTPError as e:
            assert e.code == 404 and "does not speak BGP" in json.loads(e.read())["error"]
        peering.start()
        ann, _ = b.core.prog.fed.take_adverts()
        peering.speaker.deliver("192.0.2.2", ann, [])
        a.settle()
        peering.hand_over()
        with urllib.request.urlopen(url, timeout=5) as r:
            got = json.loads(r.read())
    finally:
        server.shutdown()
        server.server_close()
    assert (got["router_id"], got["asn"], got["own_routes_ignored"]) == (RID_A, 65001, 0)
    assert sorted(got["received"]) == ["192.0.2.2", "192.0.2.9"] and got["received"]["192.0.2.9"] == []
    assert len(got["received"]["192.0.2.2"]) == 6 and all(r["imported"] for r in got["received"]["192.0.2.2"])
    assert len(got["advertised"]) == 6
