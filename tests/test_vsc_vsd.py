"""The whole control plane: VSD (its REST API and change stream) -> VSC (os-ken) -> simulated VRSs.
A change in the VSD reaches only the flows it concerns; restarting the VSC or the VSD touches no
flow that is still right, and the VSC resumes the stream where it left off."""

from __future__ import annotations

import time

import pytest

from tests.test_vsc_app import Lab, assert_nfd8_policy
from vsc.pipeline import Kind, cookie
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd
from vsplab.workload.tree import Tree, nfd8
from vsplab.workload.vsd_push import push, relabel

pytestmark = pytest.mark.slow


@pytest.fixture
def vsd(tmp_path):
    v = EmbeddedVsd(log_path=str(tmp_path / "vsd.log")).start()
    try:
        yield v
    finally:
        v.close()


def vsd_lab(vsd, tmp_path, hosts: int = 3, per_host: int = 6) -> tuple[Lab, VsdClient, Tree]:
    tree, placement = nfd8(n_hosts=hosts, per_host=per_host)
    client = VsdClient(vsd.api, vsd.user, vsd.password)
    ids = push(client, tree)
    relabel(tree, placement, ids)
    lab = Lab(tree, placement, tmp_path, vsd_url=vsd.url, user=vsd.user, password=vsd.password)
    return lab, client, tree


def wait_revision_past(lab: Lab, revision: int, timeout: float = 20.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = lab.vsc.status()
        if st["revision"] > revision:
            return lab.converged()
        time.sleep(0.05)
    raise TimeoutError(f"VSC stayed at revision {revision}")


def test_vsd_to_vrs_policy_holds(vsd, tmp_path):
    lab, client, _ = vsd_lab(vsd, tmp_path)
    with lab:
        st = lab.converged()
        assert st["endpoints"] == 18 and st["stream_connected"] and not st["problems"]
        assert_nfd8_policy(lab)


def test_acl_change_in_vsd_changes_only_its_flows(vsd, tmp_path):
    lab, client, tree = vsd_lab(vsd, tmp_path)
    with lab:
        st = lab.converged()
        before, mods = lab.flows(), lab.flow_mods()
        entry = next(o["entity"] for o in tree.objects if o["entityType"] == "egressaclentrytemplate"
                     and o["entity"]["destinationPort"] == "443")
        client.update(f"egressaclentrytemplates/{entry['ID']}", {"destinationPort": "8443"})
        wait_revision_past(lab, st["revision"])
        after = lab.flows()
        mine = cookie(Kind.ACL_ENTRY, entry["ID"])
        for host in before:
            gone = {k: v for k, v in before[host].items() if k not in after[host]}
            new = {k: v for k, v in after[host].items() if k not in before[host]}
            assert len(gone) == len(new) == 1 and {v[0] for v in (*gone.values(), *new.values())} == {mine}
            # Everything else is the very same flow (same creation time: not re-added).
            assert {k: v for k, v in after[host].items() if k not in new} == \
                   {k: v for k, v in before[host].items() if k not in gone}
        assert lab.flow_mods() - mods == 2 * len(before)  # one add + one delete per VRS
        assert not lab.trace("c6", "c0", 8443).delivered  # no rule lets web send to web on 8443


def test_membership_change_in_vsd_moves_one_endpoint(vsd, tmp_path):
    lab, client, tree = vsd_lab(vsd, tmp_path)
    with lab:
        st = lab.converged()
        assert lab.trace("c1", "c2", 5432).delivered  # app -> db
        app = next(o for o in tree.objects if o["entityType"] == "policygroup" and o["entity"]["name"] == "app")
        web = next(o for o in tree.objects if o["entityType"] == "policygroup" and o["entity"]["name"] == "web")
        c1 = app["assoc"]["vport"][0]
        before, mods = lab.flows(), lab.flow_mods()
        client.assign(f"policygroups/{app['entity']['ID']}/vports", app["assoc"]["vport"][1:])
        client.assign(f"policygroups/{web['entity']['ID']}/vports", [*web["assoc"]["vport"], c1])
        wait_revision_past(lab, st["revision"] + 1)
        # Each of the two VSD changes rewrites c1's two tagged local flows on its VRS and its remote
        # flow on the two others (4 flow-mods; 8 unless both changes landed in one batch) ...
        assert lab.flow_mods() - mods in (4, 8)
        # ... and no other flow anywhere.
        c1_cookies = {cookie(Kind.LOCAL_ENDPOINT, c1), cookie(Kind.REMOTE_ENDPOINT, c1)}
        after = lab.flows()
        for host in before:
            assert before[host].keys() == after[host].keys()
            assert {k: v for k, v in after[host].items() if v[0] not in c1_cookies} == \
                   {k: v for k, v in before[host].items() if v[0] not in c1_cookies}
        assert not lab.trace("c1", "c2", 5432, sport=40100).delivered  # now web: web -> db is not allowed
        assert lab.trace("c1", "c7", 8080, sport=40100).delivered  # but web -> app is


def test_restarts_of_vsc_and_vsd_touch_nothing_and_resume(vsd, tmp_path):
    lab, client, tree = vsd_lab(vsd, tmp_path)
    with lab:
        st = lab.converged()
        before, mods = lab.flows(), lab.flow_mods()
        lab.vsc.restart()
        st2 = lab.converged()
        assert st2["revision"] == st["revision"]
        # It resumed from its saved view, not from a fresh snapshot.
        log = (tmp_path / "vsc.log").read_text()
        assert f"restored view at revision {st['revision']}" in log
        assert f"following the VSD change stream from revision {st['revision']}" in log
        assert {tuple(d["last_sync_ops"]) for d in st2["datapaths"].values()} == {(0, 0, 0)}
        assert lab.flow_mods() == mods and lab.flows() == before
        # The VSD restarts under a running VSC: the stream reconnects and resumes from its revision.
        vsd.stop()
        vsd.start()
        db = next(o for o in tree.objects if o["entityType"] == "policygroup" and o["entity"]["name"] == "db")
        client2 = VsdClient(vsd.api, vsd.user, vsd.password)
        last = db["assoc"]["vport"][-1]
        assert lab.names[last] == "c17" and lab.trace("c1", "c17", 5432).delivered
        client2.assign(f"policygroups/{db['entity']['ID']}/vports", db["assoc"]["vport"][:-1])
        st3 = wait_revision_past(lab, st2["revision"], timeout=30)
        assert st3["stream_connected"] and st3["endpoints"] == 18
        assert lab.flow_mods() == mods + 2 + 2  # c17 lost its db tag: 2 local flows + 1 remote flow per other VRS
        assert not lab.trace("c1", "c17", 5432, sport=40200).delivered
        assert_nfd8_policy(lab)
