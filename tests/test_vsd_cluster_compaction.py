"""Folding the log into `objects` (vsd/store.py) after a `kill -9`: the restarted VSD replays the
unfolded tail and must fold it too, not move the compaction mark past it (it did: the tail's objects
were gone after the next clean stop and start). A cluster member does the same, and skips what another
member folded (tests/test_vsd_cluster.py, where a killed member rejoins)."""

from __future__ import annotations

import pytest

from tests.vsd_fixtures import subnet_tree
from vsd.client import VsdClient
from vsd.server import EmbeddedVsd


def _names(vsd: EmbeddedVsd, subnet: str) -> set[str]:
    with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        return {v["name"] for v in c.list(f"subnets/{subnet}/vports", page_size=5000)}


def _create(vsd: EmbeddedVsd, subnet: str, names: list[str]) -> None:
    with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        c.create(f"subnets/{subnet}", "vports", [{"name": n, "type": "VM"} for n in names])


@pytest.mark.slow
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
