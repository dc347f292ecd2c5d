"""One OpenFlow flow table of the simulated switch: a tuple-space classifier, like OVS's.

Flows are grouped into subtables by their match *mask* (which fields, with which masks); inside a
subtable a flow is one dict entry keyed by its masked values, so installing, replacing or deleting
a flow by its exact match is a dict operation and a lookup is one dict probe per subtable. A flow
keeps no match objects of its own: its subtable holds the field names and masks once for all its
flows, and the flow holds only the tuple of values that is also its dict key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from openflow.flow import Flow, MatchField, Output

Instructions = tuple  # decode.Instructions: (actions, goto, metadata, prerequisites), shared between flows


class Rule:
    __slots__ = ("priority", "cookie", "instr", "sub", "values", "idle", "hard", "flags", "created",
                 "n_packets", "n_bytes")

    def __init__(self, priority, cookie, instr, sub, values, idle, hard, flags, created):
        self.priority = priority
        self.cookie = cookie
        self.instr = instr
        self.sub = sub
        self.values = values
        self.idle = idle
        self.hard = hard
        self.flags = flags
        self.created = created
        self.n_packets = 0
        self.n_bytes = 0

    def flow(self, table: int) -> Flow:
        actions, goto, md = self.instr[:3]
        m = tuple(
            MatchField(n, v) if mk == full else MatchField(n, v, mk)
            for n, mk, full, v in zip(self.sub.names, self.sub.masks, self.sub.full, self.values, strict=True)
        )
        return Flow(table, self.priority, m, actions, goto, md, self.cookie, self.idle, self.hard)

    def outputs_to(self, port: int) -> bool:
        return any(a.__class__ is Output and a.port == port for a in self.instr[0])


class Subtable:
    """All flows of a table that match the same fields under the same masks."""

    __slots__ = ("names", "masks", "full", "rules", "max_priority", "count")

    def __init__(self, names: tuple[str, ...], masks: tuple[int, ...], full: tuple[int, ...]):
        self.names = names
        self.masks = masks
        self.full = full
        # values -> Rule, or a list of Rules by descending priority when several priorities share
        # the same values (rare, so the common case stays one object per flow).
        self.rules: dict[tuple, Rule | list[Rule]] = {}
        self.max_priority = -1
        self.count = 0

    def get(self, values: tuple, priority: int) -> Rule | None:
        r = self.rules.get(values)
        if r is None:
            return None
        if r.__class__ is list:
            for x in r:
                if x.priority == priority:
                    return x
            return None
        return r if r.priority == priority else None

    def put(self, rule: Rule) -> None:
        """Insert a rule whose (values, priority) is not present yet."""
        r = self.rules.get(rule.values)
        if r is None:
            self.rules[rule.values] = rule
        elif r.__class__ is list:
            r.append(rule)
            r.sort(key=lambda x: -x.priority)
        else:
            self.rules[rule.values] = sorted([r, rule], key=lambda x: -x.priority)
        self.count += 1
        if rule.priority > self.max_priority:
            self.max_priority = rule.priority

    def remove(self, rule: Rule) -> None:
        r = self.rules[rule.values]
        if r.__class__ is list:
            r.remove(rule)
            if len(r) == 1:
                self.rules[rule.values] = r[0]
        else:
            del self.rules[rule.values]
        self.count -= 1

    def __iter__(self) -> Iterator[Rule]:
        for r in self.rules.values():
            if r.__class__ is list:
                yield from r
            else:
                yield r

    def lookup(self, pkt: dict[str, int]) -> Rule | None:
        key = []
        for n, m in zip(self.names, self.masks, strict=True):
            v = pkt.get(n)
            if v is None:
                return None  # the packet lacks the field (e.g. tcp_dst of an ARP packet)
            key.append(v & m)
        r = self.rules.get(tuple(key))
        if r is None:
            return None
        return r[0] if r.__class__ is list else r


class FlowTable:
    def __init__(self, table_id: int):
        self.table_id = table_id
        self.subtables: dict[tuple, Subtable] = {}
        self._order: list[Subtable] | None = None
        self.count = 0

    def _sub(self, names: tuple, masks: tuple, create: bool) -> Subtable | None:
        key = (names, masks)
        st = self.subtables.get(key)
        if st is None and create:
            from openflow.fields import FIELDS

            full = tuple((1 << FIELDS[n].bits) - 1 for n in names)
            st = self.subtables[key] = Subtable(names, masks, full)
            self._order = None
        return st

    def find_strict(self, names, masks, values, priority) -> Rule | None:
        st = self.subtables.get((names, masks))
        return st.get(values, priority) if st is not None else None

    def insert(self, names, masks, values, priority, cookie, instr, idle, hard, flags,
               created: float | None = None) -> tuple[Rule, Rule | None]:
        """Add or replace the flow with this exact match and priority: (new rule, replaced or None).
        The hot path of the simulated switch, hence the inlined common case (a new key)."""
        st = self.subtables.get((names, masks))
        if st is None:
            st = self._sub(names, masks, True)
        rule = Rule(priority, cookie, instr, st, values, idle, hard, flags,
                    time.monotonic() if created is None else created)
        if priority > st.max_priority:
            st.max_priority = priority
            self._order = None
        rules = st.rules
        cur = rules.get(values)
        if cur is None:
            rules[values] = rule
            st.count += 1
            self.count += 1
            return rule, None
        old = st.get(values, priority)
        if old is not None:
            st.remove(old)
            self.count -= 1
        st.put(rule)
        self.count += 1
        return rule, old

    def reinsert(self, rule: Rule) -> None:
        """Put back a rule removed by `remove` (bundle rollback)."""
        if rule.sub.max_priority < rule.priority:
            self._order = None
        self.subtables.setdefault((rule.sub.names, rule.sub.masks), rule.sub)
        rule.sub.put(rule)
        self.count += 1

    def remove(self, rule: Rule) -> None:
        rule.sub.remove(rule)
        self.count -= 1
        if rule.sub.count == 0:
            del self.subtables[(rule.sub.names, rule.sub.masks)]
            self._order = None

    def rules(self) -> Iterator[Rule]:
        for st in list(self.subtables.values()):
            yield from list(st)

    def loose(self, names, masks, values, cookie: int, cookie_mask: int, out_port: int) -> list[Rule]:
        """Flows a non-strict modify/delete applies to: every field of the request is matched by the
        flow at least as specifically, with the same masked value; plus the cookie and out_port
        filters."""
        want = {n: (m, v) for n, m, v in zip(names, masks, values, strict=True)}
        out = []
        for st in list(self.subtables.values()):
            idx = []
            ok = True
            for n, (m, v) in want.items():
                try:
                    i = st.names.index(n)
                except ValueError:
                    ok = False
                    break
                if st.masks[i] & m != m:
                    ok = False
                    break
                idx.append((i, m, v))
            if not ok:
                continue
            for r in list(st):
                if cookie_mask and (r.cookie ^ cookie) & cookie_mask:
                    continue
                if any(r.values[i] & m != v for i, m, v in idx):
                    continue
                if out_port != 0xFFFFFFFF and not r.outputs_to(out_port):
                    continue
                out.append(r)
        return out

    def overlaps(self, names, masks, values, priority) -> bool:
        """OFPFF_CHECK_OVERLAP: could one packet match both this match and an existing flow of the
        same priority? (Fields only one side matches on are wildcards there, so they never conflict.)"""
        mine = {n: (m, v) for n, m, v in zip(names, masks, values, strict=True)}
        for st in self.subtables.values():
            for r in st:
                if r.priority != priority:
                    continue
                if all((v ^ mine[n][1]) & m & mine[n][0] == 0
                       for n, m, v in zip(st.names, st.masks, r.values, strict=True) if n in mine):
                    return True
        return False

    def lookup(self, pkt: dict[str, int]) -> Rule | None:
        """The highest-priority flow matching the packet's field values."""
        if self._order is None:
            self._order = sorted(self.subtables.values(), key=lambda s: -s.max_priority)
        best = None
        for st in self._order:
            if best is not None and st.max_priority <= best.priority:
                break
            r = st.lookup(pkt)
            if r is not None and (best is None or r.priority > best.priority):
                best = r
        return best
