"""The os-ken application: OpenFlow 1.3 connections from VRSs, wired to `vsc.core.Vsc`.

os-ken owns the sockets, the handshake and echo; everything on the hot path bypasses its message
classes: flow-mods and bundles are built by `openflow.encode` and written with
`datapath.send(bytes)`, and flow-stats replies are decoded by `openflow.decode` from the raw
buffer (os-ken's own parsing of a 20,000-flow dump would cost about a second per VRS and drops a
reply it cannot parse).
"""

from __future__ import annotations

import logging
import time

from os_ken.base import app_manager
from os_ken.controller import controller, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser

from openflow import decode
from vsc import ofscreen
from vsc.core import Vsc

log = logging.getLogger("vsc.app")

# Set by the launcher before os-ken instantiates the app (os-ken builds apps itself, without arguments).
CORE: Vsc | None = None

OFPMPF_REPLY_MORE = 1
OFPMP_FLOW = 1


class _ParseErrorLines(logging.Filter):
    """os-ken logs a nine-line traceback, with the whole message in hex, for every message it cannot
    parse (each one of an unknown type, say): a switch sending such messages would bury the log.
    Make it one line naming the message, at most one per `every` seconds, counting the ones left out."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self.next_at = 0.0
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info:
            return True
        now = time.monotonic()
        if now < self.next_at:
            self.left_out += 1
            return False
        self.next_at = now + self.every
        exc = record.exc_info[1]
        args = record.args if isinstance(record.args, tuple) and len(record.args) == 5 else None
        if args is None:
            what = "a message"
        else:
            version, msg_type, msg_len, xid, _hex = args
            what = f"version 0x{version:02x} type {msg_type} length {msg_len} xid {xid}"
            if msg_type not in ofproto_v1_3_parser._MSG_PARSERS:
                exc = "unknown message type"
        more = f"; {self.left_out} more in the last {self.every:.0f}s not logged" if self.left_out else ""
        record.msg, record.args = "unparsable OpenFlow message from a switch (%s): %.200s%s", (what, exc, more)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self.left_out = 0
        return True


logging.getLogger("os_ken.ofproto.ofproto_parser").addFilter(_ParseErrorLines())
_osken_parse = ofproto_parser._MSG_PARSERS[ofproto_v1_3.OFP_VERSION]


def _screened_parse(datapath, version, msg_type, msg_len, xid, buf):
    # A message os-ken's parsers could loop on raises here; os-ken logs it and drops the message.
    ofscreen.check(buf, msg_len)
    if msg_type == ofproto_v1_3.OFPT_MULTIPART_REPLY and int.from_bytes(buf[8:10], "big") == OFPMP_FLOW:
        return _flow_stats_reply(datapath, version, msg_type, msg_len, xid, buf)
    return _osken_parse(datapath, version, msg_type, msg_len, xid, buf)


def _flow_stats_reply(datapath, version, msg_type, msg_len, xid, buf):
    """The OFPFlowStatsReply os-ken would make, without parsing its entries: the handler decodes
    msg.buf itself (os-ken's entry parser costs about a second per 20,000-flow dump, and loops
    forever on an instruction of length 0)."""
    msg = ofproto_v1_3_parser.MsgBase.parser.__func__(
        ofproto_v1_3_parser.OFPFlowStatsReply, datapath, version, msg_type, msg_len, xid, buf)
    msg.type, msg.flags = OFPMP_FLOW, int.from_bytes(buf[10:12], "big")
    msg.body = []
    return msg


ofproto_parser._MSG_PARSERS[ofproto_v1_3.OFP_VERSION] = _screened_parse


_osken_recv_loop = controller.Datapath._recv_loop


def _recv_loop_then_dead(self):
    """os-ken's receive loop, the switch declared dead as soon as it hangs up. With os-ken's
    native-thread hub, `serve()` waits for the send thread (which `hub.kill` cannot stop) before it
    declares the switch dead, and the send thread waits for something to send: a switch that hung up
    stayed connected for good (or until an echo request failed), and would now keep its datapath ID
    from the switch reconnecting (vsc/links.py admits one connection per datapath)."""
    try:
        _osken_recv_loop(self)
    finally:
        self.close()  # DEAD now: the VSC drops the link
        self.send(b"", close_socket=True)  # and the send thread wakes up to end


controller.Datapath._recv_loop = _recv_loop_then_dead


def _datapath_id(dp) -> int | None:
    """The datapath ID a connection said in its (first) features reply. os-ken takes the ID of every
    features reply as dp.id; this is the one the VSC admitted the connection as."""
    return getattr(dp, "vsc_datapath_id", None)


def _closer(dp):
    """Ends the connection from a thread of its own: os-ken queues the DEAD event to this app, so
    closing must never wait for that queue on the app's thread, nor under the VSC's lock."""
    return lambda: hub.spawn(dp.close)


class VscApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if CORE is None:
            raise RuntimeError("vsc.app.CORE must be set before os-ken starts the app")
        self.core = CORE

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        peer = ":".join(map(str, dp.address)) if isinstance(dp.address, tuple) else str(dp.address)
        first = _datapath_id(dp)
        if first is not None:
            # One datapath per connection: a switch that claims another ID on the same connection is
            # broken or lying, and its first ID must not stay taken once it goes.
            self.core.input_error(f"OpenFlow connection from {peer} as datapath {first:016x} sent another "
                                  f"features reply (datapath {ev.msg.datapath_id:016x}); closing it")
            _closer(dp)()
            return
        dp.vsc_datapath_id = ev.msg.datapath_id  # (os-ken's own handler may not have set dp.id yet)
        self.core.datapath_up(ev.msg.datapath_id, dp.send, _closer(dp), peer)

    @set_ev_cls(ofp_event.EventOFPDescStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _description(self, ev):
        msg = ev.msg
        desc = msg.body.dp_desc
        desc = desc.decode("ascii", "replace") if isinstance(desc, bytes) else str(desc)
        self.core.on_description(_datapath_id(msg.datapath), msg.xid, desc, msg.datapath.send)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _dead(self, ev):
        dp = ev.datapath
        if _datapath_id(dp) is not None:
            self.core.datapath_down(_datapath_id(dp), dp.send)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _flow_stats(self, ev):
        msg = ev.msg
        dpid = _datapath_id(msg.datapath)
        try:
            entries = decode.flow_stats_reply(bytes(msg.buf[16:msg.msg_len]))
        except Exception as e:  # a flow we cannot decode: report it rather than sync against a partial dump
            self.core.on_error(dpid, msg.xid, f"undecodable flow-stats reply: {e}", msg.datapath.send)
            return
        self.core.on_flow_stats(dpid, msg.xid, entries, bool(msg.flags & OFPMPF_REPLY_MORE), msg.datapath.send)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _barrier(self, ev):
        self.core.on_barrier(_datapath_id(ev.msg.datapath), ev.msg.xid, ev.msg.datapath.send)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev):
        msg = ev.msg
        data = bytes(msg.data or b"")[:64].hex()
        self.core.on_error(_datapath_id(msg.datapath), msg.xid,
                           f"OFPT_ERROR type={msg.type} code={msg.code} data={data}", msg.datapath.send)
