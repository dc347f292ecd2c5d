"""Every dependency pyproject.toml declares is used by the code, and every third-party package the code
imports is declared (or comes with something declared). Read from the source, nothing is run: the
imports are found with `ast`, so a name in a comment or docstring does not count.

Runtime dependencies must be used outside tests/ (the packages and benchmarks); the `test` extra must
be used by tests/ or by the Makefile targets that run them. A few dependencies are used without an
import statement, each through one documented door (`USED_WITHOUT_IMPORT`). The README's dependency
table names exactly the declared distributions."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["daemonconf", "openflow", "vsd", "vsc", "vrs", "vsplab", "benchmarks"]

# distribution -> import name, where the two differ by more than '-' and '_'
IMPORT_NAME = {"os-ken": "os_ken", "pyyaml": "yaml"}

# Imported but not declared: they come with a declared dependency or from Debian.
PROVIDED = {
    "bambou": "vspk is built on it; its calls raise bambou's exceptions",
    "mininet": "the Debian package, run by /usr/bin/python3 (scripts/system-deps)",
}


def _python_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts]


def _trees(*dirs: str) -> list[ast.AST]:
    return [ast.parse(p.read_text(), str(p)) for p in _python_files(*dirs)]


def _imported(trees: list[ast.AST]) -> set[str]:
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _strings(trees: list[ast.AST]) -> set[str]:
    return {n.value for t in trees for n in ast.walk(t) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _keywords(trees: list[ast.AST]) -> set[tuple[str, str]]:
    return {(k.arg, k.value.value) for t in trees for n in ast.walk(t) if isinstance(n, ast.Call)
            for k in n.keywords if isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)}


def _used_as_command(trees: list[ast.AST], name: str) -> bool:
    # the program's name in an argv list, `shutil.which(...)`, `-m name`, or a path ending in it
    return any(s == name or s.endswith("/" + name) for s in _strings(trees))


# Used without an import statement, and where to see it.
USED_WITHOUT_IMPORT = {
    # ExaBGP runs as the VSC's child process (a program, not a library): its executable or module name
    "exabgp": lambda trees: _used_as_command(trees, "exabgp"),
    # uvicorn loads them by name: uvicorn.Config(loop="uvloop", http="httptools")
    "uvloop": lambda trees: ("loop", "uvloop") in _keywords(trees),
    "httptools": lambda trees: ("http", "httptools") in _keywords(trees),
    # SQLAlchemy loads the driver its URL names: postgresql+psycopg://
    "psycopg": lambda trees: any("+psycopg" in s for s in _strings(trees)),
    # a program: `make test` and `make lint` run it over the tree
    "ruff": lambda trees: bool(re.search(r"^\t.*/ruff check ", (ROOT / "Makefile").read_text(), re.M)),
}


def _dist(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()


def _import_name(dist: str) -> str:
    return IMPORT_NAME.get(dist, dist.replace("-", "_"))


def _declared() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"": project["dependencies"], **project["optional-dependencies"]}


def _unused(requirements: list[str], trees: list[ast.AST]) -> list[str]:
    imported = _imported(trees)
    unused = []
    for req in requirements:
        name = _import_name(_dist(req))
        if name in imported:
            continue
        check = USED_WITHOUT_IMPORT.get(name)
        if check is None or not check(trees):
            unused.append(req)
    return unused


def test_every_runtime_dependency_is_used_outside_tests():
    declared = _declared()
    assert _unused(declared[""], _trees(*PACKAGES)) == []


def test_every_postgres_extra_is_used_by_the_vsd():
    assert _unused(_declared()["postgres"], _trees("vsd")) == []


def test_every_test_extra_is_used_by_the_tests():
    assert _unused(_declared()["test"], _trees("tests")) == []


def test_every_third_party_import_is_declared():
    declared = {_import_name(_dist(r)) for reqs in _declared().values() for r in reqs}
    # a benchmark script runs with its own directory on sys.path, so it imports its siblings by bare name
    siblings = {p.stem for d in ("benchmarks", "tests") for p in (ROOT / d).glob("*.py")}
    ours = set(PACKAGES) | {"tests"} | siblings
    imported = _imported(_trees(*PACKAGES, "tests"))
    undeclared = sorted(imported - declared - ours - set(PROVIDED) - set(sys.stdlib_module_names))
    assert undeclared == []


def test_the_readme_explains_exactly_the_declared_dependencies():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Dependencies", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    explained = {name.strip() for row in rows for name in re.sub(r"\(.*?\)", "", row).split(",")}
    declared = {_dist(r) for reqs in _declared().values() for r in reqs}
    assert explained == declared
