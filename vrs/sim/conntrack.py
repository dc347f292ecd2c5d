"""A per-switch connection tracker with the ct_state bits OVS sets, enough for stateful ACLs: a
committed connection answers +est in its own direction and +est+rpl in reverse; an unknown flow is
+new (or +inv for a TCP segment that cannot open a connection, and for non-IP packets)."""

from __future__ import annotations

from dataclasses import dataclass

from openflow.flow import CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK

_ICMP_REPLY = {8: 0, 13: 14, 15: 16, 17: 18}  # echo, timestamp, info, mask request -> reply type
_ICMP_ERRORS = {3, 4, 5, 11, 12}  # unreachable, source quench, redirect, time exceeded, parameter problem
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10


@dataclass(slots=True)
class Connection:
    zone: int
    key: tuple  # original direction: (proto, src, sport, dst, dport)
    packets: int = 0
    mark: int = 0


def _key(f: dict[str, int]) -> tuple | None:
    proto = f.get("ip_proto")
    if proto is None:
        return None
    if proto == 6:
        return (6, f["ipv4_src"], f["tcp_src"], f["ipv4_dst"], f["tcp_dst"])
    if proto == 17:
        return (17, f["ipv4_src"], f["udp_src"], f["ipv4_dst"], f["udp_dst"])
    if proto == 1:
        # The type stands in for the port: a request's reverse key carries the reply type, so an
        # echo reply is +rpl while a fresh echo request the other way is +new.
        return (1, f["ipv4_src"], f["icmpv4_type"], f["ipv4_dst"], f.get("icmp_id", 0))
    return (proto, f["ipv4_src"], 0, f["ipv4_dst"], 0)


def _reverse(k: tuple) -> tuple:
    proto, s, sp, d, dp = k
    if proto == 1:
        return (1, d, _ICMP_REPLY.get(sp, sp), s, dp)  # dp: the echo identifier, the same both ways
    return (proto, d, dp, s, sp)


class Conntrack:
    def __init__(self) -> None:
        # (zone, key as seen on the wire) -> (connection, is the reply direction)
        self.table: dict[tuple, tuple[Connection, bool]] = {}

    def __len__(self) -> int:
        return len({id(c) for c, _ in self.table.values()})

    def process(self, f: dict[str, int], zone: int, commit: bool, dry_run: bool = False) -> int:
        """Run a packet (its field dict) through conntrack; returns the ct_state it gets. `commit`
        records a new connection unless `dry_run`."""
        k = _key(f)
        if k is None:
            return CT_TRK | CT_INV
        if k[0] == 1 and f["icmpv4_type"] in _ICMP_ERRORS:
            # An error is related to the connection of the packet it quotes, never a connection itself.
            inner = f.get("icmp_inner")
            hit = self.table.get((zone, inner)) if inner is not None else None
            if hit is None:
                return CT_TRK | CT_INV
            return CT_TRK | CT_REL | (0 if hit[1] else CT_RPL)
        hit = self.table.get((zone, k))
        flags = f.get("tcp_flags", TCP_SYN) if k[0] == 6 else 0
        if hit is not None:
            conn, reply = hit
            if not dry_run:
                conn.packets += 1
                if flags & TCP_RST:
                    self._forget(conn)
            return CT_TRK | CT_EST | (CT_RPL if reply else 0)
        if k[0] == 6 and (not flags & TCP_SYN or flags & (TCP_ACK | TCP_RST)):
            return CT_TRK | CT_INV  # a mid-stream segment of no known connection
        if commit and not dry_run:
            conn = Connection(zone, k, 1)
            self.table[(zone, k)] = (conn, False)
            self.table[(zone, _reverse(k))] = (conn, True)
        return CT_TRK | CT_NEW

    def _forget(self, conn: Connection) -> None:
        self.table.pop((conn.zone, conn.key), None)
        self.table.pop((conn.zone, _reverse(conn.key)), None)

    def flush(self) -> None:
        self.table.clear()

    def dump(self) -> list[dict]:
        seen, out = set(), []
        for conn, _ in self.table.values():
            if id(conn) in seen:
                continue
            seen.add(id(conn))
            proto, s, sp, d, dp = conn.key
            out.append({"zone": conn.zone, "proto": proto, "src": s, "sport": sp, "dst": d, "dport": dp,
                        "packets": conn.packets})
        return out
