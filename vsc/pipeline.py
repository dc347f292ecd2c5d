"""The physical pipeline every VRS gets: table numbers, registers and cookie layout.

`vsc/pipeline.md` is the prose reference (read it beside a flow dump); this module is the single
place the numbers live, so the compiler, the tests and anyone decoding a cookie agree. What each table
may match, write and continue to is declared, and checked flow by flow, in `vsc/tables.py`.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

from openflow.fields import FIELD_ORDER, FIELDS
from openflow.flow import CT_EST, CT_INV, CT_NEW, CT_REL, CT_TRK, Flow, MatchField


class Table(IntEnum):
    CLASSIFY = 0  # which port/tunnel a packet came from -> domain, source tags, path
    ARP = 10  # ARP answered locally (proxy-ARP per subnet), never flooded
    ENDPOINT = 20  # peer lookup: one flow per remote endpoint of the domain, keyed on reg0 (an IP)
    PEER_MAP = 25  # the peer's tags become destination tags (local path) or source tags (tunnel path)
    LOCAL_DST = 30  # local destination lookup by ipv4_dst: destination tags + output port
    CONNTRACK = 35  # ct() in the domain's zone
    INGRESS_STATE = 40  # established traffic skips the ingress ACL
    INGRESS_ACL = 45  # the source vport's ingress ACL (what it sends into the overlay)
    ROUTE = 48  # after the ingress ACL: tunnel to the remote VTEP, or on to the egress ACL
    EGRESS_STATE = 50  # established traffic skips the egress ACL
    EGRESS_ACL = 55  # the destination vport's egress ACL (what the overlay delivers to it)
    DELIVER = 60  # output to the local port, with the router MAC as source
    NON_IP = 70  # non-IP frames between local ports of a domain whose templates allow non-IP


# The two ACL tables and the direction of the template each holds.
ACL_DIRECTION = {Table.INGRESS_ACL: "ingress", Table.EGRESS_ACL: "egress"}


def table_name(table: int) -> str:
    """A table's name, or "?" for a number the pipeline does not declare (a trace of a foreign flow)."""
    try:
        return Table(table).name
    except ValueError:
        return "?"


# Registers (32-bit NXM regs; all zero when a packet enters the pipeline).
REG_KEY = "reg0"  # the IP looked up in Table.ENDPOINT: ipv4_dst on the local path, ipv4_src from a tunnel
REG_OUT_PORT = "reg1"  # ofport of a local destination; 0 = not local
REG_SRC_TAGS = ("reg2", "reg3")  # policy-group bitmap of the source (bits 0-31, 32-63)
REG_DST_TAGS = ("reg4", "reg5")  # policy-group bitmap of the destination
REG_PEER_TAGS = ("reg6", "reg7")  # scratch: what Table.ENDPOINT found, moved by Table.PEER_MAP
REG_PATH = "reg8"  # PATH_LOCAL or PATH_TUNNEL
REG_PEER_REMOTE = "reg9"  # 1 when Table.ENDPOINT matched (the peer is a known remote endpoint)
REG_SCRATCH = "reg10"  # ARP responder's temporary for swapping arp_spa/arp_tpa
# A domain's groups beyond the bitmap, as group numbers in 16-bit slots (see vsc/tags.py). Table.ENDPOINT
# writes the peer's straight into the destination slots; Table.PEER_MAP moves them on the tunnel path.
REG_SRC_SLOTS = ("reg11", "reg12")
REG_DST_SLOTS = ("reg13", "reg14")

PATH_LOCAL = 1
PATH_TUNNEL = 2

BITMAP_GROUPS = 32 * len(REG_SRC_TAGS)  # a domain's first 64 groups: one bit each, any number per vport
SLOT_BITS = 16
SLOTS_PER_VPORT = 32 // SLOT_BITS * len(REG_SRC_SLOTS)  # groups 65..4095 a vport may be in
MAX_GROUPS_PER_DOMAIN = 4095  # Nuage's policyGroupID range, 1..4095 per domain

# metadata carries the domain index (also the conntrack zone); fits ct_zone's 16 bits.
MAX_DOMAIN_INDEX = 0xFFFF
METADATA_MASK = 0xFFFF_FFFF_FFFF_FFFF  # written whole, so flows match metadata exactly

# One router MAC for every domain and subnet: endpoints ARP for everything in their subnet and get it
# (proxy-ARP), so all IPv4 traffic is routed and no endpoint MAC needs to exist on remote hosts.
ROUTER_MAC = 0x0276_7370_0001  # 02:76:73:70:00:01 ("vsp"), locally administered

# ct_state (value, mask) pairs.
CT_ESTABLISHED = (CT_TRK | CT_EST, CT_TRK | CT_EST | CT_INV)
CT_RELATED = (CT_TRK | CT_REL, CT_TRK | CT_REL | CT_INV)
CT_INVALID = (CT_TRK | CT_INV, CT_TRK | CT_INV)
CT_NEW_STATE = (CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_INV)

# OpenFlow priority bands for ACL entries, by the template's priorityType. Within a band the entry's
# Nuage priority (lower number = evaluated first) is subtracted from the band's top when all of the
# band's priorities fit its width, else ranked densely (vsc.acl.band_priorities).
ACL_BANDS = {"TOP": 40_000, "NONE": 20_000, "BOTTOM": 1_000}
ACL_BAND_WIDTH = 19_000
ACL_DEFAULT_PRIORITY = 10  # the template's defaultAllowIP verdict, below every entry


class Kind(IntEnum):
    """Top byte of a cookie: what made the flow. The low 56 bits hash the owning VSD object's ID."""

    PIPELINE = 0x01  # per-VRS skeleton (no VSD object)
    DOMAIN = 0x02  # tunnel classification, conntrack zone, state tables, default verdicts
    SUBNET = 0x03  # ARP responder of a subnet
    LOCAL_ENDPOINT = 0x04  # classification, LOCAL_DST, DELIVER of a local vport
    REMOTE_ENDPOINT = 0x05  # the one Table.ENDPOINT flow of a remote vport
    ACL_ENTRY = 0x06  # ingress/egress ACL entry
    ACL_DEFAULT = 0x07  # a domain's default ACL verdicts (owner: the domain)


KIND_SHIFT = 56
KIND_MASK = 0xFF << KIND_SHIFT


def cookie(kind: Kind, owner_id: str = "") -> int:
    """Stable across VSC restarts (a hash, not a counter) so a resync recognises its own flows."""
    if not owner_id:
        return kind << KIND_SHIFT
    h = int.from_bytes(hashlib.blake2b(owner_id.encode(), digest_size=7).digest(), "big")
    return (kind << KIND_SHIFT) | h


def cookie_kind(value: int) -> Kind | None:
    try:
        return Kind(value >> KIND_SHIFT)
    except ValueError:
        return None


def canonical(match: tuple[MatchField, ...]) -> tuple[MatchField, ...]:
    """Matches in the codec's canonical field order, full masks dropped (as `Flow.canonical` does):
    the form a switch's flow dump comes back in, so desired and installed flows compare by key."""
    out = []
    for f in match:
        if f.mask is not None and f.mask == (1 << FIELDS[f.name].bits) - 1:
            f = MatchField(f.name, f.value)
        elif f.mask is not None and f.value & ~f.mask:
            f = MatchField(f.name, f.value & f.mask, f.mask)
        out.append(f)
    out.sort(key=lambda f: FIELD_ORDER[f.name])
    return tuple(out)


def flow_key(f: Flow) -> tuple:
    """A flow's identity (table, priority, match) with the match as plain tuples: these hash in C,
    while `Flow.key` hashes MatchField dataclasses in Python (NFD8 hashes about a million keys)."""
    return (f.table, f.priority, tuple([(m.name, m.value, m.mask) for m in f.match]))
