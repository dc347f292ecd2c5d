"""Compiler and incremental-programmer unit tests on hand-built views (no I/O)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from vsc import programmer
from vsc.acl import port_masks
from vsc.compiler import compile_host, endpoints_by_domain
from vsc.flowops import diff
from vsc.locations import Locations
from vsc.pipeline import Kind, cookie, cookie_kind, flow_key
from vsc.programmer import Programmer
from vsc.tables import check_flows
from vsc.view import View
from vsplab.workload.tree import compiler_inputs, nfd8, tiered

build = compiler_inputs  # the view and locations the compiler reads


def kinds(flows) -> Counter:
    return Counter(cookie_kind(f.cookie) for f in flows.values())


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_acl_flows_grow_with_rules_not_endpoints(n):
    """Per host: ACL flows = one per rule (+2 defaults) whatever N; endpoint flows = 5 per local
    endpoint + 1 per remote endpoint of the domain; nothing quadratic."""
    hosts, groups, rules = 4, 4, 8
    view, locs = build(*tiered(n, hosts, groups, rules))
    local = len([1 for i in range(n) if i % hosts == 0])
    flows, problems = compile_host(view, locs, 1)
    assert not problems
    k = kinds(flows)
    assert k[Kind.ACL_ENTRY] == rules
    assert k[Kind.ACL_DEFAULT] == 2
    assert k[Kind.LOCAL_ENDPOINT] == 5 * local
    assert k[Kind.REMOTE_ENDPOINT] == n - local
    fixed = k[Kind.PIPELINE] + k[Kind.DOMAIN] + k[Kind.SUBNET] + k[Kind.ACL_ENTRY] + k[Kind.ACL_DEFAULT]
    assert fixed == 16 + 2 + 2 + rules + 2  # skeleton, domain, subnet (ARP + gateway echo), rules, defaults
    assert len(flows) == fixed + 5 * local + (n - local)


def test_acl_flows_scale_with_groups_times_rules():
    """G groups, one rule per ordered pair of groups: G*G rules -> exactly G*G ACL flows, for 10 or
    1,000 endpoints alike."""
    counts = []
    for n in (10, 1000):
        tree, placement = tiered(n, 2, 5, 0)
        tin = next(o["entity"]["ID"] for o in tree.objects if o["entityType"] == "ingressacltemplate")
        pgs = [o["entity"]["ID"] for o in tree.objects if o["entityType"] == "policygroup"]
        for i, a in enumerate(pgs):
            for j, b in enumerate(pgs):
                tree.entry(tin, "ingress", 100 + 5 * i + j, location=("POLICYGROUP", a),
                           network=("POLICYGROUP", b), protocol="6", dport="443", stateful=True)
        flows, _ = compile_host(*build(tree, placement), 1)
        counts.append(kinds(flows)[Kind.ACL_ENTRY])
    assert counts == [25, 25]


def test_nfd8_per_host_flow_count_is_linear():
    view, locs = build(*nfd8(n_hosts=8, per_host=50))
    flows, problems = compile_host(view, locs, 3)
    assert not problems
    k = kinds(flows)
    assert k[Kind.LOCAL_ENDPOINT] == 5 * 50
    assert k[Kind.REMOTE_ENDPOINT] == 7 * 50
    # 14 entries: the DNS macro group has two members, everything else is one flow per entry.
    assert k[Kind.ACL_ENTRY] == 15


def test_port_ranges_become_few_masked_matches():
    assert port_masks(80, 80) == [(80, 0xFFFF)]
    assert port_masks(1000, 2000)[:3] == [(1000, 0xFFF8), (1008, 0xFFF0), (1024, 0xFE00)]
    assert len(port_masks(1000, 2000)) == 8
    assert port_masks(0, 65535) == [(0, 0)]
    covered = {p for v, m in port_masks(1000, 2000) for p in range(65536) if p & m == v}
    assert covered == set(range(1000, 2001))


def test_cookies_name_their_owner():
    c = cookie(Kind.REMOTE_ENDPOINT, "vport-7")
    assert cookie_kind(c) is Kind.REMOTE_ENDPOINT and c == cookie(Kind.REMOTE_ENDPOINT, "vport-7")
    assert c != cookie(Kind.REMOTE_ENDPOINT, "vport-8")


def replay(tree, placement, seed: int, reads: float = 0.0) -> Programmer:
    """Feed objects and agent messages one at a time, interleaved at random (parents first); with
    `reads`, that share of the steps also reads the desired state (as the flusher does), so domains are
    compiled at varying moments."""
    prog = Programmer(View(), Locations())
    rng = random.Random(seed)
    vsd, agent = list(tree.objects), list(placement.messages())
    while vsd or agent:
        if agent and (not vsd or rng.random() < 0.4):
            prog.on_agent(agent.pop(0))
        else:
            o = vsd.pop(0)
            prog.on_vsd("CREATE", o["entityType"], o["entity"], o["assoc"])
        if rng.random() < reads:
            for dpid in prog.locs.hosts:
                prog.take(dpid)
    return prog


def assert_matches_full_compile(prog: Programmer) -> None:
    bd = endpoints_by_domain(prog.view, prog.locs)
    for dpid in prog.locs.hosts:
        full, _ = compile_host(prog.view, prog.locs, dpid, bd)
        assert prog.host_desired(dpid) == full, dpid
        check_flows(full.values())  # every flow within its table's declaration (vsc/tables.py)


@pytest.mark.parametrize(("seed", "reads"), [(1, 0.0), (2, 0.0), (3, 0.3), (4, 1.0)])
def test_incremental_state_equals_full_compile(seed, reads):
    tree, placement = nfd8(n_hosts=4, per_host=30)
    prog = replay(tree, placement, seed, reads)
    assert_matches_full_compile(prog)


def test_a_burst_of_acl_entries_compiles_its_domain_once(monkeypatch):
    """Entries arriving one by one faster than the flusher reads cost one compile of their domain (per
    VRS shape), not one per entry: a domain's ACL compile is linear in its entries."""
    tree, placement = tiered(10, 2, 2, 2)
    prog = replay(tree, placement, 5)
    for dpid in prog.locs.hosts:
        prog.track(dpid)
    tin = next(o["entity"]["ID"] for o in tree.objects if o["entityType"] == "ingressacltemplate")
    first = len(tree.objects)
    for i in range(200):
        tree.entry(tin, "ingress", 100 + i, protocol="6", dport=str(1000 + i))
    compiles = []
    real = programmer.domain_flows
    monkeypatch.setattr(programmer, "domain_flows", lambda *a: compiles.append(a[1]) or real(*a))
    for o in tree.objects[first:]:
        prog.on_vsd("CREATE", o["entityType"], o["entity"], o["assoc"])
    assert compiles == []  # nothing compiled until someone reads
    ops = {dpid: prog.take(dpid) for dpid in prog.locs.hosts}
    assert len(compiles) == 1 and all(len(o.add) == 200 and not o.modify and not o.delete for o in ops.values())
    assert_matches_full_compile(prog)


def test_acl_change_touches_only_that_entry():
    tree, placement = nfd8(n_hosts=4, per_host=30)
    prog = replay(tree, placement, 3)
    for dpid in prog.locs.hosts:
        prog.track(dpid)  # as after each VRS's full sync
    entry = next(o for o in tree.objects if o["entityType"] == "egressaclentrytemplate"
                 and o["entity"]["destinationPort"] == "443")
    changed = {**entry["entity"], "destinationPort": "8443"}
    prog.on_vsd("UPDATE", "egressaclentrytemplate", changed, {})
    assert_matches_full_compile(prog)
    want = cookie(Kind.ACL_ENTRY, changed["ID"])
    for dpid in prog.locs.hosts:
        ops = prog.take(dpid)
        # A match change is one new flow and one stale one; nothing else moves.
        assert (len(ops.add), len(ops.modify), len(ops.delete)) == (1, 0, 1)
        assert {f.cookie for f in ops.add + ops.delete} == {want}


def test_membership_change_touches_only_that_endpoint():
    tree, placement = nfd8(n_hosts=4, per_host=30)
    prog = replay(tree, placement, 4)
    for dpid in prog.locs.hosts:
        prog.track(dpid)  # as after each VRS's full sync
    web = next(o for o in tree.objects if o["entityType"] == "policygroup" and o["entity"]["name"] == "web")
    app = next(o for o in tree.objects if o["entityType"] == "policygroup" and o["entity"]["name"] == "app")
    mover = web["assoc"]["vport"][0]
    prog.on_vsd("UPDATE", "policygroup", web["entity"], {"vport": web["assoc"]["vport"][1:]})
    prog.on_vsd("UPDATE", "policygroup", app["entity"], {"vport": [*app["assoc"]["vport"], mover]})
    assert_matches_full_compile(prog)
    home = prog.eps[mover].dpid
    for dpid in prog.locs.hosts:
        ops = prog.take(dpid)
        kinds_changed = {cookie_kind(f.cookie) for f in ops.add + ops.modify + ops.delete}
        if dpid == home:
            # Its classification and local-destination flows carry its tags.
            assert (len(ops.modify), len(ops.add), len(ops.delete)) == (2, 0, 0)
            assert kinds_changed == {Kind.LOCAL_ENDPOINT}
        else:
            assert (len(ops.modify), len(ops.add), len(ops.delete)) == (1, 0, 0)
            assert kinds_changed == {Kind.REMOTE_ENDPOINT}


def test_port_down_and_vport_delete_remove_every_trace():
    tree, placement = nfd8(n_hosts=3, per_host=3)
    prog = replay(tree, placement, 5)
    first = placement.hosts[1][2]
    prog.on_agent({"op": "port-down", "datapath_id": 1, "ofport": first["ofport"], "name": first["name"]})
    assert_matches_full_compile(prog)
    vp = next(o for o in tree.objects if o["entityType"] == "vport" and o["entity"]["ID"] != first["vport_id"])
    prog.on_vsd("DELETE", "vport", vp["entity"], {})
    assert_matches_full_compile(prog)
    for dpid in prog.locs.hosts:
        assert not any(f.cookie in (cookie(Kind.LOCAL_ENDPOINT, first["vport_id"]),
                                    cookie(Kind.REMOTE_ENDPOINT, first["vport_id"]))
                       for f in prog.host_desired(dpid).values())


def test_last_endpoint_leaving_a_host_removes_the_domain_there():
    tree, placement = nfd8(n_hosts=2, per_host=2)
    prog = replay(tree, placement, 6)
    for m in placement.hosts[2][2:]:
        prog.on_agent({"op": "port-down", "datapath_id": 2, "ofport": m["ofport"], "name": m["name"]})
    assert_matches_full_compile(prog)
    assert {cookie_kind(f.cookie) for f in prog.host_desired(2).values()} == {Kind.PIPELINE}


def test_diff_is_minimal_and_idempotent():
    tree, placement = nfd8(n_hosts=2, per_host=5)
    view, locs = build(tree, placement)
    desired, _ = compile_host(view, locs, 1)
    assert len(diff(desired, desired)) == 0
    installed = dict(desired)
    stale = next(iter(installed.values()))
    del installed[flow_key(stale)]
    installed[("x",)] = stale
    ops = diff(installed, desired)
    assert (ops.add, ops.modify, ops.delete) == ([stale], [], [stale])


def test_flows_are_built_in_canonical_form():
    """Hand-ordered matches must equal what a switch reports back, or a resync would see changes."""
    view, locs = build(*nfd8(n_hosts=2, per_host=6))
    flows, _ = compile_host(view, locs, 1)
    for f in flows.values():
        assert f.canonical() == f, f


def test_unsupported_entries_are_reported_not_compiled():
    tree, placement = tiered(10, 2, 2, 2)
    tin = next(o["entity"]["ID"] for o in tree.objects if o["entityType"] == "ingressacltemplate")
    bad = tree.entry(tin, "ingress", 5, action="DROP", network=("PUBLIC_NETWORK", "x"))
    ranged = tree.entry(tin, "ingress", 6, protocol="17", dport="70000")
    flows, problems = compile_host(*build(tree, placement), 1)
    assert len(problems) == 2
    assert bad in problems[0] and "PUBLIC_NETWORK is not supported" in problems[0]
    assert ranged in problems[1] and "out of 0-65535" in problems[1]
    assert not any(f.cookie in (cookie(Kind.ACL_ENTRY, bad), cookie(Kind.ACL_ENTRY, ranged)) for f in flows.values())


def test_entries_narrowed_by_what_the_vsc_does_not_compile_are_refused():
    """A DSCP, an L4 service or an L7 application narrows what an entry matches: compiled without it,
    an allow would open (or a drop close) more than the entry says, so the entry is a problem instead."""
    tree, placement = tiered(10, 2, 2, 2)
    tin = next(o["entity"]["ID"] for o in tree.objects if o["entityType"] == "ingressacltemplate")
    plain = tree.entry(tin, "ingress", 5, protocol="6", dport="22")  # DSCP "*": matches any
    marked = tree.entry(tin, "ingress", 6, protocol="6", dport="22")
    app = tree.entry(tin, "ingress", 7, action="DROP")
    for o in tree.objects:
        if o["entity"]["ID"] == marked:
            o["entity"]["DSCP"] = "46"
        if o["entity"]["ID"] == app:
            o["entity"]["associatedL7ApplicationSignatureID"] = "a7b0c1d2-0000-4000-8000-000000000001"
    flows, problems = compile_host(*build(tree, placement), 1)
    assert len(problems) == 2, problems
    assert marked in problems[0] and "DSCP=46: not compiled by this VSC" in problems[0]
    assert app in problems[1] and "associatedL7ApplicationSignatureID=" in problems[1]
    compiled = {f.cookie for f in flows.values()}
    assert cookie(Kind.ACL_ENTRY, plain) in compiled
    assert not compiled & {cookie(Kind.ACL_ENTRY, marked), cookie(Kind.ACL_ENTRY, app)}


def test_groups_beyond_the_bitmap_become_slot_tags():
    """The 65th group of a domain gets tag index 64: no bit but a slot number, matched in any of the
    four slots (vsc/tags.py); more groups are tests/test_policy_scale.py's."""
    tree, placement = tiered(4, 1, 65, 0)
    view, locs = build(tree, placement)
    tin = next(o["entity"]["ID"] for o in tree.objects if o["entityType"] == "ingressacltemplate")
    last = [o["entity"]["ID"] for o in tree.objects if o["entityType"] == "policygroup"][-1]
    assert view.group_bit[last] == 64
    e = tree.entry(tin, "ingress", 5, location=("POLICYGROUP", last))
    flows, problems = compile_host(*build(tree, placement), 1)
    assert not problems
    assert sum(f.cookie == cookie(Kind.ACL_ENTRY, e) for f in flows.values()) == 4


def test_deleted_group_frees_its_bit_and_untags_its_members():
    tree, placement = tiered(8, 2, 3, 2)
    prog = replay(tree, placement, 7)
    pgs = [o for o in tree.objects if o["entityType"] == "policygroup"]
    bit = prog.view.group_bit[pgs[0]["entity"]["ID"]]
    prog.on_vsd("DELETE", "policygroup", pgs[0]["entity"], pgs[0]["assoc"])
    assert pgs[0]["entity"]["ID"] not in prog.view.group_bit
    assert all(prog.eps[v].tags == 0 for v in pgs[0]["assoc"]["vport"])
    assert_matches_full_compile(prog)
    new = tree.add("policygroup", ("domain", pgs[0]["entity"]["parentID"]), {"vport": []}, name="g9")
    prog.on_vsd("CREATE", "policygroup", tree.find(new)["entity"], {})
    assert prog.view.group_bit[new] == bit
