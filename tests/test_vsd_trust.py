"""Trust boundaries of the VSD's REST API, one test per finding of the trust-boundaries issue: filters
that cannot stall the server (5), requests that used to answer 500 (6), formats matched in full (7),
and refusals that tell an enterprise admin nothing about other enterprises (9)."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import orjson
import pytest

from tests.vsd_fixtures import HTTP, HealthProbe, error_property, error_text, headers, make_user, revision
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd


@pytest.fixture(scope="module")
def world():
    with EmbeddedVsd() as vsd:
        root = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        ids: dict[str, str] = {}
        for tag, net in (("a", "10.1.0.0"), ("b", "10.2.0.0")):
            ent = root.create("", "enterprises", {"name": f"vl-trust-{tag}"})
            e = f"enterprises/{ent['ID']}"
            tmpl = root.create(e, "domaintemplates", {"name": "t"})
            dom = root.create(e, "domains", {"name": "d", "templateID": tmpl["ID"]})
            zone = root.create(f"domains/{dom['ID']}", "zones", {"name": "z"})
            sn = root.create(f"zones/{zone['ID']}", "subnets", {"name": "s", "address": net, "netmask": "255.255.0.0"})
            vp = root.create(f"subnets/{sn['ID']}", "vports", {"name": f"{tag}-secret-vport", "type": "VM"})
            free = root.create(f"subnets/{sn['ID']}", "vports", {"name": f"{tag}-free-vport", "type": "VM"})
            pg = root.create(f"domains/{dom['ID']}", "policygroups", {"name": f"{tag}-secret-pg", "type": "SOFTWARE"})
            acl = root.create(f"domains/{dom['ID']}", "ingressacltemplates", {"name": "in"})
            net_obj = root.create(e, "enterprisenetworks", {"name": f"{tag}-secret-net", "address": "192.168.0.0",
                                                             "netmask": "255.255.255.0"})
            group = root.create(e, "groups", {"name": f"{tag}-group", "role": "ORGUSER"})
            user = root.create(e, "users", {"userName": f"{tag}-secret-user", "password": "pw", "firstName": "f",
                                            "lastName": "l", "email": "e@x"})
            root.create("", "vms", {"name": f"{tag}-vm", "UUID": str(uuid.uuid4()), "interfaces": [
                {"name": "eth0", "MAC": "02:ab:ab:ab:ab:01", "VPortID": vp["ID"]}]})
            ids.update({f"{tag}.ent": ent["ID"], f"{tag}.tmpl": tmpl["ID"], f"{tag}.dom": dom["ID"],
                        f"{tag}.zone": zone["ID"], f"{tag}.subnet": sn["ID"], f"{tag}.vport": vp["ID"],
                        f"{tag}.free": free["ID"], f"{tag}.pg": pg["ID"], f"{tag}.acl": acl["ID"],
                        f"{tag}.net": net_obj["ID"], f"{tag}.group": group["ID"], f"{tag}.user": user["ID"]})
        make_user(root, ids["a.ent"], "vl-admin", "ORGADMIN")
        make_user(root, ids["a.ent"], "vl-reader", "ORGUSER")
        admin = VsdClient(vsd.api, "vl-admin", "vl-admin-pw", "vl-trust-a")
        reader = VsdClient(vsd.api, "vl-reader", "vl-reader-pw", "vl-trust-a")
        yield vsd, root, admin, reader, ids
        for c in (root, admin, reader):
            c.close()


def _call(vsd, client, method, path, body=None, extra: dict | None = None) -> httpx.Response:
    content = orjson.dumps(body) if body is not None else None
    # short: a stream or a long poll answering the wrong method would otherwise hold the test
    return HTTP.request(method, f"{vsd.api}/{path}", headers={**headers(vsd, client), **(extra or {})},
                        content=content, timeout=5)


# --- 5: filters are parsed and matched in bounded time and depth


def test_like_with_many_wildcards_does_not_stall_the_server(world):
    vsd, root, _, reader, ids = world
    root.create(f"domains/{ids['a.dom']}", "zones", [{"name": "a" * 40 + str(i)} for i in range(6)])
    pattern = 'name LIKE "' + "%a" * 6 + '%b"'  # six wildcard blocks: seconds per object with a regex
    with HealthProbe(vsd) as probe:
        t0 = time.monotonic()
        r = HTTP.get(f"{vsd.api}/domains/{ids['a.dom']}/zones", timeout=5,
                     headers={**headers(vsd, reader), "X-Nuage-Filter": pattern})
        took = time.monotonic() - t0
    assert r.status_code == 200 and r.json() in ([], None, "")
    assert took < 1.0, f"a LIKE filter took {took:.1f} s"
    assert probe.worst < 0.1 and not probe.failures, (probe.worst, probe.failures)
    r = HTTP.get(f"{vsd.api}/domains/{ids['a.dom']}/zones",
                 headers={**headers(vsd, reader), "X-Nuage-Filter": 'name LIKE "a%a%1"'})
    assert [z["name"] for z in r.json()] == ["a" * 40 + "1"]


@pytest.mark.parametrize("text", ["(" * 3000 + 'name == "z"' + ")" * 3000,
                                  " and ".join(['name == "z"'] * 2000),
                                  " or ".join(['name == "z"'] * 2000)], ids=["3000-parens", "2000-and", "2000-or"])
def test_deep_or_long_filters_are_refused_not_crashed(world, text):
    vsd, _, _, reader, ids = world
    r = HTTP.get(f"{vsd.api}/domains/{ids['a.dom']}/zones", headers={**headers(vsd, reader), "X-Nuage-Filter": text})
    assert r.status_code == 400 and error_property(r) == "X-Nuage-Filter", r.text


# --- 6: inputs that answered 500


def _basic(user: str, secret: str) -> str:
    return "XREST " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_bad_audit_limits_are_400(world):
    vsd, root, *_ = world
    for limit in ("x", str(2 ** 64), "-1", "0"):
        r = _call(vsd, root, "GET", f"vsplab/audit?limit={limit}")
        assert r.status_code == 400 and error_property(r) == "limit", (limit, r.text)
    assert _call(vsd, root, "GET", "vsplab/audit?limit=3").status_code == 200


@pytest.mark.parametrize("header", ["X-Nuage-Filter", "X-Nuage-Organization", "Authorization"])
def test_headers_that_are_not_utf8_are_refused(world, header):
    vsd, root, *_ = world
    value = b"XREST \xff\xfe" if header == "Authorization" else b'name == "\xff\xfe"'
    r = HTTP.get(f"{vsd.api}/enterprises", headers={**headers(vsd, root), header: value})
    assert r.status_code in (400, 401) and error_property(r) == header, r.text


def test_vm_interface_with_a_list_as_vport_id_is_400(world):
    vsd, root, _, _, ids = world
    before = revision(vsd)
    r = _call(vsd, root, "POST", "vms", {"name": "vl-x", "UUID": str(uuid.uuid4()), "interfaces": [
        {"MAC": "02:00:00:00:00:77", "VPortID": [ids["a.free"]]}]})
    assert r.status_code == 400 and error_property(r) == "VPortID", r.text
    r = _call(vsd, root, "POST", "vms", {"name": "vl-x", "UUID": str(uuid.uuid4()), "interfaces": [["eth0"]]})
    assert r.status_code == 400 and "interfaces" in error_text(r), r.text
    assert revision(vsd) == before


def test_list_attributes_are_checked_item_by_item(world):
    vsd, root, *_ = world
    r = _call(vsd, root, "POST", "enterprises", {"name": "vl-fc", "allowedForwardingClasses": ["A", "B"]})
    assert r.status_code == 201 and r.json()[0]["allowedForwardingClasses"] == ["A", "B"], r.text
    for bad in (["A", "Z"], [1], [["A"]], "A"):
        r = _call(vsd, root, "POST", "enterprises", {"name": "vl-fc2", "allowedForwardingClasses": bad})
        assert r.status_code == 400 and error_property(r) == "allowedForwardingClasses", (bad, r.text)


@pytest.mark.parametrize("protocol", ["\u00b2", "\u0663", "6\n", "+6", " 6", "256", "-1"])
def test_acl_protocol_must_be_ascii_digits(world, protocol):
    vsd, root, _, _, ids = world
    r = _call(vsd, root, "POST", f"ingressacltemplates/{ids['a.acl']}/ingressaclentrytemplates",
              {"action": "FORWARD", "locationType": "ANY", "networkType": "ANY", "protocol": protocol})
    assert r.status_code == 400 and error_property(r) == "protocol", r.text


@pytest.mark.parametrize("method,path", [("DELETE", "vsplab/audit"), ("POST", "vsplab/audit"), ("PUT", "events"),
                                         ("DELETE", "events"), ("POST", "vsplab/changes"),
                                         ("DELETE", "vsplab/health"), ("DELETE", "me"), ("POST", "me")])
def test_extension_paths_answer_only_their_methods(world, method, path):
    vsd, root, *_ = world
    r = _call(vsd, root, method, path, body={} if method in ("POST", "PUT") else None)
    assert r.status_code == 405, r.text
    assert b"audit" not in r.content or b"errors" in r.content


# --- 7: formats are matched in full: no trailing newline slips through


def test_mac_with_a_trailing_newline_is_not_a_new_mac(world):
    vsd, root, _, _, ids = world
    before = revision(vsd)
    r = _call(vsd, root, "POST", "vms", {"name": "vl-dup", "UUID": str(uuid.uuid4()), "interfaces": [
        {"MAC": "02:ab:ab:ab:ab:01\n", "VPortID": ids["a.free"]}]})
    assert r.status_code == 400 and error_property(r) == "MAC", r.text
    assert revision(vsd) == before


@pytest.mark.parametrize("attrs,prop", [({"protocol": "6", "destinationPort": "80\n"}, "destinationPort"),
                                        ({"protocol": "6", "sourcePort": "1-2\n"}, "sourcePort"),
                                        ({"protocol": "6", "destinationPort": "\u0668\u0660"}, "destinationPort"),
                                        ({"etherType": "0x0800\n"}, "etherType")])
def test_acl_ports_and_ethertype_are_matched_in_full(world, attrs, prop):
    vsd, root, _, _, ids = world
    r = _call(vsd, root, "POST", f"ingressacltemplates/{ids['a.acl']}/ingressaclentrytemplates",
              {"action": "FORWARD", "locationType": "ANY", "networkType": "ANY", **attrs})
    assert r.status_code == 400 and error_property(r) == prop, r.text


# --- 9: "not yours" and "not there" are one answer, naming nothing of another enterprise


def _same_refusal(vsd, client, method, path, make_body, theirs: str, names: tuple[str, ...]) -> None:
    nobody = str(uuid.uuid4())
    r1 = _call(vsd, client, method, path, make_body(theirs))
    r2 = _call(vsd, client, method, path, make_body(nobody))
    assert r1.status_code == r2.status_code == 404, (r1.text, r2.text)
    assert r1.text.replace(theirs, "<ID>") == r2.text.replace(nobody, "<ID>"), (r1.text, r2.text)
    for name in names:
        assert name not in r1.text


def test_member_lists_do_not_reveal_another_enterprises_objects(world):
    vsd, _, admin, _, ids = world
    _same_refusal(vsd, admin, "PUT", f"policygroups/{ids['a.pg']}/vports", lambda i: [i], ids["b.vport"],
                  ("b-secret-vport",))
    _same_refusal(vsd, admin, "PUT", f"groups/{ids['a.group']}/users", lambda i: [i], ids["b.user"],
                  ("b-secret-user",))


def test_acl_references_do_not_reveal_another_enterprises_objects(world):
    vsd, _, admin, _, ids = world
    path = f"ingressacltemplates/{ids['a.acl']}/ingressaclentrytemplates"
    _same_refusal(vsd, admin, "POST", path, lambda i: {"action": "FORWARD", "locationType": "POLICYGROUP",
                                                       "locationID": i, "networkType": "ANY"},
                  ids["b.pg"], ("b-secret-pg",))
    _same_refusal(vsd, admin, "POST", path, lambda i: {"action": "FORWARD", "locationType": "ANY",
                                                       "networkType": "ENTERPRISE_NETWORK", "networkID": i},
                  ids["b.net"], ("b-secret-net",))


def test_domain_template_and_vm_vport_do_not_reveal_another_enterprises_objects(world):
    vsd, _, admin, _, ids = world
    _same_refusal(vsd, admin, "POST", f"enterprises/{ids['a.ent']}/domains",
                  lambda i: {"name": "vl-probe", "templateID": i}, ids["b.tmpl"], ())
    _same_refusal(vsd, admin, "POST", "vms", lambda i: {"name": "vl-probe", "UUID": str(uuid.uuid4()), "interfaces": [
        {"MAC": "02:00:00:00:99:01", "VPortID": i}]}, ids["b.vport"], ("b-secret-vport",))
    theirs, nobody = (_call(vsd, admin, "GET", f"vports/{i}") for i in (ids["b.vport"], str(uuid.uuid4())))
    assert theirs.status_code == nobody.status_code == 404  # reads were already blind


def test_vni_choice_does_not_probe_other_enterprises(world):
    vsd, root, admin, _, ids = world
    taken = root.get(f"subnets/{ids['b.subnet']}")["vnId"]
    r = _call(vsd, admin, "POST", f"zones/{ids['a.zone']}/subnets",
              {"name": "vl-vni", "address": "10.99.0.0", "netmask": "255.255.255.0", "vnId": taken})
    free = _call(vsd, admin, "POST", f"zones/{ids['a.zone']}/subnets",
                 {"name": "vl-vni", "address": "10.99.0.0", "netmask": "255.255.255.0", "vnId": 9_999_999})
    assert r.status_code == free.status_code == 403, (r.text, free.text)


def test_login_refusals_do_not_reveal_users_or_enterprises(world):
    vsd, *_ = world

    def login(org: str, user: str) -> httpx.Response:
        return HTTP.get(f"{vsd.api}/me", headers={"X-Nuage-Organization": org, "Authorization": _basic(user, "nope")})

    known, unknown = login("vl-trust-a", "vl-admin"), login("vl-trust-a", "vl-nobody")
    assert known.status_code == unknown.status_code == 401
    assert known.text.replace("vl-admin", "<U>") == unknown.text.replace("vl-nobody", "<U>")
    real, none = login("vl-trust-b", "x"), login("vl-no-such-enterprise", "x")
    assert real.status_code == none.status_code == 401
    assert real.text.replace("vl-trust-b", "<O>") == none.text.replace("vl-no-such-enterprise", "<O>")
