"""Read a scenario YAML file keeping the line of every value, so errors can name it.

PyYAML's composer gives nodes with start marks; we turn the node tree into plain dicts/lists and a
side table `lines[path] = line` where `path` is the tuple of keys/indexes leading to the value
(the same shape as pydantic's error `loc`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ScenarioError(Exception):
    """A problem in a scenario file; `str()` reads `FILE:LINE: field.path: message` per problem."""

    def __init__(self, problems: list[tuple[str, int | None, str, str]]):
        self.problems = problems  # (file, line, field path, message)
        super().__init__("\n".join(self.format_one(p) for p in problems))

    @staticmethod
    def format_one(p: tuple[str, int | None, str, str]) -> str:
        file, line, where, msg = p
        loc = f"{file}:{line}" if line else file
        return f"{loc}: {where}: {msg}" if where else f"{loc}: {msg}"


@dataclass
class LineMap:
    file: str
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, path: tuple) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: tuple, message: str) -> tuple[str, int | None, str, str]:
        return (self.file, self.line_of(path), dotted(path), message)


def dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_SCALARS = yaml.constructor.SafeConstructor()


def _convert(node: yaml.Node, path: tuple, lm: LineMap):
    lm.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for knode, vnode in node.value:
            key = _convert(knode, path + ("<key>",), lm)
            if key in out:
                raise ScenarioError([(lm.file, knode.start_mark.line + 1, dotted(path + (key,)),
                                      "duplicate key")])
            out[key] = _convert(vnode, path + (key,), lm)
            lm.lines[path + (key,)] = knode.start_mark.line + 1
        lm.lines.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, path + (i,), lm) for i, v in enumerate(node.value)]
    return _SCALARS.construct_object(node, deep=True)


def load_yaml(path: str | Path) -> tuple[dict, LineMap]:
    path = Path(path)
    lm = LineMap(str(path))
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioError([(str(path), None, "", f"cannot read: {e.strerror}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ScenarioError([(str(path), line, "", f"YAML syntax: {e.problem}")]) from None
    if node is None:
        raise ScenarioError([(str(path), 1, "", "empty file")])
    data = _convert(node, (), lm)
    if not isinstance(data, dict):
        raise ScenarioError([(str(path), 1, "", "a scenario is a mapping (name:, hosts:, ...)")])
    return data, lm
