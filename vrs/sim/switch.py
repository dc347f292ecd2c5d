"""The OpenFlow 1.3 side of a simulated VRS, without I/O: `handle(message) -> replies`.

Behaves like OVS (fail_mode=secure) where the controller can see it: 254 tables, table-miss drops,
flow-mod semantics of OpenFlow 1.3 (ADD replaces an identical match+priority, MODIFY/DELETE loose or
strict with cookie and out_port filters, table 255 for delete), ONF bundles applied atomically on
commit, flow stats in chunked multipart replies, and an OpenFlow error for everything it cannot
take rather than a silent accept.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

from openflow import consts as C
from openflow import encode, fastdecode, switchmsg
from openflow.decode import OFPError, check_prereqs, match_items, unpack
from openflow.flow import OFPP_LOCAL
from vrs.sim import bundles, packetio, timeouts
from vrs.sim.conntrack import Conntrack
from vrs.sim.table import FlowTable, Rule

log = logging.getLogger(__name__)
_MP = struct.Struct("!HH4x")
_FLOW_STATS_REQ = struct.Struct("!B3xII4xQQ")
_CONFIG = struct.Struct("!HH")
_ASYNC = struct.Struct("!6I")
_ROLE = struct.Struct("!I4xQ")
_PORT_NO = struct.Struct("!I")


@dataclass(slots=True)
class Port:
    ofport: int
    name: str
    mac: int
    ip: int | None = None
    vport_id: str | None = None
    kind: str = "container"  # container | tunnel | local

    def desc(self) -> switchmsg.PortDesc:
        return switchmsg.PortDesc(self.ofport, self.name, self.mac)


class SimSwitch:
    """One simulated datapath: its ports, flow tables, conntrack and OpenFlow message handling."""

    def __init__(self, name: str, datapath_id: int, vtep_ip: int, n_tables: int = 254, tunnel_ofport: int = 1):
        self.name = name
        self.datapath_id = datapath_id
        self.description = name  # dp_desc of OFPMP_DESC, like OVS's other_config:dp-desc (the agent sets a token)
        self.vtep_ip = vtep_ip
        self.n_tables = n_tables
        self.tables: list[FlowTable | None] = [None] * n_tables
        self.ports: dict[int, Port] = {
            OFPP_LOCAL: Port(OFPP_LOCAL, "br-int", 0x020000000000 | (datapath_id & 0xFFFFFFFF), kind="local"),
            tunnel_ofport: Port(tunnel_ofport, "vxlan0", 0x020000000000 | (vtep_ip & 0xFFFFFFFF), kind="tunnel"),
        }
        self.tunnel_ofport = tunnel_ofport
        self.conntrack = Conntrack()
        self.bundles: dict[int, bundles.Bundle] = {}
        self.config = (0, 128)  # (flags, miss_send_len) as set by SET_CONFIG
        self.stats = {"flow_mods": 0, "errors_sent": 0, "messages": 0, "bundles_committed": 0}
        self.started = time.monotonic()
        self.notify = None  # callable(bytes) sending an asynchronous message to the controller, if connected
        self.fabric = None  # the SimFabric this switch belongs to (packet-outs follow tunnels through it)
        self.timed: dict[Rule, int] = {}  # rules with a timeout -> their table
        self.last_used: dict[Rule, float] = {}
        self.pending_removed: list = []  # FLOW_REMOVED notices held until a bundle commits
        self.packet_outs = packetio.recent_log()
        # OF1.3 async config (master/equal, slave): packet-in, port-status, flow-removed reason masks.
        self.async_config = (0x3, 0x0, 0x7, 0x7, 0xF, 0x0)
        self._handlers = {
            C.OFPT_FLOW_MOD: self._on_flow_mod,
            C.OFPT_HELLO: self._on_hello,
            C.OFPT_ECHO_REQUEST: lambda m, x: [switchmsg.echo_reply(x, m[8:])],
            C.OFPT_ECHO_REPLY: lambda m, x: [],
            C.OFPT_FEATURES_REQUEST: lambda m, x: [switchmsg.features_reply(x, self.datapath_id, self.n_tables)],
            C.OFPT_GET_CONFIG_REQUEST: lambda m, x: [switchmsg.get_config_reply(x, *self.config)],
            C.OFPT_SET_CONFIG: self._on_set_config,
            C.OFPT_BARRIER_REQUEST: lambda m, x: [switchmsg.barrier_reply(x)],
            C.OFPT_MULTIPART_REQUEST: self._on_multipart,
            C.OFPT_EXPERIMENTER: lambda m, x: bundles.on_experimenter(self, m, x),
            C.OFPT_ROLE_REQUEST: self._on_role,
            C.OFPT_SET_ASYNC: self._on_set_async,
            C.OFPT_GET_ASYNC_REQUEST: lambda m, x: [
                encode.header(C.OFPT_GET_ASYNC_REPLY, x, struct.pack("!6I", *self.async_config))],
            C.OFPT_PACKET_OUT: lambda m, x: packetio.packet_out(self, m, x),
        }

    def new_connection(self) -> None:
        """A controller connected: what OVS keeps per connection starts over (open bundles are
        discarded, async config and miss_send_len go back to their defaults); flows stay."""
        self.bundles.clear()
        self.config = (0, 128)
        self.async_config = (0x3, 0x0, 0x7, 0x7, 0xF, 0x0)

    # --- ports ----------------------------------------------------------------------------------

    def container_ports(self) -> list[Port]:
        return [p for p in self.ports.values() if p.kind == "container"]

    def port_by_name(self, name: str) -> Port | None:
        return next((p for p in self.ports.values() if p.name == name), None)

    def free_ofport(self) -> int:
        n = 1
        while n in self.ports:
            n += 1
        return n

    # --- message dispatch -----------------------------------------------------------------------

    def handle(self, msg: bytes) -> list[bytes]:
        """Process one complete message from the controller; returns the messages to send back."""
        self.stats["messages"] += 1
        if len(msg) < C.OFP_HEADER_LEN:
            return self.error(0, C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_LEN, msg)
        xid = int.from_bytes(msg[4:8], "big")
        if msg[0] != C.OFP_VERSION and msg[1] != C.OFPT_HELLO:
            return self.error(xid, C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_VERSION, msg)
        h = self._handlers.get(msg[1])
        if h is None:
            return self.error(xid, C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_TYPE, msg)
        try:
            return h(msg, xid)
        except Exception as e:
            return self.refuse(msg, e)

    def refuse(self, msg: bytes, e: Exception) -> list[bytes]:
        """The answer to a message whose handling raised `e`: its OpenFlow error. Bad input raises
        nothing else (every read is bounded), so anything else is a simulator bug: logged, and
        answered with EPERM - one message must never cost the connection."""
        xid = int.from_bytes(msg[4:8], "big")
        if isinstance(e, OFPError):
            return self.error(xid, e.type, e.code, msg)
        log.error("%s: failed to handle message type %d", self.name, msg[1], exc_info=e)
        return self.error(xid, C.OFPET_BAD_REQUEST, C.OFPBRC_EPERM, msg)

    def error(self, xid: int, t: int, code: int, msg: bytes) -> list[bytes]:
        self.stats["errors_sent"] += 1
        return [switchmsg.error(xid, t, code, msg)]

    def _on_hello(self, msg: bytes, xid: int) -> list[bytes]:
        # Negotiate 1.3: accept a 1.3+ header version or a version bitmap that includes 1.3.
        ok = msg[0] >= C.OFP_VERSION
        p = 8
        while p + 4 <= len(msg):
            etype, elen = struct.unpack_from("!HH", msg, p)
            if etype == 1 and elen >= 8 and p + 8 <= len(msg):
                ok = bool(int.from_bytes(msg[p + 4 : p + 8], "big") & (1 << C.OFP_VERSION))
            p += max(8, (elen + 7) // 8 * 8)
        if not ok:
            return self.error(xid, C.OFPET_HELLO_FAILED, C.OFPHFC_INCOMPATIBLE, msg)
        return []

    def _on_set_config(self, msg: bytes, xid: int) -> list[bytes]:
        self.config = unpack(_CONFIG, msg, 8, "set-config")
        return []

    def _on_set_async(self, msg: bytes, xid: int) -> list[bytes]:
        self.async_config = unpack(_ASYNC, msg, 8, "set-async")
        return []

    def touch(self, rule: Rule) -> None:
        """A packet hit `rule` (idle timeouts count from the last hit)."""
        if rule in self.timed:
            self.last_used[rule] = time.monotonic()

    def packet_in(self, fields: dict[str, int], table: int, cookie: int, length: int) -> None:
        packetio.packet_in(self, fields, table, cookie, length)

    def expire(self, now: float | None = None) -> int:
        return timeouts.expire(self, now) if self.timed else 0

    def flush_removed(self) -> None:
        for table, rule in self.pending_removed:
            timeouts.removed(self, table, rule, timeouts.OFPRR_DELETE)
        self.pending_removed.clear()

    def _on_role(self, msg: bytes, xid: int) -> list[bytes]:
        role, gen = unpack(_ROLE, msg, 8, "role request")
        if role == 0:  # OFPCR_ROLE_NOCHANGE: report the current role, equal
            role = 1
        return [encode.header(C.OFPT_ROLE_REPLY, xid, struct.pack("!I4xQ", role, gen))]

    # --- flow-mods ------------------------------------------------------------------------------

    def _on_flow_mod(self, msg: bytes, xid: int) -> list[bytes]:
        self.apply(fastdecode.flow_mod(msg))
        return []

    def flow_mod(self, msg: bytes, now: float) -> list[bytes] | None:
        """The connection's shortcut for OFPT_FLOW_MOD, the message that comes by the hundred
        thousand: a plain ADD goes straight to the table; anything else takes the general path.
        `now` is shared by a whole batch of messages (one clock read, one float for all their rules)."""
        try:
            fm = fastdecode.flow_mod(msg)
            instr = fm[14]
            table = fm[3]
            goto = instr[1]
            if (fm[4] != C.OFPFC_ADD or fm[10] or fm[5] or fm[6] or table >= self.n_tables
                    or (goto is not None and (goto <= table or goto >= self.n_tables))):
                self.apply(fm)
                return None
            self.stats["flow_mods"] += 1
            t = self.tables[table] or self.table(table)
            rule, old = t.insert(fm[11], fm[12], fm[13], fm[7], fm[1], instr, fm[5], fm[6], 0, now)
            if old is not None:
                rule.n_packets, rule.n_bytes = old.n_packets, old.n_bytes
            return None
        except Exception as e:
            return self.refuse(msg, e)

    def table(self, n: int) -> FlowTable:
        t = self.tables[n]
        if t is None:
            t = self.tables[n] = FlowTable(n)
        return t

    def apply(self, fm: tuple, undo: list | None = None) -> None:
        """Apply one decoded flow-mod (fastdecode.flow_mod's tuple); with `undo`, record how to
        reverse it (bundles)."""
        (_xid, cookie, cmask, table, cmd, idle, hard, prio, oport, _og, flags, names, masks, values, instr) = fm
        self.stats["flow_mods"] += 1
        if cmd == C.OFPFC_DELETE or cmd == C.OFPFC_DELETE_STRICT:
            if table == C.OFPTT_ALL:
                tables = [t for t in self.tables if t is not None]
            elif table < self.n_tables:
                tables = [self.tables[table]] if self.tables[table] is not None else []
            else:
                raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_TABLE_ID, f"table {table}")
            for t in tables:
                if cmd == C.OFPFC_DELETE:
                    victims = t.loose(names, masks, values, cookie, cmask, oport)
                else:
                    r = t.find_strict(names, masks, values, prio)
                    ok = r is not None and not (cmask and (r.cookie ^ cookie) & cmask)
                    victims = [r] if ok and (oport == 0xFFFFFFFF or r.outputs_to(oport)) else []
                for r in victims:
                    t.remove(r)
                    if undo is not None:
                        undo.append((t.reinsert, r))
                    if r.flags & C.OFPFF_SEND_FLOW_REM:
                        self.pending_removed.append((t.table_id, r))
            if undo is None:
                self.flush_removed()
            return
        self.check_tables(fm)
        t = self.table(table)
        if cmd == C.OFPFC_ADD:
            if flags & C.OFPFF_CHECK_OVERLAP and t.overlaps(names, masks, values, prio):
                raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_OVERLAP, "overlapping flow")
            rule, old = t.insert(names, masks, values, prio, cookie, instr, idle, hard, flags)
            if old is not None and not flags & C.OFPFF_RESET_COUNTS:
                rule.n_packets, rule.n_bytes = old.n_packets, old.n_bytes
            if idle or hard:
                self.timed[rule] = table
            if undo is not None:
                undo.append((t.remove, rule))
                if old is not None:
                    undo.append((t.reinsert, old))
            return
        if cmd == C.OFPFC_MODIFY:
            targets = t.loose(names, masks, values, cookie, cmask, 0xFFFFFFFF)
        elif cmd == C.OFPFC_MODIFY_STRICT:
            r = t.find_strict(names, masks, values, prio)
            targets = [r] if r is not None and not (cmask and (r.cookie ^ cookie) & cmask) else []
        else:
            raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_COMMAND, f"command {cmd}")
        for r in targets:
            if undo is not None:
                undo.append((bundles.restore, (r, r.instr, r.cookie, r.n_packets, r.n_bytes)))
            r.instr = instr  # the cookie stays: OVS never changes it on an OpenFlow 1.3 modify
            if flags & C.OFPFF_RESET_COUNTS:
                r.n_packets = r.n_bytes = 0

    def load_flows(self, flows) -> int:
        """Install Flow objects (e.g. parsed from a real OVS dump) through the same wire path and
        checks as a controller's flow-mods; returns how many were installed."""
        n = 0
        for f in flows:
            self.apply(fastdecode.flow_mod(encode.flow_mod(f)))
            n += 1
        return n

    def check_tables(self, fm: tuple) -> None:
        """The checks OVS makes when it decodes a flow-mod (so also when a bundle-add arrives, not
        at commit): a usable table, and goto_table only forward."""
        table, cmd, goto = fm[3], fm[4], fm[14][1]
        if cmd == C.OFPFC_DELETE or cmd == C.OFPFC_DELETE_STRICT:
            return
        if table >= self.n_tables:
            if table < C.OFPTT_ALL:  # OVS's hidden internal table: there, but not the controller's
                raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_EPERM, f"table {table} is read-only")
            raise OFPError(C.OFPET_FLOW_MOD_FAILED, C.OFPFMFC_BAD_TABLE_ID, f"table {table}")
        if goto is not None and (goto <= table or goto >= self.n_tables):
            raise OFPError(C.OFPET_BAD_INSTRUCTION, C.OFPBIC_BAD_TABLE_ID, f"goto_table {goto} from {table}")

    def flows(self, table: int | None = None) -> list[tuple[int, Rule]]:
        ts = [self.tables[table]] if table is not None else self.tables
        out = [(t.table_id, r) for t in ts if t is not None for r in t.rules()]
        out.sort(key=lambda x: (x[0], -x[1].priority))
        return out

    def flow_count(self) -> int:
        return sum(t.count for t in self.tables if t is not None)

    # --- multipart ------------------------------------------------------------------------------

    def _on_multipart(self, msg: bytes, xid: int) -> list[bytes]:
        mp_type, _flags = unpack(_MP, msg, 8, "multipart request")
        if mp_type == C.OFPMP_PORT_DESC:
            ports = sorted(self.ports.values(), key=lambda p: p.ofport)
            return switchmsg.port_desc_replies(xid, [p.desc() for p in ports])
        if mp_type == C.OFPMP_FLOW:
            return self._flow_stats(msg, xid)
        if mp_type == C.OFPMP_TABLE:
            body = [struct.pack("!B3xIQQ", i, t.count if t else 0, 0, 0) for i, t in enumerate(self.tables)]
            return switchmsg.multipart_replies(xid, C.OFPMP_TABLE, body)
        if mp_type == C.OFPMP_PORT_STATS:
            # No datapath, so no traffic counters: every port reports zeros (and its age).
            (want,) = unpack(_PORT_NO, msg, 16, "port stats request")
            age = time.monotonic() - self.started
            body = [struct.pack("!I4x12QII", p, *([0] * 12), int(age), int(age % 1 * 1e9))
                    for p in sorted(self.ports) if want in (p, 0xFFFFFFFF)]
            return switchmsg.multipart_replies(xid, C.OFPMP_PORT_STATS, body)
        if mp_type == C.OFPMP_AGGREGATE:
            rules = [r for _, r in self._stats_rules(msg)]
            body = struct.pack("!QQI4x", sum(r.n_packets for r in rules), sum(r.n_bytes for r in rules), len(rules))
            return switchmsg.multipart_replies(xid, C.OFPMP_AGGREGATE, [body])
        if mp_type == C.OFPMP_DESC:
            def s(v: str, n: int) -> bytes:
                return v.encode()[: n - 1].ljust(n, b"\0")

            body = s("vsplab", 256) + s("simulated VRS", 256) + s("vsplab-sim", 256) + s("", 32) + s(self.description, 256)
            return switchmsg.multipart_replies(xid, C.OFPMP_DESC, [body])
        raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_MULTIPART, f"multipart type {mp_type}")

    def _flow_stats(self, msg: bytes, xid: int) -> list[bytes]:
        now = time.monotonic()
        entries = []
        for tid, r in self._stats_rules(msg):
            age = now - r.created
            entries.append(switchmsg.flow_stats_entry(r.flow(tid), int(age), int(age % 1 * 1e9), r.n_packets,
                                                      r.n_bytes, r.flags))
        return switchmsg.flow_stats_replies(xid, entries)

    def _stats_rules(self, msg: bytes) -> list[tuple[int, Rule]]:
        """The flows a flow-stats or aggregate request selects (table, out_port, cookie, loose match)."""
        table, oport, _og, cookie, cmask = unpack(_FLOW_STATS_REQ, msg, 16, "flow stats request")
        items, _ = match_items(msg, 48)
        check_prereqs(items)
        from openflow.fields import FIELD_ORDER, FIELDS

        items.sort(key=lambda i: FIELD_ORDER[i[0]])
        names = tuple(n for n, _, _ in items)
        masks = tuple((1 << FIELDS[n].bits) - 1 if m is None else m for n, _, m in items)
        values = tuple(v for _, v, _ in items)
        if table == C.OFPTT_ALL:
            tables = [t for t in self.tables if t is not None]
        elif table < self.n_tables:
            tables = [self.tables[table]] if self.tables[table] is not None else []
        else:
            raise OFPError(C.OFPET_BAD_REQUEST, C.OFPBRC_BAD_MULTIPART, f"table {table}")
        return [(t.table_id, r) for t in tables for r in t.loose(names, masks, values, cookie, cmask, oport)]
