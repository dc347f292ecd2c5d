"""Live vs draft on a running lab: a draft made with vspk in the three-tier sim lab (web -> db tcp/5432
allowed, web -> app moved from tcp/8080 to tcp/22: tests/vsd_drafts_support.py), `vsplab diff --domain
prod` asked from another process, then the draft applied (a job, as Nuage's clients run it): the lab's
verdicts change exactly as the diff predicted - every pair x protocol x port class re-traced through
the lab's switches, no more and no fewer - and its switches gain and lose exactly the predicted flows.
The lab's VSC, asked the same (`POST /impact`, vsc/impact.py: its own compile, its tables evaluated
without tracing), names the same changed cases and the same ACL flows per VRS."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from openflow.text import format_flow
from tests.test_policy_diff_lab import recheck
from tests.test_vsd_drafts_lab import three_tier_lab  # noqa: F401  (the fixture)
from tests.vsd_drafts_support import draft_web_to_db, lab_vspk_session, run_job
from vsc.pipeline import Table
from vsplab.policy.diff import diff_states
from vsplab.policy.drafts import ask_vsc, draft_state
from vsplab.policy.ops import register_ops
from vsplab.policy.state import from_lab

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def impact(lab, live, domain: str) -> dict:
    """The lab's VSC asked `POST /impact` with the domain's draft as applied."""
    from vsd.drafts import as_applied

    dom = next(o["entity"] for o in live.objects if o["entityType"] == "domain" and o["entity"]["name"] == domain)
    return ask_vsc(lab.vscs["vsc1"], dom["ID"], as_applied(live.objects, dom["ID"]))


def post_impact(lab, body: bytes) -> dict:
    vsc = lab.vscs["vsc1"]
    req = urllib.request.Request(f"http://{vsc.listen}:{vsc.status_port}/impact", body, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def held(lab) -> dict[str, set]:
    """Each switch's flows as (key, actions, goto, metadata write): cookies aside, since an applied
    draft entry becomes a live object with an ID of its own."""
    def take():
        return {n: {(f.key, f.actions, f.goto, f.write_metadata) for f in (r.flow(t) for t, r in sw.flows())}
                for n, sw in lab.runtime.fabric.switches.items()}
    return lab.runtime.call(take)


def test_apply_changes_the_lab_exactly_as_diff_predicted(three_tier_lab):  # noqa: F811
    lab = three_tier_lab
    register_ops()
    lab.serve_control()
    session = lab_vspk_session(lab)
    try:
        domain = session.user.domains.get_first(filter='name == "prod"')
        assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
        draft_web_to_db(domain)
        lab.wait_converged()

        out = subprocess.run([sys.executable, "-m", "vsplab.cli", "diff", "--domain", "prod", "--lab", str(lab.workdir),
                              "--json", "-"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 1, out.stdout + out.stderr  # 1: verdicts change
        shown = json.loads(out.stdout)
        live = from_lab(lab)
        predicted = diff_states(live, draft_state(live, "prod"))
        assert shown["changes"] == predicted.to_dict()["changes"]
        assert shown["vscs"]["vsc1"]["agrees"], shown["vscs"]["vsc1"]["detail"]  # the VSC's own POST /impact
        text = subprocess.run([sys.executable, "-m", "vsplab.cli", "diff", "--domain", "prod", "--lab", str(lab.workdir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
        assert "newly allowed: 8" in text and "newly denied: 4" in text and "VSC vsc1 (POST /impact): 12 changed" in text
        assert shown["newly_allowed"] == 8 and shown["newly_denied"] == 4, out.stdout
        # what decided on the side where traffic passes: the draft's new entry, by its description
        assert {c["after"]["responsible"][0]["description"] for c in shown["changes"]
                if c["change"] == "newly allowed" and c["port_class"] == [5432, 5432]} == {"vl-draft web -> db"}

        vsc_says = impact(lab, live, "prod")
        assert vsc_says["problems"] == [] and vsc_says["endpoints"] == 6
        names = {e.vport_id: e.name for e in live.endpoints}
        # the VSC's evaluation of its compiled ACL tables (request only) agrees with the traces
        assert {(names[c["src"]], names[c["dst"]], c["proto"], tuple(c["class"]), c["after"]["verdict"])
                for c in vsc_says["changes"]} == {(c.src, c.dst, c.proto, c.dport, v)
                                                  for c, v in ((ch.case, ch.after.verdict) for ch in predicted.changes)}
        hosts = {str(h.dpid): h.name for h in live.hosts}
        for dpid, hf in vsc_says["flows"].items():
            mine = predicted.flows[hosts[dpid]]
            acl = {Table.INGRESS_ACL, Table.EGRESS_ACL}
            assert set(hf["gained"]) == {format_flow(f, show_stats=False) for f in mine.gained if f.table in acl}
            assert set(hf["lost"]) == {format_flow(f, show_stats=False) for f in mine.lost if f.table in acl}
        assert len(vsc_says["flows"]) == 3
        for bad, code, field in ((b"[1]", 400, "domain:"), (b'{"domain": "x", "objects": 3}', 400, "objects:"),
                                 (b'{"domain": "nosuch", "objects": []}', 404, "nosuch"), (b"{", 400, "body:")):
            with pytest.raises(urllib.error.HTTPError) as err:
                post_impact(lab, bad)
            assert err.value.code == code and field in json.loads(err.value.read())["error"]

        before, flows_before = recheck(lab, predicted.cases), held(lab)
        assert run_job(domain, "APPLY_POLICY_CHANGES").status == "SUCCESS"
        lab.wait_converged()
        after, flows_after = recheck(lab, predicted.cases), held(lab)
    finally:
        session.push_center.stop()
    observed = {(c.src, c.dst, c.proto, c.dport, c.sport, after[c]) for c in predicted.cases if before[c] != after[c]}
    assert observed == predicted.changed_cases(), predicted.text()

    def strip(fs):
        return {(f.key, f.actions, f.goto, f.write_metadata) for f in fs}
    for host, hf in predicted.flows.items():
        assert flows_after[host] - flows_before[host] == strip(hf.gained) - strip(hf.lost), host
        assert flows_before[host] - flows_after[host] == strip(hf.lost) - strip(hf.gained), host
    assert any(hf.gained for hf in predicted.flows.values())
