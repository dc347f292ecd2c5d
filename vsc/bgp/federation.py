"""The VSC's side of EVPN federation, kept incrementally beside `vsc.programmer`: the routes other VSCs
sent (imported into this view as remote endpoints) and the routes of this VSC's own endpoints.

Receiving: every route is held per peer (the newest announcement of a key wins), imported into the
domains whose route target it carries, and competes for its address slot (domain, IP): the slot's
table-20 flow belongs to a local endpoint if this VSC has one there (the local truth wins), else to
the most recently announced route (an endpoint that moved to another VSC). The programmer installs the
winner exactly like a remote endpoint its own VRSs reported (`Programmer.set_learned`).

Advertising: a local endpoint whose route may have changed is marked dirty; `take_adverts` turns the
dirty ones into announcements and withdrawals for the speaker, never repeating an unchanged route.

Nothing here runs until `enable` (a VSC without BGP pays nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsc.bgp.route import MacIpRoute
from vsc.bgp.routes import (
    RouteError,
    advertised_route,
    community_bits,
    domains_by_rt,
    imported_endpoints,
    is_own,
)
from vsc.compiler import Endpoint

if TYPE_CHECKING:
    from vsc.programmer import Programmer

RouteKey = tuple[str, str, str | None]
Slot = tuple[str, int]  # (domain, IPv4): what a table-20 flow is keyed on


class Federation:
    def __init__(self, prog: Programmer) -> None:
        self.prog, self.view = prog, prog.view
        self.enabled = False
        self.router_id: str | None = None
        # Receiving.
        self.routes: dict[RouteKey, dict[str, MacIpRoute]] = {}  # key -> peer -> route, newest last
        self.seq: dict[RouteKey, int] = {}  # key -> order of its latest announcement
        self.per_peer: dict[str, int] = {}  # routes held per peer (convergence compares the speaker's)
        self._n = 0
        self.imported: dict[RouteKey, dict[str, Endpoint]] = {}  # key -> domain -> endpoint
        self.rts: dict[RouteKey, tuple[str, ...]] = {}  # key -> route targets of its current route
        self.by_rt: dict[str, set[RouteKey]] = {}
        self.by_domain: dict[str, set[RouteKey]] = {}
        self.slots: dict[Slot, set[RouteKey]] = {}
        self.local_addrs: dict[Slot, set[str]] = {}  # slot -> local vports holding it
        self.ignored = 0  # own routes reflected back
        self._touched: set[Slot] = set()
        self._recheck: set[str] = set()
        self.dom_state: dict[str, tuple] = {}
        self._rt_domains: dict[str, list[str]] = {}
        self._bits: dict[str, dict[str, int]] = {}
        # Advertising.
        self.advertised: dict[str, MacIpRoute] = {}  # vport -> its route as last handed out
        self.dirty: set[str] = set()
        self.problems: list[str] = []

    def enable(self, router_id: str) -> None:
        """BGP is configured: index the local endpoints and advertise every one of them."""
        self.enabled, self.router_id = True, router_id
        for v, ep in self.prog.eps.items():
            self.local_addrs.setdefault((ep.domain_id, ep.ip), set()).add(v)
        self.dirty |= set(self.prog.eps)
        self._recheck |= set(self.view.domains)
        self.refreshed(set())

    # --- hooks of the programmer -----------------------------------------------------------------

    def local_changed(self, vport_id: str, old: Endpoint | None, new: Endpoint | None) -> None:
        if not self.enabled:
            return
        for ep, add in ((old, False), (new, True)):
            if ep is None:
                continue
            slot = (ep.domain_id, ep.ip)
            holders = self.local_addrs.setdefault(slot, set())
            if add:
                holders.add(vport_id)
            else:
                holders.discard(vport_id)
                if not holders:
                    del self.local_addrs[slot]
            self._touched.add(slot)
        self.dirty.add(vport_id)

    def vsd_change(self, op: str, kind: str, entity: dict) -> None:
        """Before the view applies a policy-group change: a group that appears, goes, moves or is renamed
        for federation (EVPNCommunityTag) changes how routes of its domain read (the view itself only
        reports the members that joined or left)."""
        if not self.enabled or kind != "policygroup":
            return
        old = self.view.policy_groups.get(entity.get("ID"))
        new_dom = entity.get("parentID")
        if (old is None or op == "DELETE" or old.evpn_tag != entity.get("EVPNCommunityTag")
                or old.domain_id != new_dom):
            self._recheck |= {d for d in (old and old.domain_id, new_dom) if d}

    def refreshed(self, domains: set[str]) -> None:
        """After the programmer recompiled `domains` (and the endpoints it was handed)."""
        if not self.enabled:
            return
        doms = set(domains) | self._recheck
        self._recheck.clear()
        changed = self._domain_states(doms) if doms else []
        if changed:
            self._rt_domains = domains_by_rt(self.view)
            keys: set[RouteKey] = set()
            for d in changed:
                keys |= self.by_domain.get(d, set())
                st = self.dom_state.get(d)
                if st and st[0]:
                    keys |= self.by_rt.get(st[0], set())
                self.dirty |= self.prog.members.get(d, set())
            for k in keys:
                self._remap(k)
        self._reconcile()

    def _domain_states(self, doms: set[str]) -> list[str]:
        """The domains whose route target, VNI, index or community-to-bits reading changed."""
        bits = community_bits(self.view, doms)
        changed = []
        for d in doms:
            dom = self.view.domains.get(d)
            st = None if dom is None else (dom.route_target, dom.vni, self.view.domain_index.get(d),
                                           tuple(sorted(bits.get(d, {}).items())))
            if st == self.dom_state.get(d):
                continue
            changed.append(d)
            if st is None:
                self.dom_state.pop(d, None)
                self._bits.pop(d, None)
            else:
                self.dom_state[d], self._bits[d] = st, bits.get(d, {})
        return changed

    # --- receiving -------------------------------------------------------------------------------

    def on_routes(self, peer: str, announced: list[MacIpRoute], withdrawn: list[RouteKey]) -> list[str]:
        """A peer's update; returns what could not be taken."""
        self.problems = []
        for r in announced:
            if is_own(r, self.router_id):
                self.ignored += 1
                continue
            per = self.routes.setdefault(r.key, {})
            if per.pop(peer, None) is None:
                self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
            per[peer] = r
            self._n += 1
            self.seq[r.key] = self._n
            self._remap(r.key)
        for k in withdrawn:
            k = tuple(k)  # type: ignore[assignment]
            per = self.routes.get(k)
            if per is None or per.pop(peer, None) is None:
                continue
            self.per_peer[peer] -= 1
            if not per:
                del self.routes[k]
                self.seq.pop(k, None)
            self._remap(k)
        self._reconcile()
        return self.problems

    def drop_peer(self, peer: str) -> None:
        """The session went down: everything it sent is gone (RFC 4271 section 8)."""
        self.on_routes(peer, [], [k for k, per in self.routes.items() if peer in per])

    def received(self) -> int:
        return sum(self.per_peer.values())

    def _remap(self, k: RouteKey) -> None:
        per = self.routes.get(k)
        route = next(reversed(per.values())) if per else None
        new: dict[str, Endpoint] = {}
        if route is not None:
            try:
                new = imported_endpoints(self.view, route, self._rt_domains, self._bits)
            except RouteError as e:
                self.problems.append(str(e))
        for rt in self.rts.pop(k, ()):
            self.by_rt.get(rt, set()).discard(k)
        if route is not None:
            self.rts[k] = route.route_targets
            for rt in route.route_targets:
                self.by_rt.setdefault(rt, set()).add(k)
        old = self.imported.pop(k, {})
        for d, ep in old.items():
            self.slots.get((d, ep.ip), set()).discard(k)
            self.by_domain.get(d, set()).discard(k)
            self._touched.add((d, ep.ip))
        for d, ep in new.items():
            self.slots.setdefault((d, ep.ip), set()).add(k)
            self.by_domain.setdefault(d, set()).add(k)
            self._touched.add((d, ep.ip))
        if new:
            self.imported[k] = new

    def _reconcile(self) -> None:
        """Give every touched address slot to its rightful owner."""
        for slot in self._touched:
            cands = self.slots.get(slot)
            want = None
            if cands and not self.local_addrs.get(slot):
                want = self.imported[max(cands, key=self.seq.__getitem__)][slot[0]]
            elif not cands:
                self.slots.pop(slot, None)
            cur = self.prog.learned.get(slot)
            if (cur[0] if cur else None) != want:
                self.prog.set_learned(slot, want)
        self._touched.clear()

    # --- advertising ------------------------------------------------------------------------------

    def take_adverts(self) -> tuple[list[MacIpRoute], list[RouteKey]]:
        """(announce, withdraw) for the local endpoints marked since the last call."""
        announce, withdraw = [], []
        for v in self.dirty:
            ep = self.prog.eps.get(v)
            new = advertised_route(self.view, ep, self.router_id) if ep and self.router_id else None
            old = self.advertised.get(v)
            if new == old:
                continue
            if old is not None and (new is None or old.key != new.key):
                withdraw.append(old.key)
            if new is None:
                del self.advertised[v]
            else:
                self.advertised[v] = new
                announce.append(new)
        self.dirty.clear()
        return announce, withdraw
