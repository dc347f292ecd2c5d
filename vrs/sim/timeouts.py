"""Flow expiry and removal notices for the simulated switch: idle and hard timeouts as OVS applies
them (checked about once a second), and OFPT_FLOW_REMOVED for flows added with OFPFF_SEND_FLOW_REM
when they expire or are deleted."""

from __future__ import annotations

import time

from openflow import switchmsg
from openflow.consts import OFPFF_SEND_FLOW_REM

OFPRR_IDLE_TIMEOUT, OFPRR_HARD_TIMEOUT, OFPRR_DELETE = 0, 1, 2


def installed(rule) -> bool:
    return rule.sub.get(rule.values, rule.priority) is rule


def removed(sw, table: int, rule, reason: int, now: float | None = None) -> None:
    """Tell the controller a flow went away, if it asked to be told."""
    if not rule.flags & OFPFF_SEND_FLOW_REM or sw.notify is None:
        return
    age = (time.monotonic() if now is None else now) - rule.created
    sw.notify(switchmsg.flow_removed(rule.flow(table), reason, int(age), int(age % 1 * 1e9), rule.n_packets,
                                     rule.n_bytes))


def expire(sw, now: float | None = None) -> int:
    """Remove the flows whose hard timeout passed or that sat unused for their idle timeout;
    returns how many were removed."""
    now = time.monotonic() if now is None else now
    n = 0
    for rule, table in list(sw.timed.items()):
        if not installed(rule):
            del sw.timed[rule]
            continue
        if rule.hard and now - rule.created >= rule.hard:
            reason = OFPRR_HARD_TIMEOUT
        elif rule.idle and now - sw.last_used.get(rule, rule.created) >= rule.idle:
            reason = OFPRR_IDLE_TIMEOUT
        else:
            continue
        sw.tables[table].remove(rule)
        del sw.timed[rule]
        sw.last_used.pop(rule, None)
        removed(sw, table, rule, reason, now)
        n += 1
    return n
