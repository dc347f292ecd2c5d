"""Nuage's policy jobs on a domain: BEGIN_POLICY_CHANGES, APPLY_POLICY_CHANGES and
DISCARD_POLICY_CHANGES (vsd/README.md, "Policy drafts"). A job is created RUNNING
(`vsd.drafts.prepare_job`); `run` then does its work and the job's final state as one transaction, or,
when the work is refused, only the job's FAILED state with the reason in `result`.

Apply writes the domain's live policy to match its draft: a live object whose copy is gone is deleted,
one whose copy differs takes the copy's attributes (same ID, so its flows keep their cookies), a draft
object with no live one is created live. The domain's UPDATE that ends the draft is the apply's last
change: a controller holds the apply's lines until it sees it, and compiles them as one unit."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from vsd.directory import Directory, Principal
from vsd.drafts import DRAFT, ENTRY_OF, LIVE, STARTED, TEMPLATES, drafting, is_draft
from vsd.errors import VsdError, conflict
from vsd.schema import DERIVED, SYSTEM_ATTRS
from vsd.tree import Obj, Tree, Txn, successor

log = logging.getLogger("vsd.jobs")


def policy_attrs(obj: Obj) -> dict:
    """What a template or entry says, as a client set it: no IDs, stamps, state or ties to a live object."""
    drop = SYSTEM_ATTRS | DERIVED.get(obj.kind, frozenset()) | {"policyState"}
    return {k: v for k, v in obj.data.items() if k not in drop}


def children(tree: Tree, parent_id: str, kind: str) -> list[Obj]:
    return sorted((tree.objs[i] for i in tree.under(parent_id, kind) if tree.objs[i].parent == parent_id),
                  key=lambda o: o.rev)


def _stamp(who: Principal) -> dict:
    return {"lastUpdatedDate": str(int(time.time() * 1000)), "lastUpdatedBy": who.user_id}


def _set_status(d: Directory, txn: Txn, who: Principal, dom: Obj, status: str, record: bool) -> Obj:
    d.tree.detach(txn, dom)
    new = successor(dom, {**dom.data, "policyChangeStatus": status, **_stamp(who)})
    d.tree.attach(txn, new, record=record)
    return new


def _remove_with_entries(tree: Tree, txn: Txn, template: Obj) -> int:
    entries = children(tree, template.id, ENTRY_OF[template.kind])
    for e in entries:
        tree.remove(txn, e)
    tree.remove(txn, template)
    return len(entries) + 1


def _name(dom: Obj) -> str:
    return repr(dom.data.get("name"))


def begin(d: Directory, txn: Txn, who: Principal, dom: Obj) -> dict:
    if drafting(d.tree, dom.id):
        raise conflict("command", f"domain {_name(dom)} already has policy changes in progress: apply or discard "
                       "them first", "Policy changes in progress")
    dom = _set_status(d, txn, who, dom, STARTED, record=True)
    copied = Counter()
    for kind in TEMPLATES:
        for live in children(d.tree, dom.id, kind):
            copy = d.create_in(txn, who, dom, kind, {**policy_attrs(live), "policyState": DRAFT},
                               {"associatedLiveEntityID": live.id})
            copied["templates"] += 1
            for entry in children(d.tree, live.id, ENTRY_OF[kind]):
                d.create_in(txn, who, copy, entry.kind, {**policy_attrs(entry), "policyState": DRAFT},
                            {"associatedLiveEntityID": entry.id, "associatedLiveTemplateID": live.id})
                copied["entries"] += 1
    return dict(copied)


def _no_draft(dom: Obj) -> VsdError:
    return conflict("command", f"domain {_name(dom)} has no policy changes in progress (a job "
                    "BEGIN_POLICY_CHANGES opens them)", "No policy changes in progress")


def _rewrite(d: Directory, txn: Txn, who: Principal, pairs: list[tuple[Obj, Obj]], done: Counter) -> list[Obj]:
    """Live objects take their draft copy's attributes; unchanged ones are left alone (no event)."""
    changed = [(live, copy) for live, copy in pairs if policy_attrs(live) != policy_attrs(copy)]
    for live, _ in changed:
        d.tree.detach(txn, live)
    out = [live for live, copy in pairs if policy_attrs(live) == policy_attrs(copy)]
    for live, copy in changed:
        out.append(d.reattach(txn, live, {**live.data, **policy_attrs(copy), **_stamp(who)}))
    done["updated"] += len(changed)
    return out


def _apply_entries(d: Directory, txn: Txn, who: Principal, live_t: Obj, draft_t: Obj, done: Counter) -> None:
    kind = ENTRY_OF[live_t.kind]
    lives, copies = children(d.tree, live_t.id, kind), children(d.tree, draft_t.id, kind)
    copy_of = {c.data.get("associatedLiveEntityID"): c for c in copies}
    for e in lives:
        if e.id not in copy_of:
            d.tree.remove(txn, e)
            done["deleted"] += 1
    _rewrite(d, txn, who, [(e, copy_of[e.id]) for e in lives if e.id in copy_of], done)
    live_ids = {e.id for e in lives}
    for c in copies:
        if c.data.get("associatedLiveEntityID") not in live_ids:
            d.create_in(txn, who, live_t, kind, {**policy_attrs(c), "policyState": LIVE})
            done["created"] += 1


def apply(d: Directory, txn: Txn, who: Principal, dom: Obj) -> dict:
    if not drafting(d.tree, dom.id):
        raise _no_draft(dom)
    # Out of the draft first (not recorded yet), so the live objects below pass the checks a write
    # outside a draft gets; the recorded UPDATE comes last and closes the unit on the stream.
    dom = _set_status(d, txn, who, dom, "APPLIED", record=False)
    done: Counter = Counter()
    drafts = []
    for kind in TEMPLATES:
        templates = children(d.tree, dom.id, kind)
        copies = [t for t in templates if is_draft(t.data)]
        lives = [t for t in templates if not is_draft(t.data)]
        drafts += copies
        copy_of = {c.data.get("associatedLiveEntityID"): c for c in copies}
        for live in lives:
            if live.id not in copy_of:
                done["deleted"] += _remove_with_entries(d.tree, txn, live)
        kept = [live for live in lives if live.id in copy_of]
        rewritten = _rewrite(d, txn, who, [(live, copy_of[live.id]) for live in kept], done)
        pairs = [(live, copy_of[live.id]) for live in rewritten]
        live_ids = {live.id for live in lives}
        for c in copies:
            if c.data.get("associatedLiveEntityID") not in live_ids:
                pairs.append((d.create_in(txn, who, dom, kind, {**policy_attrs(c), "policyState": LIVE}), c))
                done["created"] += 1
        for live, copy in pairs:
            _apply_entries(d, txn, who, live, copy, done)
    for copy in drafts:
        _remove_with_entries(d.tree, txn, copy)
    _set_status(d, txn, who, dom, "APPLIED", record=True)
    return dict(done)


def discard(d: Directory, txn: Txn, who: Principal, dom: Obj) -> dict:
    if not drafting(d.tree, dom.id):
        raise _no_draft(dom)
    dropped = sum(_remove_with_entries(d.tree, txn, t) for kind in TEMPLATES
                  for t in children(d.tree, dom.id, kind) if is_draft(t.data))
    _set_status(d, txn, who, dom, "DISCARDED", record=True)
    return {"discarded": dropped}


WORK: dict[str, Callable[[Directory, Txn, Principal, Obj], dict]] = {
    "BEGIN_POLICY_CHANGES": begin, "APPLY_POLICY_CHANGES": apply, "DISCARD_POLICY_CHANGES": discard}


def run(d: Directory, who: Principal, job_id: str) -> Txn | None:
    """The job's work and its final state as one transaction (None: the job is gone or already ran)."""
    job = d.tree.get(job_id)
    if job is None or job.kind != "job" or job.data.get("status") != "RUNNING":
        return None
    txn = Txn()
    try:
        result, status = WORK[job.data["command"]](d, txn, who, d.tree.objs[job.parent]), "SUCCESS"
    except VsdError as e:
        txn.rollback()
        result, status = {"error": e.description, "title": e.title}, "FAILED"
    except Exception:  # a job left RUNNING would be run again at every start
        txn.rollback()
        log.exception("job %s (%s) failed", job_id, job.data.get("command"))
        result, status = {"error": "the VSD failed on this job; see its log", "title": "Internal error"}, "FAILED"
    except BaseException:
        txn.rollback()
        raise
    d.tree.detach(txn, job)
    d.tree.attach(txn, successor(job, {**job.data, "status": status, "progress": 1.0, "result": result,
                                       **_stamp(who)}))
    return txn
