"""Live vs draft of one domain: the policy state a VSD's open draft (policy-change job, vsd/README.md
"Policy drafts") would make live if applied, read from the same snapshot as the live one."""

from __future__ import annotations

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
