"""A VRS's changes as one OpenFlow bundle: what the flusher (vsc/core.py) writes to each switch."""

from __future__ import annotations

from openflow import encode
from openflow.consts import OFPFC_ADD, OFPFC_DELETE, OFPFC_MODIFY
from openflow.flow import Flow
from vsc.flowops import FlowOps
from vsc.pipeline import KIND_MASK, Kind

_ENCODED: dict[tuple, tuple[Flow, bytes]] = {}  # (id(flow), command) -> bundle-add, for flows many VRSs share
_REMOTE = Kind.REMOTE_ENDPOINT << 56
# One bundle at a time per connection (each is committed before the next opens), so one id serves all
# and a bundle-add message is the same bytes for every VRS.
BUNDLE_ID = 1


def _bundle_add(f: Flow, command: int = OFPFC_ADD) -> bytes:
    strict = command != OFPFC_ADD
    if f.cookie & KIND_MASK != _REMOTE:
        return encode.bundle_add(BUNDLE_ID, encode.flow_mod(f, command, 0, strict=strict))
    # A remote-endpoint flow is the same object on every VRS of its domain: encode it once per command.
    key = (id(f), command)
    hit = _ENCODED.get(key)
    if hit is None or hit[0] is not f:
        if len(_ENCODED) > 500_000:
            _ENCODED.clear()
        hit = _ENCODED[key] = (f, encode.bundle_add(BUNDLE_ID, encode.flow_mod(f, command, 0, strict=strict)))
    return hit[1]


def bundle_bytes(xid: int, ops: FlowOps) -> bytes:
    """open, deletes, modifies, adds, commit, barrier: one write. Deletes first so that a flow moving
    to a new key never coexists with its stale copy. Every bundle-add (and its inner flow-mod) carries
    xid 0, so a message encoded once serves every VRS unchanged; an error inside a bundle therefore
    names the bundle (its commit fails) and the VRS is resynced as a whole. Open has `xid`, commit
    xid + 1, the barrier xid + 2."""
    parts = [encode.bundle_open(BUNDLE_ID, xid)]
    parts += [_bundle_add(f, OFPFC_DELETE) for f in ops.delete]
    parts += [_bundle_add(f, OFPFC_MODIFY) for f in ops.modify]
    parts += [_bundle_add(f) for f in ops.add]
    parts.append(encode.bundle_commit(BUNDLE_ID, xid + 1))
    parts.append(encode.barrier_request(xid + 2))
    return b"".join(parts)
