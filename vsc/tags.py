"""Policy-group tags: how a vport's groups are carried in registers and how an ACL entry matches one.

Each group of a domain gets a tag index when the VSC first sees it (`View.group_bit`, lowest free,
persisted). Two representations share the registers, chosen by the index alone, so a group never
changes representation and a 65th group does not recompile the domain's first 64:

- index 0..63, the **bitmap**: one bit of a 64-bit map (reg2/3 source, reg4/5 destination). One flow
  per rule, and a vport may be in any number of these groups.
- index 64..4094, the **slots**: the group number (index + 1, so 65..4095 and never 0) in one of four
  16-bit slots (reg11/12 source, reg13/14 destination), filled in ascending order. An entry naming
  such a group matches any of the four slots: four alternatives on that side, sixteen when both of
  its sides are slot groups. A vport may be in at most four of these groups; a fifth is refused.

Either way an ACL entry costs a bounded number of flows however many vports its groups hold. The
whole tag value of an endpoint is one int: bits 0-63 the bitmap, bits 64-127 the four slots.
"""

from __future__ import annotations

from collections.abc import Iterable

from openflow.flow import MatchField, SetField
from vsc.pipeline import BITMAP_GROUPS, MAX_GROUPS_PER_DOMAIN, SLOT_BITS, SLOTS_PER_VPORT
from vsc.problems import Problem
from vsc.view import View

_WORD = 0xFFFF_FFFF
_SLOT = (1 << SLOT_BITS) - 1
_PER_REG = 32 // SLOT_BITS


class TagError(ValueError):
    """A vport's groups cannot be expressed (more than SLOTS_PER_VPORT slot groups)."""


def encode(indices: Iterable[int]) -> int:
    """The tag value of a vport in the groups of these tag indices (bitmap | slots << 64)."""
    bitmap, numbers = 0, []
    for i in indices:
        if i < BITMAP_GROUPS:
            bitmap |= 1 << i
        else:
            numbers.append(i + 1)
    if len(numbers) > SLOTS_PER_VPORT:
        raise TagError(f"is in {len(numbers)} policy groups beyond its domain's first {BITMAP_GROUPS}; "
                       f"a vport may be in at most {SLOTS_PER_VPORT} of those (tag numbers "
                       f"{', '.join(map(str, sorted(numbers)))})")
    slots = 0
    for k, n in enumerate(sorted(numbers)):
        slots |= n << (SLOT_BITS * k)
    return bitmap | slots << 64


def vport_tags(view: View, vport_id: str) -> int:
    """The tag value of a vport; TagError names the vport when its groups cannot be expressed."""
    bits = view.group_bit
    try:
        return encode(bits[g] for g in view.groups_of_vport.get(vport_id, ()) if g in bits)
    except TagError as e:
        raise TagError(f"vport {vport_id} {e}") from None


def tag_problems(view: View, domain_id: str) -> list[Problem]:
    """The vports of a domain whose groups cannot be expressed (they are not programmed)."""
    out = []
    for v, groups in view.groups_of_vport.items():
        if len(groups) > SLOTS_PER_VPORT and view.vport_domain(v) == domain_id:
            try:
                vport_tags(view, v)
            except TagError as e:
                out.append(Problem(f"{e}: not programmed", "vport", v))
    return sorted(out)


def set_tags(bitmap_regs: tuple[str, str], slot_regs: tuple[str, str], tags: int) -> tuple[SetField, ...]:
    """The set_field actions loading a tag value. Only nonzero words are written: every register
    they go to is zero when the packet gets there (Table.PEER_MAP clears what it moves away)."""
    out = []
    for reg in (*bitmap_regs, *slot_regs):
        if not tags:
            break
        if tags & _WORD:
            out.append(SetField(reg, tags & _WORD))
        tags >>= 32
    return tuple(out)


def group_match(index: int, bitmap_regs: tuple[str, str], slot_regs: tuple[str, str]) -> list[tuple[MatchField]]:
    """The alternatives (OR) that hold when the group of this tag index is on one side of a packet."""
    if index < BITMAP_GROUPS:
        b = 1 << (index % 32)
        return [(MatchField(bitmap_regs[index // 32], b, b),)]
    if index >= MAX_GROUPS_PER_DOMAIN:
        raise TagError(f"tag index {index} is beyond {MAX_GROUPS_PER_DOMAIN - 1}")
    out = []
    for k in range(SLOTS_PER_VPORT):
        shift = SLOT_BITS * (k % _PER_REG)
        out.append((MatchField(slot_regs[k // _PER_REG], (index + 1) << shift, _SLOT << shift),))
    return out
