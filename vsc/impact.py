"""What another policy for one domain would change on this VSC's VRSs: `POST /impact` on the status
server, the VSC's side of `vsplab diff` (the VSD imports no tier and cannot compile; the VSC can).

The body names a domain and the ACL templates and entries it would hold - its open draft as applied
(`vsd.drafts.as_applied` on the VSD's snapshot) - as stream objects. They replace the domain's policy in
a copy of this VSC's view (same tag and index allocations), both policies are compiled with the
compiler the VRSs are programmed by (`domain_flows`, per VRS: conntrack zones differ), and the answer is

- per VRS holding the domain: the ACL flows it would gain and lose;
- every (source vport, destination vport, protocol, port class) of the domain's endpoints on this
  VSC's VRSs whose ACL verdict changes, with the flow (cookie, entry) deciding in each table.

The verdict is read off the compiled tables, not the entries: the packet's registers are what the
endpoints' own classification flows write (so the tag layout follows the compiler), then the highest
priority flow of the ingress table and of the egress table that matches it decides. This evaluates the
request through the two ACL tables only: conntrack and the reply are `vsplab diff`'s traces' business
(tests/test_policy_impact.py holds the two to each other). Port classes cut 0-65535 at every boundary
of every port range of either policy, so one port per class is exact."""

from __future__ import annotations

import itertools

import orjson

from openflow.fields import FIELDS
from openflow.flow import Ct, Flow, SetField
from openflow.text import format_flow
from vsc.acl import PROTOCOLS, UnsupportedEntry, non_ip_allowed, port_range
from vsc.compiler import Endpoint, domain_flows, local_flows
from vsc.pipeline import Table, cookie_kind
from vsc.view import View
from vsd.drafts import ENTRIES, LIVE, TEMPLATES

ACL_TABLES = (Table.INGRESS_ACL, Table.EGRESS_ACL)


def partition(ranges: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """0-65535 cut at every range's start and after its end: no range starts or ends inside a piece."""
    cuts = sorted({0, 0x10000} | {lo for lo, _ in ranges} | {hi + 1 for _, hi in ranges})
    return [(a, b - 1) for a, b in itertools.pairwise(cuts)]


def entry_ranges(view: View) -> set[tuple[int, int]]:
    out = set()
    for e in view.acl_entries.values():
        for spec in (e.source_port, e.destination_port):
            try:
                r = port_range(spec)
            except UnsupportedEntry:
                continue
            if r is not None:
                out.add(r)
    return out


def with_policy(live: View, domain_id: str, objects: list[dict]) -> tuple[View, list[str]]:
    """A copy of `live` whose domain holds the ACL templates and entries among `objects` instead of its own."""
    mine = {oid for oid, (k, e, _) in live.raw.items() if k in TEMPLATES and e.get("parentID") == domain_id}
    keep = [{"entityType": k, "entity": e, "assoc": a} for oid, (k, e, a) in live.raw.items()
            if not (oid in mine or (k in ENTRIES and e.get("parentID") in mine))]
    templates = {o["entity"]["ID"] for o in objects if o.get("entityType") in TEMPLATES
                 and o["entity"].get("parentID") == domain_id}
    new = [{**o, "entity": {**o["entity"], "policyState": LIVE}} for o in objects
           if (o.get("entityType") in TEMPLATES and o["entity"]["ID"] in templates)
           or (o.get("entityType") in ENTRIES and o["entity"].get("parentID") in templates)]
    view = View(domain_index=dict(live.domain_index), group_bit=dict(live.group_bit))
    problems = view.load_snapshot(live.revision, keep + new)
    return view, problems


def _matches(f: Flow, fields: dict[str, int]) -> bool:
    for m in f.match:
        v = fields.get(m.name)
        full = (1 << FIELDS[m.name].bits) - 1
        if v is None or (v ^ m.value) & (full if m.mask is None else m.mask):
            return False
    return True


def _decide(flows: list[Flow], fields: dict[str, int]) -> tuple[bool, Flow | None]:
    f = max((f for f in flows if _matches(f, fields)), key=lambda f: f.priority, default=None)
    if f is None:
        return False, None
    return f.goto is not None or any(isinstance(a, Ct) and a.table is not None for a in f.actions), f


def _registers(ep: Endpoint, table: int) -> dict[str, int]:
    """What the endpoint's own classification (table 0, as a source) or local-destination flow
    (table 30) writes: its tags in whatever registers the compiler keeps them."""
    f = next(f for f in local_flows(ep, False) if f.table == table and any(m.name in ("ipv4_src", "ipv4_dst")
                                                                            for m in f.match))
    return {a.name: a.value for a in f.actions if isinstance(a, SetField)}


def _cases(views: list[View]) -> list[tuple[str, int, tuple[int, int]]]:
    ports = partition(set().union(*(entry_ranges(v) for v in views)))
    protos = {PROTOCOLS.get(e.protocol.strip().upper()) or (int(e.protocol) if e.protocol.strip().isdigit() else None)
              for v in views for e in v.acl_entries.values()}
    out = [(name, n, cls) for name, n in (("tcp", 6), ("udp", 17)) for cls in ports]
    out.append(("icmp", 1, (8, 0)))
    out += [(str(p), p, (0, 0)) for p in sorted(p for p in protos if p not in (None, 1, 6, 17))]
    return out


def _fields(src: Endpoint, dst: Endpoint, proto: int, cls: tuple[int, int]) -> dict[str, int]:
    f = {"metadata": src.dindex, "eth_type": 0x0800, "ip_proto": proto, "ipv4_src": src.ip, "ipv4_dst": dst.ip,
         **{f"reg{i}": 0 for i in range(16)}, **_registers(src, Table.CLASSIFY), **_registers(dst, Table.LOCAL_DST)}
    if proto in (6, 17):
        p = "tcp" if proto == 6 else "udp"
        f.update({f"{p}_src": 40000, f"{p}_dst": cls[0] or min(1, cls[1])})
    elif proto == 1:
        f.update(icmpv4_type=cls[0], icmpv4_code=cls[1])
    return f


def _verdicts(tables: dict[int, list[Flow]], eps: list[Endpoint], cases) -> dict[tuple, tuple]:
    out = {}
    for src, dst in itertools.permutations(eps, 2):
        for name, proto, cls in cases:
            fields = _fields(src, dst, proto, cls)
            ok_in, f_in = _decide(tables[Table.INGRESS_ACL], fields)
            ok_eg, f_eg = _decide(tables[Table.EGRESS_ACL], fields) if ok_in else (False, None)
            out[(src.vport_id, dst.vport_id, name, cls)] = (ok_in and ok_eg, f_in, f_eg)
    return out


def _side(v: tuple) -> dict:
    allowed, f_in, f_eg = v
    return {"verdict": "allow" if allowed else "deny",
            "ingress": {"cookie": hex(f_in.cookie), "kind": getattr(cookie_kind(f_in.cookie), "name", None)} if f_in else None,
            "egress": {"cookie": hex(f_eg.cookie), "kind": getattr(cookie_kind(f_eg.cookie), "name", None)} if f_eg else None}


def impact(core, domain_id: str, objects: list[dict]) -> dict:
    """The answer of `POST /impact` (see the module doc). Raises KeyError for an unknown domain."""
    with core.lock:
        live = core.view
        if domain_id not in live.domains:
            raise KeyError(f"domain {domain_id!r} is not in this VSC's view")
        view, problems = with_policy(live, domain_id, objects)
        eps = sorted((e for e in core.prog.eps.values() if e.domain_id == domain_id), key=lambda e: e.vport_id)
        hosts = {e.dpid: core.prog.locs.hosts[e.dpid] for e in eps if e.dpid in core.prog.locs.hosts}
        flows = {}
        for dpid, host in sorted(hosts.items()):
            a = {f.key: f for f in domain_flows(live, domain_id, host)[0] if f.table in ACL_TABLES}
            b = {f.key: f for f in domain_flows(view, domain_id, host)[0] if f.table in ACL_TABLES}
            flows[dpid] = (a, b)
        views = [live, view]
        non_ip = non_ip_allowed(live, domain_id)  # unchanged by an ACL-only edit; kept for the record
    cases = _cases(views)
    any_host = next(iter(flows.values()), ({}, {}))
    before = _verdicts({t: [f for f in any_host[0].values() if f.table == t] for t in ACL_TABLES}, eps, cases)
    after = _verdicts({t: [f for f in any_host[1].values() if f.table == t] for t in ACL_TABLES}, eps, cases)
    changes = [{"src": k[0], "dst": k[1], "proto": k[2], "class": list(k[3]), "before": _side(before[k]),
                "after": _side(after[k])} for k in before if before[k][0] != after[k][0]]
    return {
        "domain": domain_id, "endpoints": len(eps), "cases": len(before), "non_ip": non_ip, "problems": problems,
        "changes": changes,
        "flows": {str(dpid): {"gained": [format_flow(f, show_stats=False) for k, f in b.items() if a.get(k) != f],
                              "lost": [format_flow(f, show_stats=False) for k, f in a.items() if b.get(k) != f]}
                  for dpid, (a, b) in flows.items()},
    }


MAX_BODY = 64 << 20  # as the VSD's own limit on a request body


def answer(core, body: bytes) -> tuple[int, dict]:
    """`POST /impact` with `{"domain": ID, "objects": [stream objects]}`: (HTTP status, JSON answer);
    a 400 names the field that is wrong."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return 400, {"error": f"body: not JSON ({e})"}
    if not isinstance(req, dict) or not isinstance(req.get("domain"), str):
        return 400, {"error": "domain: the ID of the domain whose policy the objects replace"}
    objects = req.get("objects")
    if not isinstance(objects, list) or not all(
            isinstance(o, dict) and isinstance(o.get("entity"), dict) and "ID" in o["entity"] for o in objects):
        return 400, {"error": "objects: a list of stream objects ({entityType, entity with ID, assoc})"}
    try:
        return 200, impact(core, req["domain"], objects)
    except KeyError as e:
        return 404, {"error": str(e).strip("'\"")}
