"""A compile problem: what the VSC refused to compile, as `/status` -> `problems` shows it (its text),
and which VSD object it is about, so that `GET /intent` can hand the audit the objects whose intent
no flow enforces (vsplab/audit)."""

from __future__ import annotations


class Problem(str):
    """The problem's text, knowing its VSD object (`entity_type`, `object_id`)."""

    entity_type: str
    object_id: str

    def __new__(cls, text: str, entity_type: str, object_id: str) -> Problem:
        p = super().__new__(cls, text)
        p.entity_type, p.object_id = entity_type, object_id
        return p

    def to_dict(self) -> dict:
        return {"entityType": self.entity_type, "ID": self.object_id, "why": str(self)}
