"""`vsc.core.Vsc` wired straight to a simulated switch (no TCP, no os-ken, no threads): when a VRS is
synced, what a failed bundle does, what a VRS that reconnects with fewer ports does."""

from __future__ import annotations

import pytest

import vsc.core as core_mod
from openflow import consts as C
from openflow import decode
from vrs.sim.switch import SimSwitch
from vsc.core import Vsc
from vsc.pipeline import flow_key
from vsplab.workload.tree import nfd8


class Wire:
    """Delivers the VSC's bytes to a SimSwitch and its replies back to the VSC, synchronously."""

    def __init__(self, core: Vsc, dpid: int, vtep: int) -> None:
        self.core, self.dpid = core, dpid
        self.switch = SimSwitch(f"vl-s{dpid}", dpid, vtep)
        self.fail_next_commit = False
        self.messages = 0

    def send(self, buf: bytes) -> None:
        off = 0
        while off < len(buf):
            n = int.from_bytes(buf[off + 2:off + 4], "big")
            self.deliver(bytes(buf[off:off + n]))
            off += n

    def deliver(self, msg: bytes) -> None:
        self.messages += 1
        xid = int.from_bytes(msg[4:8], "big")
        if self.fail_next_commit and msg[1] == C.OFPT_EXPERIMENTER and int.from_bytes(msg[20:22], "big") == \
                C.OFPBCT_COMMIT_REQUEST:
            self.fail_next_commit = False  # as if the switch refused the bundle: nothing of it applies
            self.switch.handle(msg[:20] + C.OFPBCT_DISCARD_REQUEST.to_bytes(2, "big") + msg[22:])
            self.core.on_error(self.dpid, xid, "bundle failed (injected)")
            return
        for rep in self.switch.handle(msg):
            t = rep[1]
            if t == C.OFPT_BARRIER_REPLY:
                self.core.on_barrier(self.dpid, xid)
            elif t == C.OFPT_MULTIPART_REPLY:
                _, flags, body = decode.multipart_reply(rep)
                self.core.on_flow_stats(self.dpid, xid, decode.flow_stats_reply(body), bool(flags & 1))
            elif t == C.OFPT_ERROR:
                self.core.on_error(self.dpid, xid, f"OFPT_ERROR {rep[8:12].hex()}")

    def installed(self) -> dict:
        return {flow_key(r.flow(t).canonical()): r.flow(t) for t, r in self.switch.flows()}


@pytest.fixture
def lab(monkeypatch):
    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    monkeypatch.setattr(core_mod, "SYNC_RETRY", 0.0)
    tree, placement = nfd8(n_hosts=2, per_host=4)
    core = Vsc()
    core.on_stream({"kind": "snapshot", "revision": 1, "objects": tree.objects})
    wires = {}
    for dpid in placement.hosts:
        wires[dpid] = Wire(core, dpid, 0xC0A84D00 + dpid)
        core.datapath_up(dpid, wires[dpid].send)
    return core, wires, placement


def settle(core: Vsc, rounds: int = 4) -> None:
    for _ in range(rounds):
        core.flush()


def assert_in_sync(core: Vsc, wires: dict) -> None:
    for dpid, w in wires.items():
        assert w.installed() == core.prog.host_desired(dpid)


def test_no_sync_until_the_vrs_reported_itself(lab):
    core, wires, placement = lab
    settle(core)
    assert all(w.messages == 0 for w in wires.values())  # no flow dump asked, nothing deleted
    for m in placement.messages():
        core.on_agent(m)
    settle(core)
    assert all(core.links[d].synced for d in wires) and core.status()["converged"]
    assert_in_sync(core, wires)


def test_a_failed_bundle_leads_to_a_full_resync(lab):
    core, wires, placement = lab
    for m in placement.messages():
        core.on_agent(m)
    settle(core)
    w = wires[1]
    w.fail_next_commit = True
    gone = placement.hosts[2][2]  # a port of the other VRS: host 1 must drop its remote flow
    core.on_agent({"op": "port-down", "datapath_id": 2, "ofport": gone["ofport"], "name": gone["name"]})
    core.flush()
    assert not core.links[1].synced and core.links[1].errors
    assert w.installed() != core.prog.host_desired(1)
    settle(core)
    assert core.links[1].synced and core.links[1].sync_ops == (0, 0, 1)
    assert_in_sync(core, wires)


def test_a_vrs_reconnecting_with_fewer_ports_loses_the_others(lab):
    core, wires, placement = lab
    for m in placement.messages():
        core.on_agent(m)
    settle(core)
    before = core.status()["endpoints"]
    msgs = placement.hosts[1]
    for m in [*msgs[:2], *msgs[3:]]:  # hello, tunnel, and every port but the first
        core.on_agent(m)
    settle(core)
    assert core.status()["endpoints"] == before - 1
    assert_in_sync(core, wires)
