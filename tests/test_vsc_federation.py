"""Two VSC processes federated over MP-BGP EVPN (ExaBGP, eBGP between 127.0.0.2 and 127.0.0.3), one
VSD, simulated VRSs: each VSC programs its own hosts with the other's endpoints from BGP routes, a
packet traced across gets the verdict the policy says, and a VSC whose BGP side goes silent or dies
has its endpoints withdrawn from the other's hosts. Needs no root (ports above 1024 on loopback)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from vrs.sim.host import Container
from vrs.sim.packet import Packet
from vrs.sim.runtime import SimRuntime
from vsc.bgp.loopback import free_port as free_port_on
from vsc.pipeline import Kind, Table, cookie
from vsc.process import BgpOptions, VscProcess
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd
from vsplab.bench.measure import argv, children
from vsplab.lab.ports import free_port
from vsplab.workload.tree import nfd8
from vsplab.workload.vsd_push import push, relabel

pytestmark = pytest.mark.slow

HOLD = 3  # s: the smallest hold time BGP allows, so the test waits little for an expiry
SIDES = {"A": ("127.0.0.2", 65001, [1, 2]), "B": ("127.0.0.3", 65002, [3, 4])}


def exabgp_of(vsc: VscProcess) -> int:
    pids = [p for p in children(vsc.proc.pid) if any("exabgp" in a for a in argv(p))]
    assert len(pids) == 1, pids
    return pids[0]


class Federation:
    """A VSD, VSCs A and B peered with each other, and the simulated hosts of each."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.vsd = EmbeddedVsd(log_path=str(tmp / "vsd.log"))
        self.tree, self.placement = nfd8(n_hosts=4, per_host=3)
        self.vscs: dict[str, VscProcess] = {}
        self.ports: dict[str, tuple[int, int]] = {}  # side -> (OpenFlow, agent)
        self.rt = SimRuntime(controller=None, agent=None)

    def __enter__(self) -> Federation:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.vsd.start()
        client = VsdClient(self.vsd.api, self.vsd.user, self.vsd.password)
        relabel(self.tree, self.placement, push(client, self.tree))
        (dom,) = [o for o in client.list("enterprises") if o["name"] == "nfd8"]
        (self.domain,) = client.list(f"enterprises/{dom['ID']}/domains")
        bgp_port = free_port_on("127.0.0.2", "127.0.0.3")
        for name, (addr, asn, _) in SIDES.items():
            (other,) = [(a, n) for o, (a, n, _) in SIDES.items() if o != name]
            bgp = BgpOptions(asn, addr, f"{addr}:{bgp_port}", [f"{other[0]}:{bgp_port}:{other[1]}"], hold_time=HOLD)
            self.ports[name] = of, agent = free_port(), free_port()
            self.vscs[name] = VscProcess(
                vsd_url=self.vsd.url, user=self.vsd.user, password=self.vsd.password, of_port=of,
                agent_port=agent, status_port=free_port(), state_dir=self.tmp / f"state-{name}",
                log_file=self.tmp / f"vsc-{name}.log", bgp=bgp).start()
        self.names = {o["entity"]["ID"]: o["entity"]["name"] for o in self.tree.objects
                      if o["entityType"] == "vport"}
        self.ips = {o["entity"]["name"]: o["entity"]["IPAddress"] for o in self.tree.objects
                    if o["entityType"] == "vminterface"}
        self.rt.run_in_thread()
        for name, (_, _, dpids) in SIDES.items():
            of, agent = self.ports[name]
            for d in dpids:
                msgs = self.placement.hosts[d]
                conts = [Container(f"vl-{self.names[m['vport_id']]}", m["mac"], m["ip"], m["vport_id"], m["ofport"])
                         for m in msgs if m["op"] == "port-up"]
                self.rt.call(self.rt.add_host_now, msgs[0]["name"], d, msgs[0]["vtep_ip"], conts,
                             ("127.0.0.1", of), ("127.0.0.1", agent))

    def __exit__(self, *exc) -> None:
        self.rt.stop()
        for v in self.vscs.values():
            v.stop()
        self.vsd.close()

    def converged(self, name: str, timeout: float = 60.0) -> dict:
        return self.vscs[name].wait_converged(timeout, datapaths=2, endpoints=6, bgp_received=6)

    def table20(self, dpid: int) -> dict[str, tuple]:
        """IP -> (cookie, actions) of the remote-endpoint flows a simulated VRS holds."""
        host = self.placement.hosts[dpid][0]["name"]

        def grab():
            return {dict((m.name, m.value) for m in r.flow(t).match)["reg0"]: (r.cookie, r.flow(t).actions)
                    for t, r in self.rt.hosts[host].switch.flows(Table.ENDPOINT) if r.priority == 100}
        return self.rt.call(grab)

    def flows(self, dpids: list[int]) -> dict:
        """host -> {flow key: (cookie, created)}: a flow re-added gets a new creation time."""
        names = [self.placement.hosts[d][0]["name"] for d in dpids]

        def grab():
            return {n: {r.flow(t).canonical().key: (r.cookie, r.created) for t, r in self.rt.hosts[n].switch.flows()}
                    for n in names}
        return self.rt.call(grab)

    def vport_cookies(self, dpids: list[int]) -> set[int]:
        return {cookie(Kind.REMOTE_ENDPOINT, m["vport_id"]) for d in dpids for m in self.placement.hosts[d]
                if m["op"] == "port-up"}

    def trace(self, src: str, dst: str, port: int, flags: str | None = None, sport: int = 40000):
        return self.rt.trace(Packet(source=f"vl-{src}", dst_ip=self.ips[dst], dst_port=port, proto="tcp",
                                    tcp_flags=flags, src_port=sport))

    def wait(self, what: str, ok, timeout: float) -> float:
        t0 = time.monotonic()
        while not ok():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{what}: not within {timeout} s")
            time.sleep(0.05)
        took = time.monotonic() - t0
        print(f"{what}: {took:.2f} s")
        return took


def test_two_vscs_federate_over_bgp_and_policy_holds_across(tmp_path):
    with Federation(tmp_path) as fed:
        t0 = time.monotonic()
        st = {name: fed.converged(name) for name in SIDES}
        print(f"both VSCs converged with BGP: {time.monotonic() - t0:.2f} s after the VRSs started")
        for s in st.values():
            bgp = s["bgp"]
            assert [x["state"] for x in bgp["sessions"]] == ["up"], bgp
            assert (bgp["advertised"], bgp["received"], bgp["imported"]) == (6, 6, 6), bgp
            assert not s["input_errors"] and not s["problems"]
        vni = fed.domain["serviceID"]
        # Each host: its own domain's other-host endpoints as reported, the other VSC's as received, and
        # a received one is exactly the flow the other VSC compiled for it on its own second host.
        for mine, theirs, other_mine, other_theirs in ((1, 3, 2, 4), (3, 1, 4, 2)):
            got = fed.table20(mine)
            assert len(got) == 9
            reference = fed.table20(other_theirs)  # the other VSC's own view of `theirs`' endpoints
            learned = {ip: v for ip, v in got.items() if v[0] not in fed.vport_cookies([other_mine])}
            assert len(learned) == 6
            for m in fed.placement.hosts[theirs][2:]:
                ip = int.from_bytes(bytes(int(x) for x in m["ip"].split(".")), "big")
                ck, acts = learned[ip]
                assert acts == reference[ip][1] and ck != reference[ip][0]  # same flow, the route's cookie
                fields = {a.name: a.value for a in acts if hasattr(a, "name")}
                assert fields["tun_id"] == vni and fields["reg6"] != 0
                assert fields["tun_ipv4_dst"] == int.from_bytes(bytes(
                    int(x) for x in fed.placement.hosts[theirs][0]["vtep_ip"].split(".")), "big")
        # Policy across VSCs: c0 web, c2 db on host 1 (A); c5 db on host 2 (A); c7 app, c8 db on host 3
        # (B); c9 web, c10 app on host 4 (B).
        r = fed.trace("c0", "c7", 8080)
        assert r.delivered_to("vl-c7"), r.text()
        assert fed.trace("c7", "c0", 40000, flags="SA", sport=8080).delivered_to("vl-c0")  # stateful reply
        assert not fed.trace("c7", "c0", 8080).delivered
        assert not fed.trace("c0", "c8", 5432).delivered
        assert fed.trace("c2", "c8", 5433).delivered_to("vl-c8")
        assert fed.trace("c10", "c5", 5432).delivered_to("vl-c5")
        assert not fed.trace("c9", "c2", 22).delivered

        # A restarts: it waits for B's routes before it resyncs its VRSs, so not one flow is touched.
        before = fed.flows([1, 2])
        t0 = time.monotonic()
        fed.vscs["A"].restart()
        st = fed.converged("A")
        print(f"VSC A restarted -> converged with BGP: {time.monotonic() - t0:.2f} s")
        assert {tuple(d["last_sync_ops"]) for d in st["datapaths"].values()} == {(0, 0, 0)}
        assert fed.flows([1, 2]) == before

        # B's ExaBGP stops answering: A's hold timer expires and A's hosts lose B's endpoints.
        a_only = fed.vport_cookies([2])
        exabgp_b = exabgp_of(fed.vscs["B"])
        os.kill(exabgp_b, signal.SIGSTOP)
        try:
            took = fed.wait("B's ExaBGP silent -> its endpoints gone from A's hosts",
                            lambda: all({c for c, _ in fed.table20(d).values()} <= fed.vport_cookies([1, 2])
                                        for d in (1, 2)), HOLD + 10)
            assert took <= HOLD + 2
            assert {c for c, _ in fed.table20(1).values()} == a_only
            assert not fed.trace("c0", "c7", 8080, sport=41000).delivered
        finally:
            os.kill(exabgp_b, signal.SIGCONT)
        t0 = time.monotonic()
        fed.converged("A")
        fed.converged("B")
        print(f"B's ExaBGP back -> both converged again: {time.monotonic() - t0:.2f} s")
        assert len(fed.table20(1)) == 9 and fed.trace("c0", "c7", 8080, sport=42000).delivered_to("vl-c7")

        # B's ExaBGP dies: the TCP session closes, A withdraws at once; B's speaker starts a new ExaBGP
        # and the routes come back.
        b_gone = lambda: all({c for c, _ in fed.table20(d).values()} <= fed.vport_cookies([1, 2])  # noqa: E731
                             for d in (1, 2))
        exabgp_b = exabgp_of(fed.vscs["B"])
        os.kill(exabgp_b, signal.SIGKILL)
        assert fed.wait("B's ExaBGP killed -> its endpoints gone from A's hosts", b_gone, HOLD + 10) <= HOLD
        t0 = time.monotonic()
        fed.converged("A")
        fed.converged("B")
        print(f"B's speaker restarted ExaBGP -> both converged again: {time.monotonic() - t0:.2f} s")
        assert exabgp_of(fed.vscs["B"]) != exabgp_b and len(fed.table20(2)) == 9

        # VSC B stops: its speaker closes the session (NOTIFICATION), A withdraws at once.
        t0 = time.monotonic()
        fed.vscs["B"].stop()
        print(f"VSC B stopped: {time.monotonic() - t0:.2f} s")
        assert fed.wait("VSC B stopped -> its endpoints gone from A's hosts", b_gone, HOLD + 10) <= HOLD
        st = fed.vscs["A"].status()
        assert st["bgp"]["received"] == 0 and st["bgp"]["sessions"][0]["state"] != "up" and not st["converged"]
        assert st["bgp"]["sessions_down"] == ["127.0.0.3"]
