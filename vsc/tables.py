"""The pipeline as a checked contract: every table declared as data, and `check_flow` holding each flow
the compiler emits to its table's declaration, so a compiler bug fails where it is made instead of as
a mis-forwarded packet three tables later.

A table declares the fields and registers its flows may match, the fields their actions may write
(set_field, move destination, write_metadata) and read (move source), the tables they may continue in
by goto_table and by ct(table=...), whether they may output, and what a packet no flow matches does.
Continuing in a table whose number is not higher is refused twice: the declaration itself is checked
at import, so no declared edge points backwards, and `check_flow` names a backward jump as such.

`vsc/pipeline.md`'s tables are rendered from `TABLES` (`python -m vsc.tables --write` rewrites them,
`--markdown` prints them); tests/test_vsc_pipeline_contract.py fails when the page and this module
disagree.

Cost (CPython 3.11, the 2-core lab machine, CPU time): 0.7-0.9 us per flow. NFD8 (40 hosts x 500
endpoints) hands the programmer 122,640 flows to check (120,665 distinct: the per-endpoint flows are
98 % of them); checking all adds 3.5-7 % (about 5 % typical, three sessions of 6-8 compiles each) to
its 1.4-1.5 s compile, checking only the skeleton and domain units (2,640 flows, ~2 ms) is lost in the
noise. So `vsc.programmer` checks the latter always and the per-endpoint flows only when
`CHECK_ENDPOINT_FLOWS` is set; the tests check every flow.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from openflow.fields import FIELD_ORDER, FIELDS
from openflow.flow import Ct, Flow, Move, Output, SetField
from openflow.text import format_flow
from vsc.pipeline import (
    REG_DST_SLOTS,
    REG_DST_TAGS,
    REG_KEY,
    REG_OUT_PORT,
    REG_PATH,
    REG_PEER_REMOTE,
    REG_PEER_TAGS,
    REG_SCRATCH,
    REG_SRC_SLOTS,
    REG_SRC_TAGS,
    Table,
)


@dataclass(frozen=True)
class TableSpec:
    table: Table
    does: str  # the "what it does" cell of pipeline.md
    flows: str  # the "flows per host" cell
    match: frozenset[str]  # fields and registers its flows may match
    writes: frozenset[str] = frozenset()  # set_field / move destinations / metadata (write_metadata)
    reads: frozenset[str] = frozenset()  # move sources
    goto: frozenset[Table] = frozenset()  # goto_table targets
    ct: frozenset[Table] = frozenset()  # ct(table=...) targets; empty: no ct() at all
    output: bool = False
    miss: Table | None = None  # where a priority-0 catch-all sends unmatched packets; None: dropped
    miss_note: str = ""  # what else a miss does (a conditional miss flow, a default verdict)


def _f(*names: str | tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for n in names:
        out.update((n,) if isinstance(n, str) else n)
    return frozenset(out)


T = Table
_ACL_MATCH = _f("metadata", "eth_type", "ip_proto", "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "udp_src",
                "udp_dst", "icmpv4_type", "icmpv4_code", REG_SRC_TAGS, REG_DST_TAGS, REG_SRC_SLOTS, REG_DST_SLOTS)

_SPECS = [
    TableSpec(
        T.CLASSIFY,
        "local port + source MAC + source IP (anti-spoofing) -> metadata = domain index, reg2/3 + reg11/12 = source tags, "
        "reg8 = 1, reg0 = ipv4_dst, goto 20. Same port + MAC + ARP with the right `arp_spa` -> 10. The tunnel "
        "port + `tun_id` = domain VNI -> metadata, reg8 = 2, reg0 = ipv4_src, goto 20. Anything else: dropped "
        "(table miss).",
        "2 per local endpoint (+1 if non-IP allowed), 1 per domain",
        _f("in_port", "eth_src", "eth_type", "ipv4_src", "arp_spa", "tun_id"),
        writes=_f("metadata", REG_SRC_TAGS, REG_SRC_SLOTS, REG_PATH, REG_KEY),
        reads=_f("ipv4_src", "ipv4_dst"),
        goto=frozenset({T.ARP, T.ENDPOINT, T.NON_IP})),
    TableSpec(
        T.ARP,
        "`arp_op=1`, `arp_tpa` in a subnet of the domain -> reply in place with the router MAC (NXAST_REG_MOVE: "
        "eth_src->eth_dst, arp_sha->arp_tha, swap arp_spa/arp_tpa via reg10), out `IN_PORT`. A gratuitous ARP "
        "(spa = tpa = own IP) is dropped.",
        "1 per subnet, 1 per local endpoint",
        _f("metadata", "eth_type", "arp_op", "arp_spa", "arp_tpa"),
        writes=_f("eth_src", "eth_dst", "arp_op", "arp_sha", "arp_tha", "arp_spa", "arp_tpa", REG_SCRATCH),
        reads=_f("eth_src", "arp_sha", "arp_spa", "arp_tpa", REG_SCRATCH),
        output=True),
    TableSpec(
        T.ENDPOINT,
        "metadata + reg0 = IP of a remote endpoint -> reg6/7 = its bitmap, reg13/14 = its slots, reg9 = 1, `tun_id` = domain VNI, "
        "`tun_ipv4_dst` = its VTEP. Miss -> 25 (local or unknown peer).",
        "**1 per remote endpoint**",
        _f("metadata", REG_KEY),
        writes=_f(REG_PEER_TAGS, REG_DST_SLOTS, REG_PEER_REMOTE, "tun_id", "tun_ipv4_dst"),
        goto=frozenset({T.PEER_MAP}),
        miss=T.PEER_MAP),
    TableSpec(
        T.PEER_MAP,
        "reg8 = 1 (sent by a local port): reg6/7 -> reg4/5 (the peer is the destination). reg8 = 2 (from a "
        "tunnel): reg6/7 -> reg2/3 and reg13/14 -> reg11/12, then reg13/14 = 0 (the peer is the source).",
        "2",
        _f(REG_PATH),
        writes=_f(REG_SRC_TAGS, REG_DST_TAGS, REG_SRC_SLOTS, REG_DST_SLOTS),
        reads=_f(REG_PEER_TAGS, REG_DST_SLOTS),
        goto=frozenset({T.LOCAL_DST}),
        miss_note="(reg8 is always 1 or 2)"),
    TableSpec(
        T.LOCAL_DST,
        "metadata + ipv4_dst = a local endpoint -> reg4/5 + reg13/14 = its tags, reg1 = its ofport. Miss: local path -> "
        "35, tunnel path -> drop. An ICMP echo request to a subnet's gateway address is answered here, in place "
        "(swap addresses via reg10, type 0, out `IN_PORT`), before any ACL.",
        "1 per local endpoint, 1 per subnet",
        _f("metadata", "eth_type", "ip_proto", "ipv4_dst", "icmpv4_type", REG_PATH),
        writes=_f(REG_DST_TAGS, REG_DST_SLOTS, REG_OUT_PORT, REG_SCRATCH, "ipv4_src", "ipv4_dst", "icmpv4_type", "eth_src",
                  "eth_dst"),
        reads=_f("ipv4_src", "ipv4_dst", "eth_src", REG_SCRATCH),
        goto=frozenset({T.CONNTRACK}),
        output=True,
        miss_note="on the tunnel path; the local path (reg8 = 1) goes to 35 by a priority-0 flow"),
    TableSpec(
        T.CONNTRACK,
        "`ct(zone = domain index (+ the datapath's `ct_zone_base`), table = 40)`",
        "1 per domain",
        _f("metadata", "eth_type"),
        ct=frozenset({T.INGRESS_STATE})),
    TableSpec(
        T.INGRESS_STATE,
        "tunnel path -> 50 (the sender applied the ingress ACL); `+est`/`+rel` -> 48; else (`+new`, `+inv`) -> 45",
        "4",
        _f(REG_PATH, "ct_state"),
        goto=frozenset({T.INGRESS_ACL, T.ROUTE, T.EGRESS_STATE}),
        miss=T.INGRESS_ACL),
    TableSpec(
        T.INGRESS_ACL,
        "the source's ingress ACL (below). Allow -> 48 (stateful: `ct(commit, zone, table=48)`), drop, or the "
        "template default.",
        "O(rules) per domain",
        _ACL_MATCH,
        goto=frozenset({T.ROUTE}),
        ct=frozenset({T.ROUTE}),
        miss_note="(each domain's default verdict is a priority-10 flow matching all its IPv4)"),
    TableSpec(
        T.ROUTE,
        "reg1 = 0 and reg9 = 1 -> output to the tunnel port (VXLAN to the remote VTEP); reg1 = 0 otherwise -> "
        "drop (outside the domain: the lab has no uplink); local destination -> 50",
        "3",
        _f(REG_OUT_PORT, REG_PEER_REMOTE),
        goto=frozenset({T.EGRESS_STATE}),
        output=True,
        miss=T.EGRESS_STATE),
    TableSpec(
        T.EGRESS_STATE,
        "`+est`/`+rel` -> 60; else (`+new`, `+inv`) -> 55",
        "3",
        _f("ct_state"),
        goto=frozenset({T.EGRESS_ACL, T.DELIVER}),
        miss=T.EGRESS_ACL),
    TableSpec(
        T.EGRESS_ACL,
        "the destination's egress ACL. Allow -> 60 (stateful: `ct(commit, zone, table=60)`).",
        "O(rules) per domain",
        _ACL_MATCH,
        goto=frozenset({T.DELIVER}),
        ct=frozenset({T.DELIVER}),
        miss_note="(each domain's default verdict is a priority-10 flow matching all its IPv4)"),
    TableSpec(
        T.DELIVER,
        "reg1 = ofport -> eth_src = router MAC, eth_dst = endpoint MAC, output",
        "1 per local endpoint",
        _f(REG_OUT_PORT),
        writes=_f("eth_src", "eth_dst"),
        output=True),
    TableSpec(
        T.NON_IP,
        "only when both directions' templates set `defaultAllowNonIP`: metadata + eth_dst = local endpoint MAC "
        "-> output. IPv4/ARP here are dropped (they failed anti-spoofing).",
        "1 per local endpoint (if enabled), 2",
        _f("metadata", "eth_type", "eth_dst"),
        output=True),
]

TABLES: dict[Table, TableSpec] = {s.table: s for s in _SPECS}


def _validate() -> None:
    """The declaration's own consistency: one spec per table, known fields, forward edges only."""
    if list(TABLES) != sorted(Table) or len(_SPECS) != len(TABLES):
        raise AssertionError("vsc.tables: declare every Table exactly once, in table order")
    for s in _SPECS:
        for name in s.match | s.writes | s.reads:
            if name not in FIELDS:
                raise AssertionError(f"vsc.tables: table {s.table.name} names unknown field {name!r}")
        for name in s.writes:
            if not FIELDS[name].settable:
                raise AssertionError(f"vsc.tables: table {s.table.name} writes read-only field {name!r}")
        for t in s.goto | s.ct | ({s.miss} if s.miss is not None else set()):
            if t <= s.table:
                raise AssertionError(f"vsc.tables: table {s.table.name} continues backwards to {t}")


_validate()


class PipelineViolation(ValueError):
    """A flow that breaks its table's declaration: names the table, the flow and every broken rule."""

    def __init__(self, flow: Flow, problems: list[str]) -> None:
        self.flow, self.problems = flow, problems
        try:
            where = f"table {flow.table} {Table(flow.table).name}"
        except ValueError:
            where = f"table {flow.table}"
        try:
            text = format_flow(flow, show_stats=False)
        except (KeyError, ValueError):  # a field or action ovs-ofctl has no name for
            text = repr(flow)
        super().__init__(f"{where}: " + "; ".join(problems) + f"\n  flow: {text}")


# Per table number, for the per-flow check: one tuple of sets, unpacked once per flow.
_RULES = {int(s.table): (s.match, s.writes, s.reads, frozenset(map(int, s.goto)), frozenset(map(int, s.ct)),
                         s.output) for s in _SPECS}


def check_flow(flow: Flow) -> None:
    """Raise PipelineViolation unless `flow` uses only what its table declares."""
    rules = _RULES.get(flow.table)
    if rules is None:
        raise PipelineViolation(flow, [f"there is no table {flow.table} in the pipeline"])
    may_match, may_write, may_read, gotos, cts, output = rules
    for m in flow.match:
        if m.name not in may_match:
            break
    else:
        for a in flow.actions:
            t = type(a)
            if t is SetField:
                if a.name not in may_write:
                    break
            elif t is Move:
                if a.dst not in may_write or a.src not in may_read:
                    break
            elif t is Output:
                if not output:
                    break
            elif t is Ct:
                if a.table not in cts if a.table is not None else not cts:
                    break
            else:
                break
        else:
            if (flow.goto is None or flow.goto in gotos) and (
                    flow.write_metadata is None or "metadata" in may_write):
                return
    raise PipelineViolation(flow, problems(flow) or ["refused by check_flow, yet `problems` finds nothing"])


def check_flows(flows: Iterable[Flow]) -> None:
    for f in flows:
        check_flow(f)


def problems(flow: Flow) -> list[str]:
    """Every rule of its table the flow breaks (empty: it conforms). The slow, explaining path."""
    try:
        s = TABLES[Table(flow.table)]
    except ValueError:
        return [f"there is no table {flow.table} in the pipeline"]
    out = []

    def onward(label: str, target: int, allowed: frozenset[Table]) -> None:
        if target <= flow.table:
            out.append(f"{label} goes backwards (only a table after {flow.table} may follow)")
        elif target not in allowed:
            out.append(f"{label} is not a declared next table (declared: {_tables(allowed) or 'none'})")

    for m in flow.match:
        if m.name not in s.match:
            out.append(f"matches {m.name}, undeclared for this table (may match: {_names(s.match)})")
    for a in flow.actions:
        if isinstance(a, SetField) and a.name not in s.writes:
            out.append(f"writes {a.name}, undeclared for this table (may write: {_names(s.writes) or 'nothing'})")
        elif isinstance(a, Move):
            if a.dst not in s.writes:
                out.append(f"moves into {a.dst}, undeclared for this table (may write: {_names(s.writes) or 'nothing'})")
            if a.src not in s.reads:
                out.append(f"moves from {a.src}, undeclared for this table (may read: {_names(s.reads) or 'nothing'})")
        elif isinstance(a, Output) and not s.output:
            out.append("outputs, and this table may not")
        elif isinstance(a, Ct):
            if not s.ct:
                out.append("uses ct(), and this table may not")
            elif a.table is not None:
                onward(f"ct(table={a.table})", a.table, s.ct)
        elif not isinstance(a, SetField | Move | Output | Ct):
            out.append(f"action {type(a).__name__} is not used by the pipeline")
    if flow.write_metadata is not None and "metadata" not in s.writes:
        out.append("writes metadata, undeclared for this table")
    if flow.goto is not None:
        onward(f"goto_table:{flow.goto}", flow.goto, s.goto)
    return out


def _names(fields: frozenset[str]) -> str:
    return ", ".join(sorted(fields, key=lambda n: FIELD_ORDER[n]))


def _tables(tables: frozenset[Table]) -> str:
    return ", ".join(str(int(t)) for t in sorted(tables))


# --- pipeline.md ---------------------------------------------------------------------------------

PAGE = Path(__file__).with_name("pipeline.md")
BEGIN = "<!-- generated from vsc/tables.py by `python -m vsc.tables --write`: edit the declaration, not this -->"
END = "<!-- end of generated tables -->"


def _miss(s: TableSpec) -> str:
    head = f"goto {int(s.miss)}" if s.miss is not None else "drop"
    return f"{head} {s.miss_note}" if s.miss_note else head


def _code(fields: frozenset[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(fields, key=lambda n: FIELD_ORDER[n])) or "-"


def markdown() -> str:
    """pipeline.md's table section: what each table does, then its contract."""
    rows = ["| # | name | what it does | flows per host |", "|---|------|--------------|----------------|"]
    rows += [f"| {int(s.table)} | {s.table.name} | {s.does} | {s.flows} |" for s in _SPECS]
    rows += ["", "The contract each compiled flow is held to (`vsc.tables.check_flow`; \"write\" = set_field, "
             "move destination or write_metadata; \"read\" = move source; no goto or ct(table=) may point to "
             "a table numbered lower than or equal to its own):", "",
             "| # | name | may match | may write | may read | goto | ct(table=) | output | miss |",
             "|---|------|-----------|-----------|----------|------|------------|--------|------|"]
    rows += [f"| {int(s.table)} | {s.table.name} | {_code(s.match)} | {_code(s.writes)} | {_code(s.reads)} | "
             f"{_tables(s.goto) or '-'} | {_tables(s.ct) or '-'} | {'yes' if s.output else '-'} | {_miss(s)} |"
             for s in _SPECS]
    return "\n".join([BEGIN, *rows, END])


def generated_section(page: str) -> str:
    """The generated part of `page` (markers included); ValueError if the markers are missing."""
    m = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), page, re.S)
    if m is None:
        raise ValueError(f"{PAGE}: no generated table section ({BEGIN!r} ... {END!r})")
    return m.group(0)


def write_page(path: Path = PAGE) -> bool:
    """Rewrite the generated section of pipeline.md; True if it changed."""
    page = path.read_text()
    new = page.replace(generated_section(page), markdown())
    if new != page:
        path.write_text(new)
    return new != page


def main(argv: list[str]) -> int:
    if argv == ["--markdown"]:
        print(markdown())
    elif argv == ["--write"]:
        print(f"{PAGE}: {'rewritten' if write_page() else 'already up to date'}")
    else:
        print("usage: python -m vsc.tables --markdown | --write", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
