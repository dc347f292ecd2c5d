"""Policy at Nuage's scale, compiled (no I/O): up to 4,095 policy groups per domain (bitmap for the first
64, 16-bit slots beyond, vsc/tags.py), any entry priority in Nuage's order (vsc.acl.band_priorities),
the limits refused out loud, and ACL flows per host independent of the number of endpoints."""

from __future__ import annotations

from collections import Counter

import pytest

import vsc.acl
from vsc.acl import acl_flows, band_priorities, predicted_flows
from vsc.compiler import compile_host, endpoint
from vsc.locations import Locations
from vsc.pipeline import ACL_BAND_WIDTH, ACL_BANDS, Kind, Table, cookie, cookie_kind
from vsc.tables import check_flows
from vsc.tags import TagError, encode, group_match
from vsc.view import View
from vsplab.workload.tree import compiler_inputs, tiered

build = compiler_inputs  # the view and locations the compiler reads


def ids(tree, kind: str) -> list[str]:
    return [o["entity"]["ID"] for o in tree.objects if o["entityType"] == kind]


def test_tag_encoding_bitmap_then_slots():
    assert encode([0, 5, 63]) == 1 | 1 << 5 | 1 << 63
    # index 64 -> number 65 in slot 0; numbers ascend across the four slots
    assert encode([70, 64, 1]) == 1 << 1 | (65 | 71 << 16) << 64
    assert encode([64, 65, 66, 67]) >> 64 == 65 | 66 << 16 | 67 << 32 | 68 << 48
    with pytest.raises(TagError, match="at most 4 of those"):
        encode([64, 65, 66, 67, 68])
    assert group_match(3, ("reg2", "reg3"), ("reg11", "reg12"))[0][0].name == "reg2"
    alts = group_match(499, ("reg2", "reg3"), ("reg11", "reg12"))
    assert [(a[0].name, a[0].value, a[0].mask) for a in alts] == [
        ("reg11", 500, 0xFFFF), ("reg11", 500 << 16, 0xFFFF0000), ("reg12", 500, 0xFFFF), ("reg12", 500 << 16, 0xFFFF0000)]


def _many_groups(n_endpoints: int, n_groups: int, n_hosts: int = 4):
    """n_groups groups, endpoint i in group i mod G, a ring of G rules between neighbouring groups."""
    return tiered(n_endpoints, n_hosts, n_groups, n_groups)


@pytest.mark.parametrize("groups", [64, 500])
def test_acl_flows_per_host_do_not_grow_with_endpoints(groups):
    counts = []
    for n in (groups, 4 * groups):
        view, locs = build(*_many_groups(n, groups))
        flows, problems = compile_host(view, locs, 1)
        assert not problems
        check_flows(list(flows.values()))
        k = Counter(cookie_kind(f.cookie) for f in flows.values())
        counts.append(k[Kind.ACL_ENTRY])
    assert counts[0] == counts[1]
    # rules among the first 64 groups cost 1 flow, a rule touching one slot group 4, two slot groups 16
    def alts(i):
        return 1 if i < 64 else 4

    expect = sum(alts(r) * alts((r + 1) % groups) for r in range(groups))
    assert counts[0] == expect


def test_vport_in_too_many_slot_groups_is_refused_out_loud():
    tree, placement = _many_groups(80, 70, 2)
    vp = ids(tree, "vport")[0]
    for g in ids(tree, "policygroup")[64:69]:
        tree.find(g)["assoc"]["vport"].append(vp)
    view, locs = build(tree, placement)
    assert endpoint(view, locs, vp) is None
    flows, problems = compile_host(view, locs, 1)
    assert problems == [f"vport {vp} is in 5 policy groups beyond its domain's first 64; a vport may be in "
                        "at most 4 of those (tag numbers 65, 66, 67, 68, 69): not programmed"]
    assert not any(f.cookie == cookie(Kind.LOCAL_ENDPOINT, vp) for f in flows.values())
    # four are fine
    tree.find(ids(tree, "policygroup")[68])["assoc"]["vport"].remove(vp)
    view, locs = build(tree, placement)
    assert endpoint(view, locs, vp).tags >> 64 == 65 | 66 << 16 | 67 << 32 | 68 << 48


def test_priorities_keep_nuage_order_without_clamping():
    # fits: band top - priority (stable: adding an entry moves no other)
    top = ACL_BANDS["NONE"] + ACL_BAND_WIDTH - 1
    assert band_priorities("NONE", [100, 5]) == {5: top - 5, 100: top - 100}
    # beyond the width: ranked densely, order kept
    big = band_priorities("TOP", [50_000, 7, 1_000_000_000, 19_000])
    assert sorted(big, key=big.__getitem__, reverse=True) == [7, 19_000, 50_000, 1_000_000_000]
    assert max(big.values()) == ACL_BANDS["TOP"] + ACL_BAND_WIDTH - 1
    assert len(set(big.values())) == 4
    # more distinct priorities than the band holds: the last ones get none
    over = band_priorities("BOTTOM", range(0, 2 * (ACL_BAND_WIDTH + 1), 2))
    assert len(over) == ACL_BAND_WIDTH and 2 * ACL_BAND_WIDTH not in over


def test_large_priorities_compile_in_order_and_overflow_is_reported(monkeypatch):
    tree, placement = tiered(8, 2, 2, 0)
    tin = ids(tree, "ingressacltemplate")[0]
    g0, g1 = ids(tree, "policygroup")
    first = tree.entry(tin, "ingress", 2_000_000, action="DROP", location=("POLICYGROUP", g0), protocol="6")
    second = tree.entry(tin, "ingress", 3_000_000_000, location=("POLICYGROUP", g0), protocol="6")
    view, _ = build(tree, placement)
    dom = ids(tree, "domain")[0]
    flows, problems = acl_flows(view, dom, 1)
    assert not problems
    prio = {f.cookie: f.priority for f in flows if f.table == Table.INGRESS_ACL}
    assert prio[cookie(Kind.ACL_ENTRY, first)] > prio[cookie(Kind.ACL_ENTRY, second)]
    assert predicted_flows(view, dom) == {"default": 2, first: 1, second: 1}
    # one more distinct priority than a band holds (the width made small here: 19,000 entries take
    # seconds to build): the last in Nuage's order (`second`) is refused, by name
    width = 20
    monkeypatch.setattr(vsc.acl, "ACL_BAND_WIDTH", width)
    for i in range(width - 1):
        tree.entry(tin, "ingress", 10_000_000 + i, location=("POLICYGROUP", g1), protocol="17", dport=str(i))
    view, _ = build(tree, placement)
    flows, problems = acl_flows(view, dom, 1)
    assert len(problems) == 1 and second in problems[0]
    assert f"priority 3000000000 is beyond the {width:,} distinct priorities the NONE band" in problems[0]
    assert predicted_flows(view, dom)[second] == 0
    assert predicted_flows(view, dom)[first] == 1


def test_crossing_the_slot_limit_by_a_membership_change_is_reported_and_undone():
    """Incremental path (the VSC's programmer): a fifth slot group takes the vport out, named in the
    domain's problems; leaving it brings the vport back and clears the problem."""
    from vsc.programmer import Programmer

    tree, placement = _many_groups(80, 70, 2)
    vp = ids(tree, "vport")[0]
    pgs = [tree.find(g) for g in ids(tree, "policygroup")[64:69]]
    for pg in pgs[:4]:
        pg["assoc"]["vport"].append(vp)
    prog = Programmer(View(), Locations())
    for o in tree.objects:
        prog.on_vsd("CREATE", o["entityType"], o["entity"], o["assoc"])
    for m in placement.messages():
        prog.on_agent(m)
    dom = ids(tree, "domain")[0]
    assert vp in prog.eps and not prog.problems[dom]
    fifth = pgs[4]
    prog.on_vsd("UPDATE", "policygroup", fifth["entity"], {"vport": [*fifth["assoc"]["vport"], vp]})
    assert vp not in prog.eps
    assert len(prog.problems[dom]) == 1 and vp in prog.problems[dom][0] and "not programmed" in prog.problems[dom][0]
    prog.on_vsd("UPDATE", "policygroup", fifth["entity"], {"vport": fifth["assoc"]["vport"]})
    assert vp in prog.eps and not prog.problems[dom]


def test_federated_routes_carry_slot_groups_and_too_many_are_refused():
    from vsc.bgp.route import MacIpRoute
    from vsc.bgp.routes import RouteError, community_bits, domains_by_rt, imported_endpoints

    view, _ = build(*_many_groups(80, 70, 2))
    by_rt, bits = domains_by_rt(view), community_bits(view)

    def route(*communities):
        return MacIpRoute("192.0.2.2:5001", "02:00:00:00:0f:01", "10.0.9.1", 5001, "192.168.77.9",
                          ("65000:5001",), communities)

    # groups g0 (tag index 0, community 65000:1) and g65 (index 65, community 65000:66)
    (ep,) = imported_endpoints(view, route("65000:1", "65000:66"), by_rt, bits).values()
    assert ep.tags == encode([0, 65])
    with pytest.raises(RouteError, match="at most 4 of those"):
        imported_endpoints(view, route(*(f"65000:{n}" for n in range(65, 70))), by_rt, bits)
