"""The teaching page end to end: the real CLI (`vsplab run scenarios/three-tier.yaml --ui`) in sim mode,
opened in a real headless Chromium through Selenium and chromedriver (Debian's packages). Finds every
host and container in the topology, traces web1 -> db1 tcp/5432 (dropped, with the table and the ACL
template's verdict named) and web1 -> app1 tcp/8080 (delivered, request and reply, the ACL entries by
their VSD names), reads the matrix and a flow table, and takes screenshots (into
$VSPLAB_UI_SCREENSHOTS if set: that is how docs/ui-*.png are made)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.ui_support import chromium, need_browser
from vsplab.ui.launch import UiProcess

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "three-tier.yaml"
HOSTS = ["host1", "host2", "host3"]
CONTAINERS = ["web1", "web2", "app1", "app2", "db1", "db2"]

need_browser()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab and its page, started by the real command line; stopped with Ctrl-C (SIGINT)."""
    labs = tmp_path_factory.mktemp("vl-ui-labs")
    with UiProcess(["run", str(SCENARIO), "--ui"], env={"VSPLAB_LABS_DIR": str(labs)}) as p:
        p.labs = labs
        yield p


@pytest.fixture(scope="module")
def ui(lab) -> str:
    return lab.url


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = os.environ.get("VSPLAB_UI_SCREENSHOTS")
    return Path(out) if out else tmp_path_factory.mktemp("vl-ui-shots")


def _trace(browser, ui: str, src: str, dst: str, proto: str, port: int) -> str:
    browser.get(ui + "trace")
    Select(browser.find_element(By.ID, "from")).select_by_visible_text(src)
    Select(browser.find_element(By.ID, "to")).select_by_visible_text(dst)
    Select(browser.find_element(By.ID, "proto")).select_by_visible_text(proto)
    port_box = browser.find_element(By.ID, "port")
    port_box.clear()
    port_box.send_keys(str(port))
    browser.find_element(By.ID, "trace-go").click()
    return WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "verdict")).text


def test_topology_shows_every_host_and_container(ui, browser, shots):
    browser.get(ui)
    svg = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "topology"))
    for h in HOSTS:
        assert h in svg.find_element(By.CSS_SELECTOR, f'g.host[data-name="{h}"]').text
    for c in CONTAINERS:
        assert c in svg.find_element(By.CSS_SELECTOR, f'g.container[data-name="{c}"]').text
    assert svg.find_element(By.CSS_SELECTOR, 'g.vsc[data-name="vsc1"]')
    # every pair of hosts shares the domain: three VXLAN tunnels
    assert len(svg.find_elements(By.CSS_SELECTOR, "line.tunnel")) == 3
    assert browser.find_element(By.CSS_SELECTOR, 'g.container[data-name="web1"]').get_attribute("data-group") == "web"
    browser.save_screenshot(str(shots / "ui-topology.png"))


def test_trace_web1_db1_dropped_by_ingress_acl(ui, browser, shots):
    verdict = _trace(browser, ui, "web1", "db1", "tcp", 5432)
    assert "dropped" in verdict and "host1 table 45 (INGRESS_ACL)" in verdict
    decided = browser.find_element(By.CSS_SELECTOR, '[data-pass="request"] ul.decided').text
    assert "prod-ingress" in decided and "deny" in decided
    browser.save_screenshot(str(shots / "ui-trace-dropped.png"))


def test_trace_web1_app1_delivered_by_named_entries(ui, browser, shots):
    verdict = _trace(browser, ui, "web1", "app1", "tcp", 8080)
    assert "delivered" in verdict
    request = browser.find_element(By.CSS_SELECTOR, '[data-pass="request"] ul.decided').text
    assert "ingress ACL entry \u201cweb -> app tcp 8080\u201d, priority 1000" in request
    assert "egress ACL entry \u201cweb -> app tcp 8080\u201d" in request
    reply = browser.find_element(By.CSS_SELECTOR, '[data-pass="reply"]').text
    assert "delivered to web1" in reply and "established connection" in reply
    browser.save_screenshot(str(shots / "ui-trace.png"))


def test_matrix_rules_and_checks(ui, browser, shots):
    browser.get(ui + "matrix")
    cell = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, 'td[data-cell="web>app"]')).text
    assert "tcp/8080 allow stateful" in cell and "web1 \u2192 app1 tcp/8080: expect allow, saw allow" in cell
    assert "expect deny, saw deny" in browser.find_element(By.CSS_SELECTOR, 'td[data-cell="web>db"]').text
    browser.save_screenshot(str(shots / "ui-matrix.png"))


def test_flows_filtered_with_vsd_objects(ui, browser):
    browser.get(ui + "flows?host=host1&table=45")
    assert browser.find_element(By.ID, "flow-count").text == "3 matching flows"
    table = browser.find_element(By.CSS_SELECTOR, "table.flows").text
    assert "ingress ACL entry \u201capp -> db tcp 5432\u201d, priority 1010" in table


def test_bad_queries_name_the_field(ui):
    r = httpx.get(ui + "trace", params={"from": "nobody", "to": "db1", "proto": "tcp", "port": "1"})
    assert r.status_code == 400 and "from: no container" in r.text
    r = httpx.get(ui + "trace", params={"from": "web1", "to": "db1", "proto": "tcp", "port": "x"})
    assert r.status_code == 400 and "port: &#x27;x&#x27; is not a number" in r.text
    assert httpx.get(ui + "flows", params={"host": "host9"}).status_code == 400
    v = httpx.get(ui + "api/version").json()
    assert v["containers"] == 6 and v["hosts"] == 3
    assert httpx.get(ui + "fragment/topology").text.startswith("<svg")


def test_vsplab_ui_serves_a_kept_lab_by_its_vsd_url(lab):
    """`vsplab ui --vsd URL`: a second page on the same running lab, through its control socket and VSD."""
    vsd = next(x for x in lab.lines if x.startswith("VSD at ")).split()[-1] + "/nuage/api/v6"
    [lab_dir] = [p for p in lab.labs.iterdir() if (p / "control.sock").exists()]
    with UiProcess(["ui", "--vsd", vsd, "--lab", str(lab_dir)], timeout=60, grace=30) as page:
        assert httpx.get(page.url + "api/lab", timeout=30).json()["scenario"] == "three-tier"
        assert "tcp/8080 <b>allow</b> stateful" in httpx.get(page.url + "matrix", timeout=30).text


def test_vsc_names_every_cookie_of_a_vrs(ui):
    """The VSC's GET /cookies?dpid=N: every cookie of host1's desired flows named by its VSD object."""
    [vsc] = httpx.get(ui + "api/lab", timeout=30).json()["vscs"]
    owners = httpx.get(vsc["status_url"] + "/cookies", params={"dpid": "1"}, timeout=30).json()
    entries = {(o["entityType"], o["priority"]) for o in owners.values() if o["kind"] == "ACL_ENTRY"}
    assert entries == {("ingressaclentrytemplate", 1000), ("ingressaclentrytemplate", 1010),
                       ("egressaclentrytemplate", 1000), ("egressaclentrytemplate", 1010)}
    assert {o["name"] for o in owners.values() if o["kind"] == "LOCAL_ENDPOINT"} == {"web1", "db2"}
    assert any(o["kind"] == "PIPELINE" and o["ID"] is None for o in owners.values())
    r = httpx.get(vsc["status_url"] + "/cookies", params={"cookie": "zz"}, timeout=30)
    assert r.status_code == 400
