"""The VSD API beyond vspk's happy path: roles, the audit log, paging and counting, bulk answers, and
the change stream's contract (docs/interfaces.md section 1)."""

from __future__ import annotations

import time

import pytest

from tests.vsd_fixtures import HTTP, StreamReader, error_property, headers, revision
from vsd.client import VsdApiError, VsdClient
from vsd.example import build_three_tier
from vsd.server import EmbeddedVsd


@pytest.fixture(scope="module")
def vsd():
    with EmbeddedVsd() as server:
        yield server


@pytest.fixture(scope="module")
def root(vsd):
    with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        yield c


@pytest.fixture(scope="module")
def acme(root):
    return build_three_tier(root)


def _user(root: VsdClient, ent_id: str, name: str, role: str) -> None:
    u = root.create(f"enterprises/{ent_id}", "users", {"userName": name, "password": f"{name}-pw",
                                                        "firstName": name, "lastName": "x", "email": f"{name}@x"})
    g = root.create(f"enterprises/{ent_id}", "groups", {"name": f"{name}-group", "role": role})
    root.assign(f"groups/{g['ID']}/users", [u["ID"]])


def test_roles_admin_user_and_other_enterprise(vsd, root, acme):
    other = root.create("", "enterprises", {"name": "vl-other"})
    _user(root, acme["enterprise_id"], "admin", "ORGADMIN")
    _user(root, acme["enterprise_id"], "reader", "ORGUSER")
    with VsdClient(vsd.api, "admin", "admin-pw", "acme") as admin:
        me = HTTP.get(f"{vsd.api}/me", headers=headers(vsd, admin)).json()[0]
        assert me["role"] == "ORGADMIN" and me["enterpriseID"] == acme["enterprise_id"]
        assert [e["name"] for e in admin.list("enterprises")] == ["acme"]
        zone = admin.create(f"domains/{acme['domain_id']}", "zones", {"name": "admin-zone"})
        admin.update(f"zones/{zone['ID']}", {"description": "by the admin"})
        with pytest.raises(VsdApiError) as e:
            admin.create("", "enterprises", {"name": "vl-nope"})
        assert e.value.status == 403
        with pytest.raises(VsdApiError) as e:
            admin.delete(f"enterprises/{acme['enterprise_id']}")
        assert e.value.status == 403
        with pytest.raises(VsdApiError) as e:
            admin.get(f"enterprises/{other['ID']}")
        assert e.value.status == 404  # another enterprise's objects do not exist for it
        with pytest.raises(VsdApiError) as e:
            admin.create(f"enterprises/{other['ID']}", "domaintemplates", {"name": "t"})
        assert e.value.status == 404
        # the change stream shows an enterprise admin only its own enterprise
        stream = admin.changes(0)
        snap = next(stream)
        stream.close()
        assert snap["kind"] == "snapshot"
        assert {o["entity"].get("name") for o in snap["objects"] if o["entityType"] == "enterprise"} == {"acme"}
    with VsdClient(vsd.api, "reader", "reader-pw", "acme") as reader:
        assert len(reader.list(f"domains/{acme['domain_id']}/vports")) == 6
        with pytest.raises(VsdApiError) as e:
            reader.create(f"domains/{acme['domain_id']}", "zones", {"name": "reader-zone"})
        assert e.value.status == 403 and e.value.errors[0]["descriptions"][0]["title"] == "Permission denied"
        with pytest.raises(VsdApiError) as e:
            reader.delete(f"zones/{zone['ID']}")
        assert e.value.status == 403
    with pytest.raises(VsdApiError) as e:
        VsdClient(vsd.api, "admin", "wrong", "acme")
    assert e.value.status == 401
    with pytest.raises(VsdApiError) as e:
        VsdClient(vsd.api, "admin", "admin-pw", "vl-other")
    assert e.value.status == 401


def test_audit_log_records_user_object_and_time(vsd, root, acme):
    _user(root, acme["enterprise_id"], "auditee", "ORGADMIN")
    t0 = time.time()
    with VsdClient(vsd.api, "auditee", "auditee-pw", "acme") as admin:
        zone = admin.create(f"domains/{acme['domain_id']}", "zones", {"name": "audited"})
        admin.delete(f"zones/{zone['ID']}")
        with pytest.raises(VsdApiError) as e:
            admin.audit()
        assert e.value.status == 403
    rows = root.audit(10)
    mine = [r for r in rows if r["user_name"] == "auditee"]
    assert [r["actions"][0][:2] for r in mine] == [["DELETE", "zone"], ["CREATE", "zone"]]
    assert all(r["actions"][0][2] == zone["ID"] and r["organization"] == "acme" and r["ts"] >= t0 - 1
               for r in mine)
    assert mine[1]["request"].startswith("POST /nuage/api/v6/domains/")


def test_paging_count_and_filters(root, acme):
    dom = acme["domain_id"]
    root.create(f"domains/{dom}", "zones", [{"name": f"page-{i:02d}"} for i in range(25)])
    r = root.request("GET", f"domains/{dom}/zones", headers={"X-Nuage-Filter": 'name like "page-%"',
                                                             "X-Nuage-Page": "2", "X-Nuage-PageSize": "10"})
    assert r.status_code == 200 and r.headers["X-Nuage-Count"] == "25" and r.headers["X-Nuage-Page"] == "2"
    assert [z["name"] for z in r.json()] == [f"page-{i:02d}" for i in range(20, 25)]
    assert root.count(f"domains/{dom}/zones", 'name like "page-%"') == 25
    assert len(root.list(f"domains/{dom}/zones", filter='name like "page-%"', page_size=7)) == 25
    web = root.list(f"domains/{dom}/vports", filter='name == "web1" or name == "db2"')
    assert sorted(v["name"] for v in web) == ["db2", "web1"]
    ids = root.list(f"domains/{dom}/policygroups", filter=f'ID == "{acme["policy_group_ids"]["app"]}"')
    assert [p["name"] for p in ids] == ["app"]
    assert root.list(f"domains/{dom}/vminterfaces", filter='IPAddress == "10.2.0.3"')[0]["MAC"]


def test_bulk_answer_is_bambous_shape(vsd, root, acme):
    r = root.request("POST", f"subnets/{acme['subnet_ids']['db']}/vports",
                     [{"name": "bulk-a", "type": "VM"}, {"name": "bulk-b", "type": "VM"}])
    body = r.json()
    assert r.status_code == 201 and body["responseMetadata"]["success"] == 2
    assert [item["status"] for item in body["response"]] == [201, 201]
    assert [item["data"]["name"] for item in body["response"]] == ["bulk-a", "bulk-b"]
    r = root.request("POST", f"subnets/{acme['subnet_ids']['db']}/vports", [{"name": "bulk-c", "type": "VM"},
                                                                           {"name": "bulk-a", "type": "VM"}])
    assert r.status_code == 409 and error_property(r) == "name" and "item 1" in r.text
    assert not root.list(f"subnets/{acme['subnet_ids']['db']}/vports", filter='name == "bulk-c"')


def test_stream_snapshot_events_assoc_and_resume(vsd, root, acme):
    rev = revision(vsd)
    reader = StreamReader(root, since=0)
    snap = reader.take(rev)[0]
    assert snap["kind"] == "snapshot" and snap["revision"] == rev
    kinds = [o["entityType"] for o in snap["objects"]]
    assert kinds.index("enterprise") < kinds.index("domain") < kinds.index("subnet") < kinds.index("vport")
    pgs = {o["entity"]["name"]: o for o in snap["objects"] if o["entityType"] == "policygroup"
           and o["entity"]["parentID"] == acme["domain_id"]}
    assert sorted(pgs["web"]["assoc"]["vport"]) == sorted(acme["vport_ids"]["web"])
    ifaces = [o["entity"] for o in snap["objects"] if o["entityType"] == "vminterface"]
    assert all(i["MAC"] and i["IPAddress"] and i["VPortID"] and i["domainID"] and i["attachedNetworkID"]
               for i in ifaces)
    dom = next(o["entity"] for o in snap["objects"] if o["entityType"] == "domain")
    assert dom["serviceID"] and dom["routeTarget"]

    # membership change: an UPDATE of the policy group carrying the complete new list
    web_pg = acme["policy_group_ids"]["web"]
    root.assign(f"policygroups/{web_pg}/vports", acme["vport_ids"]["web"][:1])
    ev = reader.take(rev + 1)[-1]
    assert ev == {**ev, "kind": "event", "revision": rev + 1, "type": "UPDATE", "entityType": "policygroup"}
    assert ev["assoc"] == {"vport": acme["vport_ids"]["web"][:1]}
    # a DELETE carries the object as it was
    zone = root.create(f"domains/{acme['domain_id']}", "zones", {"name": "short-lived"})
    root.delete(f"zones/{zone['ID']}")
    create, delete = reader.take(rev + 3)[-2:]
    assert (create["type"], delete["type"]) == ("CREATE", "DELETE")
    assert delete["entity"]["name"] == "short-lived" and delete["revision"] == rev + 3
    # resuming from N gives exactly N+1.. without a snapshot
    again = StreamReader(root, since=rev + 1)
    lines = again.take(rev + 3)
    assert [(x["kind"], x["revision"]) for x in lines] == [("event", rev + 2), ("event", rev + 3)]


@pytest.mark.slow
def test_stream_too_old_gets_snapshot_and_idle_gets_heartbeat(tmp_path):
    with EmbeddedVsd(db_url=f"sqlite:///{tmp_path}/v.db", retention=5) as small:
        with VsdClient(small.api, small.user, small.password, small.enterprise) as c:
            ent = c.create("", "enterprises", {"name": "vl-ret"})
            c.create(f"enterprises/{ent['ID']}", "enterprisenetworks",
                     [{"name": f"n{i}", "address": f"10.{i // 250}.{i % 250}.0", "netmask": "255.255.255.0"}
                      for i in range(300)])
            rev = revision(small)
            deadline = time.monotonic() + 10
            while True:  # the writer prunes the log down to its retention when it is idle
                reader = StreamReader(c, since=1)
                first = reader.take(rev)[0]
                if first["kind"] == "snapshot" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert first["kind"] == "snapshot" and first["revision"] == rev and len(first["objects"]) == 301
            t0 = time.monotonic()
            beat = reader.lines.get(timeout=15)
            assert beat == {"kind": "heartbeat", "revision": rev} and 3 < time.monotonic() - t0 < 12
            # still inside the retention: events, no snapshot
            recent = StreamReader(c, since=rev - 2).take(rev)
            assert [x["kind"] for x in recent] == ["event", "event"]


def test_interface_move_and_delete_keep_listings_true(vsd, root, acme):
    ep = acme["endpoints"]["db1"]
    target = acme["vport_ids"]["db"][1]
    iface = root.list(f"vms/{ep['vm']}/vminterfaces")[0]
    moved = root.update(f"vminterfaces/{iface['ID']}", {"VPortID": target, "IPAddress": "10.3.0.77"})
    assert moved["VPortID"] == target and moved["VPortName"] == "db2"
    assert root.list(f"vports/{ep['vport']}/vms") == []
    assert ep["vm"] in {v["ID"] for v in root.list(f"vports/{target}/vms")}
    root.delete(f"vminterfaces/{iface['ID']}")
    assert ep["vm"] not in {v["ID"] for v in root.list(f"vports/{target}/vms")}
    assert root.get(f"vms/{ep['vm']}")["interfaces"] == []
    root.delete(f"vports/{ep['vport']}")  # no interface left on it: it may go, leaving its policy group
    assert ep["vport"] not in {v["ID"] for v in root.list(f"policygroups/{acme['policy_group_ids']['db']}/vports")}


def test_address_allocation_is_lowest_free_and_reuses_freed(root, acme):
    zone = root.create(f"domains/{acme['domain_id']}", "zones", {"name": "alloc"})
    sn = root.create(f"zones/{zone['ID']}", "subnets", {"name": "alloc", "address": "10.77.0.0",
                                                         "netmask": "255.255.255.248"})
    vps = root.create(f"subnets/{sn['ID']}", "vports", [{"name": f"a{i}", "type": "VM"} for i in range(6)])
    vms = root.create("", "vms", [{"name": f"alloc{i}", "UUID": v["ID"], "interfaces": [
        {"MAC": f"02:77:00:00:00:{i:02x}", "VPortID": v["ID"]}]} for i, v in enumerate(vps[:5])])
    assert [vm["interfaces"][0]["IPAddress"] for vm in vms] == [f"10.77.0.{i}" for i in range(2, 7)]
    r = root.request("POST", "vms", {"name": "full", "UUID": vps[5]["ID"], "interfaces": [
        {"MAC": "02:77:00:00:00:09", "VPortID": vps[5]["ID"]}]})
    assert r.status_code == 409 and "no free address" in r.text
    root.delete(f"vms/{vms[1]['ID']}")
    again = root.create("", "vms", {"name": "again", "UUID": vps[5]["ID"], "interfaces": [
        {"MAC": "02:77:00:00:00:0a", "VPortID": vps[5]["ID"]}]})
    assert again["interfaces"][0]["IPAddress"] == "10.77.0.3"
