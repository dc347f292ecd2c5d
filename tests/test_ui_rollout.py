"""`vsplab bench nfd8 --ui`: while a small rollout runs (4 simulated hosts, 48 containers arriving at
12 a second through the VSD's REST API and one VSC), the teaching page's rollout series grows, its
topology shows the containers the simulated VRSs hold, and a host's flows are served; the bench still
verifies its rollout. Correctness only: nothing here is timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_rollout_is_live_on_the_page(tmp_path):
    out = tmp_path / "nfd8.json"
    proc = subprocess.Popen([sys.executable, "-m", "vsplab.cli", "bench", "nfd8", "--hosts", "4", "--per-host", "12",
                             "--vscs", "1", "--pairs", "10", "--arrival-rate", "12", "--ui", "--json", str(out)],
                            cwd=ROOT, env={**os.environ, "COLUMNS": "300"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("UI at "):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    seen: list[dict] = []
    topology = flows = ""
    try:
        assert found.wait(180), "no `UI at` line:\n" + "".join(lines[-30:])
        url = next(x for x in lines if x.startswith("UI at ")).split()[-1].removesuffix("rollout")
        assert "chart-containers" in httpx.get(url + "rollout", timeout=30).text
        refused = httpx.get(url + "trace", params={"from": "vl-c1", "to": "vl-c2", "proto": "tcp", "port": "80"},
                            timeout=30)
        assert refused.status_code == 400 and "traces sim labs only today" in refused.text
        end = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < end:
            try:
                r = httpx.get(url + "api/rollout", timeout=30).json()
                seen.append(r)
                if r["containers_up"] and r["containers_up"][-1] > 0 and not topology:
                    topology = httpx.get(url + "fragment/topology", timeout=30).text
                    flows = httpx.get(url + "flows", params={"host": "vl-vrs1", "table": "60"}, timeout=30).text
            except (httpx.HTTPError, ValueError):
                break  # the bench has finished and taken its page down
            time.sleep(0.2)
        proc.wait(180)  # the bench verifies, writes its JSON and exits by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines[-40:])
    res = json.loads(out.read_text())
    assert res["converged"] and res["verified_ok"] and res["containers"] == 48
    last = seen[-1]
    assert last["containers"] == 48 and sorted(last["flows"]) == [f"vl-vrs{i}" for i in range(1, 5)]
    ups = last["containers_up"]
    assert ups == sorted(ups) and ups[-1] > 0, ups  # the page saw containers arrive, never leave
    assert topology.count('class="container"') > 0 and "vl-c" in topology
    assert "matching flows" in flows and "table=60" in flows  # one DELIVER flow per container up there
