"""`vsplab run` in sim mode, end to end: VSD, VSC and simulated VRSs as a user starts them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from vsplab.scenario.check import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
pytestmark = pytest.mark.slow


def vsplab(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "vsplab.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            kids = [int(k) for k in (task / "children").read_text().split()]
            out += kids
            todo += kids
    return out


@pytest.mark.parametrize("name", ["three-tier", "multi-tenant", "macros-and-ranges"])
def test_shipped_scenario_passes(tmp_path, name):
    out = vsplab("run", str(SCENARIOS / f"{name}.yaml"), "--json", str(tmp_path / "r.json"),
                 "--junit", str(tmp_path / "r.xml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reachability" in out.stdout and "all expectations hold" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["ok"] and all(x["passed"] for x in result["expectations"])
    # every host of the scenario reports its flow count, and each got flows from the VSC
    assert set(result["flows_per_host"]) == {h.name for h in load_scenario(SCENARIOS / f"{name}.yaml").hosts}
    assert all(n > 0 for n in result["flows_per_host"].values()), result["flows_per_host"]
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert int(suite.get("tests")) == len(result["expectations"]) and suite.get("failures") == "0"


def test_breaking_an_acl_entry_fails_and_names_the_expectation(tmp_path):
    text = (SCENARIOS / "three-tier.yaml").read_text()
    # the egress rule for app -> db now opens the wrong port: app1 -> db1 tcp/5432 must fail
    broken = text.replace("- {from: app, to: db, protocol: tcp, port: 5432, stateful: true}\n\ncontainers",
                          "- {from: app, to: db, protocol: tcp, port: 5433, stateful: true}\n\ncontainers")
    assert broken != text
    f = tmp_path / "broken.yaml"
    f.write_text(broken)
    out = vsplab("run", str(f), "--junit", str(tmp_path / "r.xml"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED app1 -> db1 tcp/5432: expected allow, observed deny" in out.stdout
    assert "FAILED app2 -> db2 tcp/5432" in out.stdout
    assert "EGRESS_ACL" in out.stdout  # where it was dropped
    suite = ET.parse(tmp_path / "r.xml").getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["app1 -> db1 tcp/5432 expect allow", "app2 -> db2 tcp/5432 expect allow"]


def test_scenario_error_names_line_and_exits_2(tmp_path):
    f = tmp_path / "bad.yaml"
    text = (SCENARIOS / "three-tier.yaml").read_text().replace("groups: [web], ip: 10.1.0.11",
                                                               "groups: [wbe], ip: 10.1.0.11")
    f.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "[wbe]" in t)
    out = vsplab("run", str(f))
    assert out.returncode == 2
    assert f"{f}:{line}: containers[0].groups[0]: unknown policy group 'wbe'" in out.stdout


def test_kept_lab_answers_flows_and_trace_and_cleans_up(tmp_path):
    env = {"VSPLAB_LABS_DIR": str(tmp_path / "labs")}
    proc = subprocess.Popen([sys.executable, "-m", "vsplab.cli", "run", str(SCENARIOS / "three-tier.yaml"), "--keep"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "labs").glob("*/control.sock")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        flows = vsplab("flows", "host1", env=env)
        assert flows.returncode == 0, flows.stderr
        assert "table=45" in flows.stdout and "actions=" in flows.stdout
        trace = vsplab("trace", "web1", "app1", "--proto", "tcp", "--port", "8080", env=env)
        assert trace.returncode == 0, trace.stdout + trace.stderr
        assert 'bridge("host1")' in trace.stdout and "web1 -> app1: allow" in trace.stdout
        denied = vsplab("trace", "web1", "db1", "--proto", "tcp", "--port", "5432", env=env)
        assert denied.returncode == 2 and "web1 -> db1: deny" in denied.stdout
        children = descendants(proc.pid)
        assert len(children) >= 2  # at least the VSD and the VSC
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 130
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []  # Ctrl-C stopped them all
    assert not list((tmp_path / "labs").glob("*/control.sock"))
    assert not list((tmp_path / "labs").glob("*"))  # the lab directory is gone
