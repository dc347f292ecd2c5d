"""A numbered change: one object created, updated or deleted at one revision, as the store commits it
(a row of `events`) and the change stream sends it (`line`, rendered once for every subscriber)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Change:
    rev: int
    op: str
    kind: str
    oid: str
    parent: str | None
    entity: bytes  # the object as GET returns it (as it was, for a DELETE)
    assoc: bytes
    members: list | None
    secret: dict | None
    created: int  # revision that created the object
    enterprise: str | None  # whose change it is (the stream shows enterprise users only their own)
    line: bytes  # the change-stream line


def event_line(rev: int, op: str, kind: str, entity: str | bytes, assoc: str | bytes) -> bytes:
    ent = entity.encode() if isinstance(entity, str) else entity
    asc = assoc.encode() if isinstance(assoc, str) else assoc
    return b"".join((b'{"kind":"event","revision":', str(rev).encode(), b',"type":"', op.encode(),
                     b'","entityType":"', kind.encode(), b'","entity":', ent, b',"assoc":', asc, b"}\n"))
