"""Nuage policy drafts on the VSD, driven by vspk unchanged: jobs BEGIN / APPLY / DISCARD_POLICY_CHANGES
on a domain, polled RUNNING -> SUCCESS / FAILED; DRAFT copies of the ACL templates and entries; the
live policy untouched until apply, rewritten by it as one transaction that ends with the domain's
UPDATE; discard leaving no trace but the audit log (and the job); a restart keeping an open draft;
a VSC's view never holding half of an apply."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from bambou.exceptions import BambouHTTPError
from vspk import v6 as vspk

from tests.vsd_drafts_support import draft_templates, run_job, vspk_session
from tests.vsd_fixtures import StreamReader, make_user, revision
from vsc.view import View
from vsd.client import VsdApiError, VsdClient
from vsd.directory import Principal
from vsd.drafts import as_applied
from vsd.example import build_three_tier
from vsd.server import EmbeddedVsd, build_app
from vsd.yamlio import export_enterprise

KINDS = ("ingressacltemplate", "ingressaclentrytemplate", "egressacltemplate", "egressaclentrytemplate")


@pytest.fixture(scope="module")
def vsd(tmp_path_factory):
    with EmbeddedVsd(db_url=f"sqlite:///{tmp_path_factory.mktemp('vl-draft')}/vl-draft.db") as server:
        yield server


_enterprises = itertools.count(1)


@pytest.fixture
def built(vsd):
    """The three-tier example in an enterprise of its own (the VSD is shared by the module's tests)."""
    client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
    tier = build_three_tier(client, enterprise=f"vl-draft-{next(_enterprises)}")
    session = vspk_session(vsd.url, vsd.user, vsd.password, vsd.enterprise)
    domain = vspk.NUDomain(id=tier["domain_id"])
    domain.fetch()
    yield client, session, domain, tier
    session.push_center.stop()
    client.close()


def policy(client: VsdClient, domain_id: str) -> dict[str, dict]:
    """Every ACL template and entry of the domain, by ID, without the stamps a job rewrites."""
    out = {}
    for d in ("ingress", "egress"):
        for t in client.list(f"domains/{domain_id}/{d}acltemplates"):
            out[t["ID"]] = t
            out.update({e["ID"]: e for e in client.list(f"{d}acltemplates/{t['ID']}/{d}aclentrytemplates")})
    return out


def test_begin_edit_apply_with_vspk(built):
    client, session, domain, tier = built
    live_before = policy(client, domain.id)
    job = vspk.NUJob(command="BEGIN_POLICY_CHANGES")
    domain.create_child(job)
    assert job.status == "RUNNING" and job.progress == 0.0  # answered before it ran: clients poll
    for _ in range(600):
        job.fetch()
        if job.status != "RUNNING":
            break
        time.sleep(0.05)
    assert job.status == "SUCCESS" and job.result == {"templates": 2, "entries": 4}
    domain.fetch()
    assert domain.policy_change_status == "STARTED"

    ingress = draft_templates(domain, "ingress")
    assert [(t.name, t.policy_state) for t in ingress] == [("prod-ingress", "DRAFT")]
    assert ingress[0].associated_live_entity_id == tier["acls"]["ingress"]["template"]
    entries = ingress[0].ingress_acl_entry_templates.get()
    assert {e.associated_live_entity_id for e in entries} == set(tier["acls"]["ingress"]["entries"])
    assert {e.policy_state for e in entries} == {"DRAFT"}
    # the draft: web may reach db on 5432 too, app -> db moves to 5433, and a new template of its own
    web, db = tier["policy_group_ids"]["web"], tier["policy_group_ids"]["db"]
    new = vspk.NUIngressACLEntryTemplate(action="FORWARD", location_type="POLICYGROUP", location_id=web,
                                         network_type="POLICYGROUP", network_id=db, ether_type="0x0800",
                                         protocol="6", source_port="*", destination_port="5432", stateful=True,
                                         priority=120, policy_state="DRAFT")
    ingress[0].create_child(new)
    assert new.policy_state == "DRAFT"
    to_db = next(e for e in entries if e.destination_port == "5432")
    to_db.destination_port = "5433"
    to_db.save()
    extra = vspk.NUEgressACLTemplate(name="vl-draft-extra", active=True, default_allow_ip=False)
    domain.create_child(extra)
    assert extra.policy_state == "DRAFT"  # created while a draft is open

    # the live policy is as it was, and cannot be changed while the draft is open
    assert {k: v for k, v in policy(client, domain.id).items() if v.get("policyState") != "DRAFT"} == live_before
    live_entry = vspk.NUIngressACLEntryTemplate(id=tier["acls"]["ingress"]["entries"][0])
    live_entry.fetch()
    live_entry.destination_port = "1"
    with pytest.raises(BambouHTTPError) as e:
        live_entry.save()
    assert e.value.connection.response.status_code == 409
    assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "FAILED"  # one draft at a time

    job = run_job(domain, "APPLY_POLICY_CHANGES")
    assert job.status == "SUCCESS" and job.result == {"created": 2, "updated": 1}, job.result
    domain.fetch()
    assert domain.policy_change_status == "APPLIED"
    after = policy(client, domain.id)
    assert {v.get("policyState") for v in after.values()} == {"LIVE"}
    assert set(live_before) <= set(after)  # the live objects kept their IDs
    assert after[to_db.associated_live_entity_id]["destinationPort"] == "5433"
    ports = sorted(e["destinationPort"] for e in after.values()
                   if e.get("parentID") == tier["acls"]["ingress"]["template"])
    assert ports == ["5432", "5433", "8080"]
    assert [t["name"] for t in client.list(f"domains/{domain.id}/egressacltemplates")] == ["prod-egress",
                                                                                         "vl-draft-extra"]
    failed = run_job(domain, "APPLY_POLICY_CHANGES")
    assert failed.status == "FAILED" and "no policy changes in progress" in failed.result["error"]


def test_discard_leaves_no_trace_but_the_audit_log(built):
    client, session, domain, tier = built
    before = policy(client, domain.id)
    assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
    tmpl = draft_templates(domain, "egress")[0]
    for e in tmpl.egress_acl_entry_templates.get():
        e.delete()
    tmpl.default_allow_ip = True
    tmpl.save()
    job = run_job(domain, "DISCARD_POLICY_CHANGES")
    assert job.status == "SUCCESS" and job.result == {"discarded": 2 + 4 - 2}
    assert policy(client, domain.id) == before  # same objects, same attributes, same stamps
    domain.fetch()
    assert domain.policy_change_status == "DISCARDED"
    requests = [row["request"] for row in client.audit()]
    assert any(r.startswith("JOB DISCARD_POLICY_CHANGES") for r in requests)
    assert any(r.startswith("JOB BEGIN_POLICY_CHANGES") for r in requests)
    assert run_job(domain, "DISCARD_POLICY_CHANGES").status == "FAILED"


def test_refusals_name_the_field(built):
    client, session, domain, tier = built
    template = tier["acls"]["ingress"]["template"]
    with pytest.raises(VsdApiError) as e:  # no draft open: nothing can be created DRAFT
        client.create(f"ingressacltemplates/{template}", "ingressaclentrytemplates",
                      {"action": "DROP", "policyState": "DRAFT"})
    assert e.value.status == 409 and "policyState" in str(e.value)
    with pytest.raises(VsdApiError) as e:
        client.create(f"domains/{domain.id}", "jobs", {"command": "EXPORT"})
    assert e.value.status == 400 and "command" in str(e.value)
    with pytest.raises(VsdApiError) as e:
        client.update(f"ingressacltemplates/{template}", {"policyState": "DRAFT"})
    assert e.value.status == 400 and "policyState" in str(e.value)
    job = run_job(domain, "BEGIN_POLICY_CHANGES")
    with pytest.raises(VsdApiError) as e:
        client.update(f"jobs/{job.id}", {"command": "APPLY_POLICY_CHANGES"})
    assert e.value.status == 405
    with pytest.raises(VsdApiError) as e:  # a live template cannot be deleted under an open draft
        client.delete(f"ingressacltemplates/{template}")
    assert e.value.status == 409 and "policy changes in progress" in str(e.value)
    doc = export_enterprise(client, tier["enterprise"])  # `vsd export` leaves the open draft out
    (exported,) = doc["domains"]
    assert [(t["name"], t["policyState"]) for t in exported["ingressacltemplates"]] == [("prod-ingress", "LIVE")]


def _commit_job_not_run(db: str, domain_id: str, command: str) -> str:
    """What a VSD stopped between committing a job's creation and running it leaves in the database:
    the job RUNNING, written by the VSD's own directory and store as the POST does."""
    app = build_app(db)
    loop = asyncio.new_event_loop()
    try:
        app.store.start(loop, lambda changes: None)
        root = Principal("vl-draft-root", "csproot", None, "csp", "CSPROOT")
        txn, (job,) = app.dir.create(root, domain_id, "job", {"command": command})
        loop.run_until_complete(app.store.submit(app.dir.number(txn), ("csproot", "csp"), "vl-draft test"))
    finally:
        app.auth.close()
        app.store.stop()
        loop.close()
    return job.id


@pytest.mark.slow
def test_a_restart_keeps_the_open_draft_and_runs_a_job_left_running(tmp_path):
    """`kill -9` in the middle of a draft keeps it; an APPLY committed but not run before the VSD
    stopped is run when it starts again."""
    db = f"sqlite:///{tmp_path}/vl-draft.db"
    vsd = EmbeddedVsd(db_url=db)
    vsd.start()
    try:
        client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        tier = build_three_tier(client)
        session = vspk_session(vsd.url, vsd.user, vsd.password, vsd.enterprise)
        domain = vspk.NUDomain(id=tier["domain_id"])
        domain.fetch()
        assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
        entry = draft_templates(domain, "ingress")[0].ingress_acl_entry_templates.get()[0]
        entry.destination_port = "8443"
        entry.save()
        draft = {k: v for k, v in policy(client, domain.id).items() if v["policyState"] == "DRAFT"}
        session.push_center.stop()
        vsd.kill()  # kill -9 in the middle of the draft
        vsd.start()
        client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        assert {k: v for k, v in policy(client, domain.id).items() if v["policyState"] == "DRAFT"} == draft
        assert client.get(f"domains/{domain.id}")["policyChangeStatus"] == "STARTED"
        vsd.stop()
        job_id = _commit_job_not_run(db, domain.id, "APPLY_POLICY_CHANGES")
        vsd.start()
        client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        deadline = time.monotonic() + 30
        while client.get(f"jobs/{job_id}")["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get(f"jobs/{job_id}")["status"] == "SUCCESS"
        live = client.get(f"ingressaclentrytemplates/{entry.associated_live_entity_id}")
        assert live["destinationPort"] == "8443" and live["policyState"] == "LIVE"
        assert client.get(f"domains/{domain.id}")["policyChangeStatus"] == "APPLIED"
    finally:
        vsd.close()


def acl_state(view: View, domain_id: str) -> tuple:
    """The domain's ACL templates and entries as the view holds them."""
    templates = {t.id: t for t in view.acl_templates.values() if t.domain_id == domain_id}
    return (tuple(sorted((t.id, t.name, t.default_allow_ip) for t in templates.values())),
            tuple(sorted((e.id, e.template_id, e.destination_port, e.priority) for e in view.acl_entries.values()
                         if e.template_id in templates)))


def test_a_vsc_view_never_holds_half_of_an_apply(built, vsd):
    """The stream as a VSC reads it, one line at a time: drafts never enter the view, and after every
    line the view's ACLs are the live policy from before the apply or the whole policy after it."""
    client, session, domain, tier = built
    reader = StreamReader(client, since=0)
    view = View()
    snap = reader.take(revision(vsd))
    view.load_snapshot(snap[0]["revision"], snap[0]["objects"])
    before = acl_state(view, domain.id)
    assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
    tmpl = draft_templates(domain, "ingress")[0]
    for e in tmpl.ingress_acl_entry_templates.get():
        e.destination_port = str(int(e.destination_port) + 1)
        e.save()
    extra = vspk.NUIngressACLTemplate(name="vl-draft-more", active=True)
    domain.create_child(extra)
    extra.create_child(vspk.NUIngressACLEntryTemplate(action="DROP", protocol="17", source_port="*",
                                                      destination_port="53"))
    assert run_job(domain, "APPLY_POLICY_CHANGES").status == "SUCCESS"
    lines = [ln for ln in reader.take(revision(vsd)) if ln["kind"] == "event"]
    seen, resumed = set(), None
    for ln in lines:
        for v in filter(None, (view, resumed)):
            v.apply(ln["type"], ln["entityType"], ln["entity"], ln.get("assoc"))
            seen.add(acl_state(v, domain.id))
        if view.held and resumed is None:  # a VSC saving its view in the middle of an apply, restarted
            resumed = View.restore(view.dump())
    after = acl_state(view, domain.id)
    assert after != before and seen <= {before, after}, "a line left the view with half of the apply"
    assert resumed is not None and acl_state(resumed, domain.id) == after
    assert len(after[1]) == len(before[1]) + 1 and len(after[0]) == len(before[0]) + 1
    assert sorted(e[2] for e in after[1]) == ["53", "5432", "5433", "8080", "8081"]
    restored = View.restore(view.dump())
    assert acl_state(restored, domain.id) == after


def test_as_applied_is_the_policy_after_apply(built, vsd):
    """A stream snapshot taken while the draft is open, turned by `as_applied`, compiles to the same
    ACLs as the VSD's state after the apply (IDs of new objects aside)."""
    client, session, domain, tier = built
    snap = StreamReader(client, since=0).take(revision(vsd))[0]
    with pytest.raises(ValueError, match="no policy draft open"):  # its live policy would read as none
        as_applied(snap["objects"], domain.id)
    with pytest.raises(ValueError, match="no such domain"):
        as_applied(snap["objects"], "vl-draft-nothing")
    assert run_job(domain, "BEGIN_POLICY_CHANGES").status == "SUCCESS"
    tmpl = draft_templates(domain, "egress")[0]
    entry = tmpl.egress_acl_entry_templates.get()[0]
    entry.delete()
    tmpl.create_child(vspk.NUEgressACLEntryTemplate(action="DROP", protocol="1", priority=500))
    reader = StreamReader(client, since=0)
    during = View()
    snap = reader.take(revision(vsd))[0]
    during.load_snapshot(snap["revision"], as_applied(snap["objects"], domain.id))
    assert run_job(domain, "APPLY_POLICY_CHANGES").status == "SUCCESS"
    after = View()
    snap = StreamReader(client, since=0).take(revision(vsd))[0]
    after.load_snapshot(snap["revision"], snap["objects"])

    def rules(view: View) -> list:
        mine = {t.id for t in view.acl_templates.values() if t.domain_id == domain.id}
        return sorted((e.direction, e.action, e.protocol, e.destination_port, e.priority, e.location_id,
                       e.network_id) for e in view.acl_entries.values() if e.template_id in mine)

    assert rules(during) == rules(after) and len(rules(after)) == 4


def test_a_domain_takes_its_jobs_along_when_deleted(built):
    client, session, domain, tier = built
    ent = tier["enterprise_id"]
    spare = client.create(f"enterprises/{ent}", "domains", {"name": "vl-draft-spare",
                                                            "templateID": tier["domain_template_id"]})
    spare_domain = vspk.NUDomain(id=spare["ID"])
    spare_domain.fetch()
    jobs = [run_job(spare_domain, c) for c in ("BEGIN_POLICY_CHANGES", "DISCARD_POLICY_CHANGES")]
    assert [j.status for j in jobs] == ["SUCCESS", "SUCCESS"]
    client.delete(f"domains/{spare['ID']}")
    for j in jobs:
        with pytest.raises(VsdApiError) as e:
            client.get(f"jobs/{j.id}")
        assert e.value.status == 404


def test_roles_an_admin_runs_its_own_domains_jobs_only(built, vsd):
    client, session, domain, tier = built
    ent = client.get(f"enterprises/{tier['enterprise_id']}")["name"]
    make_user(client, tier["enterprise_id"], "vl-draft-admin", "ORGADMIN")
    make_user(client, tier["enterprise_id"], "vl-draft-reader", "ORGUSER")
    other = build_three_tier(client, enterprise=f"{ent}-other")
    with VsdClient(vsd.api, "vl-draft-reader", "vl-draft-reader-pw", ent) as reader:
        with pytest.raises(VsdApiError) as e:
            reader.create(f"domains/{domain.id}", "jobs", {"command": "BEGIN_POLICY_CHANGES"})
        assert e.value.status == 403
    with VsdClient(vsd.api, "vl-draft-admin", "vl-draft-admin-pw", ent) as admin:
        with pytest.raises(VsdApiError) as e:  # another enterprise's domain is no domain at all
            admin.create(f"domains/{other['domain_id']}", "jobs", {"command": "BEGIN_POLICY_CHANGES"})
        assert e.value.status == 404
        job = admin.create(f"domains/{domain.id}", "jobs", {"command": "BEGIN_POLICY_CHANGES"})
        deadline = time.monotonic() + 30
        while admin.get(f"jobs/{job['ID']}")["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.get(f"jobs/{job['ID']}")["status"] == "SUCCESS"
        assert len(admin.list(f"domains/{domain.id}/egressacltemplates", filter='policyState == "DRAFT"')) == 1
