"""Malformed and conflicting requests: each answered with the right 4xx, the VSD's error JSON naming
the offending field, and the store unchanged (no revision handed out, the same snapshot afterwards)."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests.vsd_fixtures import HTTP, error_property, error_text, headers, revision
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd


@pytest.fixture(scope="module")
def world():
    with EmbeddedVsd() as vsd:
        c = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        ent = c.create("", "enterprises", {"name": "vl-bad"})
        tmpl = c.create(f"enterprises/{ent['ID']}", "domaintemplates", {"name": "t"})
        ids = {"ent": ent["ID"], "tmpl": tmpl["ID"]}
        for d, net in (("d1", "10.1.0.0"), ("d2", "10.9.0.0")):
            dom = c.create(f"enterprises/{ent['ID']}", "domains", {"name": d, "templateID": tmpl["ID"]})
            zones = c.create(f"domains/{dom['ID']}", "zones", [{"name": "za"}, {"name": "zb"}])
            sn = c.create(f"zones/{zones[0]['ID']}", "subnets",
                          {"name": "s", "address": net, "netmask": "255.255.255.0"})
            vp = c.create(f"subnets/{sn['ID']}", "vports", {"name": "v", "type": "VM"})
            pg = c.create(f"domains/{dom['ID']}", "policygroups", {"name": "pg", "type": "SOFTWARE"})
            acl = c.create(f"domains/{dom['ID']}", "ingressacltemplates", {"name": "in"})
            ids.update({d: dom["ID"], f"{d}za": zones[0]["ID"], f"{d}zb": zones[1]["ID"], f"{d}s": sn["ID"],
                        f"{d}v": vp["ID"], f"{d}pg": pg["ID"], f"{d}acl": acl["ID"]})
        vm = c.create("", "vms", {"name": "vm", "UUID": str(uuid.uuid4()), "interfaces": [
            {"name": "eth0", "MAC": "02:00:00:00:00:01", "VPortID": ids["d1v"], "IPAddress": "10.1.0.10"}]})
        entry = c.create(f"ingressacltemplates/{ids['d1acl']}", "ingressaclentrytemplates", {
            "action": "FORWARD", "locationType": "POLICYGROUP", "locationID": ids["d1pg"],
            "networkType": "ANY", "protocol": "6", "destinationPort": "80", "priority": 100})
        ids.update({"vm": vm["ID"], "entry": entry["ID"]})
        yield vsd, c, ids


def _iface(**kw) -> dict:
    return {"name": "vm2", "UUID": str(uuid.uuid4()),
            "interfaces": [{"name": "eth0", "MAC": "02:00:00:00:00:02", "VPortID": "{d1v}", **kw}]}


def _entry(**kw) -> dict:
    return {"action": "FORWARD", "locationType": "ANY", "networkType": "ANY", "protocol": "6", **kw}


S = "zones/{d1zb}/subnets"
# (test id, method, path, body, status, property the error must name)
CASES = [
    ("bad-cidr-address", "POST", S, {"name": "x", "address": "10.1.0.300", "netmask": "255.255.255.0"}, 400,
     "address"),
    ("host-bits-set", "POST", S, {"name": "x", "address": "10.5.0.1", "netmask": "255.255.255.0"}, 400, "address"),
    ("bad-netmask", "POST", S, {"name": "x", "address": "10.5.0.0", "netmask": "255.0.255.0"}, 400, "netmask"),
    ("gateway-outside-subnet", "POST", S, {"name": "x", "address": "10.6.0.0", "netmask": "255.255.255.0",
                                           "gateway": "10.7.0.1"}, 400, "gateway"),
    ("overlapping-subnet", "POST", S, {"name": "x", "address": "10.1.0.128", "netmask": "255.255.255.128"}, 409,
     "address"),
    ("unknown-attribute", "POST", "domains/{d1}/zones", {"name": "z", "colour": "blue"}, 400, "colour"),
    ("wrong-type", "POST", "subnets/{d1s}/vports", {"name": "x", "type": "VM", "active": "yes"}, 400, "active"),
    ("bad-choice", "POST", "subnets/{d1s}/vports", {"name": "x", "type": "PHONE"}, 400, "type"),
    ("missing-required", "POST", "subnets/{d1s}/vports", {"type": "VM"}, 400, "name"),
    ("name-clash", "POST", "domains/{d1}/zones", {"name": "za"}, 409, "name"),
    ("missing-parent", "POST", "zones/" + str(uuid.uuid4()) + "/subnets",
     {"name": "x", "address": "10.8.0.0", "netmask": "255.255.255.0"}, 404, "parentID"),
    ("wrong-parent-kind", "POST", "domains/{d1}/vports", {"name": "x", "type": "VM"}, 405, "parentID"),
    ("ip-outside-subnet", "POST", "vms", _iface(IPAddress="10.2.0.5"), 400, "IPAddress"),
    ("ip-taken", "POST", "vms", _iface(IPAddress="10.1.0.10"), 409, "IPAddress"),
    ("ip-is-gateway", "POST", "vms", _iface(IPAddress="10.1.0.1"), 409, "IPAddress"),
    ("duplicate-mac", "POST", "vms", {**_iface(), "interfaces": [
        {"MAC": "02:00:00:00:00:01", "VPortID": "{d1v}"}]}, 409, "MAC"),
    ("malformed-mac", "POST", "vms", {**_iface(), "interfaces": [{"MAC": "02:00:zz:00:00:01", "VPortID": "{d1v}"}]},
     400, "MAC"),
    ("missing-mac", "POST", "vms", {**_iface(), "interfaces": [{"VPortID": "{d1v}"}]}, 400, "MAC"),
    ("unknown-vport", "POST", "vms", {**_iface(), "interfaces": [{"MAC": "02:00:00:00:00:09",
                                                                 "VPortID": str(uuid.uuid4())}]}, 404, "VPortID"),
    ("pg-member-other-domain", "PUT", "policygroups/{d1pg}/vports", ["{d2v}"], 409, "ID"),
    ("pg-member-unknown", "PUT", "policygroups/{d1pg}/vports", [str(uuid.uuid4())], 404, "ID"),
    ("acl-location-other-domain", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates",
     _entry(locationType="POLICYGROUP", locationID="{d2pg}"), 409, "locationID"),
    ("acl-network-other-domain", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates",
     _entry(networkType="SUBNET", networkID="{d2s}"), 409, "networkID"),
    ("acl-location-wrong-kind", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates",
     _entry(locationType="POLICYGROUP", locationID="{d1s}"), 404, "locationID"),
    ("acl-priority-clash", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates", _entry(priority=100),
     409, "priority"),
    ("acl-port-out-of-range", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates",
     _entry(destinationPort="70000"), 400, "destinationPort"),
    ("acl-protocol-name", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates", _entry(protocol="tcp"),
     400, "protocol"),
    ("acl-missing-action", "POST", "ingressacltemplates/{d1acl}/ingressaclentrytemplates",
     {"locationType": "ANY", "action": None}, 400, "action"),
    ("delete-parent-with-children", "DELETE", "subnets/{d1s}", None, 409, "ID"),
    ("delete-referenced-pg", "DELETE", "policygroups/{d1pg}", None, 409, "ID"),
    ("delete-vport-with-interface", "DELETE", "vports/{d1v}", None, 409, "ID"),
    ("unknown-template", "POST", "enterprises/{ent}/domains", {"name": "d3", "templateID": str(uuid.uuid4())}, 404,
     "templateID"),
    ("pgid-out-of-range", "POST", "domains/{d1}/policygroups", {"name": "p2", "type": "SOFTWARE",
                                                                "policyGroupID": 5000}, 400, "policyGroupID"),
    ("pgid-clash", "POST", "domains/{d1}/policygroups", {"name": "p2", "type": "SOFTWARE", "policyGroupID": 1}, 409,
     "policyGroupID"),
    ("change-assigned-vni", "PUT", "subnets/{d1s}", {"vnId": 12}, 400, "vnId"),
    ("rename-into-clash", "PUT", "zones/{d1zb}", {"name": "za"}, 409, "name"),
    ("bulk-with-one-bad-item", "POST", "domains/{d1}/zones", [{"name": "ok1"}, {"name": "ok2"}, {"name": "ok1"}],
     409, "name"),
    ("bulk-overlap-inside-list", "POST", S, [{"name": "n1", "address": "10.20.0.0", "netmask": "255.255.0.0"},
                                             {"name": "n2", "address": "10.20.5.0", "netmask": "255.255.255.0"}],
     409, "address"),
]


def _fill(value, ids: dict):
    if isinstance(value, str):
        return value.format(**ids) if "{" in value else value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _snapshot(vsd: EmbeddedVsd, c: VsdClient) -> dict:
    stream = c.changes(0)
    line = next(stream)
    stream.close()
    assert line["kind"] == "snapshot"
    return line


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name,method,path,body,status,prop", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_refused_and_changes_nothing(world, name, method, path, body, status, prop):
    vsd, c, ids = world
    before = revision(vsd)
    r = HTTP.request(method, f"{vsd.api}/{_fill(path, ids)}", headers=headers(vsd, c),
                      content=orjson.dumps(_fill(body, ids)) if body is not None else None)
    assert r.status_code == status, r.text
    assert error_property(r) == prop, r.text
    text = error_text(r)
    assert prop in text or prop == "ID", text  # the message names the field too
    assert revision(vsd) == before


def test_store_is_unchanged_after_all_bad_requests(world):
    vsd, c, ids = world
    snap = _snapshot(vsd, c)
    for _, method, path, body, _, _ in CASES:
        HTTP.request(method, f"{vsd.api}/{_fill(path, ids)}", headers=headers(vsd, c),
                      content=orjson.dumps(_fill(body, ids)) if body is not None else None)
    assert _snapshot(vsd, c) == snap


def test_bad_filter_and_bad_json_name_their_field(world):
    vsd, c, ids = world
    r = HTTP.get(f"{vsd.api}/enterprises", headers={**headers(vsd, c), "X-Nuage-Filter": 'name === "x'})
    assert r.status_code == 400 and error_property(r) == "X-Nuage-Filter"
    r = HTTP.post(f"{vsd.api}/domains/{ids['d1']}/zones", headers=headers(vsd, c), content=b"{name: z}")
    assert r.status_code == 400 and "JSON" in error_text(r)
