"""Policy drafts against a running lab: the sim lab of scenarios/three-tier.yaml (its own VSD, a VSC
following the change stream, three simulated VRSs whose flow tables the verdicts are traced through),
its VSD driven with vspk unchanged. While a draft is open the lab's verdicts do not change; after
apply they change for exactly the pairs the draft touched; a second draft, discarded, changes nothing.

`three_tier_lab` and `tests.vsd_drafts_support` (verdicts, draft_web_to_db, run_job) are meant for
the tests that compare these changes with what `vsplab diff` predicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from tests.vsd_drafts_support import draft_templates, draft_web_to_db, lab_vspk_session, run_job, verdicts
from vsplab.lab.run import SimLab
from vsplab.scenario.check import load_scenario

pytestmark = pytest.mark.slow
SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "three-tier.yaml"


@pytest.fixture
def three_tier_lab(tmp_path):
    """The three-tier sim lab, up and converged; everything it started stops when the test ends."""
    with SimLab(load_scenario(SCENARIO), console=Console(quiet=True), workdir=tmp_path / "vl-draft-lab") as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        yield lab


def tier(container: str) -> str:
    return container.rstrip("0123456789")


def test_verdicts_change_only_when_a_draft_is_applied(three_tier_lab):
    lab = three_tier_lab
    live = verdicts(lab)
    assert live[("web1", "app1", "tcp", 8080)] == "allow" and live[("web1", "db1", "tcp", 5432)] == "deny"
    session = lab_vspk_session(lab)
    try:
        domain = session.user.domains.get_first(filter='name == "prod"')
        assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
        touched = draft_web_to_db(domain)
        lab.wait_converged()  # the VSC has every draft change of the stream ...
        assert verdicts(lab) == live  # ... and enforces the live policy still

        assert run_job(domain, "APPLY_POLICY_CHANGES").status == "SUCCESS"
        lab.wait_converged()
        applied = verdicts(lab)
        changed = {k for k in live if applied[k] != live[k]}
        assert changed, "the apply changed no verdict"
        assert {(tier(a), tier(b), proto, port) for a, b, proto, port in changed} == touched
        assert all(applied[k] == "allow" for k in changed if k[3] in (5432, 22))
        assert all(applied[k] == "deny" for k in changed if k[3] == 8080)

        # a second draft that would cut everything, discarded
        assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
        for direction in ("ingress", "egress"):
            template = draft_templates(domain, direction)[0]
            for e in (template.ingress_acl_entry_templates if direction == "ingress"
                      else template.egress_acl_entry_templates).get():
                e.delete()
        lab.wait_converged()
        assert verdicts(lab) == applied
        assert run_job(domain, "DISCARD_POLICY_CHANGES").status == "SUCCESS"
        lab.wait_converged()
        assert verdicts(lab) == applied
        assert draft_templates(domain, "ingress") == [] and draft_templates(domain, "egress") == []
        assert not lab.vsc_statuses()["vsc1"]["input_errors"]
    finally:
        session.push_center.stop()
