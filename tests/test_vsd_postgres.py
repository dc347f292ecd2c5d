"""The same VSD on PostgreSQL: a real server (a throwaway cluster, or $VSPLAB_TEST_PG_URL), the three-tier
build, refusals that change nothing, a clean restart, a `kill -9` with writers in flight, and input
PostgreSQL is stricter about than SQLite (lengths, NUL characters) refused without stopping the VSD."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.vsd_fixtures import HTTP, WRITERS, StreamReader, error_property, make_user, postgres_url, revision
from tests.vsd_fixtures import subnet_tree as _tree
from tests.vsd_fixtures import vport_writer as _writer
from vsd.client import VsdApiError, VsdClient
from vsd.example import build_three_tier
from vsd.server import EmbeddedVsd

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg():
    with postgres_url() as url:
        yield url


def test_crud_and_restart_on_postgres(pg):
    vsd = EmbeddedVsd(db_url=pg)
    with vsd:
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
            summary = build_three_tier(c, enterprise=f"vl-acme-{uuid.uuid4().hex[:8]}")
            sub = summary["subnet_ids"]["web"]
            before = revision(vsd)
            with pytest.raises(VsdApiError) as e:
                c.create(f"zones/{c.get(f'subnets/{sub}')['parentID']}", "subnets",
                         {"name": "dup", "address": "10.1.0.0", "netmask": "255.255.255.0"})
            assert e.value.status == 409 and e.value.property == "address"
            assert revision(vsd) == before
            c.update(f"subnets/{sub}", {"description": "on postgres"})
            zone = c.create(f"domains/{summary['domain_id']}", "zones", {"name": "gone"})
            c.delete(f"zones/{zone['ID']}")
            rev = revision(vsd)
        vsd.stop()
        vsd.start()
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
            assert revision(vsd) == rev
            assert c.get(f"subnets/{sub}")["description"] == "on postgres"
            assert len(c.list(f"domains/{summary['domain_id']}/vminterfaces")) == 6
            assert not c.list(f"domains/{summary['domain_id']}/zones", filter='name == "gone"')
            pgs = c.list(f"domains/{summary['domain_id']}/policygroups")
            assert sorted(p["policyGroupID"] for p in pgs) == [1, 2, 3]
            stream = c.changes(rev - 1)
            assert next(stream)["revision"] == rev
            stream.close()


def test_kill_9_on_postgres(pg):
    vsd = EmbeddedVsd(db_url=pg)
    vsd.start()
    try:
        c = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        subnet = _tree(c, f"vl-restart-{uuid.uuid4().hex[:8]}")  # the database may be a shared one
        reader = StreamReader(c, since=revision(vsd))
        acked: list[dict] = [{} for _ in range(WRITERS)]
        stop = threading.Event()
        errors: list = []
        threads = [threading.Thread(target=_writer, args=(vsd, subnet, w, acked[w], stop, errors))
                   for w in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        vsd.kill()
        stop.set()
        for t in threads:
            t.join(10)
        assert not errors, errors[0]
        seen = [x for x in reader.drain() if x["kind"] == "event"]
        acknowledged = {k for a in acked for k in a}
        assert len(acknowledged) > 20
        vsd.start()
        c2 = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        present = {v["ID"] for v in c2.list(f"subnets/{subnet}/vports", page_size=5000)}
        assert acknowledged <= present
        final = revision(vsd)
        last = seen[-1]["revision"]
        after = [x for x in StreamReader(c2, since=last).take(final) if x["kind"] == "event"] if final > last else []
        revs = [x["revision"] for x in seen + after]
        assert revs == list(range(revs[0], final + 1))
        c2.close()
        c.close()
    finally:
        vsd.close()


def test_an_enterprise_admins_oversized_input_is_refused_and_the_vsd_stays_up(pg):
    """Finding 4: a 201-character userName (the audit column holds 200) used to fail the audit insert on
    PostgreSQL, which stops the VSD - and the user survived, so it stopped again after every restart."""
    vsd = EmbeddedVsd(db_url=pg)
    with vsd:
        name = f"vl-big-{uuid.uuid4().hex[:8]}"
        long_user = "u" * 201
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as root:
            ent = root.create("", "enterprises", {"name": name})["ID"]
            make_user(root, ent, long_user, "ORGADMIN")
        with VsdClient(vsd.api, long_user, f"{long_user}-pw", name) as admin:
            admin.create(f"enterprises/{ent}", "domaintemplates", {"name": "t"})
            assert HTTP.get(f"{vsd.api}/vsplab/health").status_code == 200
            refused = [("domaintemplates", {"name": "n" * 256}, "name"),
                       ("domaintemplates", {"name": "a\x00b"}, "name"),
                       ("domaintemplates", {"name": "t2", "description": "d" * 5000}, "description"),
                       ("users", {"userName": "x" * 256, "password": "p", "firstName": "f", "lastName": "l",
                                  "email": "e"}, "userName"),
                       ("users", {"userName": "nul\x00", "password": "p", "firstName": "f", "lastName": "l",
                                  "email": "e"}, "userName")]
            for resource, body, prop in refused:
                r = admin.request("POST", f"enterprises/{ent}/{resource}", body)
                assert r.status_code == 400 and error_property(r) == prop, r.text
            assert HTTP.get(f"{vsd.api}/vsplab/health").status_code == 200
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as root:
            rows = [r for r in root.audit(20) if r["organization"] == name and r["user_name"] != "csproot"]
            assert rows and rows[0]["user_name"] == long_user[:200]
        vsd.stop()
        vsd.start()
        with VsdClient(vsd.api, long_user, f"{long_user}-pw", name) as admin:
            admin.create(f"enterprises/{ent}", "domaintemplates", {"name": "after-restart"})
        assert HTTP.get(f"{vsd.api}/vsplab/health").status_code == 200
