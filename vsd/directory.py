"""The directory: create, update, delete and member assignment over the in-memory tree, with the VSD's
checks and roles, producing numbered changes for the store and the change stream.

Everything here runs on the server's event loop thread, one call at a time, so a call sees a consistent
tree and revisions are handed out in the order changes are applied (the store commits them in that
order too). A failing call, or any failing item of a bulk list, leaves the tree untouched."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import orjson

from vsd.change import Change, event_line
from vsd.drafts import check_change
from vsd.errors import VsdError, bad, conflict, forbidden, not_found
from vsd.indexes import Indexes
from vsd.rules import PREPARE, check_members, place, place_interface, place_vm
from vsd.schema import ALLOCATED, MEMBERS, PARENTS, clean_input
from vsd.tree import Obj, Tree, Txn, successor

ASSOC_NAME = {k: v for k, v in MEMBERS.items()}  # owner kind -> assoc key (the member's entity name)
# VNIs are one space for the whole VSD: letting an enterprise admin pick one would let it probe which
# numbers other enterprises hold, so only the CSP root chooses them (everyone else gets the next free one)
ROOT_CHOSEN = {"domain": ("serviceID",), "subnet": ("vnId",)}
TAKEN_ALONG = {"vm": "vminterface", "domain": "job"}  # children deleted with their parent, not refusing it


_rng = random.SystemRandom().randrange(1 << 64)
_ids = random.Random(_rng ^ time.time_ns())


def _new_id() -> str:
    """A random (version 4) UUID; os.urandom per object costs more than the rest of creating a vport."""
    h = "%032x" % (_ids.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Principal:
    user_id: str
    user_name: str
    enterprise_id: str | None  # None for the CSP root
    organization: str
    role: str  # CSPROOT, ORGADMIN or ORGUSER

    @property
    def root(self) -> bool:
        return self.role == "CSPROOT"


def represent(tree: Tree, obj: Obj, data: dict | None = None) -> dict:
    d = obj.data if data is None else data
    if obj.kind == "vm":  # in creation order: an updated interface moves to the end of the tree's listing
        ifaces = sorted((tree.objs[i] for i in tree.under(obj.id, "vminterface") if tree.objs[i].parent == obj.id),
                        key=lambda o: o.rev)
        d = {**d, "interfaces": [o.data for o in ifaces]}
    return d


def assoc_of(kind: str, members: list | None) -> dict:
    return {ASSOC_NAME[kind]: list(members or ())} if kind in ASSOC_NAME else {}


class Directory:
    def __init__(self) -> None:
        self.tree = Tree()
        self.idx = Indexes()
        self.tree.hooks.append(self.idx)
        self.revision = 0  # last revision handed out (applied in memory)

    # --- roles

    def can_read(self, who: Principal, obj: Obj) -> bool:
        return who.root or obj.enterprise == who.enterprise_id

    def _writable(self, who: Principal, enterprise: str | None) -> None:
        if who.root:
            return
        if who.role != "ORGADMIN":
            raise forbidden(f"user {who.user_name} ({who.role}) may only read")
        if enterprise != who.enterprise_id:
            raise forbidden(f"user {who.user_name} may only change objects of enterprise {who.organization}")

    def visible(self, who: Principal, oid: str, kind: str | None = None, prop: str = "ID") -> Obj:
        obj = self.tree.get(oid)
        if obj is None or (kind is not None and obj.kind != kind) or not self.can_read(who, obj):
            raise not_found(prop, f"{prop} {oid}: no such {kind or 'object'}")
        return obj

    # --- calls

    def _stamp(self, who: Principal, data: dict, now: str, creating: bool) -> None:
        if creating:
            data["creationDate"] = now
            data["owner"] = who.user_id
        data["lastUpdatedDate"] = now
        data["lastUpdatedBy"] = who.user_id

    def _create_one(self, txn: Txn, who: Principal, parent: Obj | None, kind: str, body: object,
                    now: str, secret: dict | None = None, derived: dict | None = None) -> Obj:
        """`derived`: attributes the VSD itself sets (a draft's ties to the live object it copies)."""
        data = clean_input(kind, body, creating=True)
        data.update(derived or {})
        for key in ROOT_CHOSEN.get(kind, ()) if not who.root else ():
            if key in data:
                raise VsdError(403, key, "Permission denied", f"{kind}.{key} is assigned by the VSD; only the CSP "
                               "root chooses one")
        interfaces = data.pop("interfaces", None) if kind == "vm" else None
        oid = _new_id()
        data["ID"] = oid
        data.update({"parentID": parent.id if parent else None, "parentType": parent.kind if parent else None,
                     "entityScope": "ENTERPRISE", "creationDate": now, "owner": who.user_id,
                     "lastUpdatedDate": now, "lastUpdatedBy": who.user_id})
        obj = Obj(oid, kind, data, parent.id if parent else None)
        place(obj, parent)
        if kind == "enterprise":
            self._writable(who, None)
        elif kind == "vm":
            self._place_vm(who, obj, interfaces)
        elif not who.root:
            self._writable(who, obj.enterprise)
        if kind == "user":
            if secret is None:  # the API hashes passwords before the call, off the event loop
                raise bad("password", "user.password is required", "Missing attribute")
            obj.secret = secret
            data["password"] = None
        if kind in MEMBERS:
            obj.members = []
        self._check_name(obj)
        prepare = PREPARE.get(kind)
        if prepare is not None:
            prepare(self.tree, self.idx, obj, parent)
        self.tree.insert(txn, obj)
        for i, item in enumerate(interfaces or ()):
            try:
                self._create_one(txn, who, obj, "vminterface", item, now)
            except VsdError as e:
                e.description = f"interfaces[{i}]: {e.description}"
                raise
        return obj

    def _place_vm(self, who: Principal, vm: Obj, interfaces: list[dict] | None) -> None:
        """A VM belongs to the enterprise of its first interface's vport (or the caller's). A vport the
        caller cannot see is left for the interface's own check, which refuses it as it refuses a
        vport that does not exist."""
        chain: dict[str, None] = {"": None}
        for item in interfaces or ():
            vport = self.tree.get(item.get("VPortID") or "")
            if vport is not None and vport.kind == "vport" and self.can_read(who, vport):
                vm.enterprise = vm.enterprise or vport.enterprise
                self._writable(who, vport.enterprise)
                chain.update(dict.fromkeys((*vport.anc, vport.id)))
        if vm.enterprise is None:
            vm.enterprise = who.enterprise_id
            self._writable(who, vm.enterprise)
        vm.anc = tuple(chain)
        vm.data["enterpriseID"] = vm.enterprise
        ent = self.tree.get(vm.enterprise or "")
        vm.data["enterpriseName"] = ent.data.get("name") if ent else None

    def _check_name(self, obj: Obj) -> None:
        scope, name = self.tree.name_scope(obj), obj.data.get("name")
        if scope is None or name is None:
            return
        holder = self.tree.names.get((scope, obj.kind, name))
        if holder is not None and holder != obj.id:
            raise conflict("name", f"a {obj.kind} named {name!r} already exists here", "Name clash")
        if obj.kind == "enterprise" and name.lower() == "csp":
            raise conflict("name", "enterprise name 'csp' is reserved for the service provider", "Name clash")

    def create_in(self, txn: Txn, who: Principal, parent: Obj, kind: str, body: dict,
                  derived: dict | None = None) -> Obj:
        """One object created as part of a larger change (a job's), by the same rules as a POST."""
        return self._create_one(txn, who, parent, kind, body, str(int(time.time() * 1000)), derived=derived)

    def reattach(self, txn: Txn, old: Obj, data: dict) -> Obj:
        """A detached object back in with new attributes, checked as an update would be (a job detaches
        every object it rewrites first, so that swapped names or priorities do not clash midway)."""
        new = successor(old, data)
        self._check_name(new)
        prepare = PREPARE.get(old.kind)
        if prepare is not None:
            prepare(self.tree, self.idx, new, self.tree.get(old.parent or ""))
        self.tree.attach(txn, new)
        return new

    def may_create(self, who: Principal, parent_id: str | None, kind: str, body: object) -> None:
        """The checks of `create` that need no change of the tree: the parent, the caller's role, each
        item's attributes (to refuse a call before the API hashes its passwords)."""
        parent = self._parent(who, parent_id, kind)
        if not who.root:
            self._writable(who, parent.enterprise if parent else None)
        for i, item in enumerate(body if isinstance(body, list) else [body]):
            try:
                clean_input(kind, item, creating=True)
            except VsdError as e:
                if isinstance(body, list):
                    e.description = f"item {i}: {e.description}"
                raise

    def may_update(self, who: Principal, oid: str, body: object) -> None:
        obj = self.visible(who, oid)
        self._writable(who, obj.enterprise)
        clean_input(obj.kind, body, creating=False)

    def _parent(self, who: Principal, parent_id: str | None, kind: str) -> Obj | None:
        parent = None
        if parent_id is not None:
            parent = self.tree.get(parent_id)
            if parent is None or not self.can_read(who, parent):
                raise not_found("parentID", f"parentID {parent_id}: no such parent")
        if (parent.kind if parent else "") not in PARENTS[kind]:
            where = f"under a {parent.kind}" if parent else "at the API root"
            raise VsdError(405, "parentID", "Not allowed", f"a {kind} cannot be created {where} (parentID)")
        return parent

    def create(self, who: Principal, parent_id: str | None, kind: str, body: object,
               secrets: list[dict | None] | None = None) -> tuple[Txn, list[Obj]]:
        """`secrets`: for users, each item's password hash, in the order of the items."""
        parent = self._parent(who, parent_id, kind)
        items = body if isinstance(body, list) else [body]
        txn = Txn()
        now = str(int(time.time() * 1000))
        created = []
        try:
            for i, item in enumerate(items):
                try:
                    secret = secrets[i] if secrets and i < len(secrets) else None
                    created.append(self._create_one(txn, who, parent, kind, item, now, secret))
                except VsdError as e:
                    if isinstance(body, list):
                        e.description = f"item {i}: {e.description}"
                    raise
            if kind == "vminterface":
                self._relist_vm(txn, parent.id)
        except BaseException:
            txn.rollback()
            raise
        return txn, created

    def update(self, who: Principal, oid: str, body: object, secret: dict | None = None) -> tuple[Txn, Obj]:
        """`secret`: a user's new password hash, when the body sets a password."""
        obj = self.visible(who, oid)
        self._writable(who, obj.enterprise)
        attrs = clean_input(obj.kind, body, creating=False)
        check_change(self.tree, obj, attrs)
        attrs.pop("interfaces", None)
        for key in ALLOCATED.get(obj.kind, ()):
            if key in attrs and attrs[key] != obj.data.get(key):
                raise bad(key, f"{obj.kind}.{key} is assigned by the VSD and cannot be changed", "Read-only")
        data = {**obj.data, **attrs}
        self._stamp(who, data, str(int(time.time() * 1000)), False)
        new = successor(obj, data)
        if obj.kind == "user" and attrs.get("password"):
            if secret is None:
                raise bad("password", "user.password cannot be set here")
            new.secret = secret
        if obj.kind == "user":
            data["password"] = None
        txn = Txn()
        try:
            self.tree.detach(txn, obj)
            self._check_name(new)
            prepare = PREPARE.get(obj.kind)
            if prepare is not None:
                prepare(self.tree, self.idx, new, self.tree.get(obj.parent or ""))
            self.tree.attach(txn, new)
            if obj.kind == "vminterface":
                self._relist_vm(txn, obj.parent)
        except BaseException:
            txn.rollback()
            raise
        return txn, new

    def delete(self, who: Principal, oid: str) -> Txn:
        obj = self.visible(who, oid)
        self._writable(who, obj.enterprise)
        if obj.kind == "enterprise" and not who.root:
            raise forbidden("only the CSP root deletes enterprises")
        check_change(self.tree, obj, None)
        kids = self.tree.nkids.get(oid, 0)
        taken = [i for i in self.tree.under(oid, TAKEN_ALONG.get(obj.kind, "")) if self.tree.objs[i].parent == oid]
        kids -= len(taken)
        if kids:
            raise conflict("ID", f"{obj.kind} {obj.data.get('name') or oid} still has {kids} child object(s); "
                           "delete them first", "Object in use")
        referrers = self.idx.refs.get(oid)
        if referrers:
            r = self.tree.objs[next(iter(referrers))]
            raise conflict("ID", f"{obj.kind} {obj.data.get('name') or oid} is still referenced by "
                           f"{len(referrers)} object(s), e.g. {r.kind} {r.id}", "Object in use")
        txn = Txn()
        try:
            for owner_id in sorted(self.tree.member_of.get(oid, ())):
                owner = self.tree.objs[owner_id]
                self.tree.detach(txn, owner)
                self.tree.attach(txn, successor(owner, members=[m for m in owner.members if m != oid]))
            for i in taken:
                self.tree.remove(txn, self.tree.objs[i])
            self.tree.remove(txn, obj)
            if obj.kind == "vminterface":
                self._relist_vm(txn, obj.parent)
        except BaseException:
            txn.rollback()
            raise
        return txn

    def _relist_vm(self, txn: Txn, vm_id: str) -> None:
        """A VM is listed under its interfaces' vports (and their subnets, zones, domain): keep that true."""
        vm = self.tree.objs[vm_id]
        self.tree.detach(txn, vm)
        new = successor(vm)
        place_vm(self.tree, new)
        self.tree.attach(txn, new, record=False)

    def assign(self, who: Principal, owner_id: str, member_kind: str, ids: object) -> tuple[Txn, Obj]:
        owner = self.visible(who, owner_id)
        if MEMBERS.get(owner.kind) != member_kind:
            raise VsdError(405, "", "Not allowed", f"{member_kind}s cannot be assigned to a {owner.kind}")
        self._writable(who, owner.enterprise)
        members = check_members(self.tree, owner, member_kind, ids)
        txn = Txn()
        self.tree.detach(txn, owner)
        new = successor(owner, data={**owner.data, "lastUpdatedDate": str(int(time.time() * 1000))},
                        members=members)
        self.tree.attach(txn, new)
        return txn, new

    def set_secret(self, who: Principal, secret: dict) -> Txn:
        """A user changing its own password (`PUT /me`): allowed to readers too, recorded as an update."""
        obj = self.tree.objs[who.user_id]
        txn = Txn()
        self.tree.detach(txn, obj)
        new = successor(obj, data={**obj.data, "lastUpdatedDate": str(int(time.time() * 1000)),
                                   "lastUpdatedBy": who.user_id})
        new.secret = secret
        self.tree.attach(txn, new)
        return txn

    # --- restart

    def load(self, op: str, kind: str, data: dict, members: list | None, secret: str | None,
             created: int) -> None:
        """Put back a stored object or replay a logged change (parents come first: creation order)."""
        old = self.tree.get(data["ID"])
        if old is not None:
            self.tree._unindex(old)
        if op == "DELETE":
            return
        parent = self.tree.get(data.get("parentID") or "")
        obj = Obj(data["ID"], kind, data, parent.id if parent else None)
        obj.members, obj.rev = members, created
        obj.secret = orjson.loads(secret) if secret else None
        if obj.secret:
            obj.secret.pop("apikey", None)  # kept in clear before API keys had a table (and a hash) of their own
        place(obj, parent)
        if kind == "vminterface":
            place_interface(obj, parent, self.tree.objs[data["VPortID"]])
        elif kind == "vm":
            obj.enterprise = data.get("enterpriseID")
        self.tree.insert(None, obj)

    def loaded(self, revision: int) -> None:
        self.revision = revision
        for vm_id in list(self.tree.under("", "vm")):
            vm = self.tree.objs[vm_id]
            self.tree._unindex(vm)
            place_vm(self.tree, vm)
            self.tree._index(vm)

    # --- numbering

    def number(self, txn: Txn) -> list[Change]:
        """Hand out revisions to a successful call's changes and render their stream lines."""
        out = []
        for op, obj, data, members in txn.changes:
            self.revision += 1
            rev = self.revision
            if op == "CREATE":
                obj.rev = rev
            entity = orjson.dumps(represent(self.tree, obj, data))
            assoc = orjson.dumps(assoc_of(obj.kind, members)) if obj.kind in ASSOC_NAME else b"{}"
            out.append(Change(rev, op, obj.kind, obj.id, obj.parent, entity, assoc, members, obj.secret,
                              obj.rev, obj.enterprise, event_line(rev, op, obj.kind, entity, assoc)))
        txn.changes.clear()
        return out
