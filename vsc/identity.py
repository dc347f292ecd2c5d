"""Who speaks for a datapath: agent-channel sessions bound to the datapath their hello names, and what
an OpenFlow connection must show to be taken as that datapath's (docs/interfaces.md section 2).

A session starts with the VSC's challenge. Its hello binds it to one datapath ID; every later message
must name that datapath. An enrolled datapath (vsc/enrolment.py) is bound only by a hello that proves
its secret, at its pinned VTEP, and then outranks whoever held it without a proof. A datapath nobody
enrolled is bound by the first session that claims it, for as long as that session stays connected
(refused outright when the VSC requires enrolment).

The bound session names its OpenFlow connection with `{"op": "openflow", "dp_desc": TOKEN}`: the
agent has its switch describe itself (OFPMP_DESC dp_desc) with that token, which nothing but the
switch's own OpenFlow connection can show (vsc/links.py matches them).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from vsc.enrolment import Enrolment, hello_proof
from vsc.locations import AgentError

log = logging.getLogger("vsc.identity")

# What an OpenFlow connection for a datapath must describe itself as (vsc/links.py): None = anyone may
# speak for it (no session told us more), NOBODY = nobody yet (enrolled, no proven session named one).
NOBODY = object()


class AgentRefused(AgentError):
    """The session may not go on: the server tells the agent why and closes the connection."""


@dataclass(eq=False)
class AgentSession:
    peer: str
    nonce: str
    close: Callable[[], None] | None = None  # ends the connection (another proven session took over)
    datapath_id: int | None = None
    verified: bool = False


class Sessions:
    def __init__(self, enrolment: Enrolment) -> None:
        self.enrolment = enrolment
        self.bound: dict[int, AgentSession] = {}
        # The token the latest session bound to a datapath named (None: it named none). Kept after the
        # session ends: an agent restarting does not unseat the switch it already vouched for.
        self.tokens: dict[int, str | None] = {}
        self.unbound = 0

    def open(self, peer: str, close: Callable[[], None] | None = None) -> AgentSession:
        self.unbound += 1
        return AgentSession(peer, secrets.token_hex(16), close)

    def close(self, session: AgentSession) -> None:
        if session.datapath_id is None:
            self.unbound -= 1
        elif self.bound.get(session.datapath_id) is session:
            del self.bound[session.datapath_id]
        session.close = None

    def need(self, datapath_id: int):
        """What an OpenFlow connection for `datapath_id` must describe itself as: a token, None
        (anything) or NOBODY."""
        if datapath_id in self.tokens:
            return self.tokens[datapath_id]
        if self.enrolment.required or self.enrolment.get(datapath_id) is not None:
            return NOBODY
        return None

    def check(self, session: AgentSession, msg: dict) -> bool:
        """Raise AgentError (AgentRefused) unless `session` may send `msg` (already well formed: see
        vsc.locations.check_message); a hello binds the session. Returns whether the session proved
        its datapath's secret. The caller holds the VSC's lock."""
        dpid = msg["datapath_id"]
        if msg["op"] == "hello":
            self._hello(session, msg)
        elif session.datapath_id is None:
            raise AgentRefused(f"{msg['op']!r} before hello")
        elif dpid != session.datapath_id:
            raise AgentError(f"datapath_id {dpid} is not this session's ({session.datapath_id})")
        elif not session.verified and self.enrolment.get(dpid) is not None:
            raise AgentRefused(f"datapath {dpid} has been enrolled since this session's hello: say hello again "
                               "with its proof")
        elif msg["op"] == "openflow":
            if session.verified or self.enrolment.get(dpid) is None:
                self.tokens[dpid] = msg["dp_desc"]
        return session.verified

    def _hello(self, session: AgentSession, msg: dict) -> None:
        dpid, vtep = msg["datapath_id"], str(IPv4Address(msg["vtep_ip"]))
        if session.datapath_id not in (None, dpid):
            raise AgentRefused(f"this session speaks for datapath {session.datapath_id}, not {dpid}")
        entry = self.enrolment.get(dpid)
        holder = self.bound.get(dpid)
        if entry is not None:
            proof = msg.get("proof")
            if not isinstance(proof, str) or not hmac.compare_digest(
                    proof, hello_proof(entry.secret, session.nonce, dpid, msg["vtep_ip"])):
                raise AgentRefused(f"datapath {dpid} is enrolled: its hello must prove its secret (vrs --secret-file)")
            if entry.vtep_ip is not None and entry.vtep_ip != vtep:
                raise AgentRefused(f"datapath {dpid} is enrolled at VTEP {entry.vtep_ip}, not {vtep} "
                                   "(enrol it again to move it)")
            if entry.vtep_ip is None:
                self.enrolment.pin_vtep(dpid, vtep)
            verified = True
        elif self.enrolment.required:
            raise AgentRefused(f"datapath {dpid} is not enrolled (vsc enrol {dpid})")
        else:
            verified = False
            if holder is not None and holder is not session:
                raise AgentRefused(f"datapath {dpid} is already reported by the agent at {holder.peer}")
        if holder is not None and holder is not session:
            # A proven newcomer is the VRS itself come back (an agent restarted before the VSC noticed
            # its old connection die): the old session goes.
            log.warning("datapath %016x: agent at %s proved its secret; closing the old session from %s",
                        dpid, session.peer, holder.peer)
            if holder.close is not None:
                holder.close()
            holder.datapath_id = None  # so that closing it later does not unbind the newcomer
            self.unbound += 1
        if session.datapath_id is None:
            self.unbound -= 1
        session.datapath_id, session.verified = dpid, verified
        self.bound[dpid] = session
