"""Folding the log into `objects` (vsd/store.py) when more than one process has written the log: after a
`kill -9` the restarted VSD replays the unfolded tail and must fold it too, not move the compaction mark
past it; in a cluster (vsd/cluster.py) each VSD folds and skips what another one already folded. Either
way a restart must come back with exactly what was acknowledged."""

from __future__ import annotations

import uuid

import pytest

from tests.vsd_fixtures import postgres_url, revision, subnet_tree
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd


def _names(vsd: EmbeddedVsd, subnet: str) -> set[str]:
    with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        return {v["name"] for v in c.list(f"subnets/{subnet}/vports", page_size=5000)}


def _create(vsd: EmbeddedVsd, subnet: str, names: list[str]) -> None:
    with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        c.create(f"subnets/{subnet}", "vports", [{"name": n, "type": "VM"} for n in names])


def test_the_tail_replayed_after_kill_9_is_folded_too(tmp_path):
    vsd = EmbeddedVsd(db_url=f"sqlite:///{tmp_path / 'vsd.db'}")
    try:
        vsd.start()
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
            subnet = subnet_tree(c, "vl-cl-tail")
        _create(vsd, subnet, [f"before-{i}" for i in range(50)])
        vsd.kill()  # the log holds what `objects` does not yet
        vsd.start()
        _create(vsd, subnet, ["after"])
        vsd.stop()  # a clean stop folds everything it has
        vsd.start()
        assert _names(vsd, subnet) == {f"before-{i}" for i in range(50)} | {"after"}
    finally:
        vsd.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_cluster_members_fold_the_log_once(tmp_path):
    with postgres_url() as pg:
        vsds = [EmbeddedVsd(db_url=pg) for _ in range(2)]
        try:
            for v in vsds:
                v.start()
            with VsdClient(vsds[0].api, vsds[0].user, vsds[0].password, vsds[0].enterprise) as c:
                subnet = subnet_tree(c, f"vl-cl-{uuid.uuid4().hex[:8]}")
            expected = set()
            for round_ in range(3):
                for i, v in enumerate(vsds):
                    names = [f"r{round_}-v{i}-{k}" for k in range(30)]
                    _create(v, subnet, names)
                    expected |= set(names)
            vsds[1].kill()
            vsds[0].stop()  # folds everything; the killed one folded some of it before
            final = None
            for v in vsds:
                v.start()
                assert _names(v, subnet) == expected
                final = final or revision(v)
                assert revision(v) == final
        finally:
            for v in vsds:
                v.close()
