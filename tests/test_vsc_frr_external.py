"""An external endpoint behind FRR, through a VSC: FRR 8.4 (zebra + bgpd in a `vl-` namespace, VNIs as
kernel VXLAN devices in bridges) originates type-2 routes for what its bridges hold; the VSC (a real
`vsc run` process with simulated VRSs, a VSD holding the NFD8 domain) imports the one whose route
target its domain serves and programs it on every host as a remote endpoint behind FRR's VTEP. A
trace from a container leaves through the tunnel port toward that VTEP when the ACL allows it and is
dropped at the ACL when it does not. The other way, FRR shows the routes the VSC originates from its
endpoints. `GET /bgp` says what became of each of FRR's routes.

The VSD allocates the domain's `serviceID` (the VNI) and `routeTarget` (65534:VNI): FRR's VNI is that
`serviceID` and its route target, set under `vni N`, the domain's. A route map gives FRR's routes the
community of the domain's `app` group (its EVPNCommunityTag): NFD8 lets `web` send to `app` on tcp/8080
only. Needs root and FRR; skipped without either.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import ExitStack
from ipaddress import IPv4Address

import pytest

from tests.frr_support import FrrVtep, evpn_routes, needs_frr, wait_for
from vrs.sim.host import Container
from vrs.sim.packet import Packet
from vrs.sim.runtime import SimRuntime
from vsc.bgp.listing import LOCAL_WINS, NO_IP, PROGRAMMED, RT_NOT_SERVED
from vsc.pipeline import Kind, Table, cookie
from vsc.process import BgpOptions, VscProcess
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd
from vsplab.lab.ports import free_port
from vsplab.workload.tree import nfd8
from vsplab.workload.vsd_push import push, relabel

pytestmark = needs_frr

FRR_AS, VSC_AS = 65000, 65001
EXTERNAL = ("02:00:0b:00:00:01", "10.2.200.1")  # in NFD8's app subnet, 10.2.0.0/16
CLASH_MAC = "02:00:0b:00:00:02"  # FRR claims the address of one of the VSC's own endpoints
OTHER = ("02:00:0b:00:00:03", "10.9.0.1")  # in a second VNI, whose route target no domain serves


def ip_int(ip: str) -> int:
    return int(IPv4Address(ip))


class ExternalLab:
    """VSD, FRR as a VTEP, one VSC peering with it, the VSC's two simulated hosts."""

    def __init__(self, tmp) -> None:
        self.stack = ExitStack()
        self.tree, self.placement = nfd8(n_hosts=2, per_host=3)
        self.rt = SimRuntime(controller=None, agent=None)
        self.tmp = tmp

    def __enter__(self) -> ExternalLab:
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def _start(self) -> None:
        vsd = self.stack.enter_context(EmbeddedVsd(log_path=str(self.tmp / "vsd.log")))
        client = VsdClient(vsd.api, vsd.user, vsd.password)
        relabel(self.tree, self.placement, push(client, self.tree))
        (ent,) = [o for o in client.list("enterprises") if o["name"] == "nfd8"]
        (self.domain,) = client.list(f"enterprises/{ent['ID']}/domains")
        self.vni, self.route_target = self.domain["serviceID"], self.domain["routeTarget"]
        self.tags = {g["name"]: g["EVPNCommunityTag"] for g in client.list(f"domains/{self.domain['ID']}/policygroups")}
        self.other_vni = self.vni + 1
        self.frr = FrrVtep(FRR_AS, VSC_AS, {self.vni: "10.2.255.254/16", self.other_vni: "10.9.0.254/24"},
                           routed=("192.168.77.0/24",), route_map_out=f" set community {self.tags['app']}",
                           route_targets={self.vni: self.route_target})
        self.stack.enter_context(self.frr)
        frr = self.frr
        of, agent = free_port(), free_port()
        bgp = BgpOptions(VSC_AS, frr.ours, f"{frr.ours}:{frr.port}", [f"{frr.theirs}:{frr.port}:{FRR_AS}"],
                         hold_time=9)
        self.vsc = VscProcess(vsd_url=vsd.url, user=vsd.user, password=vsd.password, of_port=of, agent_port=agent,
                              status_port=free_port(), state_dir=self.tmp / "state", log_file=self.tmp / "vsc.log",
                              bgp=bgp)
        self.stack.callback(self.vsc.stop)  # before FRR goes: a clean NOTIFICATION
        self.vsc.start()
        self.stack.callback(self.rt.stop)
        self.rt.run_in_thread()
        self.names = {o["entity"]["ID"]: o["entity"]["name"] for o in self.tree.objects
                      if o["entityType"] == "vport"}
        for dpid, msgs in self.placement.hosts.items():
            conts = [Container(f"vl-{self.names[m['vport_id']]}", m["mac"], m["ip"], m["vport_id"], m["ofport"])
                     for m in msgs if m["op"] == "port-up"]
            self.rt.call(self.rt.add_host_now, msgs[0]["name"], dpid, msgs[0]["vtep_ip"], conts,
                         ("127.0.0.1", of), ("127.0.0.1", agent))

    def endpoints(self) -> dict[str, dict]:
        """Container name -> its port-up report, with its host's VTEP."""
        out = {}
        for msgs in self.placement.hosts.values():
            for m in msgs[2:]:
                out[self.names[m["vport_id"]]] = {**m, "vtep_ip": msgs[0]["vtep_ip"]}
        return out

    def communities(self) -> dict[str, list[str]]:
        """vport ID -> the EVPNCommunityTags the VSD gave its policy groups."""
        out: dict[str, set[str]] = {}
        for o in self.tree.objects:
            if o["entityType"] == "policygroup":
                for v in o["assoc"].get("vport", []):
                    out.setdefault(v, set()).add(self.tags[o["entity"]["name"]])
        return {v: sorted(tags) for v, tags in out.items()}

    def bgp(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.vsc.status_port}/bgp", timeout=5) as r:
            return json.loads(r.read())

    def received(self, mac: str, ip: str | None) -> dict | None:
        return next((r for r in self.bgp()["received"].get(self.frr.theirs, []) if (r["mac"], r["ip"]) == (mac, ip)),
                    None)

    def table20(self, dpid: int) -> dict[int, tuple[int, dict]]:
        """IP -> (cookie, the fields it sets) of the remote-endpoint flows a simulated VRS holds."""
        host = self.placement.hosts[dpid][0]["name"]

        def grab():
            out = {}
            for t, r in self.rt.hosts[host].switch.flows(Table.ENDPOINT):
                f = r.flow(t)
                if f.priority == 100:
                    ip = dict((m.name, m.value) for m in f.match)["reg0"]
                    out[ip] = (r.cookie, {a.name: a.value for a in f.actions if hasattr(a, "name")})
            return out
        return self.rt.call(grab)

    def trace(self, src: str, ip: str, port: int):
        return self.rt.trace(Packet(source=f"vl-{src}", dst_ip=ip, dst_port=port, proto="tcp"))


@pytest.fixture
def lab(tmp_path):
    with ExternalLab(tmp_path) as lab:
        yield lab


def frr_shows_our_routes(lab: ExternalLab) -> dict[tuple, dict]:
    """Wait until FRR holds a route for each of the VSC's endpoints; (RD, MAC, IP) -> what FRR says."""
    want = {(f"{lab.frr.ours}:{lab.vni}", e["mac"].lower(), e["ip"]) for e in lab.endpoints().values()}
    def valid(table: dict) -> bool:  # FRR marks a route valid once zebra resolves its next hop
        return want <= table.keys() and all(table[k]["valid"] for k in want)

    return wait_for(lambda: t if valid(t := evpn_routes(lab.frr.bgpd)) else None, 30, "the VSC's routes in FRR")


def test_frr_endpoint_is_programmed_and_traced_through_the_tunnel_and_frr_shows_ours(lab):
    frr, eps = lab.frr, lab.endpoints()
    vni, rt, app = lab.vni, lab.route_target, lab.tags["app"]
    st = lab.vsc.wait_converged(60, datapaths=2, endpoints=6)
    assert not st["input_errors"] and not st["problems"], st

    # FRR shows the routes the VSC originates from its endpoints, as the VSD and the VRSs describe them.
    seen, tags = frr_shows_our_routes(lab), lab.communities()
    for e in eps.values():
        got = seen[(f"{frr.ours}:{vni}", e["mac"].lower(), e["ip"])]
        assert (got["vni"], got["next_hop"], got["route_targets"], got["encapsulation"]) == (
            vni, e["vtep_ip"], [rt], ["ET:8"]), got
        assert got["communities"] == tags[e["vport_id"]] and len(got["communities"]) == 2, got
        assert got["as_path"] == str(VSC_AS) and got["valid"], got

    # Then endpoints appear behind FRR: one in the domain's app subnet, one at the address of the VSC's
    # c1 (FRR advertises it as moved there, MAC mobility), one in a VNI no domain imports.
    clash = eps["c1"]  # app, on host 1
    frr.add_endpoint(vni, *EXTERNAL)
    frr.add_endpoint(vni, CLASH_MAC, clash["ip"])
    frr.add_endpoint(lab.other_vni, *OTHER)
    wanted = [EXTERNAL, (EXTERNAL[0], None), (CLASH_MAC, clash["ip"]), OTHER]
    wait_for(lambda: all(lab.received(*r) for r in wanted), 30, "FRR's routes in the VSC")
    st = lab.vsc.wait_converged(60, datapaths=2, endpoints=6, bgp_received=len(wanted))
    assert not st["input_errors"] and not st["problems"], st

    # What the VSC says of each of FRR's routes.
    ext = lab.received(*EXTERNAL)
    assert ext["rd"].startswith(f"{frr.theirs}:")  # FRR's automatic RD
    assert (ext["vni"], ext["next_hop"], ext["route_targets"], ext["communities"]) == (
        vni, frr.vtep, [rt], [app])
    assert ext["imported"] and [(d["name"], d["state"]) for d in ext["domains"]] == [("nfd8/nfd8", PROGRAMMED)], ext
    assert lab.received(EXTERNAL[0], None)["reason"] == NO_IP
    assert lab.received(CLASH_MAC, clash["ip"])["reason"] == LOCAL_WINS
    assert lab.received(*OTHER)["reason"] == f"{RT_NOT_SERVED} ({FRR_AS}:{lab.other_vni})"
    listing = lab.bgp()
    assert len(listing["advertised"]) == 6 and listing["own_routes_ignored"] >= 6  # FRR sends ours back (eBGP)

    # Every host holds the external endpoint behind FRR's VTEP, with the app group's tag bits.
    app_tags = lab.table20(2)[ip_int(clash["ip"])][1]["reg6"]  # c1 (app) as host 2 sees it: app | all
    for dpid in (1, 2):
        ck, fields = lab.table20(dpid)[ip_int(EXTERNAL[1])]
        assert (fields["tun_ipv4_dst"], fields["tun_id"]) == (ip_int(frr.vtep), vni)
        assert fields["reg6"] and fields["reg6"] & app_tags == fields["reg6"]
        assert ck == cookie(Kind.REMOTE_ENDPOINT, f"evpn:{ext['rd']}:{EXTERNAL[0]}:{EXTERNAL[1]}")
    # The clash lost to the local endpoint: host 2 still sends c1's traffic to host 1.
    ck, fields = lab.table20(2)[ip_int(clash["ip"])]
    assert ck == cookie(Kind.REMOTE_ENDPOINT, clash["vport_id"])
    assert fields["tun_ipv4_dst"] == ip_int(eps["c0"]["vtep_ip"])

    # web (c0) -> the external endpoint on tcp/8080 leaves through the tunnel port toward FRR's VTEP;
    # on tcp/22 it is dropped at the ingress ACL, and so is app (c4) on tcp/8080.
    host1 = lab.placement.hosts[1][0]["name"]
    r = lab.trace("c0", EXTERNAL[1], 8080)
    assert r.drops == [f"{host1} -> {frr.vtep}: no simulated VRS has that VTEP"], r.text()
    assert r.steps[-1].table == Table.ROUTE and any("output:1" in a for a in r.steps[-1].actions), r.text()
    for src, port in (("c0", 22), ("c4", 8080)):
        denied = lab.trace(src, EXTERNAL[1], port)
        assert not denied.delivered and denied.steps[-1].table == Table.INGRESS_ACL, denied.text()
        assert not any(frr.vtep in d for d in denied.drops), denied.text()

    # FRR withdraws the external endpoint: gone from every host, and the trace finds no way out.
    frr.remove_endpoint(vni, *EXTERNAL)
    wait_for(lambda: all(ip_int(EXTERNAL[1]) not in lab.table20(d) for d in (1, 2)), 20, "the withdrawal")
    gone = lab.trace("c0", EXTERNAL[1], 8080)
    assert not any(frr.vtep in d for d in gone.drops), gone.text()
    assert lab.received(*EXTERNAL) is None


def test_frr_tunnels_to_the_vrs_vteps(lab):
    """What FRR as a VTEP does with our routes: its kernel sends each endpoint's MAC to that endpoint's
    VRS. FRR's BGP table shows the right next hop (above); the kernel fdb is where traffic goes."""
    lab.vsc.wait_converged(60, datapaths=2, endpoints=6)
    frr_shows_our_routes(lab)
    want = {e["mac"].lower(): e["vtep_ip"] for e in lab.endpoints().values()}
    got = wait_for(lambda: t if want.keys() <= (t := lab.frr.remote_vteps(lab.vni)).keys() else None, 20,
                   "zebra's fdb entries")
    assert {mac: got[mac] for mac in want} == want
