"""The layout as a checked rule: tiers import only downward, no package imports another in a circle, no
module grows past 450 lines. An AST walk, so imports inside functions count as much as top-level ones.

    daemonconf a daemon's YAML config file as its flags' defaults, journal logging: imports no tier
    openflow   the OpenFlow wire codec and flow model: imports no tier
    vsd        directory and policy server: imports no other tier
    vrs        host agent and simulated VRS: the wire codec only
    vsc        controller: the wire codec and the VSD's client
    vsplab     the lab front end on top: anything
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("daemonconf", "openflow", "vsd", "vsc", "vrs", "vsplab")
ALLOWED = {  # daemonconf and openflow are floors: every tier may stand on them
    "daemonconf": set(),
    "openflow": set(),
    "vsd": {"daemonconf"},
    "vrs": {"daemonconf", "openflow"},
    "vsc": {"daemonconf", "openflow", "vsd"},
    "vsplab": {"daemonconf", "openflow", "vsd", "vsc", "vrs"},
}
MAX_LINES = 450


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, tiers=TIERS) -> dict[str, Path]:
    return {module_name(root, p): p for t in tiers if (root / t).is_dir() for p in sorted((root / t).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (relative imports resolved; `from pkg import mod` is pkg.mod)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import vsc.bgp.speaker.X` -> the module that exists
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`: an import made for annotations only is not a
    dependency at run time (and is how a walker names the switch type that calls it)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph(root: Path, tiers=TIERS) -> dict[str, set[str]]:
    mods = project_modules(root, tiers)
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def tier_violations(graph: dict[str, set[str]], allowed=ALLOWED) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        tier = mod.split(".")[0]
        for d in sorted(deps):
            other = d.split(".")[0]
            if other != tier and other not in allowed[tier]:
                bad.append(f"{mod} imports {d}: {tier} may import only {sorted(allowed[tier]) or 'no other tier'}")
    return bad


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def circles(graph: dict[str, set[str]]) -> list[str]:
    """For every package, its direct children (sub-packages and modules) must import each other without a
    circle; the top level (the tiers) too."""
    packages = {""} | {m.rpartition(".")[0] for m in graph if "." in m} | {m for m in graph if any(
        o.startswith(m + ".") for o in graph)}
    found = []
    for pkg in sorted(packages):
        prefix = pkg + "." if pkg else ""

        def child(mod: str, prefix=prefix, pkg=pkg) -> str | None:
            if not mod.startswith(prefix) or mod == pkg:
                return None
            return prefix + mod[len(prefix):].split(".")[0]

        edges: dict[str, set[str]] = {}
        for mod, deps in graph.items():
            a = child(mod)
            if a is None:
                continue
            for d in deps:
                b = child(d)
                if b is not None and b != a:
                    edges.setdefault(a, set()).add(b)
        cyc = _cycle(edges)
        if cyc:
            found.append(f"in {pkg or 'the project'}: " + " -> ".join(cyc))
    return found


def long_modules(root: Path, limit: int = MAX_LINES) -> list[str]:
    out = []
    for d in (*TIERS, "tests", "benchmarks"):
        for p in sorted((root / d).rglob("*.py")) if (root / d).is_dir() else ():
            n = len(p.read_text().splitlines())
            if n > limit:
                out.append(f"{p.relative_to(root)}: {n} lines (limit {limit})")
    return out


# --- the rules hold on the project ---------------------------------------------------------------


def test_tiers_import_only_downward():
    assert tier_violations(import_graph(ROOT)) == []


def test_no_import_circles():
    assert circles(import_graph(ROOT)) == []


def test_no_module_over_450_lines():
    assert long_modules(ROOT) == []


# --- the checks catch what they are for ------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_the_checks_fail_on_a_tier_importing_the_lab(tmp_path):
    root = _tree(tmp_path, {
        "openflow/__init__.py": "", "vsc/__init__.py": "", "vsplab/__init__.py": "", "vsplab/report.py": "",
        # inside a function: still an import of the lab front end
        "vsc/core.py": "def f():\n    from vsplab import report\n",
        "vrs/__init__.py": "import vsc.core\n",
    })
    bad = tier_violations(import_graph(root))
    assert any("vsc.core imports vsplab.report" in b for b in bad), bad
    assert any("vrs imports vsc.core" in b for b in bad), bad


def test_the_checks_fail_on_circles(tmp_path):
    root = _tree(tmp_path, {
        "vsplab/__init__.py": "",
        "vsplab/lab/__init__.py": "", "vsplab/lab/run.py": "from vsplab.emu import lab\n",
        "vsplab/emu/__init__.py": "", "vsplab/emu/lab.py": "from ..mininet.lab import X\n",
        "vsplab/mininet/__init__.py": "", "vsplab/mininet/lab.py": "def f():\n    import vsplab.lab.run\n",
        "vsd/__init__.py": "", "vsd/a.py": "from . import b\n", "vsd/b.py": "from .a import thing\n",
    })
    found = circles(import_graph(root))
    assert any(f.startswith("in vsplab:") and "vsplab.emu" in f and "vsplab.mininet" in f for f in found), found
    assert any(f == "in vsd: vsd.a -> vsd.b -> vsd.a" for f in found), found


def test_the_checks_fail_on_a_long_module(tmp_path):
    root = _tree(tmp_path, {"vsc/__init__.py": "", "vsc/big.py": "x = 1\n" * 451, "vsc/ok.py": "x = 1\n" * 450})
    assert long_modules(root) == ["vsc/big.py: 451 lines (limit 450)"]
