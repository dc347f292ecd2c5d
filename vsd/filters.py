"""`X-Nuage-Filter` expressions as vspk sends them: `name == "web"`, `ID == "..."`, comparisons
(== != < <= > >=, LIKE with % wildcards, IN (...)), joined by and/or with parentheses. A filter without
an operator matches objects whose name contains it, as the VSD does.

Any user may send one, and it runs on the event loop for every object listed, so its cost is bounded:
at most `MAX_LENGTH` characters, `MAX_TERMS` comparisons and `MAX_DEPTH` nested parentheses (deeper is
refused with a 400, not a RecursionError). and/or chains become flat lists rather than nested closures,
and LIKE is matched by finding its literal pieces in order (linear in the name), never by a regular
expression whose backtracking grows with every `%`."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable

from vsd.errors import bad

MAX_LENGTH = 8192
MAX_TERMS = 256
MAX_DEPTH = 32

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>==|!=|>=|<=|>|<|\(|\)|,)'
                    r'|(?P<word>[A-Za-z0-9_.:\-/%*]+))')
_HAS_OPERATOR = re.compile(r"==|!=|>|<|\blike\b|\bin\b", re.I)
Pred = Callable[[dict], bool]


def _refuse(description: str):
    return bad("X-Nuage-Filter", description, "Invalid filter")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _refuse(f"cannot read the filter at {text[pos:pos + 40]!r}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace('\\"', '"').replace("\\'", "'")
        out.append((kind, value))
        pos = m.end()
    return out


def _literal(kind: str, value: str):
    if kind == "str":
        return value
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def like(pattern: str) -> Callable[[str], bool]:
    """SQL-style LIKE with `%` for any run of characters, case-insensitive. The pieces between the
    wildcards are found left to right, each as early as possible: if any placement works, that one does."""
    pieces = pattern.lower().split("%")
    if len(pieces) == 1:
        whole = pieces[0]
        return lambda s: s.lower() == whole
    first, middle, last = pieces[0], [p for p in pieces[1:-1] if p], pieces[-1]

    def match(s: str) -> bool:
        s = s.lower()
        if len(s) < len(first) + len(last) or not s.startswith(first) or not s.endswith(last):
            return False
        pos, end = len(first), len(s) - len(last)
        for piece in middle:
            found = s.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return match


def _compare(attr: str, op: str, value) -> Pred:
    if op == "==":
        alt = str(value) if isinstance(value, int) and not isinstance(value, bool) else None
        return lambda d: (v := d.get(attr)) == value or (alt is not None and v == alt)
    if op == "!=":
        return lambda d: d.get(attr) != value
    if op == "like":
        matches = like(str(value))
        return lambda d: isinstance(v := d.get(attr), str) and matches(v)
    if op == "in":
        values = frozenset(value)
        return lambda d: isinstance(v := d.get(attr), Hashable) and v in values
    fn = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
          "<=": lambda a, b: a <= b}[op]

    def cmp(d: dict) -> bool:
        v = d.get(attr)
        try:
            return v is not None and fn(v, value)
        except TypeError:
            return False

    return cmp


def _all(preds: list[Pred]) -> Pred:
    return preds[0] if len(preds) == 1 else lambda d: all(p(d) for p in preds)


def _any(preds: list[Pred]) -> Pred:
    return preds[0] if len(preds) == 1 else lambda d: any(p(d) for p in preds)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t, self.i = tokens, 0
        self.terms = 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _refuse("the filter ends too early")
        self.i += 1
        return tok

    def _word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "word" and tok[1].lower() == word

    def expr(self, depth: int) -> Pred:
        alternatives = [self.conj(depth)]
        while self._word("or"):
            self.take()
            alternatives.append(self.conj(depth))
        return _any(alternatives)

    def conj(self, depth: int) -> Pred:
        terms = [self.term(depth)]
        while self._word("and"):
            self.take()
            terms.append(self.term(depth))
        return _all(terms)

    def term(self, depth: int) -> Pred:
        kind, value = self.take()
        if (kind, value) == ("op", "("):
            if depth >= MAX_DEPTH:
                raise _refuse(f"the filter nests parentheses deeper than {MAX_DEPTH}")
            inner = self.expr(depth + 1)
            if self.take() != ("op", ")"):
                raise _refuse("missing ')'")
            return inner
        if kind != "word":
            raise _refuse(f"expected an attribute name, got {value[:40]!r}")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise _refuse(f"the filter has more than {MAX_TERMS} comparisons")
        _, op = self.take()
        op = op.lower()
        if op == "in":
            if self.take() != ("op", "("):
                raise _refuse("IN needs a list in parentheses")
            values = []
            while True:
                k, v = self.take()
                if (k, v) == ("op", ")"):
                    break
                if (k, v) != ("op", ","):
                    values.append(_literal(k, v))
            return _compare(value, "in", values)
        if op not in ("==", "!=", ">", "<", ">=", "<=", "like"):
            raise _refuse(f"unknown operator {op[:40]!r}")
        return _compare(value, op, _literal(*self.take()))


def parse_filter(text: str | None) -> Pred | None:
    if not text or not text.strip():
        return None
    if len(text) > MAX_LENGTH:
        raise _refuse(f"the filter is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    if not _HAS_OPERATOR.search(text):
        needle = text.strip().strip('"').lower()
        return lambda d: needle in str(d.get("name") or "").lower()
    p = _Parser(_tokens(text))
    pred = p.expr(0)
    if p.peek() is not None:
        raise _refuse(f"unexpected {p.peek()[1][:40]!r} in the filter")
    return pred
