"""The pipeline contract (vsc/tables.py): every flow the compiler builds conforms to its table's
declaration, the declaration is exact (it allows nothing the compiler never uses), deliberately wrong
flows are refused with a clear error, and vsc/pipeline.md's tables are the declaration's."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

import vsc.programmer as programmer
from openflow.flow import Ct, Flow, MatchField, Move, Output, SetField, match
from openflow.text import format_flow
from vsc.compiler import compile_host, pipeline_flows
from vsc.locations import Locations
from vsc.pipeline import REG_PEER_TAGS, Table
from vsc.programmer import Programmer
from vsc.tables import (
    PAGE,
    TABLES,
    PipelineViolation,
    check_flow,
    check_flows,
    generated_section,
    markdown,
    problems,
)
from vsc.view import View
from vsplab.workload.tree import Placement, Tree, compiler_inputs, nfd8, tiered

build = compiler_inputs  # the view and locations the compiler reads


def ids(tree: Tree, kind: str) -> list[str]:
    return [o["entity"]["ID"] for o in tree.objects if o["entityType"] == kind]


def every_acl_type() -> tuple[Tree, Placement]:
    """Every entry shape the compiler supports, on both directions: each location and network type,
    protocols ANY/TCP/UDP/ICMP/other with port ranges and ICMP type/code, stateful and stateless
    allows, drops, TOP/NONE/BOTTOM templates with default allow (IP and non-IP). 40 groups, so tags
    above bit 31 use the high registers; host 3 has no tunnel port."""
    t, p = tiered(120, 3, 40, 0)
    p.hosts[3] = [m for m in p.hosts[3] if m["op"] != "tunnel"]
    (ent,), (dom,), (zone,), (sub,) = (ids(t, k) for k in ("enterprise", "domain", "zone", "subnet"))
    zone2 = t.zone(dom, "z2")
    sub2 = t.subnet(zone2, "s2", "192.168.5.0/24")
    t.subnet(zone2, "s3", "192.168.6.0/24")
    groups = ids(t, "policygroup")
    low, high = groups[0], groups[35]
    net = t.network(ent, "n1", "172.16.0.0/12")
    macro = t.macro_group(ent, "m1", [net, t.network(ent, "n2", "198.51.100.7/32")])
    tin, teg = ids(t, "ingressacltemplate") + ids(t, "egressacltemplate")
    top = t.template(dom, "ingress", priority=5)
    bottom = t.template(dom, "egress", priority=5)
    t.find(top)["entity"]["priorityType"] = "TOP"
    t.find(bottom)["entity"]["priorityType"] = "BOTTOM"
    for tid in (tin, teg, top, bottom):
        t.find(tid)["entity"].update(defaultAllowIP=True, defaultAllowNonIP=True)
    sides = [("ANY", None), ("POLICYGROUP", low), ("POLICYGROUP", high), ("SUBNET", sub), ("SUBNET", sub2),
             ("ZONE", zone2), ("ENDPOINT_DOMAIN", None), ("ENTERPRISE_NETWORK", net),
             ("NETWORK_MACRO_GROUP", macro)]
    protocols = [dict(protocol="ANY"), dict(protocol="6", dport="1000-2000", sport="1024-65535"),
                 dict(protocol="UDP", sport="5000-5003", dport="53"), dict(protocol="1"), dict(protocol="47")]
    verdicts = [dict(action="FORWARD", stateful=True), dict(action="FORWARD"), dict(action="DROP")]
    prio = 100
    for direction, tmpl in (("ingress", tin), ("egress", teg), ("ingress", top), ("egress", bottom)):
        for k, loc in enumerate(sides):
            t.entry(tmpl, direction, prio, location=loc, **protocols[k % 5], **verdicts[k % 3])
            prio += 1
        for k, netw in enumerate([*sides, ("ENDPOINT_SUBNET", None), ("ENDPOINT_ZONE", None)]):
            t.entry(tmpl, direction, prio, location=("POLICYGROUP", high if k % 2 else low), network=netw,
                    **protocols[(k + 2) % 5], **verdicts[(k + 1) % 3])
            prio += 1
        icmp = t.entry(tmpl, direction, prio, location=("POLICYGROUP", high), protocol="1")
        t.find(icmp)["entity"].update(ICMPType="3", ICMPCode="4")
        prio += 1
    return t, p


def slot_groups() -> tuple[Tree, Placement]:
    """70 groups (six beyond the bitmap: slot tags, vsc/tags.py), a rule between each pair of neighbours,
    and one vport in four slot groups at once, so every slot register is written."""
    t, p = tiered(140, 3, 70, 70)
    vp = ids(t, "vport")[0]
    for g in ids(t, "policygroup")[64:68]:
        t.find(g)["assoc"]["vport"].append(vp)
    return t, p


SCENARIOS = {
    "tiered": lambda: tiered(100, 4, 4, 8),
    "nfd8": lambda: nfd8(n_hosts=4, per_host=30),
    "every-acl-type": every_acl_type,
    "slot-groups": slot_groups,
}


def compiled(name: str) -> list[Flow]:
    view, locs = build(*SCENARIOS[name]())
    out = []
    for dpid in locs.hosts:
        flows, probs = compile_host(view, locs, dpid)
        assert not probs, probs  # every entry compiled: none escaped the check by being refused
        out += flows.values()
    return out


@pytest.fixture(scope="module")
def all_flows() -> dict[str, list[Flow]]:
    return {name: compiled(name) for name in SCENARIOS}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_compiled_flow_conforms(all_flows, name):
    bad = [f"{format_flow(f, show_stats=False)}: {problems(f)}" for f in all_flows[name] if problems(f)]
    assert not bad, "\n".join(bad)
    check_flows(all_flows[name])  # the fast path agrees


def test_incremental_programmer_checks_every_flow(monkeypatch):
    """The programmer's own path (units, remote flows), with the endpoint check switched on too."""
    monkeypatch.setattr(programmer, "CHECK_ENDPOINT_FLOWS", True)
    tree, placement = every_acl_type()
    prog = Programmer(View(), Locations())
    for o in tree.objects:
        prog.on_vsd("CREATE", o["entityType"], o["entity"], o["assoc"])
    for m in placement.messages():
        prog.on_agent(m)
    assert sum(len(prog.host_desired(d)) for d in prog.locs.hosts) > 1000


def _usage(flows: list[Flow]) -> dict[Table, dict[str, set]]:
    use: dict[Table, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for f in flows:
        u = use[Table(f.table)]
        u["match"] |= {m.name for m in f.match}
        u["writes"] |= {a.name for a in f.actions if isinstance(a, SetField)}
        u["writes"] |= {a.dst for a in f.actions if isinstance(a, Move)}
        u["writes"] |= {"metadata"} if f.write_metadata is not None else set()
        u["reads"] |= {a.src for a in f.actions if isinstance(a, Move)}
        u["goto"] |= {f.goto} if f.goto is not None else set()
        u["ct"] |= {a.table for a in f.actions if isinstance(a, Ct)}
        u["output"] |= {True} if any(isinstance(a, Output) for a in f.actions) else set()
    return use


def test_declaration_is_exact(all_flows):
    """Whatever a table declares, some compiled flow uses: a stale or over-broad declaration (one
    that would let a compiler bug through) fails here."""
    use = _usage([f for flows in all_flows.values() for f in flows])
    for table, spec in TABLES.items():
        u = use[table]
        declared = {"match": spec.match, "writes": spec.writes, "reads": spec.reads, "goto": spec.goto,
                    "ct": spec.ct, "output": {True} if spec.output else set()}
        for what, allowed in declared.items():
            assert u[what] == set(allowed), (table.name, what, sorted(map(str, set(allowed) - u[what])))


def test_catch_all_flows_are_the_declared_misses():
    """A table whose miss continues elsewhere gets that from the skeleton's priority-0 catch-all."""
    view, locs = build(*tiered(4, 1, 1, 0))
    catch_all = {Table(f.table): f.goto for f in pipeline_flows(locs.hosts[1]) if f.priority == 0 and not f.match}
    assert catch_all == {t: s.miss for t, s in TABLES.items() if s.miss is not None}


# --- deliberately wrong flows -----------------------------------------------------------------------


def refused(flow: Flow, *fragments: str) -> str:
    with pytest.raises(PipelineViolation) as err:
        check_flow(flow)
    text = str(err.value)
    assert format_flow(flow, show_stats=False) in text  # the flow, as ovs-ofctl prints it
    for frag in fragments:
        assert frag in text, text
    assert problems(flow) == err.value.problems
    return text


def test_write_to_an_undeclared_register_is_refused():
    f = Flow(Table.ENDPOINT, 100, match(metadata=1, reg0=0x0A000001), (SetField("reg11", 1),), Table.PEER_MAP)
    refused(f, "table 20 ENDPOINT", "writes reg11, undeclared")
    move = Flow(Table.PEER_MAP, 100, match(reg8=1), (Move(REG_PEER_TAGS[0], "reg15", 32),), Table.LOCAL_DST)
    refused(move, "table 25 PEER_MAP", "moves into reg15")
    read = Flow(Table.PEER_MAP, 100, match(reg8=1), (Move("reg9", "reg4", 32),), Table.LOCAL_DST)
    refused(read, "moves from reg9")
    md = Flow(Table.ENDPOINT, 100, match(metadata=1, reg0=1), goto=Table.PEER_MAP, write_metadata=(2, 0xFFFF))
    refused(md, "writes metadata")


def test_match_on_an_undeclared_field_or_register_is_refused():
    refused(Flow(Table.DELIVER, 100, match(reg1=3, reg6=1), (Output(3),)), "table 60 DELIVER", "matches reg6")
    acl = Flow(Table.INGRESS_ACL, 20_000, match(metadata=1, eth_type=0x0800, reg0=5), goto=Table.ROUTE)
    refused(acl, "table 45 INGRESS_ACL", "matches reg0, undeclared for this table")
    refused(Flow(Table.ROUTE, 50, match(in_port=4)), "matches in_port")


@pytest.mark.parametrize("table", list(Table))
def test_going_back_or_staying_always_fails(table):
    """goto_table and ct(table=) to the same or a lower table, from every table."""
    for target in (t for t in Table if t <= table):
        refused(Flow(table, 1, goto=target), f"goto_table:{int(target)} goes backwards")
        refused(Flow(table, 1, actions=(Ct(zone=1, table=target),)))


def test_forward_jumps_and_actions_not_declared_are_refused():
    refused(Flow(Table.CLASSIFY, 1, goto=Table.DELIVER), "goto_table:60 is not a declared next table",
            "declared: 10, 20, 70")
    refused(Flow(Table.INGRESS_ACL, 1, actions=(Ct(commit=True, zone=1, table=Table.DELIVER),)),
            "ct(table=60) is not a declared next table")
    refused(Flow(Table.CONNTRACK, 1, goto=Table.INGRESS_STATE), "goto_table:40 is not a declared next table")
    refused(Flow(Table.ROUTE, 1, actions=(Ct(zone=1),)), "uses ct()")
    refused(Flow(Table.INGRESS_ACL, 1, actions=(Output(2),)), "outputs, and this table may not")
    refused(Flow(33, 1), "table 33:", "there is no table 33")


def test_a_corrupted_compiled_flow_names_everything_it_broke(all_flows):
    remote = next(f for f in all_flows["nfd8"] if f.table == Table.ENDPOINT and f.priority == 100)
    bad = Flow(remote.table, remote.priority, (*remote.match, MatchField("reg4", 1)),
               (*remote.actions, SetField("reg15", 7)), Table.CLASSIFY, cookie=remote.cookie)
    text = refused(bad, "matches reg4", "writes reg15", "goto_table:0 goes backwards")
    assert text.count(";") == 2


def test_programmer_refuses_a_bad_unit_and_keeps_the_old_one(monkeypatch):
    tree, placement = tiered(8, 2, 2, 2)
    view, locs = build(tree, placement)
    prog = Programmer(view, locs)
    prog.refresh_all()
    before = {d: dict(prog.host_desired(d)) for d in locs.hosts}
    real = programmer.domain_flows

    def buggy(view, dom, host):
        flows, probs = real(view, dom, host)
        return [*flows, Flow(Table.EGRESS_ACL, 5, match(metadata=1, reg8=2), goto=Table.ROUTE)], probs

    monkeypatch.setattr(programmer, "domain_flows", buggy)
    prog.refresh(domains=set(view.domains))  # compiled when next read: refused there, named in problems
    assert {d: dict(prog.host_desired(d)) for d in locs.hosts} == before
    (dom,) = view.domains
    assert re.search(r"refused by the pipeline check.*table 55 EGRESS_ACL: matches reg8.*goto_table:48 goes "
                     r"backwards", prog.problems[dom][-1])
    monkeypatch.setattr(programmer, "domain_flows", real)
    prog.refresh(domains={dom})  # fixed: the problem goes with the next compile
    assert not prog.problems[dom] and {d: dict(prog.host_desired(d)) for d in locs.hosts} == before


# --- pipeline.md ------------------------------------------------------------------------------------


def test_pipeline_md_tables_are_the_declaration():
    """Regenerate with `python -m vsc.tables --write`."""
    assert generated_section(PAGE.read_text()) == markdown()


def test_prose_names_only_declared_next_tables():
    """Every '-> N', 'goto N' and 'table = N' in a table's description is a declared next table."""
    for t, s in TABLES.items():
        named = {int(n) for n in re.findall(r"(?:->|goto|table ?= ?)\s*(\d+)", s.does)}
        onward = {int(x) for x in s.goto | s.ct} | ({int(s.miss)} if s.miss is not None else set())
        assert named <= onward, (t.name, named - onward)


def test_registers_section_lists_the_declared_registers():
    page = PAGE.read_text()
    section = page[page.index("## Registers and metadata"):page.index("**Tags.**")]
    documented = set(re.findall(r"\breg\d+\b", section))
    declared = {n for s in TABLES.values() for n in s.match | s.writes | s.reads if n.startswith("reg")}
    assert documented == declared
