"""`vsplab explain` across two VSCs federated over MP-BGP EVPN (scenarios/two-dc.yaml, sim mode,
ExaBGP between the VSCs): the answer names the EVPN route the packet rides as the source VSC received
it (RD of the advertising VSC, next hop = the destination's VTEP, imported), and the entries that
decided on each side of the federation."""

from pathlib import Path

import pytest
from rich.console import Console

from vsplab.lab.run import SimLab
from vsplab.policy.ops import explain_op
from vsplab.scenario.check import load_scenario

pytestmark = pytest.mark.slow
SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "two-dc.yaml"


def test_explain_names_the_evpn_route_between_federated_vscs(tmp_path):
    with SimLab(load_scenario(SCENARIO), console=Console(quiet=True), workdir=tmp_path / "vl-pol-fed") as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        a = explain_op(lab, {"from": "web-e", "to": "app-w", "proto": "tcp", "port": 8080})
        x = a["explain"]
        assert x["verdict"] == "allow", a["text"]
        assert (x["source"]["vsc"], x["destination"]["vsc"]) == ("vsc-east", "vsc-west")
        route = x["route"]["evpn"]
        assert route is not None, a["text"]
        assert route["rd"].startswith("10.255.2.1:")  # vsc-west's router id: the advertiser's RD
        assert route["ip"] == "10.2.0.12" and route["next_hop"] == x["destination"]["vtep_ip"] and route["imported"]
        assert "EVPN MAC/IP route RD 10.255.2.1:" in a["text"] and "received by vsc-east" in a["text"]
        assert x["request"]["ingress_acl"]["description"] == x["request"]["egress_acl"]["description"] == "web -> app tcp 8080"
        assert {h["switch"] for h in x["request"]["hops"]} == {"east1", "west2"}

        local = explain_op(lab, {"from": "web-e", "to": "db-e", "proto": "tcp", "port": 5432})["explain"]
        assert local["route"] is None and local["verdict"] == "deny"  # one host, no tunnel, no route
