"""A host's flow table as the page shows it: `ovs-ofctl dump-flows` lines, counted per table,
filtered by table and by text, and cut at a limit that the page states (never silently). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SHOWN = 500  # rows drawn at most; a 2,000-container host has ~2,500 flows, a projector shows a few dozen
_COOKIE = re.compile(r"cookie=(0x[0-9a-f]+)")
_TABLE = re.compile(r"table=(\d+)")


@dataclass
class FlowLine:
    table: int
    cookie: str
    text: str


@dataclass
class FlowView:
    total: int
    per_table: dict[int, int]  # before filtering: the shape of the whole pipeline
    matching: int
    rows: list[FlowLine] = field(default_factory=list)  # at most SHOWN



def parse(dump: str) -> list[FlowLine]:
    out = []
    for line in dump.splitlines():
        line = line.strip()
        if not line or line.startswith(("NXST_FLOW", "OFPST_FLOW")):
            continue
        t, c = _TABLE.search(line), _COOKIE.search(line)
        out.append(FlowLine(int(t.group(1)) if t else 0, c.group(1) if c else "0x0", line))
    return out


def view(dump: str, table: int | None = None, text: str = "", per_table: dict | None = None) -> FlowView:
    """`per_table`: the lab's counts when `dump` holds only the chosen table (a large host's whole
    table takes the lab longer to print than the page may take to answer)."""
    if per_table is not None and not text:
        # the lab counted and chose the table already: only the rows drawn need parsing
        rows = parse("\n".join(dump.splitlines()[:SHOWN + 2]))[:SHOWN]
        counted = {int(t): n for t, n in per_table.items()}
        matching = counted.get(table, 0) if table is not None else sum(counted.values())
        return FlowView(sum(counted.values()), dict(sorted(counted.items())), matching, rows)
    flows = parse(dump)
    if per_table is None:
        per_table = {}
        for f in flows:
            per_table[f.table] = per_table.get(f.table, 0) + 1
    per_table = {int(t): n for t, n in per_table.items()}
    needle = text.lower()
    matching = [f for f in flows if (table is None or f.table == table) and (not needle or needle in f.text.lower())]
    return FlowView(sum(per_table.values()), dict(sorted(per_table.items())), len(matching), matching[:SHOWN])
