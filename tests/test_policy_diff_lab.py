"""`vsplab diff` against a full re-check of a running lab (sim mode, real VSD, VSC and OpenFlow): for
three edits of three-tier (an allow added, a deny inserted above an allow, a group membership change)
the diff computed from the scenario files before and after must list exactly the cases whose verdict
the running lab changes when the same edit is made through the VSD's REST API - no more, no fewer.

The re-check traces every endpoint pair x protocol x port class through the lab's own switches, each
TCP/UDP class at its lowest, highest and a middle port (all three must agree: the classes are exact)."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rich.console import Console

from vsplab.lab.run import SimLab
from vsplab.policy.cases import Case
from vsplab.policy.compiled import Compiled
from vsplab.policy.diff import diff_states
from vsplab.policy.state import from_lab, from_scenario
from vsplab.policy.verdicts import exchange
from vsplab.scenario.check import load_scenario

pytestmark = pytest.mark.slow
BASE = Path(__file__).resolve().parent.parent / "scenarios" / "three-tier.yaml"

ALLOW_WEB_DB = "- {from: web, to: db, protocol: tcp, port: 5432, stateful: true}"
DENY_ABOVE = "- {from: web, to: app, protocol: tcp, port: 8080-8090, action: drop, priority: 900}"


def edited(tmp_path: Path, name: str, edit) -> Path:
    text = BASE.read_text()
    new = edit(text)
    assert new != text
    p = tmp_path / f"{name}.yaml"
    p.write_text(new)
    return p


def add_allow(text: str) -> str:
    # after the last rule of each template: position 2, priority 1020, as the REST edit below
    rule = "- {from: app, to: db, protocol: tcp, port: 5432, stateful: true}\n"
    head, _, tail = text.partition(rule)
    mid, _, rest = tail.partition(rule)
    return head + rule + f"            {ALLOW_WEB_DB}\n" + mid + rule + f"            {ALLOW_WEB_DB}\n" + rest


def insert_deny(text: str) -> str:
    rule = "- {from: web, to: app, protocol: tcp, port: 8080, stateful: true}\n"
    return text.replace("rules:\n            " + rule, f"rules:\n            {DENY_ABOVE}\n            {rule}", 1)


def join_group(text: str) -> str:
    return text.replace("groups: [web], ip: 10.1.0.12", "groups: [web, app], ip: 10.1.0.12")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with SimLab(load_scenario(BASE), console=Console(quiet=True), workdir=tmp_path_factory.mktemp("vl-pol-lab")) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        yield lab


EDITS = {"allow-added": add_allow, "deny-above-allow": insert_deny, "membership": join_group}


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """The base scenario and each edited copy, each pushed into a VSD of its own (all at once: each
    VSD mostly waits)."""
    tmp = tmp_path_factory.mktemp("vl-pol-edits")
    paths = {"base": BASE, **{name: edited(tmp, name, edit) for name, edit in EDITS.items()}}
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(paths, pool.map(from_scenario, paths.values()), strict=True))


def recheck(lab, todo: list[Case]) -> dict[Case, str]:
    """Every case traced through the running lab, each port class at three of its ports."""
    compiled = Compiled(from_lab(lab))  # next hops (subnet gateways) as the lab's VSD has them
    fabric = lab.runtime.fabric

    def run():
        out = {}
        for c in todo:
            members = [0, (c.dport[1] - c.dport[0]) // 2, c.dport[1] - c.dport[0]] if c.proto in ("tcp", "udp") else [0]
            seen = {exchange(fabric, compiled, c, member=m).verdict for m in members}
            assert len(seen) == 1, f"{c.label()}: verdicts differ inside one port class: {seen}"
            out[c] = seen.pop()
        return out
    return lab.runtime.call(run, timeout=300)


def ids(lab) -> dict:
    c = lab.client
    dom = c.list("domains", filter='name == "prod"')[0]
    groups = {g["name"]: g for g in c.list(f"domains/{dom['ID']}/policygroups")}
    templates = {d: c.list(f"domains/{dom['ID']}/{d}acltemplates")[0] for d in ("ingress", "egress")}
    return {"domain": dom, "groups": groups, "templates": templates,
            "vports": {v["name"]: v["ID"] for v in c.list(f"domains/{dom['ID']}/vports")}}


def rest_entry(lab, direction: str, priority: int, loc: str, net: str, port: str, action: str) -> str:
    x = ids(lab)
    entry = {"description": "added by the test", "action": action, "locationType": "POLICYGROUP",
             "locationID": x["groups"][loc]["ID"], "networkType": "POLICYGROUP", "networkID": x["groups"][net]["ID"],
             "etherType": "0x0800", "protocol": "6", "priority": priority, "stateful": True,
             "sourcePort": "*", "destinationPort": port}
    t = x["templates"][direction]["ID"]
    return lab.client.create(f"{direction}acltemplates/{t}", f"{direction}aclentrytemplates", entry)["ID"]


def members(lab, group: str) -> list[str]:
    return [v["ID"] for v in lab.client.list(f"policygroups/{ids(lab)['groups'][group]['ID']}/vports")]


def apply_allow(lab):
    made = [rest_entry(lab, "ingress", 1020, "web", "db", "5432", "FORWARD"),
            rest_entry(lab, "egress", 1020, "db", "web", "5432", "FORWARD")]
    return lambda: [lab.client.delete(f"{d}aclentrytemplates/{i}") for d, i in zip(("ingress", "egress"), made, strict=True)]


def apply_deny(lab):
    made = rest_entry(lab, "ingress", 900, "web", "app", "8080-8090", "DROP")
    return lambda: lab.client.delete(f"ingressaclentrytemplates/{made}")


def apply_join(lab):
    x = ids(lab)
    app = x["groups"]["app"]["ID"]
    old = members(lab, "app")
    lab.client.assign(f"policygroups/{app}/vports", old + [x["vports"]["web2"]])
    return lambda: lab.client.assign(f"policygroups/{app}/vports", old)


@pytest.mark.parametrize("name,text_edit,rest_edit,expect", [
    ("allow-added", add_allow, apply_allow, {"newly allowed": 4, "newly denied": 0}),
    ("deny-above-allow", insert_deny, apply_deny, {"newly allowed": 0, "newly denied": 4}),
    ("membership", join_group, apply_join, {"newly allowed": 3, "newly denied": 0}),
])
def test_diff_predicts_exactly_what_the_lab_changes(lab, states, name, text_edit, rest_edit, expect):
    assert EDITS[name] is text_edit
    predicted = diff_states(states["base"], states[name])
    assert predicted.problems == {"before": [], "after": []}
    counts = predicted.to_dict()
    assert {k: counts[k.replace(" ", "_")] for k in expect} == expect, predicted.text()

    before = recheck(lab, predicted.cases)
    undo = rest_edit(lab)
    try:
        lab.wait_converged()
        after = recheck(lab, predicted.cases)
    finally:
        undo()
        lab.wait_converged()
    observed = {(c.src, c.dst, c.proto, c.dport, c.sport, after[c]) for c in predicted.cases if before[c] != after[c]}
    assert observed == predicted.changed_cases(), predicted.text()
    # and the prediction's "before" side is the lab before the edit, case for case
    assert recheck(lab, predicted.cases) == before
    # every change names what decided it on the side where it is allowed
    for ch in predicted.changes:
        allowed = ch.after if ch.kind == "newly allowed" else ch.before
        assert {d.direction for d in allowed.request.deciders} == {"ingress", "egress"}
    if name == "deny-above-allow":
        assert all(ch.after.request.deciders[0].priority == 900 for ch in predicted.changes)
        # the deny's range 8080-8090 cut the port space into new classes, traced on both sides
        assert {c.dport for c in predicted.cases if c.proto == "tcp"} >= {(8080, 8080), (8081, 8090)}
