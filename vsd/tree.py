"""The object tree held in memory: every object, where it hangs, and the indexes listing and validation
need (descendants by type, names per parent, member lists and their reverse). Every change goes through
`insert`/`remove`/`replace`/`set_members`, which record how to undo themselves, so a request (or a whole
bulk list) that fails half-way leaves the tree exactly as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Obj:
    __slots__ = ("id", "kind", "data", "parent", "enterprise", "domain", "anc", "members", "secret", "rev")

    def __init__(self, oid: str, kind: str, data: dict, parent: str | None) -> None:
        self.id, self.kind, self.data, self.parent = oid, kind, data, parent
        self.enterprise: str | None = None  # the enterprise it belongs to (for roles and name scopes)
        self.domain: str | None = None  # the L3 domain it belongs to, if any
        self.anc: tuple[str, ...] = ()  # ancestors it is listed under (root "" included)
        self.members: list[str] | None = None  # policy group vports, macro group networks, group users
        self.secret: dict | None = None  # a user's password hash and API key; never served
        self.rev = 0  # revision that created it: the load order after a restart


class Txn:
    """Undo log of one API call."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []
        self.changes: list[tuple] = []  # (CREATE|UPDATE|DELETE, object, its data then, its members then)

    def rollback(self) -> None:
        while self.undo:
            self.undo.pop()()
        self.changes.clear()


class Tree:
    def __init__(self) -> None:
        self.objs: dict[str, Obj] = {}
        self.desc: dict[tuple[str, str], dict[str, None]] = {}  # (ancestor ID, kind) -> IDs in order
        self.nkids: dict[str, int] = {}  # direct children per object
        self.names: dict[tuple[str, str, str], str] = {}  # (scope, kind, name) -> ID
        self.member_of: dict[str, set[str]] = {}  # member ID -> owner IDs (policy groups, ...)
        self.hooks: list = []  # objects with index_add(obj) / index_remove(obj)
        self._lists_cache: dict[tuple, list[dict[str, None]]] = {}

    # --- queries

    def get(self, oid: str) -> Obj | None:
        return self.objs.get(oid)

    def under(self, ancestor: str, kind: str) -> Iterable[str]:
        return self.desc.get((ancestor, kind), {}).keys()

    def name_scope(self, obj: Obj) -> str | None:
        """Names are unique among siblings of one kind; VMs, interfaces and ACL entries have no such rule."""
        if obj.kind in ("vm", "vminterface", "ingressaclentrytemplate", "egressaclentrytemplate", "job"):
            return None
        if obj.data.get("policyState") == "DRAFT":  # a draft template is named as the live one it copies
            return f"{obj.parent}/DRAFT"
        return obj.parent or ""

    # --- primitive changes (each undoable)

    def _lists(self, obj: Obj) -> list[dict[str, None]]:
        # siblings share their listing dicts, and those dicts live forever: look them up once per parent
        key = (obj.anc, obj.kind)
        lists = self._lists_cache.get(key)
        if lists is None:
            lists = self._lists_cache[key] = [self.desc.setdefault((a, obj.kind), {}) for a in obj.anc]
        return lists

    def _index(self, obj: Obj) -> None:
        self.objs[obj.id] = obj
        oid = obj.id
        for d in self._lists(obj):
            d[oid] = None
        if obj.parent:
            self.nkids[obj.parent] = self.nkids.get(obj.parent, 0) + 1
        scope, name = self.name_scope(obj), obj.data.get("name")
        if scope is not None and name is not None:
            self.names[(scope, obj.kind, name)] = obj.id
        for m in obj.members or ():
            self.member_of.setdefault(m, set()).add(obj.id)
        for h in self.hooks:
            h.index_add(obj)

    def _unindex(self, obj: Obj) -> None:
        for h in reversed(self.hooks):
            h.index_remove(obj)
        for m in obj.members or ():
            owners = self.member_of.get(m)
            if owners:
                owners.discard(obj.id)
        scope, name = self.name_scope(obj), obj.data.get("name")
        if scope is not None and name is not None and self.names.get((scope, obj.kind, name)) == obj.id:
            del self.names[(scope, obj.kind, name)]
        if obj.parent:
            self.nkids[obj.parent] -= 1
        for d in self._lists(obj):
            d.pop(obj.id, None)
        del self.objs[obj.id]

    def insert(self, txn: Txn | None, obj: Obj) -> None:
        self._index(obj)
        if txn is not None:
            txn.undo.append(lambda: self._unindex(obj))
            txn.changes.append(("CREATE", obj, obj.data, obj.members))

    def remove(self, txn: Txn, obj: Obj) -> None:
        self._unindex(obj)
        txn.undo.append(lambda: self._index(obj))
        txn.changes.append(("DELETE", obj, obj.data, obj.members))

    def detach(self, txn: Txn, obj: Obj) -> None:
        """Take an object out of the indexes so its successor is validated without clashing with it."""
        self._unindex(obj)
        txn.undo.append(lambda: self._index(obj))

    def attach(self, txn: Txn, obj: Obj, *, record: bool = True) -> None:
        """Put a successor (same ID) of a detached object in; an UPDATE unless `record` is False."""
        self._index(obj)
        txn.undo.append(lambda: self._unindex(obj))
        if record:
            txn.changes.append(("UPDATE", obj, obj.data, obj.members))


def successor(obj: Obj, data: dict | None = None, members: list[str] | None = None) -> Obj:
    new = Obj(obj.id, obj.kind, obj.data if data is None else data, obj.parent)
    new.enterprise, new.domain, new.anc = obj.enterprise, obj.domain, obj.anc
    new.members = obj.members if members is None else members
    new.secret, new.rev = obj.secret, obj.rev
    return new
