"""A tiny OpenFlow evaluator for the VSC's own flows (match, set-field, reg-move, ct, goto, output,
VXLAN between hosts) and the pipeline semantics checked with it: tagged ACLs in both directions,
stateful replies, default drop between domains, ARP answered locally.

It is deliberately small and independent of the simulated VRS, so the compiler can be tested alone;
the integration tests (test_vsc_app.py) check the same things against the real simulated VRS.
"""

from __future__ import annotations

from openflow.fields import FIELDS
from openflow.flow import CT_EST, CT_NEW, CT_RPL, CT_TRK, OFPP_IN_PORT, Ct, Move, Output, SetField
from vsc.compiler import compile_host, endpoints_by_domain
from vsc.locations import Locations
from vsc.pipeline import ROUTER_MAC, Table
from vsc.view import View, ip_int, mac_int
from vsplab.workload.tree import Placement, Tree, vtep_of


class Host:
    def __init__(self, dpid: int, flows: dict, vtep: int, tunnel_ofport: int) -> None:
        self.dpid, self.vtep, self.tunnel_ofport = dpid, vtep, tunnel_ofport
        self.tables: dict[int, list] = {}
        for f in flows.values():
            self.tables.setdefault(f.table, []).append(f)
        for t in self.tables.values():
            t.sort(key=lambda f: -f.priority)
        self.conns: set[tuple] = set()

    def lookup(self, table: int, pkt: dict):
        for f in self.tables.get(table, ()):
            if all((pkt.get(m.name, 0) & (m.mask if m.mask is not None else -1)) ==
                   (m.value & (m.mask if m.mask is not None else -1)) for m in f.match):
                return f
        return None

    def _tuple(self, pkt: dict) -> tuple:
        p = pkt.get("ip_proto", 0)
        sp = pkt.get("tcp_src", pkt.get("udp_src", 0))
        dp = pkt.get("tcp_dst", pkt.get("udp_dst", 0))
        return (pkt["ipv4_src"], pkt["ipv4_dst"], p, sp, dp)

    def run(self, pkt: dict, table: int = 0, depth: int = 0) -> list[tuple[int, dict]]:
        """Outputs (port, packet) of one packet entering at `table`."""
        out: list[tuple[int, dict]] = []
        assert depth < 64
        while True:
            f = self.lookup(table, pkt)
            if f is None:
                return out
            if f.write_metadata:
                v, m = f.write_metadata
                pkt["metadata"] = (pkt.get("metadata", 0) & ~m) | (v & m)
            for a in f.actions:
                if isinstance(a, SetField):
                    pkt[a.name] = a.value
                elif isinstance(a, Move):
                    v = (pkt.get(a.src, 0) >> a.src_ofs) & ((1 << a.n_bits) - 1)
                    keep = pkt.get(a.dst, 0) & ~(((1 << a.n_bits) - 1) << a.dst_ofs)
                    pkt[a.dst] = keep | (v << a.dst_ofs)
                elif isinstance(a, Output):
                    out.append((pkt["in_port"] if a.port == OFPP_IN_PORT else a.port, dict(pkt)))
                elif isinstance(a, Ct):
                    t = self._tuple(pkt)
                    rev = (t[1], t[0], t[2], t[4], t[3])
                    key, rkey = (a.zone, *t), (a.zone, *rev)
                    state = CT_TRK | (CT_EST if key in self.conns else CT_EST | CT_RPL if rkey in self.conns
                                      else CT_NEW)
                    if a.commit and not state & CT_EST:
                        self.conns.add(key)
                    if a.table is not None:
                        out += self.run({**pkt, "ct_state": state}, a.table, depth + 1)
                    return out
            if f.goto is None:
                return out
            table = f.goto


class Lab:
    """Hosts joined by VXLAN: output to a tunnel port delivers to the host owning tun_ipv4_dst."""

    def __init__(self, tree: Tree, placement: Placement) -> None:
        self.view = View()
        self.view.load_snapshot(1, tree.objects)
        self.locs = Locations()
        for m in placement.messages():
            self.locs.apply(m)
        self.rebuild()

    def rebuild(self) -> None:
        bd = endpoints_by_domain(self.view, self.locs)
        self.hosts = {}
        for dpid, h in self.locs.hosts.items():
            flows, problems = compile_host(self.view, self.locs, dpid, bd)
            assert not problems, problems
            self.hosts[dpid] = Host(dpid, flows, h.vtep_ip, h.tunnel_ofport)

    def where(self, ip: str) -> tuple[int, int, int]:
        for dpid, h in self.locs.hosts.items():
            for p in h.ports.values():
                if p.ip == ip_int(ip):
                    return dpid, p.ofport, p.mac
        raise KeyError(ip)

    def send(self, src: str, dst: str, proto: int = 6, sport: int = 40000, dport: int = 80) -> bool:
        """Does an IPv4 packet from endpoint `src` reach endpoint `dst` (at its port, right MACs)?"""
        dpid, port, mac = self.where(src)
        ddpid, dport_of, dmac = self.where(dst)
        pkt = {"in_port": port, "eth_src": mac, "eth_dst": ROUTER_MAC, "eth_type": 0x0800,
               "ipv4_src": ip_int(src), "ipv4_dst": ip_int(dst), "ip_proto": proto}
        if proto in (6, 17):
            pre = "tcp" if proto == 6 else "udp"
            pkt[f"{pre}_src"], pkt[f"{pre}_dst"] = sport, dport
        for _hop in range(3):
            host = self.hosts[dpid]
            outs = host.run(dict(pkt))
            if not outs:
                return False
            (oport, opkt), = outs
            if oport == host.tunnel_ofport:
                nxt = next(h for h in self.hosts.values() if h.vtep == opkt["tun_ipv4_dst"])
                pkt = {k: v for k, v in opkt.items() if k in FIELDS and not k.startswith(("reg", "ct_", "metadata"))}
                pkt["in_port"] = nxt.tunnel_ofport
                dpid = nxt.dpid
                continue
            return (dpid, oport) == (ddpid, dport_of) and opkt["eth_dst"] == dmac and opkt["eth_src"] == ROUTER_MAC
        return False

    def connect(self, a: str, b: str, proto: int = 6, port: int = 80) -> tuple[bool, bool]:
        """(request a->b passes, its reply b->a passes)."""
        fwd = self.send(a, b, proto, 40000, port)
        return fwd, self.send(b, a, proto, port, 40000)


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
    assert lab.connect("10.1.0.10", "10.2.0.10", port=5432) == (True, True)
    # The reverse direction as a new connection is not allowed by any rule.
    assert lab.send("10.2.0.10", "10.1.0.10", 6, 40001, 5432) is False
    # Other ports are dropped (no default allow).
    assert lab.send("10.1.0.10", "10.2.0.10", 6, 40000, 5433) is False


def test_stateless_allow_does_not_pass_replies():
    t, p, _ = two_tier(stateful=False)
    lab = Lab(t, p)
    assert lab.connect("10.1.0.10", "10.2.0.10", port=5432) == (True, False)


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
    dpid, port, mac = lab.where("10.1.0.10")
    req = {"in_port": port, "eth_src": mac, "eth_dst": 0xFFFFFFFFFFFF, "eth_type": 0x0806, "arp_op": 1,
           "arp_sha": mac, "arp_spa": ip_int("10.1.0.10"), "arp_tha": 0, "arp_tpa": ip_int("10.2.0.10")}
    (oport, rep), = lab.hosts[dpid].run(dict(req))
    assert oport == port
    assert (rep["arp_op"], rep["arp_sha"], rep["arp_spa"]) == (2, ROUTER_MAC, ip_int("10.2.0.10"))
    assert (rep["arp_tha"], rep["arp_tpa"], rep["eth_dst"]) == (mac, ip_int("10.1.0.10"), mac)
    # A gratuitous ARP for its own address gets no answer; a spoofed sender address is dropped.
    assert lab.hosts[dpid].run({**req, "arp_tpa": ip_int("10.1.0.10")}) == []
    assert lab.hosts[dpid].run({**req, "arp_spa": ip_int("10.1.0.77")}) == []


def test_spoofed_source_is_dropped():
    t, p, _ = two_tier(allow_ip=True)
    lab = Lab(t, p)
    dpid, port, mac = lab.where("10.1.0.10")
    pkt = {"in_port": port, "eth_src": mac, "eth_type": 0x0800, "ipv4_src": ip_int("10.1.0.11"),
           "ipv4_dst": ip_int("10.2.0.10"), "ip_proto": 17, "udp_src": 1, "udp_dst": 2}
    assert lab.hosts[dpid].run(pkt) == []
    assert lab.hosts[dpid].run({**pkt, "ipv4_src": ip_int("10.1.0.10"), "eth_src": mac_int("02:00:00:00:00:09")}) == []


def test_tables_are_the_documented_ones():
    t, p, _ = two_tier()
    lab = Lab(t, p)
    assert {tb for h in lab.hosts.values() for tb in h.tables} <= {int(x) for x in Table}


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
    dpid, port, mac = lab.where("10.2.0.10")
    host = lab.hosts[dpid]

    def from_tunnel(src: str) -> list:
        pkt = {"in_port": host.tunnel_ofport, "tun_id": 5001, "eth_type": 0x0800, "eth_src": 0x02AA00000001,
               "eth_dst": ROUTER_MAC, "ipv4_src": ip_int(src), "ipv4_dst": ip_int("10.2.0.10"), "ip_proto": 6,
               "tcp_src": 40000, "tcp_dst": 22}
        return host.run(pkt)

    assert [o for o, _ in from_tunnel("192.168.100.7")] == [port]
    assert from_tunnel("192.168.101.7") == []


def test_the_gateway_answers_ping():
    t, p, _ = two_tier()
    lab = Lab(t, p)
    dpid, port, mac = lab.where("10.1.0.10")
    req = {"in_port": port, "eth_src": mac, "eth_dst": ROUTER_MAC, "eth_type": 0x0800, "ip_proto": 1,
           "ipv4_src": ip_int("10.1.0.10"), "ipv4_dst": ip_int("10.1.0.1"), "icmpv4_type": 8, "icmpv4_code": 0}
    (oport, rep), = lab.hosts[dpid].run(dict(req))
    assert oport == port and rep["icmpv4_type"] == 0
    assert (rep["ipv4_src"], rep["ipv4_dst"], rep["eth_dst"]) == (ip_int("10.1.0.1"), ip_int("10.1.0.10"), mac)
    # Only the gateway of a subnet answers; another address in it is simply unknown.
    assert lab.hosts[dpid].run({**req, "ipv4_dst": ip_int("10.1.0.2")}) == []
