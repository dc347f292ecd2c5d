"""The VSC process (os-ken over TCP) programming simulated VRSs: traffic verdicts by trace, restarts
that touch no flow that is still right, stale flows removed by the resync, ports coming and going.

The VSD here is a saved snapshot (`vsc run --view`); test_vsc_vsd.py runs the same against a VSD."""

from __future__ import annotations

import json
import time

import pytest

from vrs.sim.host import Container
from vrs.sim.packet import Packet
from vrs.sim.runtime import SimRuntime
from vsc.process import VscProcess
from vsplab.lab.ports import free_port
from vsplab.workload.tree import Placement, Tree, nfd8

pytestmark = pytest.mark.slow


def host_specs(placement: Placement, names: dict[str, str]) -> list[dict]:
    specs = []
    for dpid, msgs in placement.hosts.items():
        conts = [{"name": f"vl-{names[m['vport_id']]}", "mac": m["mac"], "ip": m["ip"], "vport_id": m["vport_id"],
                  "ofport": m["ofport"]} for m in msgs if m["op"] == "port-up"]
        specs.append({"name": msgs[0]["name"], "datapath_id": dpid, "vtep_ip": msgs[0]["vtep_ip"],
                      "containers": conts})
    return specs


class Lab:
    """A VSC subprocess serving `tree`, and simulated VRSs holding `placement`'s containers."""

    def __init__(self, tree: Tree, placement: Placement, tmp, vsd_url: str | None = None, **vsd_auth) -> None:
        self.tree, self.placement = tree, placement
        self.names = {o["entity"]["ID"]: o["entity"]["name"] for o in tree.objects if o["entityType"] == "vport"}
        self.ips = {o["entity"]["name"]: o["entity"]["IPAddress"] for o in tree.objects
                    if o["entityType"] == "vminterface"}
        view_file = None
        if vsd_url is None:
            view_file = tmp / "view.json"
            view_file.write_text(json.dumps({"revision": 1, "objects": tree.objects}))
        of, agent = free_port(), free_port()
        self.vsc = VscProcess(vsd_url=vsd_url, view_file=view_file, of_port=of, agent_port=agent,
                              status_port=free_port(), state_dir=tmp / "state", log_file=tmp / "vsc.log", **vsd_auth)
        self.rt = SimRuntime(controller=("127.0.0.1", of), agent=("127.0.0.1", agent))

    def __enter__(self) -> Lab:
        self.vsc.start()
        self.rt.run_in_thread()
        self.rt.add_hosts(host_specs(self.placement, self.names))
        return self

    def __exit__(self, *exc) -> None:
        self.rt.stop()
        self.vsc.stop()

    def trace(self, src: str, dst: str, port: int, proto: str = "tcp", flags: str | None = None, sport: int = 40000):
        return self.rt.trace(Packet(source=f"vl-{src}", dst_ip=self.ips[dst], dst_port=port, proto=proto,
                                    tcp_flags=flags, src_port=sport))

    def reply(self, src: str, dst: str, port: int, sport: int = 40000):
        """The reply of a src->dst:port connection (dst answers from port to sport)."""
        return self.rt.trace(Packet(source=f"vl-{dst}", dst_ip=self.ips[src], dst_port=sport, proto="tcp",
                                    tcp_flags="SA", src_port=port))

    def converged(self, timeout: float = 30.0) -> dict:
        """Converged on exactly the endpoints the simulated VRSs hold right now."""
        n = len(self.rt.call(lambda: [p for h in self.rt.hosts.values() for p in h.switch.container_ports()
                                      if p.vport_id]))
        end = time.monotonic() + timeout
        while True:
            st = self.vsc.wait_converged(max(end - time.monotonic(), 0.1), datapaths=len(self.placement.hosts),
                                         endpoints=n)
            if st["endpoints"] == n or time.monotonic() > end:
                return st
            time.sleep(0.05)

    def flows(self) -> dict:
        """host -> {(table, priority, match): (cookie, created)} as the simulated switches hold them."""
        def grab():
            return {name: {r.flow(t).canonical().key: (r.cookie, r.created) for t, r in h.switch.flows()}
                    for name, h in self.rt.hosts.items()}
        return self.rt.call(grab)

    def flow_mods(self) -> int:
        return self.rt.stats()["total_flow_mods"]


def nfd8_lab(tmp, hosts: int = 3, per_host: int = 6) -> Lab:
    return Lab(*nfd8(n_hosts=hosts, per_host=per_host), tmp)


def assert_nfd8_policy(lab: Lab) -> None:
    # c0 web, c1 app, c2 db on host 1; c6.. on host 2 (tiers by index mod 3).
    r = lab.trace("c0", "c7", 8080)  # web -> app (other host): allowed out by web, in by app
    assert r.delivered_to("vl-c7"), r.text()
    assert lab.reply("c0", "c7", 8080).delivered_to("vl-c0")  # stateful reply
    assert not lab.trace("c7", "c0", 8080).delivered  # a new connection the other way: no rule
    assert lab.trace("c1", "c2", 5432).delivered_to("vl-c2")  # app -> db, same host
    assert not lab.trace("c0", "c2", 5432).delivered  # web -> db: no rule
    assert lab.trace("c2", "c8", 5433).delivered_to("vl-c8")  # db -> db replication, across hosts
    assert not lab.trace("c3", "c6", 7946).delivered  # web gossip is allowed in, but not out of web
    assert not lab.trace("c0", "c6", 22).delivered


def test_vsc_programs_simulated_vrss_and_policy_holds(tmp_path):
    with nfd8_lab(tmp_path) as lab:
        st = lab.converged()
        assert st["endpoints"] == 18
        assert all(d["synced"] and d["flows_desired"] > 0 for d in st["datapaths"].values())
        flows = lab.flows()
        for d in st["datapaths"].values():
            assert len(flows[d["name"]]) == d["flows_desired"]
        assert_nfd8_policy(lab)


def test_restart_touches_no_flow_that_is_still_right(tmp_path):
    with nfd8_lab(tmp_path) as lab:
        lab.converged()
        assert lab.trace("c0", "c7", 8080, sport=41000).delivered  # a connection open across the restart
        before, mods = lab.flows(), lab.flow_mods()
        lab.vsc.restart()
        st = lab.converged()
        # Every VRS was resynced by flow dump + diff, and the diff was empty.
        assert {tuple(d["last_sync_ops"]) for d in st["datapaths"].values()} == {(0, 0, 0)}
        assert lab.flow_mods() == mods
        assert lab.flows() == before  # same keys, cookies and creation times: nothing re-added
        assert lab.reply("c0", "c7", 8080, sport=41000).delivered_to("vl-c0")
        assert_nfd8_policy(lab)


def test_resync_removes_only_stale_flows(tmp_path):
    from openflow import encode
    from openflow.flow import Flow, match

    with nfd8_lab(tmp_path) as lab:
        lab.converged()
        lab.vsc.stop()
        stale = Flow(20, 100, match(metadata=1, reg0=0x0A0909FE), goto=25, cookie=0x0500000000000001)
        host = next(iter(lab.rt.hosts))
        lab.rt.call(lambda: lab.rt.hosts[host].switch.handle(encode.flow_mod(stale, xid=7)))
        before = lab.flows()
        lab.vsc.start()
        st = lab.converged()
        ops = {d["name"]: tuple(d["last_sync_ops"]) for d in st["datapaths"].values()}
        assert ops.pop(host) == (0, 0, 1)
        assert set(ops.values()) == {(0, 0, 0)}
        after = lab.flows()
        del before[host][stale.canonical().key]
        assert after == before


def test_ports_coming_and_going_change_only_their_flows(tmp_path):
    tree, placement = nfd8(n_hosts=2, per_host=3)
    with Lab(tree, placement, tmp_path) as lab:
        st = lab.converged()
        before = lab.flows()
        mods = lab.flow_mods()
        # A new container for an existing VSD vport that had no port yet: none here, so move one.
        lab.rt.remove_port("vl-vrs1", "vl-c0")
        time.sleep(0.1)
        st = lab.converged()
        assert st["endpoints"] == 5
        # 5 local flows on its host, its one remote flow on the other host.
        assert lab.flow_mods() - mods == 6
        after = lab.flows()
        assert len(before["vl-vrs1"]) - len(after["vl-vrs1"]) == 5
        assert len(before["vl-vrs2"]) - len(after["vl-vrs2"]) == 1
        vp = next(v for v, n in lab.names.items() if n == "c0")
        lab.rt.add_port("vl-vrs2", Container("vl-c0", "02:00:00:00:00:01", lab.ips["c0"], vp, 20))
        st = lab.converged()
        assert st["endpoints"] == 6
        assert lab.trace("c0", "c1", 8080).delivered_to("vl-c1")


def test_stateless_entries_carry_tcp_with_a_reverse_rule(tmp_path):
    """Non-stateful entries commit nothing: the SYN-ACK is +inv to conntrack (it never saw the SYN
    committed) and must be evaluated by the ACL (allowed by the reverse rule), not dropped."""
    from tests.test_vsc_evaluator import two_tier

    tree, placement, ids = two_tier(stateful=False)
    with Lab(tree, placement, tmp_path) as lab:
        lab.converged()
        assert lab.trace("web1", "db1", 5432, flags="S").delivered_to("vl-db1")
        syn_ack = Packet(source="vl-db1", dst_ip=lab.ips["web1"], dst_port=40000, src_port=5432, proto="tcp",
                         tcp_flags="SA")
        assert not lab.rt.trace(syn_ack).delivered  # no rule for db -> web yet
    tree, placement, ids = two_tier(stateful=False)
    pg = "POLICYGROUP"
    tree.entry(ids["tin"], "ingress", 11, location=(pg, ids["db"]), network=(pg, ids["web"]), protocol="6",
               sport="5432")
    tree.entry(ids["teg"], "egress", 11, location=(pg, ids["web"]), network=(pg, ids["db"]), protocol="6",
               sport="5432")
    (tmp_path / "2").mkdir()
    with Lab(tree, placement, tmp_path / "2") as lab:
        lab.converged()
        assert lab.trace("web1", "db1", 5432, flags="S").delivered_to("vl-db1")
        r = lab.rt.trace(syn_ack)
        assert r.delivered_to("vl-web1"), r.text()


def test_status_flows_and_explain_endpoints(tmp_path):
    import urllib.error
    import urllib.request

    from vsc.pipeline import Kind, cookie

    tree, placement = nfd8(n_hosts=2, per_host=3)
    with Lab(tree, placement, tmp_path) as lab:
        st = lab.converged()
        base = f"http://127.0.0.1:{lab.vsc.status_port}"
        text = urllib.request.urlopen(f"{base}/flows?dpid=1").read().decode()
        assert len(text.splitlines()) == st["datapaths"]["1"]["flows_desired"]
        assert "table=20" in text and "->tun_dst" in text
        vp = next(v for v, n in lab.names.items() if n == "c3")  # on host 2: a remote endpoint for host 1
        c = cookie(Kind.REMOTE_ENDPOINT, vp)
        assert f"cookie={hex(c)}" in text
        who = json.loads(urllib.request.urlopen(f"{base}/explain?cookie={hex(c)}").read())
        assert who == {"kind": "REMOTE_ENDPOINT", "entityType": "vport", "ID": vp, "name": "c3"}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/flows?dpid=x")
        assert err.value.code == 400
