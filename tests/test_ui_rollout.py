"""`vsplab bench nfd8 --ui`: while a small rollout runs (4 simulated hosts, 48 containers arriving at
12 a second through the VSD's REST API and one VSC), the teaching page's rollout series grows, its
topology - open in a real headless Chromium - redraws itself as containers arrive (the page's own
polling, no reload), a host's flows are served, a trace is refused naming the mode, and the bench
still verifies its rollout. Correctness only: nothing here is timed."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.ui_support import chromium, need_browser
from vsplab.ui.launch import UiProcess

pytestmark = pytest.mark.slow


def test_rollout_is_live_on_the_page(tmp_path):
    need_browser()
    from selenium.webdriver.common.by import By

    out = tmp_path / "nfd8.json"
    args = ["bench", "nfd8", "--hosts", "4", "--per-host", "12", "--vscs", "1", "--pairs", "10",
            "--arrival-rate", "12", "--ui", "--json", str(out)]
    seen: list[dict] = []
    drawn: list[int] = []
    topology = flows = ""
    with chromium() as browser, UiProcess(args, grace=180) as bench:
        url = bench.url.removesuffix("rollout")
        browser.get(url)  # opened while the hosts are still empty
        assert "chart-containers" in httpx.get(url + "rollout", timeout=30).text
        refused = httpx.get(url + "trace", params={"from": "vl-c1", "to": "vl-c2", "proto": "tcp", "port": "80"},
                            timeout=30)
        assert refused.status_code == 400 and "traces sim labs" in refused.text
        end = time.monotonic() + 180
        while bench.proc.poll() is None and time.monotonic() < end:
            try:
                r = httpx.get(url + "api/rollout", timeout=30).json()
                seen.append(r)
                if r["containers_up"] and r["containers_up"][-1] > 0 and not topology:
                    topology = httpx.get(url + "fragment/topology", timeout=30).text
                    flows = httpx.get(url + "flows", params={"host": "vl-vrs1", "table": "60"}, timeout=30).text
                drawn.append(len(browser.find_elements(By.CSS_SELECTOR, "#topology g.container")))
            except (httpx.HTTPError, ValueError):
                break  # the bench has finished and taken its page down
            time.sleep(0.2)
        bench.proc.wait(180)  # the bench verifies, writes its JSON and exits by itself
    assert bench.proc.returncode == 0, "".join(bench.lines[-40:])
    res = json.loads(out.read_text())
    assert res["converged"] and res["verified_ok"] and res["containers"] == 48
    last = seen[-1]
    assert last["containers"] == 48 and sorted(last["flows"]) == [f"vl-vrs{i}" for i in range(1, 5)]
    ups = last["containers_up"]
    assert ups == sorted(ups) and ups[-1] > 0, ups  # the page saw containers arrive, never leave
    assert topology.count('class="container"') > 0 and "vl-c" in topology
    assert "matching flows" in flows and "table=60" in flows  # one DELIVER flow per container up there
    assert drawn[0] == 0 and max(drawn) > 0, drawn  # the open page redrew itself
