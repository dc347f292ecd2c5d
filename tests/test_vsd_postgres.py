"""The same VSD on PostgreSQL: a real server (a throwaway cluster, or $VSPLAB_TEST_PG_URL), the three-tier
build, refusals that change nothing, a clean restart and a `kill -9` with writers in flight."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.vsd_fixtures import WRITERS, StreamReader, postgres_url, revision
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
