"""`vsplab explain` on a running three-tier sim lab, from another process through the lab's control
socket, in text and JSON: one delivered exchange (web1 -> app1 tcp/8080 across hosts) and two dropped
ones - by the template's default (web1 -> db1 tcp/5432) and by a DROP entry inserted through the VSD's
REST API above the allow - each naming the VSD entry (description, priority, ID) that decided."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from vsplab.lab.run import SimLab
from vsplab.policy.ops import register_ops
from vsplab.scenario.check import load_scenario

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "three-tier.yaml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    register_ops()
    with SimLab(load_scenario(SCENARIO), console=Console(quiet=True), workdir=tmp_path_factory.mktemp("vl-pol-x")) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        lab.serve_control()
        yield lab


def explain(lab, *args):
    return subprocess.run([sys.executable, "-m", "vsplab.cli", "explain", *args, "--lab", str(lab.workdir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def entries(lab, direction: str) -> dict:
    c = lab.client
    dom = c.list("domains", filter='name == "prod"')[0]
    t = c.list(f"domains/{dom['ID']}/{direction}acltemplates")[0]
    return {e["description"]: e for e in c.list(f"{direction}acltemplates/{t['ID']}/{direction}aclentrytemplates")}


def test_explain_delivered_text_and_json(lab):
    allow_in, allow_eg = entries(lab, "ingress")["web -> app tcp 8080"], entries(lab, "egress")["web -> app tcp 8080"]
    out = explain(lab, "web1", "app1", "--proto", "tcp", "--port", "8080")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    order = ["source:      web1 10.1.0.11 on host1", "groups: web", "destination: app1", "VXLAN to remote VTEP 172.30.0.2",
             "request:", "ingress ACL (table 45, sender's host): entry 'web -> app tcp 8080'",
             f"ID {allow_in['ID']}", "tunnel: host1 -> host2", f"ID {allow_eg['ID']}", "-> delivered to app1",
             "reply:", "conntrack: +est", "tunnel: host2 -> host1", "remote VTEP 172.30.0.1", "-> delivered to web1"]
    at = [text.find(s) for s in order]
    assert all(i >= 0 for i in at) and at == sorted(at), (list(zip(order, at, strict=True)), text)
    assert "priority 1000, FORWARD stateful" in text and "INGRESS_ACL" in text and "EGRESS_ACL" in text

    j = explain(lab, "web1", "app1", "--proto", "tcp", "--port", "8080", "--json")
    assert j.returncode == 0
    x = json.loads(j.stdout)
    assert x["verdict"] == "allow" and x["source"]["groups"] == ["web"] and x["destination"]["groups"] == ["app"]
    assert x["request"]["ingress_acl"]["entry_id"] == allow_in["ID"]
    assert x["request"]["ingress_acl"]["priority"] == 1000
    assert x["request"]["egress_acl"]["entry_id"] == allow_eg["ID"]
    assert x["route"]["remote_vtep"] == "172.30.0.2" and x["request"]["tunnels"]
    assert x["reply"]["delivered"] and x["reply"]["conntrack_established"] and x["reply"]["ingress_acl"] is None
    assert {h["switch"] for h in x["request"]["hops"]} == {"host1", "host2"}


def test_explain_dropped_by_default_and_by_entry(lab):
    out = explain(lab, "web1", "db1", "--proto", "tcp", "--port", "5432")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "DENY" in out.stdout and "no entry matched -> default DROP of template prod-ingress" in out.stdout
    assert "DROPPED at host1 table 45 (INGRESS_ACL)" in out.stdout

    c = lab.client
    dom = c.list("domains", filter='name == "prod"')[0]
    groups = {g["name"]: g["ID"] for g in c.list(f"domains/{dom['ID']}/policygroups")}
    t = c.list(f"domains/{dom['ID']}/ingressacltemplates")[0]
    deny = c.create(f"ingressacltemplates/{t['ID']}", "ingressaclentrytemplates", {
        "description": "maintenance: no web to app", "action": "DROP", "locationType": "POLICYGROUP",
        "locationID": groups["web"], "networkType": "POLICYGROUP", "networkID": groups["app"], "etherType": "0x0800",
        "protocol": "6", "sourcePort": "*", "destinationPort": "8080", "priority": 900, "stateful": True})
    try:
        lab.wait_converged()
        j = explain(lab, "web1", "app1", "--proto", "tcp", "--port", "8080", "--json")
        assert j.returncode == 2, j.stdout + j.stderr
        x = json.loads(j.stdout)
        assert x["verdict"] == "deny" and not x["request"]["delivered"]
        decided = x["request"]["ingress_acl"]
        assert (decided["description"], decided["priority"], decided["entry_id"], decided["action"]) == (
            "maintenance: no web to app", 900, deny["ID"], "DROP")
        assert x["request"]["egress_acl"] is None and x["request"]["tunnels"] == []  # never left host1
        assert "host1 table 45 (INGRESS_ACL)" in x["request"]["drop"]
        t_out = explain(lab, "web1", "app1", "--proto", "tcp", "--port", "8080")
        assert "entry 'maintenance: no web to app' (template prod-ingress), priority 900, DROP" in t_out.stdout
        assert f"ID {deny['ID']}" in t_out.stdout
    finally:
        c.delete(f"ingressaclentrytemplates/{deny['ID']}")
        lab.wait_converged()


def test_explain_refuses_unknown_container(lab):
    out = explain(lab, "web1", "nosuch", "--proto", "icmp")
    assert out.returncode == 2 and "no container 'nosuch'" in out.stderr


def test_lint_on_the_running_lab_predicts_the_flows_its_switches_hold(lab):
    out = subprocess.run([sys.executable, "-m", "vsplab.cli", "lint", "--lab", str(lab.workdir), "--json", "-"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["findings"] == [] and report["prediction_ok"]
    held = lab.runtime.call(lambda: {n: sw.flow_count() for n, sw in lab.runtime.fabric.switches.items()})
    assert {c["host"]: c["predicted"] for c in report["flows_per_vrs"]} == held
