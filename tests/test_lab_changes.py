"""A running sim lab under change: the VSC restarts, the VSD's policy changes. Flows that are still
right must stay untouched (same creation time, no flow-mod), and the expectations must still hold."""

from pathlib import Path

import pytest
from rich.console import Console

from vsplab.lab.run import SimLab
from vsplab.scenario.check import load_scenario

pytestmark = pytest.mark.slow
SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "three-tier.yaml"


@pytest.fixture
def lab(tmp_path):
    with SimLab(load_scenario(SCENARIO), console=Console(quiet=True), workdir=tmp_path / "lab") as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        yield lab


def snapshot(lab) -> dict:
    """Every flow on every host: (host, table, priority, match) -> (cookie, actions, creation time)."""
    def take():
        out = {}
        for name, sw in lab.runtime.fabric.switches.items():
            for table, rule in sw.flows():
                f = rule.flow(table)
                out[(name,) + f.key] = (f.cookie, f.actions, f.goto, rule.created)
        return out
    return lab.runtime.call(take)


def flow_mods(lab) -> int:
    return sum(h["flow_mods"] for h in lab.runtime.stats()["hosts"])


def all_pass(lab) -> list[str]:
    return [r.label for r in lab.check().results if not r.passed]


def test_vsc_restart_touches_no_flow_that_is_still_right(lab):
    assert all_pass(lab) == []
    before, mods = snapshot(lab), flow_mods(lab)
    vsc = lab.vscs["vsc1"]
    vsc.restart()
    vsc.wait_converged(timeout=60, datapaths=3, endpoints=6)
    after = snapshot(lab)
    assert after == before  # same flows, same creation times: nothing was deleted and re-added
    assert flow_mods(lab) == mods  # and not one flow-mod was sent for them
    assert all_pass(lab) == []
    connects = {h["name"]: h["connects"] for h in lab.runtime.stats()["hosts"]}
    assert all(n >= 2 for n in connects.values()), connects  # every VRS really reconnected


def test_acl_change_in_the_vsd_changes_only_its_flows(lab):
    assert all_pass(lab) == []
    before = snapshot(lab)
    client = lab.client
    domain = client.list("enterprises/" + client.list("enterprises", filter='name == "acme"')[0]["ID"] + "/domains")[0]
    template = client.list(f"domains/{domain['ID']}/ingressacltemplates")[0]
    entry = next(e for e in client.list(f"ingressacltemplates/{template['ID']}/ingressaclentrytemplates")
                 if e["destinationPort"] == "8080")
    client.update(f"ingressaclentrytemplates/{entry['ID']}", {"destinationPort": "8081"})
    revision = client.request("GET", "vsplab/health").json()["committed"]
    lab.vscs["vsc1"].wait_converged(timeout=60, min_revision=revision, datapaths=3, endpoints=6)
    after = snapshot(lab)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed, "the ACL change reached no host"
    from vsc.pipeline import Kind, cookie

    entry_cookie = cookie(Kind.ACL_ENTRY, entry["ID"])
    assert {(before.get(k) or after.get(k))[0] for k in changed} == {entry_cookie}
    assert {k[1] for k in changed} == {45}  # only the ingress ACL table
    failed = all_pass(lab)
    assert failed == ["web1 -> app1 tcp/8080", "web2 -> app1 tcp/8080", "web1 -> app2 tcp/8080"]
