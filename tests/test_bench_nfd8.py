"""`vsplab bench nfd8`: the reference policy says what anchors.md says, the per-pair model is the same
policy, an entry's addressOverride compiles onto its location side, and the benchmark itself - two
federated VSCs, a VSD, simulated VRSs - verifies a small rollout and exits non-zero when one flow on
one simulated VRS is wrong (correctness asserted, never time)."""

from __future__ import annotations

import argparse
import json

import pytest

from openflow.flow import MatchField
from vsc.acl import entry_flows
from vsc.view import View
from vsplab.bench.nfd8 import add_arguments
from vsplab.bench.policy import Endpoint, ip_int
from vsplab.bench.report import main as bench_main
from vsplab.bench.sweep import pair_entries
from vsplab.bench.workload import Workload
from vsplab.cli import main as cli_main


def options(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def ep(ip: str, *groups: str) -> Endpoint:
    return Endpoint(ip_int(ip), frozenset(groups) | {"all"})


def test_reference_policy_is_the_anchors_policy():
    pol = Workload(2, 3).policy
    web, app, db, db2 = ep("10.1.0.2", "web"), ep("10.2.0.2", "app"), ep("10.3.0.2", "db"), ep("10.3.0.3", "db")
    assert pol.verdict(web, app, 6, 40000, 8080) == (True, True)  # allowed, stateful: the reply comes back
    assert pol.verdict(app, db, 6, 40000, 5432) == (True, True)
    assert pol.verdict(db, db2, 6, 40000, 5433) == (True, True)
    assert pol.verdict(app, web, 6, 40000, 8080) == (False, False)
    assert pol.verdict(web, db, 6, 40000, 5432) == (False, False)
    # web may receive 7946 from web, but no web container may send it: both ACLs must pass.
    assert pol.verdict(web, ep("10.1.0.3", "web"), 6, 40000, 7946) == (False, False)
    assert pol.decide("egress", web, ep("192.168.100.7"), 6, 40000, 22) == (True, True)  # management ssh in
    assert pol.decide("ingress", web, ep("10.0.0.53"), 17, 40000, 53) == (True, True)  # DNS out
    assert sorted(p for _, p in pol.ports()) == [22, 53, 80, 443, 5432, 5433, 7946, 8080]
    # every container is under exactly 7 rules (web's "tcp/80 and tcp/443 in" is one rule, two entries)
    for m in Workload(1, 6).members:
        assert sum(1 for rs in pol.rules.values() for r in rs if r.location.kind == "ANY"
                   or r.location.group in m.groups) == (8 if "web" in m.groups else 7)


def test_other_tier_and_rule_counts_generalise_nfd8():
    from vsplab.bench.tiers import chain
    from vsplab.workload.tree import nfd8

    ours, theirs = chain(4, 5, 3, 7), nfd8(4, 5)
    assert ours[0].objects == theirs[0].objects and ours[1].hosts == theirs[1].hosts
    w = Workload(2, 5, tiers=5, acls=9)
    pol = w.policy
    t = {name: ep(f"10.{k + 1}.0.2", name) for k, name in enumerate(["tier1", "tier2", "tier3", "tier4", "tier5"])}
    assert pol.verdict(t["tier1"], t["tier2"], 6, 40000, 8080)[0] and pol.verdict(t["tier3"], t["tier4"], 6, 40000, 8082)[0]
    assert pol.verdict(t["tier4"], t["tier5"], 6, 40000, 5432)[0] and not pol.verdict(t["tier1"], t["tier3"], 6, 40000, 8081)[0]
    same = ep("10.3.0.3", "tier3")
    assert pol.verdict(t["tier3"], same, 6, 40000, 10001) == (False, False)  # tier3 sends only on 8082
    assert pol.decide("egress", same, t["tier3"], 6, 40000, 10001)[0]  # ... but would take it
    for m in w.members:  # 7 rules each (the first tier's 80/443 rule is two entries), 2 more with --acls 9
        assert sum(1 for rs in pol.rules.values() for r in rs if r.location.kind == "ANY"
                   or r.location.group in m.groups) == (10 if "tier1" in m.groups else 9)


def test_per_pair_model_expands_every_allowed_pair_once_however_containers_arrive():
    w = Workload(2, 6, "per-pair")
    whole = list(w.per_pair_entries(w.members, []))
    order = w.arrival_order()
    arrived, batched = [], []
    for k in range(0, len(order), 5):
        batched += w.per_pair_entries(order[k:k + 5], arrived)
        arrived += order[k:k + 5]
    key = lambda e: (e[0].entity["ID"], e[1].name, e[2].name if e[2] else None)  # noqa: E731
    assert sorted(map(key, whole)) == sorted(map(key, batched))
    assert len(whole) == pair_entries(12)
    # each expansion is allowed by the policy it expands, between the two containers it names
    for rule, here, there in whole:
        if there is not None:
            src, dst = (here, there) if rule.direction == "ingress" else (there, here)
            assert w.policy.decide(rule.direction, here.endpoint, there.endpoint, rule.proto, 40000,
                                   rule.dport[0])[0], (rule.entity, src.name, dst.name)
    assert not any(b["locationType"] != "ANY" for b in (
        w.per_pair_body(r, h, "net" if t else None, {}, 1) for r, h, t in whole if r.network.kind == "POLICYGROUP"))


def test_address_override_narrows_the_location_side():
    objects = [o for o in Workload(1, 3).objects if o["entityType"] in (
        "enterprise", "domain", "zone", "subnet", "ingressacltemplate", "egressacltemplate", "enterprisenetwork")]
    view = View()
    view.load_snapshot(1, objects)
    dom = next(o["entity"]["ID"] for o in objects if o["entityType"] == "domain")
    for direction, field in (("ingress", "ipv4_src"), ("egress", "ipv4_dst")):
        tmpl = next(t for t in view.acl_templates.values() if t.direction == direction)
        view.apply("CREATE", f"{direction}aclentrytemplate", {
            "ID": f"e-{direction}", "parentID": tmpl.id, "action": "FORWARD", "locationType": "ANY",
            "networkType": "ANY", "protocol": "6", "destinationPort": "80", "priority": 5,
            "addressOverride": "10.1.0.2/32"})
        (flow,) = entry_flows(view, dom, 1, tmpl, view.acl_entries[f"e-{direction}"])
        assert MatchField(field, ip_int("10.1.0.2")) in flow.match
        view.apply("UPDATE", f"{direction}aclentrytemplate", {**view.raw[f"e-{direction}"][1],
                                                              "addressOverride": "10.1.0.0/24"})
        (flow,) = entry_flows(view, dom, 1, tmpl, view.acl_entries[f"e-{direction}"])
        assert MatchField(field, ip_int("10.1.0.0"), ip_int("255.255.255.0")) in flow.match


@pytest.mark.slow
def test_bench_nfd8_small_is_verified(tmp_path):
    out = tmp_path / "nfd8.json"
    assert cli_main(["bench", "nfd8", "--hosts", "4", "--per-host", "50", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for key in ("convergence_s", "containers", "hosts", "vscs", "model", "verified_pairs", "verified_ok",
                "flow_mods", "flows_per_host", "peak_rss_total_mb", "phases", "load_avg_start", "load_avg_end"):
        assert key in res, key
    assert (res["containers"], res["hosts"], res["vscs"], res["model"]) == (200, 4, 2, "tagged")
    assert res["verified_ok"] is True and res["verified_pairs"] >= 1000
    assert res["traces"]["disagreements"] == 0 and res["traces"]["allowed"] > 0
    assert set(res["traces"]["by_placement"]) == {"same host", "same VSC", "across VSCs"}
    assert res["flows_check"]["hosts_differing"] == 0
    assert all(r["received"] == 100 and r["advertised"] == 100 for r in res["routes_per_vsc"].values())
    assert res["flows_per_host"]["min"] == res["flows_per_host"]["max"] > 200
    assert res["flow_mods"] >= res["flows_total"]


@pytest.mark.slow
def test_a_corrupted_flow_on_one_simulated_vrs_fails_the_benchmark(tmp_path):
    def corrupt(lab, w):
        sw = lab.runtime.hosts[w.hosts[3][0]].switch

        def swap():  # one remote endpoint's flow now carries another endpoint's VTEP and tags
            rules = [r for _, r in sw.flows(20) if r.priority == 100]
            victim = next(r for r in rules if r.instr != rules[0].instr)
            victim.instr = rules[0].instr
        lab.runtime.call(swap)

    out = tmp_path / "bad.json"
    o = options("--hosts", "4", "--per-host", "12", "--pairs", "200", "--json", str(out))
    assert bench_main(o, [], tamper=corrupt) == 1
    res = json.loads(out.read_text())
    assert res["verified_ok"] is False
    assert res["flows_check"]["hosts_differing"] == 1
    (diff,) = res["flows_check"]["differences"].values()
    assert diff["missing_n"] == diff["extra_n"] == 1


@pytest.mark.slow
def test_bench_nfd8_per_pair_is_the_same_policy(tmp_path):
    out = tmp_path / "pp.json"
    assert cli_main(["bench", "nfd8", "--hosts", "4", "--per-host", "3", "--model", "per-pair",
                     "--pairs", "300", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["verified_ok"] and res["acl_entries"] == pair_entries(12)
    assert res["acl_flows_per_host"]["min"] >= res["acl_entries"]  # every pair on every host: no tags
