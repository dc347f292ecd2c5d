"""The VSC's logical view of the VSD: the objects it needs, typed, built from the change stream.

Only what the pipeline uses is kept. `View.apply` takes one stream object (snapshot entry or event)
and returns what it touched, so the programmer recompiles only that. Allocations that end up in
flows (a domain's index, a policy group's tag bit) are made once and persisted with the view, so a
restarted VSC compiles bit-identical flows and a resync changes nothing.

Policy drafts (vsd/README.md): a template or entry with `policyState: DRAFT` is the VSD's business and
never enters the view. A draft's apply is one unit: from the first change of a live ACL object of a
domain whose draft is open (`policyChangeStatus: STARTED`) the view holds every change back, and
takes them all at once with the change that ends the unit (the domain's UPDATE closing the draft, or
anything that is not that domain's policy), so nothing compiles half of an apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vsc.pipeline import MAX_DOMAIN_INDEX, MAX_GROUPS_PER_DOMAIN
from vsc.vsd_objects import (
    AclEntry,
    AclTemplate,
    Domain,
    Enterprise,
    EnterpriseNetwork,
    NetworkMacroGroup,
    PolicyGroup,
    Subnet,
    ViewError,
    VmInterface,
    Vport,
    Zone,
    parse,
    trim,
)
from vsd.drafts import DRAFT, STARTED
from vsd.drafts import POLICY_KINDS as _POLICY
from vsd.drafts import TEMPLATES as _TEMPLATES

# Templates are evaluated TOP first, then NONE, then BOTTOM (Nuage's priorityType).
_BAND_ORDER = {"TOP": 2, "NONE": 1, "BOTTOM": 0}

log = logging.getLogger("vsc.view")

# entityType -> View attribute holding that kind of object.
_STORES = {
    "enterprise": "enterprises", "domain": "domains", "zone": "zones", "subnet": "subnets",
    "vport": "vports", "vminterface": "vminterfaces", "policygroup": "policy_groups",
    "ingressacltemplate": "acl_templates", "egressacltemplate": "acl_templates",
    "ingressaclentrytemplate": "acl_entries", "egressaclentrytemplate": "acl_entries",
    "enterprisenetwork": "enterprise_networks", "networkmacrogroup": "macro_groups",
}

# What a change marks dirty: a whole domain ("domain", id) or single vports ("vport", id).
Touched = set[tuple[str, str]]


@dataclass
class View:
    revision: int = 0
    enterprises: dict[str, Enterprise] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    vports: dict[str, Vport] = field(default_factory=dict)
    vminterfaces: dict[str, VmInterface] = field(default_factory=dict)
    policy_groups: dict[str, PolicyGroup] = field(default_factory=dict)
    acl_templates: dict[str, AclTemplate] = field(default_factory=dict)
    acl_entries: dict[str, AclEntry] = field(default_factory=dict)
    enterprise_networks: dict[str, EnterpriseNetwork] = field(default_factory=dict)
    macro_groups: dict[str, NetworkMacroGroup] = field(default_factory=dict)
    # Persisted allocations (see module doc).
    domain_index: dict[str, int] = field(default_factory=dict)
    group_bit: dict[str, int] = field(default_factory=dict)
    # Derived indexes.
    vif_by_vport: dict[str, str] = field(default_factory=dict)
    groups_of_vport: dict[str, set[str]] = field(default_factory=dict)
    # Raw objects, so the view can be saved and rebuilt exactly.
    raw: dict[str, tuple[str, dict, dict]] = field(default_factory=dict)
    # An apply being received (module doc): its domain and its changes (op, kind, entity, assoc) so far.
    held_domain: str | None = None
    held: list[tuple[str, str, dict, dict]] = field(default_factory=list)
    held_templates: dict[str, str] = field(default_factory=dict)  # template held back -> its domain

    # --- lookups -----------------------------------------------------------------------------------

    def subnet_domain(self, subnet_id: str) -> str | None:
        s = self.subnets.get(subnet_id)
        z = self.zones.get(s.zone_id) if s else None
        return z.domain_id if z else None

    def vport_domain(self, vport_id: str) -> str | None:
        v = self.vports.get(vport_id)
        if v is None:
            return None
        return self.subnet_domain(v.subnet_id) or v.domain_id

    def subnets_of_zone(self, zone_id: str) -> list[Subnet]:
        return sorted((s for s in self.subnets.values() if s.zone_id == zone_id), key=lambda s: s.id)

    def subnets_of_domain(self, domain_id: str) -> list[Subnet]:
        return sorted((s for s in self.subnets.values() if self.subnet_domain(s.id) == domain_id),
                      key=lambda s: s.id)

    def templates_of(self, domain_id: str, direction: str) -> list[AclTemplate]:
        ts = [t for t in self.acl_templates.values()
              if t.domain_id == domain_id and t.direction == direction and t.active]
        # the firewall types (TOP_FIREWALL, ...) sit in the band their name starts with, as in vsc.acl.band_of
        return sorted(ts, key=lambda t: (-_BAND_ORDER.get(t.priority_type.split("_")[0], 1), t.priority, t.id))

    def domain_of_object(self, kind: str, obj) -> str | None:
        if kind == "domain":
            return obj.id
        if kind == "zone":
            return obj.domain_id
        if kind == "subnet":
            return self.subnet_domain(obj.id)
        if kind in ("policygroup", "ingressacltemplate", "egressacltemplate"):
            return obj.domain_id
        if kind in ("ingressaclentrytemplate", "egressaclentrytemplate"):
            t = self.acl_templates.get(obj.template_id)
            return t.domain_id if t else None
        return None

    # --- changes -----------------------------------------------------------------------------------

    def load_snapshot(self, revision: int, objects: list[dict]) -> list[str]:
        """Replace everything but the allocations (kept for objects that still exist). Returns the
        objects that could not be taken (one bad object must not keep the rest of the view out)."""
        keep_dom, keep_bits = self.domain_index, self.group_bit
        fresh = View(domain_index=keep_dom, group_bit=keep_bits)
        problems = []
        for o in objects:
            try:
                fresh._apply("CREATE", o["entityType"], o["entity"], o.get("assoc") or {})  # a whole state: nothing to hold
            except (ViewError, KeyError, ValueError, TypeError) as e:
                problems.append(f"{o.get('entityType')} {o.get('entity', {}).get('ID')}: {e!r}")
        fresh.domain_index = {k: v for k, v in keep_dom.items() if k in fresh.domains}
        fresh.group_bit = {k: v for k, v in keep_bits.items() if k in fresh.policy_groups}
        fresh.revision = revision
        self.__dict__.update(fresh.__dict__)
        return problems

    def apply(self, op: str, kind: str, entity: dict, assoc: dict | None = None) -> Touched:
        if kind in _POLICY and entity.get("policyState") == DRAFT:
            return set()
        if self.held_domain is None:
            self.held_domain = self._opens_apply(kind, entity)
            if self.held_domain is None:
                return self._apply(op, kind, entity, assoc)
        if self._policy_domain(kind, entity) == self.held_domain:
            self._hold(op, kind, trim(entity), assoc or {})
            return set()
        held, touched = self.held, set()
        self.held_domain, self.held, self.held_templates = None, [], {}
        for change in held:
            try:
                touched |= self._apply(*change)
            except (ViewError, KeyError, ValueError, TypeError) as e:
                # one malformed object is left out (and logged), not the rest of the unit
                log.warning("VSD %s %s %s (held with a policy apply): %r", change[0], change[1], change[2].get("ID"), e)
        return touched | self._apply(op, kind, entity, assoc)

    def _hold(self, op: str, kind: str, entity: dict, assoc: dict) -> None:
        self.held.append((op, kind, entity, assoc))
        if kind in _TEMPLATES:
            self.held_templates[entity["ID"]] = entity.get("parentID")

    def _policy_domain(self, kind: str, entity: dict) -> str | None:
        """The domain of a live ACL template or entry (one held back included)."""
        if kind in _TEMPLATES:
            return entity.get("parentID")
        if kind not in _POLICY:
            return None
        parent = entity.get("parentID")
        t = self.acl_templates.get(parent or "")
        return t.domain_id if t is not None else self.held_templates.get(parent or "")

    def _opens_apply(self, kind: str, entity: dict) -> str | None:
        d = self._policy_domain(kind, entity)
        dom = self.domains.get(d or "")
        return d if dom is not None and dom.policy_change == STARTED else None

    def _apply(self, op: str, kind: str, entity: dict, assoc: dict | None = None) -> Touched:
        store_name = _STORES.get(kind)
        if store_name is None or (kind in _POLICY and entity.get("policyState") == DRAFT):
            return set()
        store = getattr(self, store_name)
        oid = entity["ID"]
        touched: Touched = set()
        old = store.get(oid)
        if kind == "policygroup" and old is not None and op != "DELETE" and entity.get("parentID") == old.domain_id:
            # A membership change concerns only the vports that joined or left, not the whole group
            # (the "all" group of NFD8 holds 20,000 vports).
            obj = parse(kind, entity, assoc or {})
            self._unindex(kind, old)
            store[oid] = obj
            self.raw[oid] = (kind, trim(entity), assoc or {})
            self._index(kind, obj)
            return {("vport", v) for v in old.vport_ids ^ obj.vport_ids}
        if old is not None:
            touched |= self._touch(kind, old)
        if op == "DELETE":
            if old is not None:
                self._unindex(kind, old)
                del store[oid]
                self.raw.pop(oid, None)
                # Its tag bit / domain index become free (nothing refers to them any more).
                (self.group_bit if kind == "policygroup" else self.domain_index).pop(oid, None)
            return touched
        obj = parse(kind, entity, assoc or {})
        if old is not None:
            self._unindex(kind, old)
        store[oid] = obj
        self.raw[oid] = (kind, trim(entity), assoc or {})
        self._index(kind, obj)
        touched |= self._touch(kind, obj)
        return touched

    def _touch(self, kind: str, obj) -> Touched:
        if kind == "vport":
            return {("vport", obj.id)}
        if kind == "vminterface":
            return {("vport", obj.vport_id)}
        if kind == "policygroup":
            return {("domain", obj.domain_id)} | {("vport", v) for v in obj.vport_ids}
        if kind in ("enterprisenetwork", "networkmacrogroup", "enterprise"):
            # Macros are enterprise-wide: every domain of the enterprise may use them.
            ent = obj.enterprise_id if kind != "enterprise" else obj.id
            return {("domain", d.id) for d in self.domains.values() if d.enterprise_id == ent}
        d = self.domain_of_object(kind, obj)
        return {("domain", d)} if d else set()

    def _index(self, kind: str, obj) -> None:
        if kind == "vminterface" and obj.vport_id:
            self.vif_by_vport[obj.vport_id] = obj.id
        elif kind == "policygroup":
            for v in obj.vport_ids:
                self.groups_of_vport.setdefault(v, set()).add(obj.id)
            if obj.id not in self.group_bit:
                self.group_bit[obj.id] = self._free_bit(obj.domain_id)
            if self.group_bit[obj.id] is None:
                del self.group_bit[obj.id]
        elif kind == "domain" and obj.id not in self.domain_index:
            used = set(self.domain_index.values())
            n = next((i for i in range(1, MAX_DOMAIN_INDEX + 1) if i not in used), None)
            if n is None:
                raise ViewError(f"more than {MAX_DOMAIN_INDEX} domains")
            self.domain_index[obj.id] = n

    def _unindex(self, kind: str, obj) -> None:
        if kind == "vminterface" and self.vif_by_vport.get(obj.vport_id) == obj.id:
            del self.vif_by_vport[obj.vport_id]
        elif kind == "policygroup":
            for v in obj.vport_ids:
                s = self.groups_of_vport.get(v)
                if s is not None:
                    s.discard(obj.id)
                    if not s:
                        del self.groups_of_vport[v]

    def _free_bit(self, domain_id: str) -> int | None:
        used = {self.group_bit[g] for g, pg in self.policy_groups.items()
                if pg.domain_id == domain_id and g in self.group_bit}
        # None means over the limit: the group gets no tag and rules naming it are reported, not compiled.
        return next((b for b in range(MAX_GROUPS_PER_DOMAIN) if b not in used), None)

    # --- persistence -------------------------------------------------------------------------------

    def dump(self) -> dict:
        return {
            "revision": self.revision,
            "domain_index": self.domain_index,
            "group_bit": self.group_bit,
            "objects": [{"entityType": k, "entity": e, "assoc": a} for k, e, a in self.raw.values()],
            "held_domain": self.held_domain,
            "held": [list(change) for change in self.held],
        }

    @classmethod
    def restore(cls, data: dict) -> View:
        v = cls(domain_index=dict(data.get("domain_index", {})), group_bit=dict(data.get("group_bit", {})))
        v.load_snapshot(int(data.get("revision", 0)), data.get("objects", []))
        v.held_domain = data.get("held_domain")
        for change in data.get("held", []):
            v._hold(*change)
        return v

