"""`vsplab explain` on an emu lab: the exchange walked through the hosts' real switches with
`ofproto/trace` (vsplab/fidelity/walk.py, the teaching page's trace), each ACL table's matched flow
turned back into its VSD entry by cookie, as `vsplab.policy.verdicts` does on a simulated fabric.

ofproto/trace holds no connections: the reply is traced with the conntrack state the request's trace
left on each host, so this is the pipeline's verdict for a new connection (what `vsplab fidelity`
holds against real packets)."""

from __future__ import annotations

from vsplab.fidelity.walk import EmuWalker
from vsplab.policy.cases import Case
from vsplab.policy.compiled import Compiled
from vsplab.policy.verdicts import Leg, Outcome, acl_deciders


def _drop_point(walk: dict) -> str:
    """Where a walked packet ended: the last table it met and the flow (or miss) it hit there."""
    if not walk["steps"]:
        return "; ".join(walk["drops"]) or "not delivered"
    last = walk["steps"][-1]
    return f"{last['switch']} table {last['table']} ({last['table_name']}): {last['match'] or 'no flow matched'}"


def walked_leg(compiled: Compiled, walk: dict, dst: str) -> Leg:
    deciders = acl_deciders(compiled, ((s["table"], int(s["cookie"], 16)) for s in walk["steps"] if s["cookie"]))
    ok = any(d["container"] == dst for d in walk["delivered"])
    return Leg(ok, deciders, "" if ok else _drop_point(walk), walk=walk)


def emu_exchange(lab, compiled: Compiled, case: Case) -> Outcome:
    port = case.dport[0] if case.proto in ("tcp", "udp") else None
    walked = EmuWalker(lab).walk(case.src, case.dst, case.proto, port)
    passes = {p["label"]: p for p in walked["passes"]}
    if "request" not in passes:  # the ARP for the next hop went unanswered
        arp = passes["ARP request"]
        return Outcome("deny", Leg(False, drop=walked["detail"], walk=arp), detail=walked["detail"])
    request = walked_leg(compiled, passes["request"], case.dst)
    reply = walked_leg(compiled, passes["reply"], case.src) if "reply" in passes else None
    if reply is None and walked["detail"].startswith("reply"):
        reply = Leg(False, drop=walked["detail"])
    detail = "" if walked["verdict"] == "allow" else (f"request: {request.drop}" if not request.delivered
                                                       else f"reply: {reply.drop if reply else walked['detail']}")
    return Outcome(walked["verdict"], request, reply, detail)
