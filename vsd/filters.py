"""`X-Nuage-Filter` expressions as vspk sends them: `name == "web"`, `ID == "..."`, comparisons
(== != < <= > >=, LIKE with % wildcards, IN (...)), joined by and/or with parentheses. A filter without
an operator matches objects whose name contains it, as the VSD does."""

from __future__ import annotations

import re
from collections.abc import Callable

from vsd.errors import bad

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>==|!=|>=|<=|>|<|\(|\)|,)'
                    r'|(?P<word>[A-Za-z0-9_.:\-/%*]+))')
Pred = Callable[[dict], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad("X-Nuage-Filter", f"cannot read the filter at {text[pos:]!r}", "Invalid filter")
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


def _compare(attr: str, op: str, value) -> Pred:
    def get(d: dict):
        v = d.get(attr)
        return v

    if op == "==":
        return lambda d: get(d) == value or (isinstance(get(d), str) and isinstance(value, int)
                                             and get(d) == str(value))
    if op == "!=":
        return lambda d: get(d) != value
    if op == "like":
        rx = re.compile("^" + ".*".join(re.escape(p) for p in str(value).split("%")) + "$", re.I)
        return lambda d: isinstance(get(d), str) and rx.match(get(d)) is not None
    if op == "in":
        values = set(value)
        return lambda d: get(d) in values
    ops = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}
    fn = ops[op]

    def cmp(d: dict) -> bool:
        v = get(d)
        try:
            return v is not None and fn(v, value)
        except TypeError:
            return False

    return cmp


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t, self.i = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise bad("X-Nuage-Filter", "the filter ends too early", "Invalid filter")
        self.i += 1
        return tok

    def expr(self) -> Pred:
        left = self.conj()
        while (tok := self.peek()) and tok[0] == "word" and tok[1].lower() == "or":
            self.take()
            right = self.conj()
            left = (lambda a, b: lambda d: a(d) or b(d))(left, right)
        return left

    def conj(self) -> Pred:
        left = self.term()
        while (tok := self.peek()) and tok[0] == "word" and tok[1].lower() == "and":
            self.take()
            right = self.term()
            left = (lambda a, b: lambda d: a(d) and b(d))(left, right)
        return left

    def term(self) -> Pred:
        kind, value = self.take()
        if (kind, value) == ("op", "("):
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise bad("X-Nuage-Filter", "missing ')'", "Invalid filter")
            return inner
        if kind != "word":
            raise bad("X-Nuage-Filter", f"expected an attribute name, got {value!r}", "Invalid filter")
        kind2, op = self.take()
        op = op.lower()
        if op == "in":
            if self.take() != ("op", "("):
                raise bad("X-Nuage-Filter", "IN needs a list in parentheses", "Invalid filter")
            values = []
            while True:
                k, v = self.take()
                if (k, v) == ("op", ")"):
                    break
                if (k, v) != ("op", ","):
                    values.append(_literal(k, v))
            return _compare(value, "in", values)
        if op not in ("==", "!=", ">", "<", ">=", "<=", "like"):
            raise bad("X-Nuage-Filter", f"unknown operator {op!r}", "Invalid filter")
        return _compare(value, op, _literal(*self.take()))


def parse_filter(text: str | None) -> Pred | None:
    if not text or not text.strip():
        return None
    if not re.search(r"==|!=|>|<|\blike\b|\bin\b", text, re.I):
        needle = text.strip().strip('"').lower()
        return lambda d: needle in str(d.get("name") or "").lower()
    p = _Parser(_tokens(text))
    pred = p.expr()
    if p.peek() is not None:
        raise bad("X-Nuage-Filter", f"unexpected {p.peek()[1]!r} in the filter", "Invalid filter")
    return pred
