"""Per-datapath conntrack zones: a VRS whose hello names zones of its own (`ct_zone_base`,
`ct_zone_count`) gets every ct() of its domains in them; Mininet's switches, which share one
userspace datapath and so one conntrack table, each ask for their own share, and a stateful/stateless
mix that used to pass on Mininet (one switch found the connection another committed) now gets sim
mode's verdicts."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from openflow.flow import Ct
from vsc.compiler import compile_host
from vsc.locations import MAX_ZONES, AgentError
from vsplab.mininet.lab import MININET_PYTHON, MininetLab, switch_zones
from vsplab.workload.tree import compiler_inputs, tiered

# web -> app tcp/8080: web's ingress allows it without state, app's egress with state. Across two
# hosts the reply finds no connection on web1's host and web1's egress ACL (no rule) drops it; on one
# host the one committed entry lets the reply skip both ACLs (vsc/pipeline.md). Mininet with one
# shared zone answered "allow" for both pairs. 64 groups come first, so web and app are slot groups
# (vsc/tags.py): real OVS matches those too.
MIX = {
    "name": "vl-pg-ct-mix",
    "controllers": [{"name": "vsc1"}],
    "hosts": [{"name": "host1", "vsc": "vsc1"}, {"name": "host2", "vsc": "vsc1"}],
    "enterprises": [{"name": "acme", "domains": [{
        "name": "prod",
        "zones": [{"name": "web", "subnets": [{"name": "web-net", "address": "10.1.0.0/24"}]},
                  {"name": "app", "subnets": [{"name": "app-net", "address": "10.2.0.0/24"}]}],
        "policy_groups": [*(f"pad{i}" for i in range(64)), "web", "app"],
        "ingress": {"rules": [{"from": "web", "to": "app", "protocol": "tcp", "port": 8080, "stateful": False}]},
        "egress": {"rules": [{"from": "web", "to": "app", "protocol": "tcp", "port": 8080, "stateful": True}]}}]}],
    "containers": [{"name": "web1", "host": "host1", "subnet": "web-net", "groups": ["web"], "ip": "10.1.0.11"},
                   {"name": "web2", "host": "host2", "subnet": "web-net", "groups": ["web"], "ip": "10.1.0.12"},
                   {"name": "app1", "host": "host2", "subnet": "app-net", "groups": ["app"], "ip": "10.2.0.11"}],
    "expect": [{"from": "web1", "to": "app1", "protocol": "tcp", "port": 8080, "expect": "deny"},
               {"from": "web2", "to": "app1", "protocol": "tcp", "port": 8080, "expect": "allow"}],
}


def zones_of(flows) -> set[int]:
    return {a.zone for f in flows.values() for a in f.actions if isinstance(a, Ct)}


def test_hello_zones_move_every_ct_of_the_host():
    tree, placement = tiered(8, 2, 2, 4)
    view, locs = compiler_inputs(tree, placement)
    (dindex,) = view.domain_index.values()
    assert zones_of(compile_host(view, locs, 1)[0]) == {dindex}  # default: the domain index
    locs.apply({"op": "hello", "datapath_id": 2, "vtep_ip": "192.168.77.2", "ct_zone_base": 1000,
                "ct_zone_count": 500})
    assert zones_of(compile_host(view, locs, 2)[0]) == {1000 + dindex}
    assert zones_of(compile_host(view, locs, 1)[0]) == {dindex}
    # a domain index beyond the host's zones: refused by name, nothing of the domain programmed there
    locs.apply({"op": "hello", "datapath_id": 2, "vtep_ip": "192.168.77.2", "ct_zone_base": 7, "ct_zone_count": 1})
    flows, problems = compile_host(view, locs, 2)
    assert zones_of(flows) == set()
    assert problems == [f"datapath 0x2 has conntrack zones 7-7 (hello): domain index {dindex} has none there, "
                        "so the domain is not programmed on it"]
    for bad, word in (({"ct_zone_base": -1}, "ct_zone_base"), ({"ct_zone_count": 0}, "ct_zone_count"),
                      ({"ct_zone_base": 60_000, "ct_zone_count": 6_000}, "at most 65536")):
        with pytest.raises(AgentError, match=word):
            locs.apply({"op": "hello", "datapath_id": 3, "vtep_ip": "192.168.77.3", **bad})


def test_switch_zones_share_the_zone_space():
    shares = [switch_zones(i, 3) for i in (1, 2, 3)]
    assert shares == [(0, 21845), (21845, 21845), (43690, 21845)]
    assert shares[-1][0] + shares[-1][1] <= MAX_ZONES


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None or shutil.which("mnexec") is None
                    or not Path(MININET_PYTHON).exists(),
                    reason="needs root, Open vSwitch and Mininet (scripts/system-deps)")
def test_stateful_stateless_mix_on_mininet_agrees_with_sim(tmp_path):
    from vsplab.lab.run import run_sim_scenario
    from vsplab.scenario.check import load_scenario

    path = tmp_path / "vl-pg-ct-mix.yaml"
    path.write_text(yaml.safe_dump(MIX, sort_keys=False))
    sim = run_sim_scenario(str(path), console=Console(file=io.StringIO()))
    assert sim.ok, [(r.label, r.observed) for r in sim.failures]
    out = io.StringIO()
    with MininetLab(load_scenario(str(path)), console=Console(file=out, width=200)) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=60)
        report = lab.check()
        conns = lab.fabric.ovs.appctl("dpctl/dump-conntrack")
        acl = lab._control({"op": "flows", "host": "host2"})["text"]
    verdicts = {(r.label, r.observed) for r in report.results}
    assert verdicts == {(r.label, r.observed) for r in sim.results}, out.getvalue()
    assert report.ok, out.getvalue()
    assert "share one conntrack table" not in out.getvalue()
    # the connections were committed in the switches' own zones (host2's share starts at 32768)
    assert "zone=3276" in conns, conns
    assert "reg11=" in acl and "reg13=" in acl  # the ACLs matched slot tags in real OVS
