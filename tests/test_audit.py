"""The drift audit (vsplab/audit, vsc/audit.py) on a sim lab: VSD, VSC and simulated VRSs over real
OpenFlow. A flow deleted and one added on a switch behind the VSC's back are found by the VSC's flow-stats
request, named by their VSD objects, and `repair` sends exactly the two flow-mods that put them right.
The same on real Open vSwitch: tests/test_audit_emu.py."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from openflow import encode, fastdecode
from openflow.consts import OFPFC_ADD, OFPFC_DELETE
from openflow.textparse import parse_dump
from vsc.pipeline import Kind, Table, cookie_kind
from vsplab.audit import audit_lab, repair
from vsplab.audit.intent import compare_intent
from vsplab.lab.run import SimLab
from vsplab.scenario.check import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "three-tier.yaml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    scenario = load_scenario(str(SCENARIO))
    with SimLab(scenario, console=Console(file=io.StringIO()), workdir=tmp_path_factory.mktemp("lab")) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=60)
        yield lab


def _tamper(lab, host: str, flow, command: int) -> None:
    """A flow-mod applied to the simulated switch directly, as `ovs-ofctl` would behind the VSC's back."""
    sw = lab.runtime.hosts[host].switch
    lab.runtime.call(sw.apply, fastdecode.flow_mod(encode.flow_mod(flow, command, strict=command != OFPFC_ADD)))


def _acl_flow(lab, host: str):
    vsc = lab.vsc_of(host)
    dpid = next(int(d) for d, dp in vsc.status()["datapaths"].items() if dp["name"] == host)
    with urllib.request.urlopen(f"http://{vsc.listen}:{vsc.status_port}/flows?dpid={dpid}") as r:
        flows = parse_dump(r.read().decode())
    return next(f for f in flows if f.table == Table.INGRESS_ACL and cookie_kind(f.cookie) == Kind.ACL_ENTRY)


@pytest.mark.slow
def test_a_converged_lab_has_no_drift(lab):
    report = audit_lab(lab)
    assert report.clean, report.lines()
    assert report.datapaths == len(lab.scenario.hosts) and report.flows_compared > 0


@pytest.mark.slow
def test_tampered_flows_are_named_and_repaired_with_only_their_flow_mods(lab):
    host = lab.scenario.hosts[0].name
    gone = _acl_flow(lab, host)
    extra = type(gone)(Table.INGRESS_ACL, 65000, gone.match, (), None, cookie=gone.cookie)  # a drop above all
    _tamper(lab, host, gone, OFPFC_DELETE)
    _tamper(lab, host, extra, OFPFC_ADD)

    report = audit_lab(lab)
    assert not report.clean and not report.intent
    found = {(d.host, d.what, d.table, d.priority) for d in report.flows}
    assert found == {(host, "missing", gone.table, gone.priority), (host, "extra", Table.INGRESS_ACL, 65000)}
    for d in report.flows:  # named by the ACL entry the cookie stands for
        assert d.cookie == hex(gone.cookie)
        assert d.owner["entityType"] in ("ingressaclentrytemplate", "egressaclentrytemplate") and d.owner["ID"]
    text = "\n".join(report.lines())
    assert "missing flow" in text and "extra flow" in text and d.owner["ID"] in text

    fixed = repair(lab)
    assert [(r.host, r.add, r.modify, r.delete) for r in fixed.repairs] == [(host, 1, 0, 1)]
    assert fixed.repair_flow_mods == 2 and "repair: 2 flow-mods" in "\n".join(fixed.lines())
    assert fixed.after_repair.clean and fixed.ok, fixed.after_repair.lines()


@pytest.mark.slow
def test_an_entry_the_vsc_refuses_is_intent_no_flow_enforces(lab):
    """An entry narrowed by a DSCP, which the VSC does not compile: the audit names it (no resync can
    enforce it, so a repair leaves the lab not ok), and deleting the entry makes the lab clean again."""
    client = lab.client
    (dom,) = [d for d in client.list("domains") if d["name"] == "prod"]
    (ing,) = client.list(f"domains/{dom['ID']}/ingressacltemplates")
    entry = client.create(f"ingressacltemplates/{ing['ID']}", "ingressaclentrytemplates", {
        "description": "voice only", "action": "FORWARD", "etherType": "0x0800", "protocol": "17",
        "sourcePort": "*", "destinationPort": "5060", "DSCP": "46", "priority": 700, "stateful": True})
    try:
        lab.wait_converged()
        report = repair(lab)
        refused = [f for f in report.intent if f.what == "refused"]
        assert [(f.object_id, f.entity_type) for f in refused] == [(entry["ID"], "ingressaclentrytemplate")]
        assert "DSCP=46: not compiled by this VSC" in refused[0].detail
        assert not report.flows and report.repair_flow_mods == 0 and not report.ok
        assert any(f"intent refused: ingressaclentrytemplate {entry['ID']}" in line for line in report.lines())
    finally:
        client.delete(f"ingressaclentrytemplates/{entry['ID']}")
    lab.wait_converged()
    assert audit_lab(lab).clean


def test_a_vsc_behind_or_with_a_stale_view_is_intent_drift():
    vsd = [{"entityType": "domain", "entity": {"ID": "d1", "name": "prod"}, "assoc": {}},
           {"entityType": "vport", "entity": {"ID": "v1", "name": "web1"}, "assoc": {}},
           {"entityType": "job", "entity": {"ID": "j1"}, "assoc": {}}]  # not a kind a view follows
    view = {"revision": 4, "kinds": ["domain", "vport"], "unowned": ["0x600000000000001"],
            "objects": {"d1": {"entityType": "domain", "entity": {"ID": "d1", "name": "old"}, "assoc": {}},
                        "z9": {"entityType": "zone", "entity": {"ID": "z9"}, "assoc": {}}},
            "endpoints": {"v2": 7}}
    found = {(f.what, f.object_id) for f in compare_intent("vsc1", 5, vsd, view, {"v1": ("web1", 3),
                                                                                 "v2": ("app1", 4)})}
    assert found == {("behind", None), ("differs", "d1"), ("missing-in-view", "v1"), ("stale-in-view", "z9"),
                     ("unowned-cookie", None), ("not-placed", "v1"), ("not-placed", "v2")}
