"""Incremental desired state: which flows each VRS should hold, kept up to date change by change.

`refresh` takes what the VSD stream and the agent channel touched and recompiles only those units;
every flow whose desired value moved is remembered with the value the switch last got, so `take`
returns the minimal flow-mods (a flow changed and changed back costs nothing). A VRS that (re)connects
is not served from this log but by a full diff against its flow dump (`diff`).

Compiled flows are held to their tables' declarations (`vsc.tables.check_flow`) before they enter
the desired state: a compiler bug raises `PipelineViolation` (a ValueError naming the table, the flow
and what it broke) instead of reaching a switch, and the unit keeps its previous flows. Measured on
NFD8 (40 x 500, CPU time, three sessions): checking every flow (122,640 checks, 0.7-0.9 us each) adds
3.5-7 %, about 5 %, to a 1.4-1.5 s compile, not clearly under the 5 % we allow it; checking only the
skeleton and domain units (2,640 flows, ~2 ms) costs nothing measurable. So `CHECK_DOMAIN_FLOWS` (on)
covers the flows whose shapes follow VSD input (ACL entries of every type, subnets, domains), and
`CHECK_ENDPOINT_FLOWS` (off; the tests check every endpoint flow) the five local flows and the remote
flow of each endpoint, which two fixed compiler functions build and which are 98 % of all flows.
"""

from __future__ import annotations

import time

from openflow.flow import Flow
from vsc.acl import non_ip_allowed
from vsc.bgp.federation import Federation
from vsc.compiler import Endpoint, domain_flows, endpoint, local_flows, pipeline_flows, remote_flow
from vsc.flowops import FlowOps, Key, same
from vsc.locations import Locations
from vsc.pipeline import SLOTS_PER_VPORT, flow_key
from vsc.tables import PipelineViolation, check_flow, check_flows
from vsc.view import View

# Which compiled flows are checked against vsc/tables.py (costs: see the docstring).
UNIT_REFUSED = "domain flows refused by the pipeline check, the previous ones kept"
CHECK_DOMAIN_FLOWS = True  # the skeleton and domain units: ACL, ARP, gateway, tunnel classification
CHECK_ENDPOINT_FLOWS = False  # the per-endpoint units

_ABSENT = object()


class Programmer:
    def __init__(self, view: View, locs: Locations) -> None:
        self.view, self.locs = view, locs
        self._desired: dict[int, dict[Key, Flow]] = {}  # read through `desired`
        self.eps: dict[str, Endpoint] = {}
        self.members: dict[str, set[str]] = {}  # domain -> resolved vports
        self.local: dict[int, dict[str, set[str]]] = {}  # dpid -> domain -> its local vports
        self.units: dict[tuple, list[tuple[Key, Flow]]] = {}  # (dpid, unit) -> flows; remote ones: `remote`
        self.remote: dict[str, tuple[Key, Flow]] = {}
        # BGP-learned remote endpoints, one per address slot (domain, IP) (see vsc.bgp.federation).
        self.learned: dict[tuple[str, int], tuple[Endpoint, Key, Flow]] = {}
        self.learned_in: dict[str, set[tuple[str, int]]] = {}  # domain -> its learned slots
        self.tracked: set[int] = set()
        self.domain_state: dict[str, tuple] = {}  # domain -> (vni, index, non_ip) last compiled
        self._problems: dict[str, list[str]] = {}  # read through `problems`
        # Domains whose ACL and domain flows are to be compiled again (`settle`): a burst of ACL entries
        # costs one compile of the domain, not one per entry (quadratic in the entries of a domain).
        self._stale: set[str] = set()
        self._joined: dict[str, set[int]] = {}  # domain -> VRSs that joined it since: only theirs to compile
        self.compile_s = 0.0  # seconds `settle` spent compiling, for whoever paces the reads
        # dpid -> key -> value before its first change since the last take (tracked VRSs only).
        self._log: dict[int, dict[Key, object]] = {}
        self.fed = Federation(self)

    # --- desired-state bookkeeping --------------------------------------------------------------

    @property
    def desired(self) -> dict[int, dict[Key, Flow]]:
        """dpid -> flow key -> the flow that VRS must hold."""
        self.settle()
        return self._desired

    @property
    def problems(self) -> dict[str, list[str]]:
        """domain -> what its compile refused (vsc.problems.Problem)."""
        self.settle()
        return self._problems

    def settle(self) -> None:
        """Compile the domains changed since the last reader looked: every reader of the desired state
        (take, sent_state, host_desired, desired, problems) sees it whole. `compile_s` adds up the time
        spent (the flusher paces itself by it)."""
        if not (self._stale or self._joined):
            return
        t0 = time.perf_counter()
        while self._stale or self._joined:
            if self._stale:
                dom, only = self._stale.pop(), None
                self._joined.pop(dom, None)
            else:
                dom, only = self._joined.popitem()
            try:
                self._compile_domain(dom, only)
            except PipelineViolation as e:  # a compiler bug the pipeline's declaration caught
                kept = [p for p in self._problems.get(dom, ()) if not p.startswith(UNIT_REFUSED)]
                self._problems[dom] = [*kept, f"{UNIT_REFUSED}: {e}"]
        self.compile_s += time.perf_counter() - t0

    def desired_size(self, dpid: int) -> int:
        """How many flows `dpid` must hold, as compiled so far (a status read: compiles nothing)."""
        return len(self._desired.get(dpid, ()))

    def compiled_problems(self) -> dict[str, list[str]]:
        """`problems` as of the last compile (a status read: compiles nothing)."""
        return self._problems

    def _set(self, dpid: int, k: Key, f: Flow) -> None:
        d = self._desired.get(dpid)
        if d is None:
            d = self._desired[dpid] = {}
        old = d.get(k, _ABSENT)
        if old is f:
            return
        if dpid in self.tracked:
            log = self._log.setdefault(dpid, {})
            if k not in log:
                log[k] = old
        d[k] = f

    def _unset(self, dpid: int, k: Key) -> None:
        d = self._desired.get(dpid)
        if d is None or k not in d:
            return
        if dpid in self.tracked:
            log = self._log.setdefault(dpid, {})
            if k not in log:
                log[k] = d[k]
        del d[k]

    def _set_unit(self, dpid: int, unit: tuple, flows: list[Flow]) -> None:
        if CHECK_ENDPOINT_FLOWS if unit[0] == "local" else CHECK_DOMAIN_FLOWS:
            check_flows(flows)
        old = self.units.pop((dpid, unit), [])
        pairs = [(flow_key(f), f) for f in flows]
        keys = {k for k, _ in pairs}
        for k, _ in old:
            if k not in keys:
                self._unset(dpid, k)
        for k, f in pairs:
            self._set(dpid, k, f)
        if pairs:
            self.units[(dpid, unit)] = pairs

    def track(self, dpid: int) -> None:
        """The VRS now holds `desired` exactly (after a full sync): log changes from here on."""
        self.settle()
        self.tracked.add(dpid)
        self._log.pop(dpid, None)

    def untrack(self, dpid: int) -> None:
        """Disconnected or failed: its next sync diffs a fresh flow dump, so stop logging."""
        self.tracked.discard(dpid)
        self._log.pop(dpid, None)

    def take(self, dpid: int) -> FlowOps:
        """The flow-mods accumulated for `dpid` since the last take (or sync)."""
        self.settle()
        log = self._log.pop(dpid, {})
        d = self._desired.get(dpid, {})
        ops = FlowOps([], [], [])
        for k, old in log.items():
            new = d.get(k)
            if new is None:
                if old is not _ABSENT:
                    ops.delete.append(old)  # type: ignore[arg-type]
            elif old is _ABSENT:
                ops.add.append(new)
            elif not same(old, new):  # type: ignore[arg-type]
                (ops.modify if old.cookie == new.cookie else ops.add).append(new)  # type: ignore[union-attr]
        return ops

    def pending(self, dpid: int) -> int:
        """Changes not yet taken for `dpid`; a domain of it waiting for its compile counts as one."""
        waiting = any(d in self._stale or dpid in self._joined.get(d, ()) for d in self.local.get(dpid, ()))
        return len(self._log.get(dpid, ())) + waiting

    def sent_state(self, dpid: int) -> dict[Key, Flow]:
        """What a tracked VRS holds once everything taken so far is applied: the desired flows with the
        changes not yet taken put back to their old values (the drift audit's expectation, vsc/audit.py)."""
        self.settle()
        out = dict(self._desired.get(dpid, {}))
        for k, old in self._log.get(dpid, {}).items():
            if old is _ABSENT:
                out.pop(k, None)
            else:
                out[k] = old  # type: ignore[assignment]
        return out

    # --- recompilation ----------------------------------------------------------------------------

    def refresh(self, vports: set[str] | None = None, domains: set[str] | None = None,
                hosts: set[int] | None = None) -> None:
        """Recompile what the given vports, domains and hosts touch."""
        vports, domains, hosts = set(vports or ()), set(domains or ()), set(hosts or ())
        for dpid in hosts:
            host = self.locs.hosts.get(dpid)
            self._set_unit(dpid, ("pipeline",), pipeline_flows(host) if host else [])
            domains |= set(self.local.get(dpid, ()))
        # A vport at the slot limit may have just crossed it (or come back): its domain's problems say so
        # (vsc.tags.tag_problems), so recompile that domain too.
        domains |= {d for v in vports if len(self.view.groups_of_vport.get(v, ())) >= SLOTS_PER_VPORT
                    and (d := self.view.vport_domain(v)) is not None}
        relocal: set[str] = set()
        for dom in domains:
            d = self.view.domains.get(dom)
            state = (d.vni, self.view.domain_index.get(dom), non_ip_allowed(self.view, dom)) if d else None
            old = self.domain_state.get(dom)
            if state != old:
                self.domain_state[dom] = state  # type: ignore[assignment]
                relocal |= self.members.get(dom, set())
                vports |= self.members.get(dom, set())
        for v in vports:
            self._endpoint(v, v in relocal)
        self._stale |= domains
        self.fed.refreshed(domains)

    def _compile_domain(self, dom: str, only: set[int] | None = None) -> None:
        """The domain's flows on every VRS that has it (`only`: on those of them)."""
        hosts = [h for h, doms in self.local.items() if dom in doms and (only is None or h in only)]
        if dom not in self.view.domains:
            for h in hosts:
                self._set_unit(h, ("domain", dom), [])
            self._problems.pop(dom, None)
            return
        # A domain's flows differ between VRSs only by the tunnel port and conntrack zones: compile once per shape.
        by_tunnel: dict = {}
        for h in hosts:
            host = self.locs.hosts[h]
            shape = (host.tunnel_ofport, host.ct_zone_base, host.ct_zone_count)  # all domain_flows reads of a host
            if shape not in by_tunnel:
                by_tunnel[shape] = domain_flows(self.view, dom, host)
            flows, problems = by_tunnel[shape]
            self._problems[dom] = problems
            old = self.units.get((h, ("domain", dom)))
            if old is not None and len(old) == len(flows) and all(f == g for (_, f), g in zip(old, flows, strict=True)):
                continue  # unchanged (the common case on a VRS when another joins): nothing to log
            self._set_unit(h, ("domain", dom), flows)

    def _endpoint(self, vport_id: str, force: bool) -> None:
        new = endpoint(self.view, self.locs, vport_id)
        old = self.eps.get(vport_id)
        if new == old and not force:
            return
        self.fed.local_changed(vport_id, old, new)
        if old is not None and new is not None and (old.dpid, old.domain_id) == (new.dpid, new.domain_id):
            self.eps[vport_id] = new
            self._place(new)
            return
        if old is not None:
            self._remove(old)
        if new is not None:
            self.eps[vport_id] = new
            self.members.setdefault(new.domain_id, set()).add(vport_id)
            doms = self.local.setdefault(new.dpid, {})
            joined = new.domain_id not in doms
            doms.setdefault(new.domain_id, set()).add(vport_id)
            if joined:
                self._join(new.dpid, new.domain_id)
            self._place(new)

    def _place(self, ep: Endpoint) -> None:
        """Install an endpoint's local flows on its VRS and its remote flow everywhere else."""
        rf = remote_flow(ep)
        if CHECK_ENDPOINT_FLOWS:
            check_flow(rf)
        self._set_unit(ep.dpid, ("local", ep.vport_id), local_flows(ep, self.domain_non_ip(ep.domain_id)))
        old = self.remote.get(ep.vport_id)
        rk = flow_key(rf)
        self.remote[ep.vport_id] = (rk, rf)
        if old is not None and old[0] != rk:
            self._unspread(*old, ep.domain_id, None)
        self._spread(rk, rf, ep.domain_id, ep.dpid)

    def _spread(self, rk: Key, rf: Flow, dom: str, home: int | None) -> None:
        """A remote endpoint's flow onto every VRS of its domain but its own."""
        tracked, desired = self.tracked, self._desired
        for h, doms in self.local.items():
            if h == home or dom not in doms:
                continue
            d = desired[h]
            if h in tracked:  # inlined _set: this loop runs (endpoints x hosts) times
                prev = d.get(rk, _ABSENT)
                log = self._log.setdefault(h, {})
                if rk not in log:
                    log[rk] = prev
            d[rk] = rf

    def _unspread(self, rk: Key, rf: Flow, dom: str, home: int | None) -> None:
        # Only where the flow is still this one: a local endpoint and a learned one may take turns at
        # an address (vsc.bgp.federation), and the newcomer's flow must survive the old one's removal.
        for h, doms in self.local.items():
            if h != home and dom in doms and self._desired[h].get(rk) is rf:
                self._unset(h, rk)

    def _remove(self, ep: Endpoint) -> None:
        del self.eps[ep.vport_id]
        self.members.get(ep.domain_id, set()).discard(ep.vport_id)
        self._set_unit(ep.dpid, ("local", ep.vport_id), [])
        rf = self.remote.pop(ep.vport_id, None)
        doms = self.local.get(ep.dpid, {})
        mine = doms.get(ep.domain_id, set())
        mine.discard(ep.vport_id)
        if not mine:
            doms.pop(ep.domain_id, None)
            self._leave(ep.dpid, ep.domain_id)
        if rf is not None:
            self._unspread(*rf, ep.domain_id, ep.dpid)

    def set_learned(self, slot: tuple[str, int], ep: Endpoint | None) -> None:
        """The BGP-learned endpoint that owns an address slot now (or none): its table-20 flow on every
        VRS of the domain, exactly as for a remote endpoint this VSC's own VRSs reported."""
        old = self.learned.pop(slot, None)
        if old is not None:
            self.learned_in[slot[0]].discard(slot)
            self._unspread(old[1], old[2], slot[0], None)
        if ep is not None:
            rf = remote_flow(ep)
            rk = flow_key(rf)
            self.learned[slot] = (ep, rk, rf)
            self.learned_in.setdefault(slot[0], set()).add(slot)
            self._spread(rk, rf, slot[0], None)

    def _join(self, dpid: int, dom: str) -> None:
        """First local endpoint of `dom` on `dpid`: the VRS now needs the domain and all its peers."""
        self._joined.setdefault(dom, set()).add(dpid)  # its domain flows, compiled when next read
        if (dpid, ("pipeline",)) not in self.units:
            self._set_unit(dpid, ("pipeline",), pipeline_flows(self.locs.hosts[dpid]))
        for slot in self.learned_in.get(dom, ()):  # first, so a local endpoint at the same address wins
            self._set(dpid, *self.learned[slot][1:])
        for v in self.members.get(dom, ()):
            if self.eps[v].dpid != dpid:
                self._set(dpid, *self.remote[v])

    def _leave(self, dpid: int, dom: str) -> None:
        self._set_unit(dpid, ("domain", dom), [])
        for slot in self.learned_in.get(dom, ()):
            self._unset(dpid, self.learned[slot][1])
        for v in self.members.get(dom, ()):
            rf = self.remote.get(v)
            if rf is not None and self.eps[v].dpid != dpid:
                self._unset(dpid, rf[0])

    def domain_non_ip(self, dom: str) -> bool:
        st = self.domain_state.get(dom)
        if st is None:
            st = self.domain_state[dom] = (self.view.domains[dom].vni, self.view.domain_index.get(dom),
                                           non_ip_allowed(self.view, dom))
        return bool(st[2])

    def host_desired(self, dpid: int) -> dict[Key, Flow]:
        """What a (re)connecting VRS must end up with; includes the skeleton even with no endpoints."""
        self.settle()
        if (dpid, ("pipeline",)) not in self.units and dpid in self.locs.hosts:
            self._set_unit(dpid, ("pipeline",), pipeline_flows(self.locs.hosts[dpid]))
        return self._desired.get(dpid, {})

    # --- inputs ----------------------------------------------------------------------------------

    def on_vsd(self, op: str, kind: str, entity: dict, assoc: dict | None = None) -> None:
        self.fed.vsd_change(op, kind, entity)
        touched = self.view.apply(op, kind, entity, assoc)
        self.refresh({i for k, i in touched if k == "vport"}, {i for k, i in touched if k == "domain"})

    def on_snapshot(self, revision: int, objects: list[dict]) -> list[str]:
        """The VSD replaced the whole view: re-resolve everything (unchanged flows produce no ops)."""
        problems = self.view.load_snapshot(revision, objects)
        self.refresh_all()
        return problems

    def on_agent(self, msg: dict) -> None:
        moved, hosts = self.locs.apply(msg)
        self.refresh(moved, None, hosts)

    def refresh_all(self) -> None:
        vports = set(self.locs.by_vport) | set(self.eps)
        domains = set(self.view.domains) | set(self.domain_state)
        self.refresh(vports, domains, set(self.locs.hosts))
