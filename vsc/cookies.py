"""Which VSD object a flow's cookie names, for everyone who asks the VSC: `GET /explain`, `GET /cookies`
(the teaching page), and the drift audit's findings.

A cookie is its kind over a hash of the owner's ID (vsc.pipeline.cookie), so it cannot be read back:
the hashes of every object in the view are indexed once per view revision, and a question about
hundreds of cookies then costs a dict lookup each."""

from __future__ import annotations

from vsc.pipeline import KIND_MASK, Kind, cookie, cookie_kind


class CookieOwners:
    """The index of one view; `name` answers under the caller's lock on the view (the core's)."""

    def __init__(self) -> None:
        self._built_for: tuple[int, int, int] = (0, -1, -1)  # (which view, its revision, its objects)
        self._by_hash: dict[int, str] = {}

    def _index(self, view) -> dict[int, str]:
        if self._built_for != (id(view), view.revision, len(view.raw)):
            self._by_hash = {cookie(Kind.PIPELINE, oid) & ~KIND_MASK: oid for oid in view.raw}
            self._built_for = (id(view), view.revision, len(view.raw))
        return self._by_hash

    def name(self, view, cookies: set[int] | list[int]) -> dict[int, dict]:
        """Cookie -> {kind, entityType, ID, name[, priority]}; ID None for the per-VRS skeleton (no VSD
        object) or an object gone since the flow was made."""
        index = self._index(view)
        out: dict[int, dict] = {}
        for c in cookies:
            kind = cookie_kind(c)
            oid = index.get(c & ~KIND_MASK) if kind is not None and c & ~KIND_MASK else None
            entry = view.raw.get(oid) if oid else None
            if entry is None:
                out[c] = {"kind": kind.name if kind else None, "ID": None}
                continue
            etype, ent, _ = entry
            out[c] = {"kind": kind.name if kind else None, "entityType": etype, "ID": oid, "name": ent.get("name")}
            if "priority" in ent:  # an ACL entry's: the teaching page shows where it ranks
                out[c]["priority"] = ent["priority"]
        return out
