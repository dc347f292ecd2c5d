"""The VSC compiler's flows loaded into simulated VRSs (the one packet evaluator, whose fidelity
against real OVS test_simvrs_trace_vs_ovs.py measures) and traced packet by packet: tagged ACLs in
both directions, stateful replies, default drop between domains, ARP and ping answered locally.

No VSC process and no OpenFlow connection: the compiler is tested alone, the switches get its flows
through `SimSwitch.load_flows` (the same flow-mod decoding a controller's messages go through).
test_vsc_app.py checks the same policy with the VSC programming the switches over TCP.
"""

from __future__ import annotations

from vrs.sim.fabric import BROADCAST, SimFabric, TraceResult
from vrs.sim.host import Container, SimVrs
from vrs.sim.packet import Packet
from vrs.sim.switch import Port, SimSwitch
from vsc.compiler import compile_host, endpoints_by_domain
from vsc.pipeline import ROUTER_MAC, Table
from vsc.vsd_objects import ip_int, mac_int
from vsplab.workload.tree import Placement, Tree, compiler_inputs, vtep_of

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


class Lab:
    """One simulated VRS per placed host, holding the compiler's flows for it, joined by VXLAN."""

    def __init__(self, tree: Tree, placement: Placement) -> None:
        view, locs = compiler_inputs(tree, placement)
        by_domain = endpoints_by_domain(view, locs)
        self.fabric = SimFabric()
        for dpid, h in locs.hosts.items():
            containers = [Container(p.name, p.mac, p.ip, p.vport_id, p.ofport) for p in h.ports.values()]
            vrs = SimVrs(h.name, dpid, h.vtep_ip, containers, controller=None, agent=None,
                         tunnel_ofport=h.tunnel_ofport)
            self.fabric.add(vrs.switch)
            flows, problems = compile_host(view, locs, dpid, by_domain)
            assert not problems, problems
            assert vrs.switch.load_flows(flows.values()) == len(flows)

    def where(self, ip: str) -> tuple[SimSwitch, Port]:
        found = self.fabric.container_by_ip(ip_int(ip))
        if found is None:
            raise KeyError(ip)
        return found

    def send(self, src: str, dst: str, proto: int = 6, sport: int = 40000, dport: int = 80,
             flags: str | None = None) -> bool:
        """Does an IPv4 packet from endpoint `src` (to the router MAC, as after proxy-ARP) reach
        endpoint `dst`, and only it, routed (source MAC the router's, destination MAC dst's)?"""
        _, sp = self.where(src)
        _, dp = self.where(dst)
        r = self.fabric.trace(Packet(source=sp.name, proto=PROTO_NAMES[proto], dst_ip=dst, dst_port=dport,
                                     src_port=sport, eth_dst=ROUTER_MAC, tcp_flags=flags))
        return [(d.container, d.packet["eth_src"], d.packet["eth_dst"]) for d in r.delivered] == [
            (dp.name, ROUTER_MAC, dp.mac)]

    def connect(self, a: str, b: str, proto: int = 6, port: int = 80) -> tuple[bool, bool]:
        """(request a->b passes, its reply b->a passes)."""
        fwd = self.send(a, b, proto, 40000, port)
        return fwd, self.send(b, a, proto, port, 40000, flags="SA" if proto == 6 else None)

    def tables(self) -> set[int]:
        return {tid for sw in self.fabric.switches.values() for tid, _ in sw.flows()}


def nothing_out(r: TraceResult) -> bool:
    """Dropped in the pipeline: delivered nowhere, not even to the controller."""
    return not r.delivered and not r.to_controller


def two_tier(stateful: bool = True, allow_ip: bool = False, hosts: int = 2) -> tuple[Tree, Placement, dict]:
    """web (10.1.0.10, .11) and db (10.2.0.10) in one domain; 'other' domain with 10.1.0.10 too."""
    t, p = Tree(), Placement()
    ent = t.enterprise()
    dom = t.domain(ent, "d", 5001)
    web_s = t.subnet(t.zone(dom, "zw"), "web", "10.1.0.0/16")
    db_s = t.subnet(t.zone(dom, "zd"), "db", "10.2.0.0/16")
    for h in range(1, hosts + 1):
        p.host(h, vtep_of(h))
    ids = {}
    for i, (name, sub, ip) in enumerate([("web1", web_s, "10.1.0.10"), ("web2", web_s, "10.1.0.11"),
                                         ("db1", db_s, "10.2.0.10")]):
        mac = f"02:00:00:00:00:{i + 1:02x}"
        ids[name] = t.vport(sub, dom, name, mac, ip)
        p.port(1 + i % hosts, 10 + i, ids[name], mac, ip)
    web = t.policy_group(dom, "web", 1, [ids["web1"], ids["web2"]])
    db = t.policy_group(dom, "db", 2, [ids["db1"]])
    tin, teg = t.template(dom, "ingress", allow_ip), t.template(dom, "egress", allow_ip)
    ids.update(dom=dom, web=web, db=db, tin=tin, teg=teg, ent=ent)
    # web may open tcp/5432 to db: allowed on web's way out (ingress ACL, location = source web)
    # and on db's way in (egress ACL, location = destination db, network = source web).
    ids["in5432"] = t.entry(tin, "ingress", 10, location=("POLICYGROUP", web), network=("POLICYGROUP", db),
                            protocol="6", dport="5432", stateful=stateful)
    ids["eg5432"] = t.entry(teg, "egress", 10, location=("POLICYGROUP", db), network=("POLICYGROUP", web),
                            protocol="6", dport="5432", stateful=stateful)
    other = t.domain(ent, "other", 6001)
    o_s = t.subnet(t.zone(other, "zo"), "o", "10.1.0.0/16")
    ids["o1"] = t.vport(o_s, other, "o1", "02:00:00:00:01:01", "10.1.0.99")
    p.port(1, 30, ids["o1"], "02:00:00:00:01:01", "10.1.0.99")
    t.template(other, "ingress", True)
    t.template(other, "egress", True)
    return t, p, ids


def test_stateful_allow_passes_replies_but_not_new_flows_back():
    t, p, _ = two_tier(stateful=True)
    lab = Lab(t, p)
    # web1 and db1 share host 1; web2 is on host 2, so its packets cross VXLAN.
    for web in ("10.1.0.10", "10.1.0.11"):
        assert lab.connect(web, "10.2.0.10", port=5432) == (True, True)
        # The reverse direction as a new connection is not allowed by any rule.
        assert lab.send("10.2.0.10", web, 6, 40001, 5432) is False
        # Other ports are dropped (no default allow).
        assert lab.send(web, "10.2.0.10", 6, 40000, 5433) is False


def test_stateless_allow_does_not_pass_replies():
    t, p, _ = two_tier(stateful=False)
    lab = Lab(t, p)
    assert lab.connect("10.1.0.10", "10.2.0.10", port=5432) == (True, False)
    assert lab.connect("10.1.0.11", "10.2.0.10", port=5432) == (True, False)  # across hosts


def test_same_host_traffic_follows_the_same_policy():
    t, p, _ = two_tier(stateful=True, hosts=1)
    lab = Lab(t, p)
    assert lab.connect("10.1.0.11", "10.2.0.10", port=5432) == (True, True)
    assert lab.send("10.2.0.10", "10.1.0.11", 6, 40001, 5432) is False


def test_both_directions_are_needed():
    """Ingress ACL (source's side) and egress ACL (destination's side) must both allow."""
    t, p, ids = two_tier()
    t.objects.remove(t.find(ids["eg5432"]))
    assert Lab(t, p).send("10.1.0.10", "10.2.0.10", 6, 40000, 5432) is False
    t, p, ids = two_tier()
    t.objects.remove(t.find(ids["in5432"]))
    assert Lab(t, p).send("10.1.0.10", "10.2.0.10", 6, 40000, 5432) is False


def test_location_means_source_in_ingress_and_destination_in_egress():
    """Swap location/network of both entries: now only db -> web on 5432 is allowed."""
    t, p, ids = two_tier()
    for key in ("in5432", "eg5432"):
        e = t.find(ids[key])["entity"]
        e["locationID"], e["networkID"] = e["networkID"], e["locationID"]
    lab = Lab(t, p)
    assert lab.send("10.1.0.10", "10.2.0.10", 6, 40000, 5432) is False
    assert lab.send("10.2.0.10", "10.1.0.10", 6, 40000, 5432) is True


def test_default_allow_ip_and_drop_between_domains():
    t, p, _ = two_tier(allow_ip=True)
    lab = Lab(t, p)
    assert lab.send("10.1.0.10", "10.2.0.10", 17, 1, 9999) is True
    # 10.1.0.99 lives in another domain (even with an overlapping subnet): never reachable.
    assert lab.send("10.1.0.10", "10.1.0.99", 17, 1, 9999) is False
    assert lab.send("10.1.0.99", "10.1.0.10", 17, 1, 9999) is False


def test_drop_entry_beats_lower_priority_allow():
    t, p, ids = two_tier(allow_ip=True)
    t.entry(ids["tin"], "ingress", 5, action="DROP", location=("SUBNET", t.find(ids["web1"])["entity"]["parentID"]),
            protocol="17", dport="1000-2000")
    lab = Lab(t, p)
    assert lab.send("10.1.0.10", "10.2.0.10", 17, 1, 1500) is False
    assert lab.send("10.1.0.10", "10.2.0.10", 17, 1, 2001) is True
    assert lab.send("10.2.0.10", "10.1.0.10", 17, 1, 1500) is True


def test_arp_is_answered_locally_with_the_router_mac():
    t, p, _ = two_tier()
    lab = Lab(t, p)
    sw, port = lab.where("10.1.0.10")
    req = Packet(source=port.name, proto="arp", arp_op=1, dst_ip="10.2.0.10", eth_dst=BROADCAST)
    r = lab.fabric.trace(req)
    (d,) = r.delivered
    rep = d.packet
    assert (d.switch, d.port) == (sw.name, port.ofport)
    assert (rep["arp_op"], rep["arp_sha"], rep["arp_spa"]) == (2, ROUTER_MAC, ip_int("10.2.0.10"))
    assert (rep["arp_tha"], rep["arp_tpa"], rep["eth_dst"]) == (port.mac, ip_int("10.1.0.10"), port.mac)
    # A gratuitous ARP for its own address gets no answer; a spoofed sender address is dropped.
    assert nothing_out(lab.fabric.trace(req.with_(dst_ip="10.1.0.10")))
    assert nothing_out(lab.fabric.trace(req.with_(src_ip="10.1.0.77")))


def test_spoofed_source_is_dropped():
    t, p, _ = two_tier(allow_ip=True)
    lab = Lab(t, p)
    _, port = lab.where("10.1.0.10")
    pkt = Packet(source=port.name, proto="udp", src_ip="10.1.0.11", dst_ip="10.2.0.10", src_port=1, dst_port=2,
                 eth_dst=ROUTER_MAC)
    assert nothing_out(lab.fabric.trace(pkt))
    assert nothing_out(lab.fabric.trace(pkt.with_(src_ip="10.1.0.10", eth_src="02:00:00:00:00:09")))
    assert lab.fabric.trace(pkt.with_(src_ip="10.1.0.10")).delivered  # the same packet, not spoofed


def test_tables_are_the_documented_ones():
    t, p, _ = two_tier()
    lab = Lab(t, p)
    assert lab.tables() and lab.tables() <= {int(x) for x in Table}


def test_endpoint_subnet_and_zone_entries():
    # ENDPOINT_SUBNET: only peers in the sender's own subnet; egress allows everything.
    t, p, ids = two_tier(stateful=True)
    for key in ("in5432", "eg5432"):
        t.objects.remove(t.find(ids[key]))
    e = t.find(ids["teg"])["entity"]
    e["defaultAllowIP"] = True
    t.entry(ids["tin"], "ingress", 10, network=("ENDPOINT_SUBNET", None), protocol="6", dport="22", stateful=True)
    lab = Lab(t, p)
    assert lab.connect("10.1.0.10", "10.1.0.11", port=22) == (True, True)
    assert lab.send("10.1.0.10", "10.2.0.10", 6, 40000, 22) is False
    # ZONE -> ZONE: db's zone may receive from web's zone (location = destination in egress).
    t, p, ids = two_tier(stateful=True)
    zw = next(o["entity"]["ID"] for o in t.objects if o["entityType"] == "zone" and o["entity"]["name"] == "zw")
    zd = next(o["entity"]["ID"] for o in t.objects if o["entityType"] == "zone" and o["entity"]["name"] == "zd")
    t.entry(ids["tin"], "ingress", 20, location=("ZONE", zw), protocol="17", stateful=True)
    t.entry(ids["teg"], "egress", 20, location=("ZONE", zd), network=("ZONE", zw), protocol="17", stateful=True)
    lab = Lab(t, p)
    assert lab.connect("10.1.0.11", "10.2.0.10", 17, 53) == (True, True)
    assert lab.send("10.2.0.10", "10.1.0.11", 17, 40001, 53) is False


def test_network_macro_as_the_source_of_traffic_from_the_overlay():
    """Egress entry with network = an enterprise network: traffic from that prefix (say a gateway
    VTEP bringing management traffic in) reaches the vport; other sources do not."""
    t, p, ids = two_tier(stateful=True)
    mgmt = t.network(ids["ent"], "mgmt", "192.168.100.0/24")
    t.entry(ids["teg"], "egress", 5, location=("POLICYGROUP", ids["db"]), network=("ENTERPRISE_NETWORK", mgmt),
            protocol="6", dport="22", stateful=True)
    lab = Lab(t, p)
    sw, port = lab.where("10.2.0.10")

    def from_tunnel(src: str) -> TraceResult:
        """A packet a gateway VTEP sends into the domain's VNI (5001) for db1 over VXLAN."""
        pkt = Packet(proto="tcp", src_ip=src, dst_ip="10.2.0.10", src_port=40000, dst_port=22)
        f = pkt.fields(sw.tunnel_ofport, mac_int("02:aa:00:00:00:01"), ROUTER_MAC, ip_int(src))
        f.update(tun_id=5001, tun_ipv4_src=ip_int("192.168.100.1"), tun_ipv4_dst=sw.vtep_ip)
        return lab.fabric.trace_fields(sw, f)

    assert [(d.switch, d.port) for d in from_tunnel("192.168.100.7").delivered] == [(sw.name, port.ofport)]
    assert nothing_out(from_tunnel("192.168.101.7"))


def test_the_gateway_answers_ping():
    t, p, _ = two_tier()
    lab = Lab(t, p)
    sw, port = lab.where("10.1.0.10")
    req = Packet(source=port.name, proto="icmp", icmp_type=8, dst_ip="10.1.0.1", eth_dst=ROUTER_MAC)
    (d,) = lab.fabric.trace(req).delivered
    rep = d.packet
    assert (d.switch, d.port) == (sw.name, port.ofport) and rep["icmpv4_type"] == 0
    assert (rep["ipv4_src"], rep["ipv4_dst"], rep["eth_dst"]) == (ip_int("10.1.0.1"), ip_int("10.1.0.10"), port.mac)
    # Only the gateway of a subnet answers; another address in it is simply unknown.
    assert nothing_out(lab.fabric.trace(req.with_(dst_ip="10.1.0.2")))
