"""The VSD cluster (vsd/cluster.py): three `vsd serve` processes on one real PostgreSQL, writers on all
three, a real VSC (`vsc run --vsd A,B,C`) following the first; `kill -9` of that VSD mid-run. The VSC
fails over and has received every revision exactly once, in order, up to the last one; every
acknowledged write is in the database and in each surviving VSD's API; the log has no gap; the killed
VSD started again comes back with the same state. Also: checks and names across VSDs, publication of
one VSD's writes by the others, and a second VSD on one SQLite file refused."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.test_vsd_fuzz import _snapshot
from tests.vsd_fixtures import HTTP, headers, make_user, postgres_url, revision, subnet_tree, vport_writer
from tests.vsd_fuzz import build_world, request, send
from vsc.process import VscProcess
from vsd.client import VsdApiError, VsdClient
from vsd.server import EmbeddedVsd
from vsd.tables import events, make_engine
from vsplab.lab.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WRITERS_PER_VSD = 2
FUZZ_EXAMPLES = 15  # of 20 requests (tests/test_vsd_fuzz.py sends 5,000 to one SQLite VSD)


@pytest.fixture(scope="module")
def pg():
    with postgres_url() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(pg, tmp_path_factory):
    """Three VSDs for the module's tests (each on an enterprise of its own); the failover test, last,
    kills the first."""
    logs = tmp_path_factory.mktemp("vl-cl-vsds")
    vsds = [EmbeddedVsd(db_url=pg, log_path=str(logs / f"vl-cl-vsd{i}.log")) for i in range(3)]
    try:
        for v in vsds:
            v.start()
        yield vsds
    finally:
        for v in vsds:
            v.close()


def _wait(what: str, check, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _db_log(pg: str) -> tuple[int, int, int, set[str]]:
    """(lowest revision, highest, rows, IDs of the objects created) of the `events` table."""
    engine = make_engine(pg)
    try:
        with engine.connect() as c:
            lo, hi, n = c.execute(select(func.min(events.c.revision), func.max(events.c.revision),
                                         func.count())).one()
            created = {r[0] for r in c.execute(select(events.c.object_id).where(events.c.type == "CREATE"))}
    finally:
        engine.dispose()
    return lo, hi, n, created


def test_cluster_orders_checks_and_publishes_across_vsds(cluster):
    a, b, c = cluster
    ca, cb, cc = (VsdClient(v.api, v.user, v.password, v.enterprise) for v in cluster)
    try:
        org = f"vl-cl-{uuid.uuid4().hex[:8]}"
        subnet = subnet_tree(ca, org)
        since = revision(a)
        stream = cc.changes(since)  # on the third VSD, which takes no write here
        _wait("the second VSD to have the subnet", lambda: revision(b) == since)
        push = cb.request("GET", "events").json()["uuid"]  # from b's newest revision
        # a write on another VSD right after: it must see the subnet (caught up under the lock)
        vp = cb.create(f"subnets/{subnet}", "vports", {"name": "first", "type": "VM"})
        # a name taken on one VSD is taken on all of them, even when asked at the same moment
        results: list = []

        def claim(client: VsdClient) -> None:
            try:
                results.append(client.create(f"subnets/{subnet}", "vports", {"name": "contested", "type": "VM"}))
            except VsdApiError as e:
                results.append(e.status)

        racers = [threading.Thread(target=claim, args=(x,)) for x in (ca, cb, cc)]
        for t in racers:
            t.start()
        for t in racers:
            t.join(30)
        assert sorted(r if isinstance(r, int) else 201 for r in results) == [201, 409, 409]
        ca.update(f"vports/{vp['ID']}", {"description": "from a"})
        final = revision(a)
        lines = []
        while len(lines) < final - since:
            line = next(stream)
            if line["kind"] != "heartbeat":
                lines.append(line)
        assert [x["revision"] for x in lines] == list(range(since + 1, final + 1))
        assert [x["type"] for x in lines] == ["CREATE", "CREATE", "UPDATE"]
        polled: list = []
        while len(polled) < 3:  # each long poll answers what has arrived; the last may still be on its way
            answer = HTTP.get(f"{b.api}/events", params={"uuid": push}, headers=headers(b, cb), timeout=30)
            polled += answer.json()["events"]
        assert [e["type"] for e in polled] == ["CREATE", "CREATE", "UPDATE"]
        assert {revision(v) for v in cluster} == {final}
        assert cc.get(f"vports/{vp['ID']}")["description"] == "from a"
        stream.close()
        # a password changed through one VSD ends the keys the user holds on the others
        ent = ca.list("enterprises", filter=f'name == "{org}"')[0]["ID"]
        make_user(ca, ent, "vl-cl-user", "ORGADMIN", password="vl-cl-pw-1")
        _wait("the user on the third VSD", lambda: revision(c) == revision(a))
        on_c = VsdClient(c.api, "vl-cl-user", "vl-cl-pw-1", org)
        with VsdClient(a.api, "vl-cl-user", "vl-cl-pw-1", org) as on_a:
            on_a.change_password("vl-cl-pw-2")
        _wait("the new password on the third VSD", lambda: revision(c) == revision(a))
        assert on_c.request("GET", "enterprises").status_code == 401
        on_c.close()
        # and the CSP root's password, kept beside the log, is the cluster's too
        old_key = cc.api_key
        ca.change_password("vl-cl-root-pw")
        try:
            _wait("the root's old key to end on the third VSD",
                  lambda: cc.request("GET", "enterprises").status_code == 401, timeout=10)
            assert cc.api_key == old_key  # (the refusal was of the key, not a renewal)
            with VsdClient(c.api, c.user, "vl-cl-root-pw", c.enterprise) as again:
                assert again.list("enterprises")
        finally:
            ca.change_password(a.password)  # the module's other tests log in with it
    finally:
        for x in (ca, cb, cc):
            x.close()


def test_a_policy_draft_begun_on_one_vsd_is_applied_through_another(cluster):
    """Jobs (vsd/jobs.py) run after the call that made them answered: they take a write turn of their own."""
    from vspk import v6 as vspk

    from tests.vsd_drafts_support import run_job, vspk_session

    a, b, _ = cluster
    with VsdClient(a.api, a.user, a.password, a.enterprise) as ca:
        org = f"vl-cl-{uuid.uuid4().hex[:8]}"
        subnet = subnet_tree(ca, org)
        domain_id = ca.get(f"zones/{ca.get(f'subnets/{subnet}')['parentID']}")["parentID"]
        ca.create(f"domains/{domain_id}", "ingressacltemplates", {"name": "in"})
    on_a = vspk_session(a.url, a.user, a.password, a.enterprise)
    assert run_job(vspk.NUDomain(id=domain_id), "BEGIN_POLICY_CHANGES").status == "SUCCESS"
    _wait("the draft on the second VSD", lambda: revision(b) == revision(a))
    vspk_session(b.url, b.user, b.password, b.enterprise)  # bambou's calls now go to the second VSD
    dom = vspk.NUDomain(id=domain_id)
    dom.fetch()
    assert [t.policy_state for t in dom.ingress_acl_templates.get()] == ["LIVE", "DRAFT"]
    assert run_job(dom, "APPLY_POLICY_CHANGES").status == "SUCCESS"
    _wait("the apply on the first VSD", lambda: revision(a) == revision(b))
    on_a.start()  # and back to the first
    dom = vspk.NUDomain(id=domain_id)
    dom.fetch()
    assert [t.policy_state for t in dom.ingress_acl_templates.get()] == ["LIVE"]


def test_vsc_fails_over_and_sees_every_revision_once(cluster, pg, tmp_path):
    doomed, *survivors = cluster
    root = VsdClient(doomed.api, doomed.user, doomed.password, doomed.enterprise)
    subnet = subnet_tree(root, f"vl-cl-{uuid.uuid4().hex[:8]}")
    root.close()
    vsc = VscProcess(vsd_url=",".join(v.url for v in cluster), of_port=free_port(), agent_port=free_port(),
                     status_port=free_port(), state_dir=tmp_path / "vsc", log_file=tmp_path / "vl-cl-vsc.log")
    with vsc:
        start = revision(doomed)
        _wait("the VSC to follow the first VSD", lambda: vsc.status()["revision"] >= start)
        placed = [v for v in cluster for _ in range(WRITERS_PER_VSD)]
        clients = [VsdClient(v.api, v.user, v.password, v.enterprise, timeout=10) for v in placed]
        acked: list[dict] = [{} for _ in placed]
        stop, errors = threading.Event(), []
        threads = [threading.Thread(target=vport_writer, args=(v, subnet, w, acked[w], stop, errors, clients[w]))
                   for w, v in enumerate(placed)]
        for t in threads:
            t.start()
        _wait("every writer to be acknowledged", lambda: all(len(a) >= 5 for a in acked) or errors)
        time.sleep(1.0)
        killed_at = revision(doomed)
        doomed.kill()
        after_kill = [len(a) for a in acked]
        _wait("the survivors' writers to go on", lambda: all(len(a) >= n + 10 for a, n, v in
                                                              zip(acked, after_kill, placed, strict=True)
                                                              if v is not doomed)
              or errors)
        stop.set()
        for t in threads:
            t.join(15)
        assert not errors, errors[0]

        final = _wait("the survivors to agree", lambda: len({revision(v) for v in survivors}) == 1
                      and revision(survivors[0]))
        lo, hi, rows, created = _db_log(pg)
        assert (lo, hi, rows) == (1, final, final)  # the log: every revision once, no gap
        assert final > killed_at + 20  # writes went on after the kill
        st = _wait("the VSC to reach the last revision", lambda: (s := vsc.status())["revision"] == final and s)
        rec = st["vsd_stream"]
        assert rec["anomalies"] == 0, rec["anomaly_list"]
        assert rec["snapshots"] == 1 and rec["last_event"] == final
        assert rec["events"] == final - rec["first_event"] + 1 and rec["first_event"] <= start + 1
        assert rec["failovers"] >= 1 and rec["vsd"] != doomed.api and rec["connections"] >= 2
        assert not st["input_errors"]

    acknowledged = {k for a in acked for k in a}
    assert acknowledged <= created
    listings = []
    for v in survivors:
        with VsdClient(v.api, v.user, v.password, v.enterprise) as c:
            listings.append(c.list(f"subnets/{subnet}/vports", page_size=5000))
        assert acknowledged <= {x["ID"] for x in listings[-1]}
    assert listings[0] == listings[1]
    # the killed VSD, started again, loads what the others folded into `objects` and the log after it
    doomed.start()
    assert revision(doomed) == final
    with VsdClient(doomed.api, doomed.user, doomed.password, doomed.enterprise) as c:
        assert c.list(f"subnets/{subnet}/vports", page_size=5000) == listings[0]


def test_a_second_vsd_on_one_sqlite_file_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path / 'vsd.db'}"
    with EmbeddedVsd(db_url=db):
        second = EmbeddedVsd(db_url=db, log_path=str(tmp_path / "second.log"))
        with pytest.raises(RuntimeError, match="exited"):
            second.start(timeout=20)
        second.close()
        assert "another VSD is serving" in (tmp_path / "second.log").read_text()


def test_a_fuzzed_vsd_and_its_cluster_hold_the_same_directory(cluster):
    """Whatever one VSD accepts (the REST fuzz's requests, tests/vsd_fuzz.py), the others replay from the
    log into the same directory: their snapshots are equal, object for object."""
    writer, *others = [v for v in cluster if v.proc is not None]
    world = build_world(writer)
    client = httpx.Client(timeout=10)

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(request(world), min_size=20, max_size=20))
    def fuzz(batch):
        for req in batch:
            assert send(world, client, req).status_code < 500

    fuzz()
    client.close()
    assert sum(n for s, n in world.statuses.items() if s < 300) > 30
    final = revision(writer)
    _wait("the others to read the fuzz", lambda: all(revision(v) == final for v in others))
    password = world.passwords.get("root", writer.password)  # a root password changed on the writer only
    expected = _snapshot(writer, password)
    for v in others:
        assert _snapshot(v, writer.password) == expected
