"""Which packets to trace so that one trace per case is exact: every ordered pair of endpoints, every
protocol, and for TCP/UDP one representative per *port class*. The classes are the pieces into which
every boundary of every port range named by any entry (of either policy compared) cuts 0-65535: no
entry's range starts or ends inside a class, so every port of a class meets the same flows.

The request's source port only matters when an entry names a source port, or when some allow is
stateless (its reply is then evaluated by the ACL on its destination port, the request's source port);
otherwise replies skip the ACL (conntrack) and one ephemeral source port stands for all."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vsc.acl import PROTOCOLS, UnsupportedEntry, port_range
from vsc.impact import entry_ranges, partition
from vsc.view import View

FULL = (0, 0xFFFF)
EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range, where a client's port comes from
ECHO = (8, 0)


@dataclass(frozen=True, order=True)
class Case:
    src: str
    dst: str
    proto: str  # tcp | udp | icmp | a protocol number
    dport: tuple[int, int] | None = None  # port class (TCP/UDP), or (ICMP type, code)
    sport: tuple[int, int] | None = None  # source port class, when it matters

    def label(self) -> str:
        if self.proto in ("tcp", "udp"):
            where = f"{self.proto}/{_span(self.dport)}"
            if self.sport is not None and self.sport != EPHEMERAL:
                where += f" from port {_span(self.sport)}"
        elif self.proto == "icmp":
            where = "icmp echo" if self.dport == ECHO else f"icmp type {self.dport[0]} code {self.dport[1]}"
        else:
            where = f"ip proto {self.proto}"
        return f"{self.src} -> {self.dst} {where}"

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "proto": self.proto,
                "port_class": list(self.dport) if self.proto in ("tcp", "udp") else None,
                "icmp": list(self.dport) if self.proto == "icmp" else None,
                "sport_class": list(self.sport) if self.sport else None}


def _span(r: tuple[int, int] | None) -> str:
    if r is None or r == FULL:
        return "*"
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


@dataclass
class Dimensions:
    ports: list[tuple[int, int]]
    sports: list[tuple[int, int]] | None  # None: the source port does not matter
    icmp: list[tuple[int, int]]
    other_protos: list[int]


def dimensions(views: list[View]) -> Dimensions:
    """The port classes, ICMP types and extra protocols named by the entries of all `views`."""
    ranges: set[tuple[int, int]] = set().union(*(entry_ranges(v) for v in views))
    icmp = {ECHO}
    protos: set[int] = set()
    sport_matters = False
    for view in views:
        for e in view.acl_entries.values():
            try:
                sport_matters |= port_range(e.source_port) is not None
            except UnsupportedEntry:
                continue  # not compiled, so it matches nothing (the compile problems say so)
            sport_matters |= e.action == "FORWARD" and not e.stateful
            p = e.protocol.strip().upper()
            num = PROTOCOLS.get(p) if p in PROTOCOLS else (int(p) if p.isdigit() else None)
            if num == 1 and e.icmp_type not in (None, "", "*"):
                code = int(e.icmp_code) if e.icmp_code not in (None, "", "*") else 0
                icmp.add((int(e.icmp_type), code))
            elif num is not None and num not in (1, 6, 17):
                protos.add(num)
    ports = partition(ranges)
    return Dimensions(ports, ports if sport_matters else None, sorted(icmp), sorted(protos))


def cases(endpoints: list[str], dims: Dimensions) -> list[Case]:
    out = []
    # the class a client's port comes from first, so the first example of anything is an ordinary one
    sports = sorted(dims.sports or [EPHEMERAL], key=lambda c: not c[0] <= EPHEMERAL[0] <= c[1])
    for src, dst in itertools.permutations(endpoints, 2):
        for proto in ("tcp", "udp"):
            out += [Case(src, dst, proto, d, s) for d in dims.ports for s in sports]
        out += [Case(src, dst, "icmp", t) for t in dims.icmp]
        out += [Case(src, dst, str(p)) for p in dims.other_protos]
    return out


def pick(cls: tuple[int, int], n: int) -> int:
    """A member of the class; `n` varies it so repeated probes are new connections to conntrack. Port
    0 is avoided where the class has others (a real stack never sends from or to it)."""
    lo, hi = cls
    if lo == 0 and hi > 0:
        lo = 1
    return lo + n % (hi - lo + 1)
