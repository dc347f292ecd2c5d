"""Nuage's policy drafts, the rules side: which ACL templates and entries are DRAFT, what may change
while a domain has a draft open (`policyChangeStatus: STARTED`), what a new job must say, and a
snapshot's objects as the domain's live policy would be after apply (for clients comparing the two).

The jobs that open, apply and discard a draft are `vsd/jobs.py`; the README's "Policy drafts" section
is the contract. Everything here is pure: it reads the tree and raises the VsdError naming the field."""

from __future__ import annotations

from vsd.errors import VsdError, bad, conflict
from vsd.indexes import ACL_ENTRIES as ENTRIES
from vsd.tree import Obj, Tree

TEMPLATES = ("ingressacltemplate", "egressacltemplate")
ENTRY_OF = dict(zip(TEMPLATES, ENTRIES, strict=True))
POLICY_KINDS = frozenset(TEMPLATES + ENTRIES)
COMMANDS = ("BEGIN_POLICY_CHANGES", "APPLY_POLICY_CHANGES", "DISCARD_POLICY_CHANGES")
STARTED, DRAFT, LIVE = "STARTED", "DRAFT", "LIVE"


def is_draft(data: dict) -> bool:
    return data.get("policyState") == DRAFT


def drafting(tree: Tree, domain_id: str | None) -> bool:
    dom = tree.get(domain_id or "")
    return dom is not None and dom.data.get("policyChangeStatus") == STARTED


def _in_progress(tree: Tree, obj: Obj) -> VsdError:
    name = tree.objs[obj.domain].data.get("name")
    return conflict("policyState", f"domain {name!r} has policy changes in progress: change the DRAFT copy of "
                    f"this {obj.kind} (policyState == \"DRAFT\") and apply it with a job APPLY_POLICY_CHANGES",
                    "Policy changes in progress")


def settle_state(tree: Tree, obj: Obj, parent: Obj) -> None:
    """A template or entry being created or updated gets the state it must have: a template is DRAFT
    exactly while its domain has a draft open, an entry has its template's state. A client naming
    another state is refused, not overruled."""
    d = obj.data
    open_draft = drafting(tree, obj.domain)
    if obj.kind in TEMPLATES:
        want = DRAFT if open_draft else LIVE
    else:
        want = parent.data.get("policyState") or LIVE
    given = d.get("policyState")
    if given == DRAFT and not open_draft:
        raise conflict("policyState", f"{obj.kind}.policyState DRAFT: the domain has no policy changes in progress "
                       "(POST a job BEGIN_POLICY_CHANGES to its jobs first)", "No policy changes in progress")
    if want == LIVE and open_draft:
        raise _in_progress(tree, obj)
    if given is not None and given != want:
        raise conflict("policyState", f"{obj.kind}.policyState {given}: its template is {want}", "Wrong policy state")
    d["policyState"] = want


def check_change(tree: Tree, obj: Obj, attrs: dict | None) -> None:
    """Before an update (`attrs`, the client's cleaned attributes) or a delete (None) of `obj`."""
    if obj.kind == "job" and attrs is not None:
        raise VsdError(405, "", "Not allowed", "a job cannot be changed; create a new one")
    if obj.kind not in POLICY_KINDS:
        return
    state = obj.data.get("policyState") or LIVE
    if attrs is not None and attrs.get("policyState", state) != state:
        raise bad("policyState", f"{obj.kind}.policyState is {state} and cannot be changed (a draft becomes live "
                  "through a job APPLY_POLICY_CHANGES)", "Read-only")
    if state == LIVE and drafting(tree, obj.domain):
        raise _in_progress(tree, obj)


def prepare_job(tree: Tree, idx, obj: Obj, parent: Obj) -> None:
    """A new job: one of the policy commands, RUNNING until `vsd.jobs` has run it."""
    command = obj.data.get("command")
    if command not in COMMANDS:
        raise bad("command", f"job.command {command} is not supported by this VSD (one of {', '.join(COMMANDS)})",
                  "Unsupported value")
    obj.data.update(status="RUNNING", progress=0.0, result=None, assocEntityType="DOMAIN")


def as_applied(objects: list[dict], domain_id: str) -> list[dict]:
    """Stream objects (`{"entityType", "entity", "assoc"}`, as a snapshot lists them) as they would be
    once the domain's draft is applied: its LIVE templates and entries gone, its DRAFT ones LIVE.
    IDs of the draft objects stay (apply keeps a live object's ID where the draft copied one; the
    verdicts do not depend on IDs). Objects of other domains are untouched. A ValueError when the
    objects hold no such domain or its draft is not open (its live policy would read as none)."""
    dom = next((o["entity"] for o in objects if o["entityType"] == "domain" and o["entity"]["ID"] == domain_id), None)
    if dom is None or dom.get("policyChangeStatus") != STARTED:
        raise ValueError(f"domain {domain_id}: " + ("no such domain" if dom is None else
                         f"no policy draft open (policyChangeStatus {dom.get('policyChangeStatus')})"))
    kinds = {o["entity"]["ID"]: (o["entityType"], o["entity"]) for o in objects
             if o["entityType"] in POLICY_KINDS}

    def domain_of(entity: dict, kind: str) -> str | None:
        if kind in TEMPLATES:
            return entity.get("parentID")
        parent = kinds.get(entity.get("parentID") or "")
        return parent[1].get("parentID") if parent else None

    out = []
    for o in objects:
        kind, e = o["entityType"], o["entity"]
        if kind not in POLICY_KINDS or domain_of(e, kind) != domain_id:
            out.append(o)
        elif is_draft(e):
            out.append({**o, "entity": {**e, "policyState": LIVE}})
    return out
