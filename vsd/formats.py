"""The shape of every value a client may send, checked before anything else looks at it: text lengths and
characters, integer range, nesting depth, and the strict formats of MACs, ports, EtherTypes and IP
protocol numbers.

Patterns are matched with `re.fullmatch` over ASCII classes: `$` would let a trailing newline through
(`"02:..:01\\n"` slipped past the duplicate-MAC check) and `\\d` or `str.isdigit` take other scripts'
digits (`"²"` is a digit to `isdigit` but not to `int`). Limits exist because everything accepted is
kept in memory, written to the store and sent to every controller: a name is one line of at most 255
characters (Nuage's limit), other text at most 4096, integers fit 64 bits, and values nest at most
`MAX_DEPTH` deep (the JSON writer refuses deeper ones, and it runs after the tree has changed)."""

from __future__ import annotations

import re

from vsd.errors import bad

NAME_MAX, TEXT_MAX, PASSWORD_MAX = 255, 4096, 1024
LIST_MAX = 4096
MAX_DEPTH = 16
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
# names end up as index keys, audit rows and log lines: one line of printable text
NAME_ATTRS = frozenset({"name", "userName", "firstName", "lastName", "email"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUL = re.compile(r"\x00")

MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_PORT = re.compile(r"\*|([0-9]{1,5})(?:-([0-9]{1,5}))?")
_ETHER = re.compile(r"0x[0-9A-Fa-f]{4}")
_PROTOCOL = re.compile(r"ANY|[0-9]{1,3}")


def check_text(entity: str, key: str, value: str) -> None:
    limit = PASSWORD_MAX if key == "password" else NAME_MAX if key in NAME_ATTRS else TEXT_MAX
    if len(value) > limit:
        raise bad(key, f"{entity}.{key} is {len(value)} characters long; at most {limit} are allowed", "Too long")
    if (_CONTROL if key in NAME_ATTRS else _NUL).search(value):
        what = "control characters" if key in NAME_ATTRS else "NUL characters"
        raise bad(key, f"{entity}.{key} must not contain {what}", "Invalid characters")


def check_int(entity: str, key: str, value: int) -> None:
    if not INT_MIN <= value <= INT_MAX:
        raise bad(key, f"{entity}.{key} {value} does not fit in 64 bits", "Out of range")


def check_nesting(entity: str, key: str, value: object) -> None:
    """Lists and objects inside a value: bounded depth and length, text within the text limit."""
    todo = [(value, 0)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, (list, dict)):
            if depth >= MAX_DEPTH:
                raise bad(key, f"{entity}.{key} nests deeper than {MAX_DEPTH} levels", "Too deep")
            if len(v) > LIST_MAX:
                raise bad(key, f"{entity}.{key} holds {len(v)} items; at most {LIST_MAX} are allowed", "Too long")
            items = v.values() if isinstance(v, dict) else v
            todo.extend((item, depth + 1) for item in items)
            if isinstance(v, dict):
                todo.extend((k, depth + 1) for k in v)
        elif isinstance(v, str):
            check_text(entity, key, v)


def mac(entity: str, key: str, value: str) -> str:
    if not MAC.fullmatch(value):
        raise bad(key, f"{key} {value!r} is not of the form aa:bb:cc:dd:ee:ff")
    return value


def port(entity: str, key: str, value: str) -> str:
    m = _PORT.fullmatch(value)
    low, high = (int(m.group(1)), int(m.group(2) or m.group(1))) if m and value != "*" else (0, 0)
    if not m or high > 65535 or low > high:
        raise bad(key, f"{key} {value!r} must be *, a port 0..65535 or a range low-high")
    return value


def ether_type(entity: str, key: str, value: str) -> str:
    if not _ETHER.fullmatch(value):
        raise bad(key, f"{key} {value!r} must look like 0x0800")
    return value


def protocol(entity: str, key: str, value: str) -> str:
    if not _PROTOCOL.fullmatch(value) or (value != "ANY" and int(value) > 255):
        raise bad(key, f"protocol {value!r} must be ANY or an IP protocol number 0..255")
    return value if value == "ANY" else str(int(value))  # "06" and "6" are one protocol to the compiler


_ACL = {"sourcePort": port, "destinationPort": port, "etherType": ether_type, "protocol": protocol}
# (entity, attribute) -> a check that answers the value to store, or raises a 400 naming the attribute
FORMATS = {("vminterface", "MAC"): mac, **{(e, k): f for e in ("ingressaclentrytemplate", "egressaclentrytemplate")
                                          for k, f in _ACL.items()}}
