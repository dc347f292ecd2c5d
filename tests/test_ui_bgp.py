"""The teaching page of a federated lab (scenarios/two-dc.yaml: two VSCs in two ASes over MP-BGP EVPN,
sim mode): the topology draws each VSC's BGP session as established with its route counts, and the
VXLAN tunnels that EVPN gives between the data centres' hosts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_bgp_sessions_on_the_topology(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "vsplab.cli", "run", str(ROOT / "scenarios" / "two-dc.yaml"), "--ui"],
                            cwd=ROOT, env={**os.environ, "VSPLAB_LABS_DIR": str(tmp_path), "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("UI at "):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(180), "no `UI at` line:\n" + "".join(lines[-30:])
        url = next(x for x in lines if x.startswith("UI at ")).split()[-1]
        page = httpx.get(url, timeout=30).text
        lab = httpx.get(url + "api/lab", timeout=30).json()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    sessions = re.findall(r'<g class="bgpsession (up|down)" data-name="([^"]+)">.*?<text[^>]*>([^<]*)</text>', page)
    assert sorted(name for _, name, _ in sessions) == ["vsc-east~vsc-west", "vsc-west~vsc-east"]
    for state, _, label in sessions:
        received = sum(s["routes_received"] for s in lab["bgp"] if label.startswith(s["vsc"] + ":"))
        assert state == "up" and f"rx {received} " in label and received > 0, label
    east = {h["name"] for h in lab["hosts"] if h["vsc"] == "vsc-east"}
    tunnels = re.findall(r'<line class="tunnel" data-name="([^"]+)~([^"]+)"', page)
    assert any((a in east) != (b in east) for a, b in tunnels)  # across the data centres
