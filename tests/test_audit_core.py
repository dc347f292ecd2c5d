"""The VSC's side of the drift audit (vsc/audit.py) on `vsc.core.Vsc` wired straight to simulated
switches (tests/test_vsc_core.py's Wire): what a VRS is expected to hold while changes wait to be sent,
a flow dump asked by the flusher and compared, and a desired state that no longer follows from the view."""

from __future__ import annotations

import threading
import time

import pytest

import vsc.core as core_mod
from openflow import encode, fastdecode
from openflow.consts import OFPFC_DELETE
from vsc import audit
from vsc.core import Vsc
from vsc.pipeline import Kind, cookie_kind
from vsplab.workload.tree import nfd8

from .test_vsc_core import Wire, settle


@pytest.fixture
def synced(monkeypatch):
    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    monkeypatch.setattr(core_mod, "SYNC_RETRY", 0.0)
    tree, placement = nfd8(n_hosts=2, per_host=4)
    core = Vsc()
    core.on_stream({"kind": "snapshot", "revision": 1, "objects": tree.objects})
    wires = {dpid: Wire(core, dpid, 0xC0A84D00 + dpid) for dpid in placement.hosts}
    for dpid, w in wires.items():
        core.datapath_up(dpid, w.send)
    for m in placement.messages():
        core.on_agent(m)
    settle(core)
    assert all(core.links[d].synced for d in wires)
    return core, wires, placement


def test_expected_is_what_was_sent_not_what_waits(synced):
    core, wires, placement = synced
    gone = placement.hosts[2][2]
    core.on_agent({"op": "port-down", "datapath_id": 2, "ofport": gone["ofport"], "name": gone["name"]})
    # not flushed: host 1 should lose a remote flow, but has not been told yet
    assert core.prog.desired[1] != wires[1].installed()
    assert core.prog.sent_state(1) == wires[1].installed()


@pytest.fixture
def flusher(synced):
    core = synced[0]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            core.wake.wait(0.05)
            core.wake.clear()
            core.flush()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield synced
    stop.set()
    t.join(2)


def test_a_dump_asked_by_the_flusher_names_what_the_switch_lost(flusher):
    core, wires, _ = flusher
    clean = audit.audit(core, 1)
    assert clean["settled"] and clean["differences"] == [] and clean["installed"] == clean["expected"] > 0
    sw = wires[1].switch
    flow = next(f for f in (r.flow(t) for t, r in sw.flows()) if cookie_kind(f.cookie) == Kind.ACL_ENTRY)
    with core.lock:  # the switch loses one flow behind the VSC's back
        sw.apply(fastdecode.flow_mod(encode.flow_mod(flow, OFPFC_DELETE, strict=True)))
    found = audit.audit(core, 1)
    assert [(d["what"], d["cookie"], d["object"]["kind"]) for d in found["differences"]] == [
        ("missing", hex(flow.cookie), "ACL_ENTRY")]
    assert found["differences"][0]["object"]["entityType"].endswith("aclentrytemplate")
    fixed = audit.resync(core, 1)
    assert fixed["ops"] == {"add": 1, "modify": 0, "delete": 0} and fixed["flow_mods"] == 1
    assert audit.audit(core, 1)["differences"] == []


def test_desired_flows_the_view_does_not_explain_are_intent_drift(synced):
    core, _, _ = synced
    assert audit.intent(core)["recompiled"] == [] and audit.intent(core)["unowned"] == []
    key, flow = next((k, f) for k, f in core.prog.desired[1].items() if cookie_kind(f.cookie) == Kind.ACL_ENTRY)
    del core.prog.desired[1][key]  # as an incremental step gone wrong would leave it
    t0 = time.perf_counter()
    found = audit.intent(core)["recompiled"]
    assert [(d["dpid"], d["what"], d["cookie"]) for d in found] == [(1, "missing", hex(flow.cookie))]
    assert found[0]["object"]["kind"] == "ACL_ENTRY" and found[0]["object"]["ID"]
    print(f"recompiled 2 hosts from scratch in {time.perf_counter() - t0:.3f}s")


def test_a_big_desired_state_is_compiled_again_only_when_asked(synced, monkeypatch):
    core, _, _ = synced
    monkeypatch.setattr(audit, "RECOMPILE_MAX_FLOWS", 10)
    key = next(iter(core.prog.desired[1]))
    del core.prog.desired[1][key]
    skipped = audit.intent(core)
    assert skipped["recompiled"] == [] and "ask for it with recompile" in skipped["recompile_skipped"]
    asked = audit.intent(core, recompile=True)
    assert asked["recompile_skipped"] is None and [d["what"] for d in asked["recompiled"]] == ["missing"]
