"""`vsplab lint`: a scenario made to have findings gets each of them, naming its entry; a clean one gets
none; and the flows per VRS it predicts equal what the VSC's compiler produces on every shipped scenario."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vsplab.policy.compiled import Compiled
from vsplab.policy.cost import predict
from vsplab.policy.lint import lint_compiled
from vsplab.policy.state import from_scenario

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "tests" / "data" / "lint-demo.yaml"


def test_lint_finds_each_planted_problem_and_names_its_entry():
    out = subprocess.run([sys.executable, "-m", "vsplab.cli", "lint", str(DEMO), "--json", "-"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr  # findings: exit 1
    report = json.loads(out.stdout)
    found = {}
    for f in report["findings"]:
        found.setdefault(f["kind"], []).append(f)
    assert sorted(found) == ["contradiction", "empty-group", "redundant", "shadowed", "stateless-no-reply"], found
    assert {k: len(v) for k, v in found.items()} == {"contradiction": 2, "empty-group": 1, "redundant": 1,
                                                     "shadowed": 1, "stateless-no-reply": 1}, found

    def entry(kind):
        e = found[kind][0]["entry"]
        return e["description"], e["priority"], e["action"], e["direction"]

    assert entry("shadowed") == ("web -> app tcp 8080", 1010, "DROP", "ingress")
    assert found["shadowed"][0]["other"]["description"] == "web -> app tcp 8000-8100"
    assert entry("redundant") == ("web -> app tcp 8080", 1020, "FORWARD", "ingress")
    assert entry("empty-group") == ("ops -> db tcp 22", 1030, "FORWARD", "ingress")
    assert "'ops'" in found["empty-group"][0]["text"]
    assert entry("stateless-no-reply") == ("app -> db tcp 5432", 1040, "FORWARD", "ingress")
    # both ways: an ingress allow the egress default drops, an egress allow the ingress default drops
    both = {(f["entry"]["description"], f["entry"]["direction"], f["other"]["direction"], f["other"]["entry_id"])
            for f in found["contradiction"]}
    assert both == {("web -> db tcp 3306", "ingress", "egress", None), ("db -> web tcp 9000", "egress", "ingress", None)}
    assert all(e["entry"]["entry_id"] for e in report["findings"])  # each names the VSD entry's ID
    assert report["prediction_ok"]


SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.fixture(scope="module")
def shipped():
    """Every shipped scenario pushed into a VSD of its own, a few at a time (each VSD mostly waits)."""
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(SHIPPED, pool.map(from_scenario, SHIPPED), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_flow_prediction_equals_the_compilers_count(shipped, path):
    compiled = Compiled(shipped[path])
    costs = predict(compiled)  # what `vsplab lint` prints under "flows per VRS"
    assert costs and all(c.compiled > 0 for c in costs)
    assert [(c.host, c.predicted) for c in costs] == [(c.host, c.compiled) for c in costs], costs
    if path.stem == "three-tier":
        assert lint_compiled(compiled).findings == []  # the shipped example is clean

