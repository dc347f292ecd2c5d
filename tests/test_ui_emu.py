"""The teaching page on an emu lab (`vsplab run scenarios/three-tier.yaml --mode emu --ui`): the trace is
ofproto/trace on the emulated hosts' real switches, followed across VXLAN (vsplab/fidelity/walk.py),
with the deciding ACL entry or template verdict named as on a sim lab; the flow view reads the real
bridge. Over HTTP (the browser test of the same page runs on a sim lab: tests/test_ui_browser.py).

Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from vsplab.ui.launch import UiProcess

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]


def trace(ui: str, src: str, dst: str, port: int) -> str:
    r = httpx.get(ui + "trace", params={"from": src, "to": dst, "proto": "tcp", "port": str(port)}, timeout=60)
    assert r.status_code == 200, r.text
    return html.unescape(r.text)


def explain(labs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsplab.cli", "explain", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "VSPLAB_LABS_DIR": str(labs)})


def test_emu_lab_page_traces_through_ofproto_trace(tmp_path):
    args = ["run", str(ROOT / "scenarios" / "three-tier.yaml"), "--mode", "emu", "--ui"]
    with UiProcess(args, env={"VSPLAB_LABS_DIR": str(tmp_path)}) as lab:
        dropped = trace(lab.url, "web1", "db1", 5432)
        assert "dropped at host1 table 45 (INGRESS_ACL)" in dropped
        assert "default verdict of ingress ACL template" in dropped
        delivered = trace(lab.url, "web1", "app1", 8080)
        assert "delivered - request and reply" in delivered
        assert "ingress ACL entry \u201cweb -> app tcp 8080\u201d, priority 1000" in delivered
        assert "established connection" in delivered  # the reply rides the request's conntrack entry
        flows = httpx.get(lab.url + "flows", params={"host": "host1", "table": "45"}, timeout=60)
        assert flows.status_code == 200
        assert "ingress ACL entry \u201capp -> db tcp 5432\u201d, priority 1010" in html.unescape(flows.text)

        # `vsplab explain` on the same lab: the same walk, worded, and as JSON
        dropped = explain(tmp_path, "web1", "db1", "--proto", "tcp", "--port", "5432")
        assert dropped.returncode == 2, dropped.stderr
        assert "explain web1 -> db1 tcp/5432: DENY" in dropped.stdout
        assert "no entry matched -> default DROP of template" in dropped.stdout
        assert "DROPPED at host1 table 45 (INGRESS_ACL)" in dropped.stdout
        delivered = explain(tmp_path, "web1", "app1", "--proto", "tcp", "--port", "8080", "--json")
        assert delivered.returncode == 0, delivered.stderr
        x = json.loads(delivered.stdout)
        assert x["verdict"] == "allow" and x["request"]["delivered"] and x["reply"]["delivered"]
        entry = x["request"]["ingress_acl"]
        assert (entry["description"], entry["priority"], entry["action"]) == ("web -> app tcp 8080", 1000, "FORWARD")
        assert entry["entry_id"] and x["route"]["remote_vtep"] == x["destination"]["vtep_ip"]
        assert x["request"]["tunnels"] and x["reply"]["conntrack_established"]
