"""The teaching page of a federated lab (scenarios/two-dc.yaml: two VSCs in two ASes over MP-BGP EVPN,
sim mode): the topology draws each VSC's BGP session as established with its route counts, and the
VXLAN tunnels that EVPN gives between the data centres' hosts."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from vsplab.ui.launch import UiProcess

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_bgp_sessions_on_the_topology(tmp_path):
    with UiProcess(["run", str(ROOT / "scenarios" / "two-dc.yaml"), "--ui"],
                   env={"VSPLAB_LABS_DIR": str(tmp_path)}) as lab:
        page = httpx.get(lab.url, timeout=30).text
        described = httpx.get(lab.url + "api/lab", timeout=30).json()
    sessions = re.findall(r'<g class="bgpsession (up|down)" data-name="([^"]+)">.*?<text[^>]*>([^<]*)</text>', page)
    assert sorted(name for _, name, _ in sessions) == ["vsc-east~vsc-west", "vsc-west~vsc-east"]
    for state, _, label in sessions:
        received = sum(s["routes_received"] for s in described["bgp"] if label.startswith(s["vsc"] + ":"))
        assert state == "up" and f"rx {received} " in label and received > 0, label
    east = {h["name"] for h in described["hosts"] if h["vsc"] == "vsc-east"}
    tunnels = re.findall(r'<line class="tunnel" data-name="([^"]+)~([^"]+)"', page)
    assert any((a in east) != (b in east) for a, b in tunnels)  # across the data centres
