"""Live vs draft of one domain: the policy state a VSD's open draft (policy-change job, vsd/README.md
"Policy drafts") would make live if applied, read from the same snapshot as the live one."""

from __future__ import annotations

import json
import urllib.request

from openflow.text import format_flow
from vsc.pipeline import Table
from vsplab.policy.state import PolicyState


def find_domain(objects: list[dict], domain: str | None) -> dict:
    """The domain named `domain` (name or ID); with None, the only domain that has a draft open."""
    domains = [o["entity"] for o in objects if o["entityType"] == "domain"]
    if domain is None:
        open_ = [d for d in domains if d.get("policyChangeStatus") == "STARTED"]
        if len(open_) != 1:
            names = ", ".join(d.get("name", d["ID"]) for d in open_) or "none"
            raise ValueError(f"--domain: name the domain whose draft to compare (domains with a draft open: {names})")
        return open_[0]
    hits = [d for d in domains if domain in (d["ID"], d.get("name"))]
    if len(hits) != 1:
        known = ", ".join(sorted(d.get("name", d["ID"]) for d in domains))
        raise ValueError(f"--domain: {'no' if not hits else 'more than one'} domain {domain!r} (domains: {known})")
    if hits[0].get("policyChangeStatus") != "STARTED":
        raise ValueError(f"--domain: domain {hits[0].get('name')!r} has no draft open (policyChangeStatus "
                         f"{hits[0].get('policyChangeStatus')!r}; begin one with a BEGIN_POLICY_CHANGES job)")
    return hits[0]


def draft_state(live: PolicyState, domain: str | None) -> PolicyState:
    """The state after applying the domain's draft: its DRAFT templates and entries taken as LIVE."""
    from vsd.drafts import as_applied

    d = find_domain(live.objects, domain)
    return live.replace_objects(as_applied(live.objects, d["ID"]), f"draft of domain {d.get('name')} [{d['ID']}]")


def ask_vsc(vsc, domain_id: str, objects: list[dict]) -> dict:
    """A lab VSC's `POST /impact` (vsc/impact.py) for the domain holding `objects`' policy."""
    body = json.dumps({"domain": domain_id, "objects": objects}).encode()
    req = urllib.request.Request(f"http://{vsc.listen}:{vsc.status_port}/impact", body, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def vsc_agreement(diff, live: PolicyState, draft: PolicyState, domain_id: str, vscs: dict, hosts_of) -> dict:
    """Each VSC's own answer (its view, its VRSs, its compiled ACL tables) held to the diff's: the same
    changed cases among its endpoints and the same ACL flows gained and lost on each of its VRSs.
    `vscs`: name -> VscProcess; `hosts_of(name)`: the hosts it serves."""
    names = {e.vport_id: e.name for e in live.endpoints}
    host_of = {e.name: e.host for e in live.endpoints}
    by_dpid = {str(h.dpid): h.name for h in live.hosts}
    acl = (Table.INGRESS_ACL, Table.EGRESS_ACL)
    out = {}
    for name, vsc in vscs.items():
        mine = set(hosts_of(name))
        try:
            said = ask_vsc(vsc, domain_id, draft.objects)
        except OSError as e:
            out[name] = {"agrees": False, "detail": f"no answer: {e}"}
            continue
        theirs = {(names.get(c["src"]), names.get(c["dst"]), c["proto"], tuple(c["class"]), c["after"]["verdict"])
                  for c in said["changes"]}
        ours = {(c.case.src, c.case.dst, c.case.proto, c.case.dport, c.after.verdict) for c in diff.changes
                if host_of[c.case.src] in mine and host_of[c.case.dst] in mine}
        flows_ok = all(
            set(hf["gained"]) == {format_flow(f, show_stats=False) for f in diff.flows[by_dpid[d]].gained if f.table in acl}
            and set(hf["lost"]) == {format_flow(f, show_stats=False) for f in diff.flows[by_dpid[d]].lost if f.table in acl}
            for d, hf in said["flows"].items())
        agrees = theirs == ours and flows_ok
        detail = (f"{len(theirs)} changed cases among its endpoints and the ACL flows of its {len(said['flows'])} VRS(s) "
                  + ("as predicted" if agrees else f"differ (its cases {len(theirs)}, ours {len(ours)}, flows "
                                                   f"{'same' if flows_ok else 'differ'}; it evaluates the request "
                                                   "through the ACL tables only, not the reply)"))
        out[name] = {"agrees": agrees, "detail": detail, "impact": said}
    return out
