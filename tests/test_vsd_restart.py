"""Restart safety: concurrent writers, a change-stream subscriber, `kill -9` of the VSD mid-stream, a
restart on the same SQLite file. Every acknowledged object is there; the subscriber resumes from its
last revision and has seen every change exactly once, in order."""

from __future__ import annotations

import threading
import time

import pytest

from tests.vsd_fixtures import WRITERS, StreamReader, revision
from tests.vsd_fixtures import subnet_tree as _tree
from tests.vsd_fixtures import vport_writer as _writer
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_write_and_the_stream_resumes(tmp_path):
    vsd = EmbeddedVsd(db_url=f"sqlite:///{tmp_path}/vsd.db")
    vsd.start()
    try:
        c = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        subnet = _tree(c)
        reader = StreamReader(c, since=0)
        first = reader.take(revision(vsd))
        acked: list[dict] = [{} for _ in range(WRITERS)]
        stop = threading.Event()
        errors: list = []
        threads = [threading.Thread(target=_writer, args=(vsd, subnet, w, acked[w], stop, errors))
                   for w in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        vsd.kill()  # SIGKILL, mid-stream
        stop.set()
        for t in threads:
            t.join(10)
        assert not errors, errors[0]
        before_kill = first + reader.drain()
        acknowledged = {k: v for a in acked for k, v in a.items()}
        assert len(acknowledged) > 20, "the writers should have got going before the kill"

        vsd.start()
        c2 = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        present = {v["ID"] for v in c2.list(f"subnets/{subnet}/vports", page_size=5000)}
        missing = set(acknowledged) - present
        assert not missing, f"{len(missing)} acknowledged vports lost, e.g. {next(iter(missing))}"

        assert before_kill[0]["kind"] == "snapshot"
        seen = [line for line in before_kill if line["kind"] == "event"]
        last = seen[-1]["revision"] if seen else before_kill[0]["revision"]
        final = revision(vsd)
        assert final >= last, "the subscriber saw a change the restarted VSD does not have"
        resumed = StreamReader(c2, since=last)
        after = [line for line in resumed.take(final) if line["kind"] == "event"] if final > last else []
        revs = [line["revision"] for line in seen + after]
        start = before_kill[0]["revision"]
        assert revs == list(range(start + 1, final + 1)), "every change once, in order, no gap"
        created = {line["entity"]["ID"] for line in seen + after if line["type"] == "CREATE"}
        assert set(acknowledged) <= created
        # the resumed stream is live: a new change arrives as the next revision
        c2.create(f"subnets/{subnet}", "vports", {"name": "after-restart", "type": "VM"})
        nxt = [line for line in resumed.take(final + 1) if line["kind"] == "event"]
        assert nxt[-1]["revision"] == final + 1 and nxt[-1]["entity"]["name"] == "after-restart"
        c2.close()
        c.close()
    finally:
        vsd.close()


def test_clean_restart_keeps_objects_members_and_users(tmp_path):
    vsd = EmbeddedVsd(db_url=f"sqlite:///{tmp_path}/vsd.db")
    with vsd:
        c = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        subnet = _tree(c)
        dom = c.list("enterprises")[0]
        dom_id = c.list(f"enterprises/{dom['ID']}/domains")[0]["ID"]
        vps = c.create(f"subnets/{subnet}", "vports", [{"name": f"v{i}", "type": "VM"} for i in range(3)])
        pg = c.create(f"domains/{dom_id}", "policygroups", {"name": "pg", "type": "SOFTWARE"})
        c.assign(f"policygroups/{pg['ID']}/vports", [v["ID"] for v in vps[:2]])
        vm = c.create("", "vms", {"name": "vm", "UUID": vps[0]["ID"], "interfaces": [
            {"MAC": "02:00:00:00:01:01", "VPortID": vps[0]["ID"]}]})
        user = c.create(f"enterprises/{dom['ID']}", "users", {"userName": "ann", "password": "pw"})
        rev = revision(vsd)
        vsd.stop()
        vsd.start()
        c2 = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        assert revision(vsd) == rev
        assert sorted(v["ID"] for v in c2.list(f"policygroups/{pg['ID']}/vports")) == sorted(v["ID"] for v in vps[:2])
        assert c2.get(f"vms/{vm['ID']}")["interfaces"][0]["IPAddress"] == vm["interfaces"][0]["IPAddress"]
        assert [v["ID"] for v in c2.list(f"vports/{vps[0]['ID']}/vms")] == [vm["ID"]]
        assert c2.get(f"users/{user['ID']}")["userName"] == "ann"
        VsdClient(vsd.api, "ann", "pw", "vl-restart").close()  # the user's password survived too
        # the IP the VM holds is still taken after the restart
        r = c2.request("POST", "vms", {"name": "vm2", "UUID": vps[1]["ID"], "interfaces": [
            {"MAC": "02:00:00:00:01:02", "VPortID": vps[1]["ID"], "IPAddress": vm["interfaces"][0]["IPAddress"]}]})
        assert r.status_code == 409
        c2.close()
        c.close()


def test_concurrent_writers_every_change_once_in_order(tmp_path):
    with EmbeddedVsd(db_url=f"sqlite:///{tmp_path}/vsd.db") as vsd:
        c = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        subnet = _tree(c)
        start = revision(vsd)
        reader = StreamReader(c, since=start)
        acked: list[dict] = [{} for _ in range(WRITERS)]

        def write(w: int) -> None:
            with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as wc:
                for i in range(40):
                    o = wc.create(f"subnets/{subnet}", "vports", {"name": f"cw{w}-{i}", "type": "VM"})
                    acked[w][o["ID"]] = i

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        final = revision(vsd)
        assert final == start + 40 * WRITERS
        lines = reader.take(final)
        assert [x["revision"] for x in lines] == list(range(start + 1, final + 1))
        assert {x["entity"]["ID"] for x in lines} == {k for a in acked for k in a}
        for w in range(WRITERS):  # each writer's own creates appear in the order it made them
            mine = [acked[w][x["entity"]["ID"]] for x in lines if x["entity"]["ID"] in acked[w]]
            assert mine == sorted(mine)
        c.close()


def test_a_vm_lists_its_interfaces_the_same_after_a_restart(tmp_path):
    """Found by the REST fuzz: updating a VM's first interface moved it to the end of the VM's
    `interfaces` in memory, while a restart listed it first again (memory and disk disagreed)."""
    vsd = EmbeddedVsd(db_url=f"sqlite:///{tmp_path}/vsd.db")
    with vsd:
        c = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        vps = c.create(f"subnets/{_tree(c)}", "vports", [{"name": f"v{i}", "type": "VM"} for i in range(2)])
        vm = c.create("", "vms", {"name": "vm", "UUID": vps[0]["ID"], "interfaces": [
            {"MAC": f"02:00:00:00:02:0{i}", "VPortID": v["ID"]} for i, v in enumerate(vps)]})
        c.update(f"vminterfaces/{vm['interfaces'][0]['ID']}", {"name": "renamed"})
        before = [i["ID"] for i in c.get(f"vms/{vm['ID']}")["interfaces"]]
        c.close()
        vsd.stop()
        vsd.start()
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c2:
            assert [i["ID"] for i in c2.get(f"vms/{vm['ID']}")["interfaces"]] == before == [
                i["ID"] for i in vm["interfaces"]]
