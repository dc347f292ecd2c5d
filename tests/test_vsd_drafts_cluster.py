"""Policy drafts on a VSD cluster (vsd/cluster.py): two `vsd serve` on one real PostgreSQL. A job
posted to one VSD runs there under the cluster's write turn; the draft it opens is seen and changed
through the other VSD, and applied through it; both VSDs end with the same live policy."""

from __future__ import annotations

import time

import pytest

from tests.vsd_fixtures import postgres_url
from vsd.client import VsdClient
from vsd.example import build_three_tier
from vsd.server import EmbeddedVsd

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def job(client: VsdClient, domain_id: str, command: str, timeout: float = 30.0) -> dict:
    j = client.create(f"domains/{domain_id}", "jobs", {"command": command})
    deadline = time.monotonic() + timeout
    while (j := client.get(f"jobs/{j['ID']}"))["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    return j


def live_policy(client: VsdClient, domain_id: str) -> list:
    out = []
    for t in client.list(f"domains/{domain_id}/ingressacltemplates", filter='policyState == "LIVE"'):
        out += sorted((e["ID"], e["destinationPort"], e["policyState"])
                      for e in client.list(f"ingressacltemplates/{t['ID']}/ingressaclentrytemplates"))
    return out


def test_a_draft_opened_on_one_vsd_is_applied_through_another(tmp_path):
    with postgres_url() as pg:
        vsds = [EmbeddedVsd(db_url=pg, log_path=str(tmp_path / f"vl-draft-vsd{i}.log")) for i in range(2)]
        try:
            for v in vsds:
                v.start()
            a, b = (VsdClient(v.api, v.user, v.password, v.enterprise) for v in vsds)
            tier = build_three_tier(a, enterprise="vl-draft-cluster")
            dom = tier["domain_id"]
            assert job(a, dom, "BEGIN_POLICY_CHANGES")["status"] == "SUCCESS"
            deadline = time.monotonic() + 10
            while not (drafts := b.list(f"domains/{dom}/ingressacltemplates", filter='policyState == "DRAFT"')):
                assert time.monotonic() < deadline, "the draft never showed on the other VSD"
                time.sleep(0.05)
            entry = b.list(f"ingressacltemplates/{drafts[0]['ID']}/ingressaclentrytemplates")[0]
            b.update(f"ingressaclentrytemplates/{entry['ID']}", {"destinationPort": "8443"})
            assert job(b, dom, "BEGIN_POLICY_CHANGES")["status"] == "FAILED"  # one draft for the cluster
            assert job(b, dom, "APPLY_POLICY_CHANGES")["status"] == "SUCCESS"
            want = live_policy(b, dom)
            assert (entry["associatedLiveEntityID"], "8443", "LIVE") in want
            deadline = time.monotonic() + 10
            while live_policy(a, dom) != want:
                assert time.monotonic() < deadline, "the other VSD never showed the applied policy"
                time.sleep(0.05)
            a.close()
            b.close()
        finally:
            for v in vsds:
                v.close()
