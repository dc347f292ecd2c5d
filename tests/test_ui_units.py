"""The teaching page's pure parts, without a lab or a browser: layout and SVG of a 40-host,
2,000-container lab, the flow view's filter and stated limit, the policy matrix from VSD objects, and
how a cookie's owner is named (tests/test_ui_browser.py drives the whole page against a real lab)."""

from __future__ import annotations

import re

from vsplab.ui import flowtable, matrix, pages, svg, walk
from vsplab.ui.layout import lay_out
from vsplab.ui.source import Policy


def _lab(hosts: int = 40, per_host: int = 50, vscs: int = 2) -> dict:
    names = [f"host{i + 1}" for i in range(hosts)]
    return {
        "scenario": "big", "mode": "sim", "vsd": None, "reflectors": [], "results": [],
        "vscs": [{"name": f"vsc{v + 1}", "status_url": "http://127.0.0.1:1", "hosts": names[v::vscs]}
                 for v in range(vscs)],
        "hosts": [{"name": h, "vsc": f"vsc{i % vscs + 1}"} for i, h in enumerate(names)],
        "containers": [{"name": f"c{i}", "host": names[i % hosts], "enterprise": "e", "domain": "d",
                        "subnet": "s", "ip": f"10.0.{i // 250}.{i % 250 + 2}", "groups": [f"g{i % 8}"]}
                       for i in range(hosts * per_host)],
        "bgp": [{"vsc": "vsc1", "peer": "vsc2", "state": "ESTABLISHED", "routes_received": 1000,
                 "routes_advertised": 1000}],
    }


def test_large_lab_layout_places_every_container_on_its_host_card():
    lab = _lab()
    topo = lay_out(lab)
    assert len([n for n in topo.nodes.values() if n.kind == "host"]) == 40
    assert len(topo.tunnels) == 40 * 39 // 2  # one domain everywhere: every pair of hosts
    for c in lab["containers"]:
        card = topo.nodes[c["host"]]
        x, y = topo.containers[c["name"]]
        assert abs(x - card.x) <= card.w / 2 and abs(y - card.y) <= card.h / 2, c["name"]
    assert all(0 <= n.x - n.w / 2 and n.x + n.w / 2 <= topo.width for n in topo.nodes.values())
    drawn = svg.topology_svg(topo, lab, {"vsc1": None, "vsc2": None})
    assert drawn.count('class="container"') == 2000
    assert 'class="bgpsession up"' in drawn and "ESTABLISHED rx 1000 tx 1000" in drawn
    assert "VSC not answering" in drawn


def test_flow_view_filters_and_says_where_it_stops():
    dump = "".join(f" cookie=0x{0x600000000000000 + i:x}, table={45 if i % 2 else 20}, n_packets=0, "
                   f"priority={i},reg0=0x{i:x} actions=drop\n" for i in range(1200))
    v = flowtable.view(dump, table=20)
    assert v.total == 1200 and v.per_table == {20: 600, 45: 600} and v.matching == 600
    assert len(v.rows) == flowtable.SHOWN
    html = pages.flows(_lab(2, 1, 1), "host1", v, {}, {"table": "20"})
    assert "showing the first 500 of 600 matching flows; narrow the filter" in html
    counted = flowtable.view(dump, per_table={"20": 600, "45": 600})  # as the lab sends them: counted there
    assert counted.total == counted.matching == 1200 and len(counted.rows) == flowtable.SHOWN
    assert flowtable.view(dump, text="reg0=0x4b0,").matching == 0
    assert flowtable.view(dump, text="priority=1199,").matching == 1


def _policy() -> Policy:
    p = Policy(revision=1)
    p.domains = {"D": {"ID": "D", "name": "prod"}}
    p.ends = {"W": ("group", "web"), "A": ("group", "app"), "M": ("macro", "internet")}
    p.group_domain = {"W": "D", "A": "D"}
    p.templates = {"TI": {"ID": "TI", "parentID": "D", "name": "prod-in", "defaultAllowIP": False,
                          "direction": "ingress"},
                   "TE": {"ID": "TE", "parentID": "D", "name": "prod-out", "defaultAllowIP": True,
                          "direction": "egress"}}
    p.entries = {
        "E1": {"ID": "E1", "parentID": "TI", "direction": "ingress", "description": "web to app",
               "locationType": "POLICYGROUP", "locationID": "W", "networkType": "POLICYGROUP", "networkID": "A",
               "protocol": "6", "destinationPort": "8080", "action": "FORWARD", "stateful": True, "priority": 100},
        "E2": {"ID": "E2", "parentID": "TE", "direction": "egress", "description": "app from internet",
               "locationType": "POLICYGROUP", "locationID": "A", "networkType": "ENTERPRISE_NETWORK",
               "networkID": "M", "protocol": "1", "action": "DROP", "stateful": False, "priority": 5},
    }
    return p


def test_matrix_puts_each_entry_between_its_ends_with_the_checks():
    lab = {"containers": [{"name": "w1", "groups": ["web"]}, {"name": "a1", "groups": ["app"]}],
           "results": [{"source": "w1", "destination": "a1", "protocol": "tcp", "port": 8080, "expected": "allow",
                        "observed": "deny", "passed": False}]}
    [m] = matrix.build(_policy(), lab)
    assert m.name == "prod" and m.defaults == {"ingress": "deny", "egress": "allow"}
    assert m.ends == ["app", "web", "macro:internet"]
    [r] = m.cells[("web", "app")]
    assert (r.direction, r.protocol, r.port, r.action, r.stateful, r.priority) == ("ingress", "tcp", "8080", "allow",
                                                                                  True, 100)
    [r] = m.cells[("macro:internet", "app")]
    assert (r.direction, r.protocol, r.action) == ("egress", "icmp", "deny")
    assert [c.observed for c in m.checks[("web", "app")]] == ["deny"]
    html = pages.matrix([m])
    assert re.search(r'data-cell="web>app".*expect allow, saw deny', html)


def test_owner_names_the_acl_entry_or_the_templates_default():
    p = _policy()
    entry = walk.owner_text({"kind": "ACL_ENTRY", "ID": "E1", "priority": 100}, 45, p)
    assert entry == "ingress ACL entry \u201cweb to app\u201d, priority 100, allow, stateful"
    default = walk.owner_text({"kind": "ACL_DEFAULT", "ID": "D", "name": "prod"}, 45, p)
    assert "template \u201cprod-in\u201d of domain prod (defaultAllowIP false): deny" in default
    assert walk.owner_text({"kind": "PIPELINE", "ID": None}, 0, p) == "pipeline skeleton (no VSD object)"
