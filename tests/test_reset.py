"""`vsplab reset` on a kept sim lab: policy changed through the VSD's REST API (an entry deleted, one
added, a template's default flipped, a container moved to another policy group) and, by faults, an
underlay link left down and a container moved to another host; the reset request on the lab's control socket puts the VSD's objects back to the
scenario's, mends the link, and every expectation holds again - nothing restarted."""

from pathlib import Path

import pytest
from rich.console import Console

from vsplab.faults.sim_actions import SimActions
from vsplab.lab.control import LabControl
from vsplab.lab.reset import ENTRY_FIELDS
from vsplab.lab.run import SimLab
from vsplab.scenario.check import load_scenario
from vsplab.scenario.fault_model import FaultStep

pytestmark = pytest.mark.slow
SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "three-tier.yaml"


def policy(client) -> dict:
    """The domain's policy as the scenario decides it, without IDs of its own."""
    ent = client.list("enterprises", filter='name == "acme"')[0]
    dom = client.list(f"enterprises/{ent['ID']}/domains")[0]
    names = {v["ID"]: v["name"] for v in client.list(f"domains/{dom['ID']}/vports")}
    groups = {g["name"]: g["ID"] for g in client.list(f"domains/{dom['ID']}/policygroups")}
    out = {"members": {n: sorted(names[v["ID"]] for v in client.list(f"policygroups/{i}/vports"))
                       for n, i in groups.items()}}
    for d in ("ingress", "egress"):
        (t,) = client.list(f"domains/{dom['ID']}/{d}acltemplates")
        out[d] = {"default": t["defaultAllowIP"],
                  "entries": sorted(tuple(str(e.get(k)) for k in ENTRY_FIELDS)
                                    for e in client.list(f"{d}acltemplates/{t['ID']}/{d}aclentrytemplates"))}
    out["ids"] = (dom["ID"], groups)
    return out


def failing(lab) -> list[str]:
    return [r.label for r in lab.check().results if not r.passed]


def test_reset_brings_a_kept_lab_back_to_its_scenario(tmp_path):
    with SimLab(load_scenario(SCENARIO), console=Console(quiet=True), workdir=tmp_path / "lab") as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        assert failing(lab) == []
        client = lab.client
        initial = policy(client)
        dom_id, groups = initial.pop("ids")

        # through the VSD, as an operator would: app -> db removed, web -> db added, egress opened, web2 moved
        (ing,) = client.list(f"domains/{dom_id}/ingressacltemplates")
        (eg,) = client.list(f"domains/{dom_id}/egressacltemplates")
        app_db = next(e for e in client.list(f"ingressacltemplates/{ing['ID']}/ingressaclentrytemplates")
                      if e["destinationPort"] == "5432")
        client.delete(f"ingressaclentrytemplates/{app_db['ID']}")
        client.create(f"ingressacltemplates/{ing['ID']}", "ingressaclentrytemplates", {
            "description": "web -> db", "action": "FORWARD", "locationType": "POLICYGROUP",
            "locationID": groups["web"], "networkType": "POLICYGROUP", "networkID": groups["db"],
            "etherType": "0x0800", "protocol": "6", "sourcePort": "*", "destinationPort": "5432",
            "priority": 5000, "stateful": True})
        client.update(f"egressacltemplates/{eg['ID']}", {"defaultAllowIP": True})
        vports = {v["name"]: v["ID"] for v in client.list(f"domains/{dom_id}/vports")}
        client.assign(f"policygroups/{groups['web']}/vports", [vports["web1"]])
        client.assign(f"policygroups/{groups['app']}/vports", [vports["app1"], vports["app2"], vports["web2"]])
        # and a fault left behind: host3's simulated underlay link down
        actions = SimActions(lab)
        actions.run(FaultStep.model_validate({"link-down": "host3"}))
        actions.run(FaultStep.model_validate({"move": {"container": "db2", "to": "host2"}}))  # to another host
        lab.mend_faults = actions.restore
        lab.wait_converged()
        changed = policy(client)
        changed.pop("ids")
        assert changed != initial
        broken = failing(lab)
        assert {"web2 -> app1 tcp/8080", "app1 -> db1 tcp/5432", "web1 -> app2 tcp/8080"} <= set(broken), broken

        pids = {name: vsc.proc.pid for name, vsc in lab.vscs.items()} | {"vsd": lab.vsd.proc.pid}
        answer = LabControl(lab.serve_control()).request(op="reset")
        assert answer["ok"], answer["text"]
        text = answer["text"]
        for words in ("mended: link host3", "mended: move db2", "entry app -> db tcp 5432 created again", "web -> db", "deleted",
                      "template defaults put back", "policy group web members put back",
                      "policy group app members put back", "11/11 expectations hold"):
            assert words in text, text
        after = policy(client)
        after.pop("ids")
        assert after == initial
        assert failing(lab) == [] and lab.placed["db2"].host == "host1"
        switches = lab.runtime.fabric.switches  # db2 plugged on host1 again, not on host2
        assert switches["host1"].port_by_name("db2") and switches["host2"].port_by_name("db2") is None
        assert {name: vsc.proc.pid for name, vsc in lab.vscs.items()} | {"vsd": lab.vsd.proc.pid} == pids
        again = LabControl(lab.workdir / "control.sock").request(op="reset")  # nothing left to do
        assert again["ok"] and again["changes"] == [], again["text"]
