"""EVPN federation without BGP on the wire: the route mapping of vsc/bgp/routes.py, and two VSC cores
(`vsc.core.Vsc`) whose routes are handed to each other through the core's BGP input, programming
simulated VRSs that share one fabric, so a packet is traced from a host of one VSC to a host of the
other."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest

import vsc.core as core_mod
from openflow.flow import SetField
from tests.test_vsc_core import Wire
from vrs.sim.fabric import SimFabric
from vrs.sim.host import Container, SimVrs
from vrs.sim.packet import Packet
from vsc.bgp.route import MacIpRoute
from vsc.bgp.routes import (
    NO_DATAPATH,
    RouteError,
    advertised_route,
    community_bits,
    domains_by_rt,
    imported_endpoints,
    key_text,
    route_distinguisher,
)
from vsc.compiler import compile_host, endpoint, endpoints_by_domain
from vsc.core import Vsc
from vsc.locations import Locations
from vsc.pipeline import Kind, Table, cookie, cookie_kind
from vsc.view import View
from vsplab.workload.tree import Tree, nfd8

RID_A, RID_B = "192.0.2.1", "192.0.2.2"


def view_of(tree: Tree) -> View:
    v = View()
    assert not v.load_snapshot(1, tree.objects)
    return v


def names(tree: Tree) -> dict[str, str]:
    return {o["entity"]["name"]: o["entity"]["ID"] for o in tree.objects if o["entityType"] in ("vport",
                                                                                                 "policygroup")}


# --- the pure mapping ------------------------------------------------------------------------------


def test_a_local_endpoint_becomes_its_route():
    tree, placement = nfd8(n_hosts=2, per_host=3)
    view, locs = view_of(tree), Locations()
    for m in placement.messages():
        locs.apply(m)
    n = names(tree)
    ep = endpoint(view, locs, n["c4"])  # app tier, on host 2
    r = advertised_route(view, ep, RID_A)
    assert r == MacIpRoute(rd="192.0.2.1:5001", mac="02:00:00:00:00:05", ip="10.2.0.3", vni=5001,
                           next_hop="192.168.77.2", route_targets=("65000:5001",),
                           communities=("65000:2", "65000:4"))  # app and all
    assert route_distinguisher(RID_A, 1 << 20, 7) == "192.0.2.1:7"  # a wide VNI does not fit a type-1 RD


def test_communities_become_this_views_bits_and_unknown_ones_are_ignored():
    tree, _ = nfd8(n_hosts=1, per_host=3)
    # The receiving VSC met the groups in another order: its bits differ from the sender's.
    pgs = [o for o in tree.objects if o["entityType"] == "policygroup"]
    rest = [o for o in tree.objects if o["entityType"] != "policygroup"]
    mine = view_of(Tree(rest + pgs[::-1]))
    n = names(tree)
    bit = {name: mine.group_bit[n[name]] for name in ("web", "app", "db", "all")}
    assert bit["all"] == 0 and bit["web"] == 3
    r = MacIpRoute("192.0.2.2:5001", "02:00:00:00:00:63", "10.1.0.99", 5001, "192.168.77.9",
                   ("65000:5001",), ("65000:1", "65000:4", "65000:77"))
    (dom, ep), = imported_endpoints(mine, r, domains_by_rt(mine), community_bits(mine)).items()
    assert ep.tags == 1 << bit["web"] | 1 << bit["all"]
    assert (ep.vport_id, ep.dpid, ep.vni, ep.vtep_ip, ep.ip) == (
        "evpn:192.0.2.2:5001:02:00:00:00:00:63:10.1.0.99", NO_DATAPATH, 5001, 0xC0A84D09, 0x0A010063)
    assert ep.dindex == mine.domain_index[dom]


def two_enterprises() -> Tree:
    """Two enterprises with the very same addresses and group numbers, in domains of different VNI/RT."""
    t = Tree()
    for ent_name, vni in (("red", 5001), ("blue", 6001)):
        ent = t.enterprise(ent_name)
        dom = t.domain(ent, f"{ent_name}-d", vni)
        sub = t.subnet(t.zone(dom, "z"), "s", "10.0.0.0/24")
        vp = t.vport(sub, dom, f"{ent_name}-c", "02:00:00:00:00:01", "10.0.0.10")
        t.policy_group(dom, f"{ent_name}-g", 1, [vp])
    return t


def test_route_targets_keep_enterprises_with_the_same_addresses_apart():
    view = view_of(two_enterprises())
    by_rt, bits = domains_by_rt(view), community_bits(view)
    doms = {d.vni: d.id for d in view.domains.values()}

    def route(rt, vni):
        return MacIpRoute(f"192.0.2.2:{vni}", "02:00:00:00:00:02", "10.0.0.20", vni, "192.168.77.9", (rt,),
                          ("65000:1",))

    red = imported_endpoints(view, route("65000:5001", 5001), by_rt, bits)
    blue = imported_endpoints(view, route("65000:6001", 6001), by_rt, bits)
    assert list(red) == [doms[5001]] and list(blue) == [doms[6001]]
    assert red[doms[5001]].dindex != blue[doms[6001]].dindex and red[doms[5001]].vni == 5001
    assert imported_endpoints(view, route("65000:7001", 7001), by_rt, bits) == {}  # no domain imports it
    assert imported_endpoints(view, MacIpRoute("x:1", "02:00:00:00:00:02", None, 5001, "192.168.77.9",
                                               ("65000:5001",)), by_rt, bits) == {}  # MAC only: nothing to route
    with pytest.raises(RouteError, match="evpn:"):
        imported_endpoints(view, MacIpRoute("x:1", "02:00:00:00:00:02", "10.0.0.300", 5001, "192.168.77.9",
                                            ("65000:5001",)), by_rt, bits)


# --- two cores, federated by hand --------------------------------------------------------------------


class Side:
    """One VSC core serving some hosts of a placement, its VRSs simulated in a shared fabric."""

    def __init__(self, tree: Tree, placement, dpids: list[int], fabric: SimFabric, router_id: str) -> None:
        self.core = Vsc()
        self.core.on_stream({"kind": "snapshot", "revision": 1, "objects": tree.objects})
        self.core.prog.fed.enable(router_id)
        self.msgs = [m for d in dpids for m in placement.hosts[d]]
        self.wires = {}
        vport_names = {o["entity"]["ID"]: o["entity"]["name"] for o in tree.objects if o["entityType"] == "vport"}
        for d in dpids:
            hello = placement.hosts[d][0]
            conts = [Container(f"vl-{vport_names[m['vport_id']]}", m["mac"], m["ip"], m["vport_id"], m["ofport"])
                     for m in placement.hosts[d] if m["op"] == "port-up"]
            vrs = SimVrs(hello["name"], d, hello["vtep_ip"], conts, controller=None, agent=None)
            fabric.add(vrs.switch)
            w = self.wires[d] = Wire(self.core, d, 0)
            w.switch = vrs.switch
            self.core.datapath_up(d, w.send)
        for m in self.msgs:
            self.core.on_agent(m)
        self.settle()

    def settle(self) -> None:
        for _ in range(4):
            self.core.flush()

    def table20(self, dpid: int) -> dict[int, tuple]:
        return table20(self.wires[dpid].switch)


def table20(switch) -> dict[int, tuple]:
    """reg0 (IP) -> (cookie kind, actions, cookie) of the remote-endpoint flows a VRS holds."""
    out = {}
    for t, r in switch.flows(Table.ENDPOINT):
        f = r.flow(t)
        if f.priority == 100:
            out[dict((m.name, m.value) for m in f.match)["reg0"]] = (cookie_kind(f.cookie), f.actions, f.cookie)
    return out


def exchange(a: Side, b: Side) -> int:
    n = 0
    for src, dst, peer in ((a, b, "A"), (b, a, "B")):
        ann, wd = src.core.prog.fed.take_adverts()
        n += len(ann) + len(wd)
        if ann or wd:
            dst.core.on_bgp_routes(peer, ann, wd)
    a.settle()
    b.settle()
    return n


@pytest.fixture
def fed(monkeypatch):
    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    tree, placement = nfd8(n_hosts=4, per_host=3)
    fabric = SimFabric()
    a = Side(tree, placement, [1, 2], fabric, RID_A)
    b = Side(tree, placement, [3, 4], fabric, RID_B)
    exchange(a, b)
    ips = {o["entity"]["name"]: o["entity"]["IPAddress"] for o in tree.objects if o["entityType"] == "vminterface"}

    def trace(src, dst, port, flags=None, sport=40000):
        return fabric.trace(Packet(source=f"vl-{src}", dst_ip=ips[dst], dst_port=port, tcp_flags=flags,
                                   src_port=sport))
    return a, b, tree, placement, trace


def test_received_routes_are_the_remote_flows_one_vsc_would_have_compiled(fed):
    a, b, tree, placement, _ = fed
    # The reference: one VSC knowing every location.
    view, locs = view_of(tree), Locations()
    for m in placement.messages():
        locs.apply(m)
    for side, dpids in ((a, [1, 2]), (b, [3, 4])):
        for d in dpids:
            want, _ = compile_host(view, locs, d, endpoints_by_domain(view, locs))
            want20 = {dict((m.name, m.value) for m in f.match)["reg0"]: f.actions for f in want.values()
                      if f.table == Table.ENDPOINT and f.priority == 100}
            got = side.table20(d)
            assert {ip: acts for ip, (_, acts, _) in got.items()} == want20
            assert len(got) == 9  # every endpoint of the domain but its own three
    # Learned ones carry the route's cookie, reported ones the vport's.
    reported = {cookie(Kind.REMOTE_ENDPOINT, m["vport_id"]) for m in placement.hosts[2][2:]}
    learned = {cookie(Kind.REMOTE_ENDPOINT, key_text(r.key)) for r in b.core.prog.fed.advertised.values()}
    assert {ck for _, _, ck in a.table20(1).values()} == reported | learned and len(learned) == 6
    st = a.core.status()
    assert st["converged"] and st["endpoints"] == 6 and len(a.core.prog.learned) == 6


def test_policy_holds_across_vscs_by_trace(fed):
    *_, trace = fed
    # c0 web and c2 db on host 1 (VSC A); c7 app and c8 db on host 3 (VSC B); c10 app on host 4.
    r = trace("c0", "c7", 8080)
    assert r.delivered_to("vl-c7"), r.text()
    assert trace("c7", "c0", 40000, flags="SA", sport=8080).delivered_to("vl-c0")  # stateful reply
    assert not trace("c7", "c0", 8080).delivered  # a new connection the other way: no rule
    assert not trace("c0", "c8", 5432).delivered  # web -> db
    assert trace("c2", "c8", 5433).delivered_to("vl-c8")  # db -> db
    assert trace("c10", "c5", 5432).delivered_to("vl-c5")  # app (B) -> db (A)
    assert not trace("c0", "c9", 22).delivered


def ip_of(msg: dict) -> int:
    return int(IPv4Address(msg["ip"]))


def test_withdraw_removes_the_flow_from_every_host_and_new_hosts_get_the_learned_ones(fed):
    a, b, tree, placement, trace = fed
    gone = placement.hosts[3][2]  # c6 on host 3
    assert all(ip_of(gone) in a.table20(d) for d in (1, 2))
    b.core.on_agent({"op": "port-down", "datapath_id": 3, "ofport": gone["ofport"]})
    assert exchange(a, b) == 1  # one withdrawal
    assert all(ip_of(gone) not in a.table20(d) for d in (1, 2)) and ip_of(gone) not in b.table20(4)
    # A's host 2 loses its every endpoint (and the domain), then gets one back: the domain, and every
    # endpoint learned meanwhile, come back with it.
    for m in placement.hosts[2][2:]:
        a.core.on_agent({"op": "port-down", "datapath_id": 2, "ofport": m["ofport"]})
    exchange(a, b)
    assert a.table20(2) == {} and len(a.table20(1)) == 5
    a.core.on_agent(placement.hosts[2][2])  # c3
    exchange(a, b)
    learned = {ip_of(m) for m in placement.hosts[3][3:] + placement.hosts[4][2:]}
    host1 = {ip_of(m) for m in placement.hosts[1][2:]}
    assert a.table20(2).keys() == learned | host1 and a.table20(1).keys() == learned | {ip_of(placement.hosts[2][2])}
    assert trace("c3", "c7", 8080).delivered_to("vl-c7")


def test_session_down_takes_back_what_the_peer_sent(fed):
    a, b, tree, placement, _ = fed
    a.core.on_bgp_down("B")
    a.settle()
    # Left: the endpoints of A's other host, under their vports' cookies.
    for d, other in ((1, 2), (2, 1)):
        assert {ck for _, _, ck in a.table20(d).values()} == {
            cookie(Kind.REMOTE_ENDPOINT, m["vport_id"]) for m in placement.hosts[other][2:]}
    assert not a.core.prog.learned and a.core.prog.fed.received() == 0


def test_a_policy_group_change_remaps_received_tags(fed):
    a, b, tree, _, trace = fed
    n = names(tree)
    db = next(o["entity"] for o in tree.objects if o["entity"]["ID"] == n["db"])
    c8_ip = int(IPv4Address("10.3.0.4"))  # c8: db tier, on B's host 3
    before = a.table20(1)[c8_ip]
    # The VSD renames db's community: B advertises the new one, A reads it as db again.
    for side in (a, b):
        side.core.on_stream({"kind": "event", "revision": 2, "type": "UPDATE", "entityType": "policygroup",
                             "entity": {**db, "EVPNCommunityTag": "65000:333"}, "assoc": tree.find(n["db"])["assoc"]})
    exchange(a, b)
    assert a.table20(1)[c8_ip][1] == before[1]
    assert trace("c2", "c8", 5433).delivered_to("vl-c8")
    # Only A learns of the rename: B's routes still say 65000:3, which names nothing in A now.
    for side in (a,):
        side.core.on_stream({"kind": "event", "revision": 3, "type": "UPDATE", "entityType": "policygroup",
                             "entity": {**db, "EVPNCommunityTag": "65000:444"}, "assoc": tree.find(n["db"])["assoc"]})
    a.settle()
    assert a.table20(1)[c8_ip][1] != before[1]
    assert not trace("c2", "c8", 5433, sport=41000).delivered  # c8 no longer reads as db on A's side
    # A new group in A's view taking 65000:333: bits are A's own, the route maps onto it.
    dom = a.core.view.domains
    (dom_id,) = dom
    a.core.on_stream({"kind": "event", "revision": 4, "type": "CREATE", "entityType": "policygroup",
                      "entity": {"ID": "pg-new", "parentID": dom_id, "parentType": "domain", "name": "new",
                                 "policyGroupID": 9, "EVPNCommunityTag": "65000:333"}, "assoc": {"vport": []}})
    a.settle()
    assert a.table20(1)[c8_ip][1] != before[1]
    bit = a.core.view.group_bit["pg-new"]
    assert any(x.name == "reg6" and x.value & 1 << bit for x in a.table20(1)[c8_ip][1] if isinstance(x, SetField))


def test_the_local_truth_wins_over_a_received_route(fed):
    a, b, tree, placement, _ = fed
    c1 = placement.hosts[1][3]  # on A's host 1
    ip = ip_of(c1)
    mine = a.table20(2)[ip]
    claim = MacIpRoute("192.0.2.9:5001", "02:00:00:00:99:99", c1["ip"], 5001, "192.168.77.3", ("65000:5001",),
                       ("65000:3",))
    a.core.on_bgp_routes("C", [claim], [])
    a.settle()
    assert a.table20(2)[ip] == mine and ip not in a.table20(1)
    a.core.on_agent({"op": "port-down", "datapath_id": 1, "ofport": c1["ofport"]})
    a.settle()
    assert a.table20(1)[ip][2] == cookie(Kind.REMOTE_ENDPOINT, key_text(claim.key))  # now it is the truth
    a.core.on_agent(c1)
    a.settle()
    assert a.table20(2)[ip] == mine and ip not in a.table20(1)
    # Our own route reflected back is ignored.
    own = a.core.prog.fed.advertised[c1["vport_id"]]
    a.core.on_bgp_routes("C", [own], [])
    assert a.core.prog.fed.ignored == 1


def test_adverts_follow_the_local_endpoints(fed):
    a, b, tree, placement, _ = fed
    fed_a = a.core.prog.fed
    assert fed_a.take_adverts() == ([], [])
    c0 = placement.hosts[1][2]
    before = fed_a.advertised[c0["vport_id"]]
    # Moves to host 2 (another VTEP): announced again under the same key with the new next hop.
    a.core.on_agent({"op": "port-down", "datapath_id": 1, "ofport": c0["ofport"]})
    a.core.on_agent({**c0, "datapath_id": 2, "ofport": 40})
    ann, wd = fed_a.take_adverts()
    assert wd == [] and [(r.key, r.next_hop) for r in ann] == [(before.key, "192.168.77.2")]
    a.core.on_agent({"op": "port-down", "datapath_id": 2, "ofport": 40})
    assert fed_a.take_adverts() == ([], [before.key])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_state_equals_a_full_compile_with_learned_endpoints(seed, monkeypatch):
    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    rnd = random.Random(seed)
    tree, placement = nfd8(n_hosts=4, per_host=4)
    fabric = SimFabric()
    a = Side(tree, placement, [1, 2], fabric, RID_A)
    b = Side(tree, placement, [3, 4], fabric, RID_B)
    exchange(a, b)
    ports = {s: [m for d in dpids for m in placement.hosts[d] if m["op"] == "port-up"]
             for s, dpids in ((a, [1, 2]), (b, [3, 4]))}
    every = ports[a] + ports[b]
    for _ in range(60):
        side = rnd.choice([a, b])
        m = rnd.choice(ports[side])
        x = rnd.random()
        if x < 0.2:  # a third VSC claims (or gives up) an address either side may hold too
            m = rnd.choice(every)
            claim = MacIpRoute(f"192.0.2.9:{rnd.randint(1, 2)}", "02:00:00:00:99:99", m["ip"], 5001,
                               "192.168.77.99", ("65000:5001",), ("65000:2",))
            side.core.on_bgp_routes("C", *(([claim], []) if rnd.random() < 0.6 else ([], [claim.key])))
        elif x < 0.6:
            side.core.on_agent({"op": "port-down", "datapath_id": m["datapath_id"], "ofport": m["ofport"]})
        else:
            side.core.on_agent(m)
        if rnd.random() < 0.5:
            exchange(a, b)
    exchange(a, b)
    for side in (a, b):
        prog = side.core.prog
        assert not {(e.domain_id, e.ip) for e in prog.eps.values()} & set(prog.learned)  # the local truth wins
        by_dom = endpoints_by_domain(prog.view, prog.locs)
        for ep, _, _ in prog.learned.values():
            by_dom.setdefault(ep.domain_id, []).append(ep)
        for d in side.wires:
            want, _ = compile_host(prog.view, prog.locs, d, by_dom)
            assert prog.host_desired(d) == want
            assert side.wires[d].installed() == want

