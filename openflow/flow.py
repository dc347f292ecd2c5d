"""The logical form of an OpenFlow 1.3 flow, shared by the VSC (which builds flows) and the VRSs
(which install them: the simulated VRS decodes the wire bytes back into this form).

Values are plain integers (a MAC is a 48-bit int, an IPv4 address a 32-bit int) so that flows hash,
compare and encode cheaply; `openflow.text` renders them the way `ovs-ofctl dump-flows` does.

Field names are the ones `ovs-ofctl` uses (in_port, eth_dst, ipv4_dst, tcp_dst, reg0, tun_id,
tun_ipv4_dst, ct_state, metadata, ...). `openflow.fields` maps each to its OXM class/field/width.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Reserved port numbers (OpenFlow 1.3, section 7.2.1).
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_TABLE = 0xFFFFFFF9
OFPP_NORMAL = 0xFFFFFFFA
OFPP_FLOOD = 0xFFFFFFFB
OFPP_ALL = 0xFFFFFFFC
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF

# ct_state bits (Nicira extension, as OVS defines them).
CT_NEW = 0x01
CT_EST = 0x02
CT_REL = 0x04
CT_RPL = 0x08
CT_INV = 0x10
CT_TRK = 0x20


@dataclass(frozen=True, slots=True)
class MatchField:
    """One OXM match entry; `mask` None means an exact match."""

    name: str
    value: int
    mask: int | None = None


# --- actions (the apply-actions list of a flow) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    port: int
    max_len: int = 0xFFE5  # OFPCML_NO_BUFFER, only meaningful for OFPP_CONTROLLER


@dataclass(frozen=True, slots=True)
class SetField:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Move:
    """Nicira NXAST_REG_MOVE: copy `n_bits` from src[src_ofs:] to dst[dst_ofs:] (ARP responder)."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True, slots=True)
class Ct:
    """Nicira NXAST_CT: send the packet through conntrack in `zone`, then (if `table` is set) continue
    a copy of it in `table` with ct_state filled in; `commit` records the connection."""

    commit: bool = False
    zone: int = 0
    table: int | None = None


@dataclass(frozen=True, slots=True)
class DecTtl:
    pass


Action = Output | SetField | Move | Ct | DecTtl


@dataclass(frozen=True, slots=True)
class Flow:
    """One flow entry. The identity of a flow in a table is (table, priority, match); `cookie`,
    `actions`, `write_metadata` and `goto` are its payload. An empty `actions` and no `goto` drops."""

    table: int
    priority: int
    match: tuple[MatchField, ...] = ()
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    write_metadata: tuple[int, int] | None = None  # (value, mask)
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0

    @property
    def key(self) -> tuple[int, int, tuple[MatchField, ...]]:
        return (self.table, self.priority, self.match)

    def canonical(self) -> Flow:
        """The same flow with its match in the codec's canonical field order and all-ones masks
        dropped, which is how a switch reports it: two flows equal as OpenFlow flows compare equal
        after this, whatever order their match fields were listed in."""
        from openflow.fields import FIELD_ORDER, FIELDS

        fields = []
        for f in sorted(self.match, key=lambda f: FIELD_ORDER.get(f.name, 1 << 16)):
            spec = FIELDS.get(f.name)
            if f.mask is not None and spec is not None and f.mask == (1 << spec.bits) - 1:
                f = MatchField(f.name, f.value)
            elif f.mask is not None:
                f = MatchField(f.name, f.value & f.mask, f.mask)
            fields.append(f)
        return replace(self, match=tuple(fields))


def match(**fields: int | tuple[int, int]) -> tuple[MatchField, ...]:
    """Build a match tuple: match(eth_type=0x0800, ipv4_dst=(net, mask), reg6=7).

    Keyword order is kept; callers list prerequisites first (eth_type before ip fields), which is
    also the order the encoder emits."""
    out = []
    for name, v in fields.items():
        if isinstance(v, tuple):
            out.append(MatchField(name, v[0], v[1]))
        else:
            out.append(MatchField(name, v))
    return tuple(out)


@dataclass(slots=True)
class FlowStats:
    """One entry of a flow-stats reply, as a switch reports it."""

    flow: Flow
    duration_sec: int = 0
    duration_nsec: int = 0
    packet_count: int = 0
    byte_count: int = 0
    extra: dict = field(default_factory=dict)
