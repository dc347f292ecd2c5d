"""The VSC's list of VSDs (vsc/follower.py): `--vsd A,B,C` parsed and refused clearly, a VSD that does not
answer skipped for the next one, and the record of what the stream delivered catching a revision that
came twice or was skipped (the cluster test, tests/test_vsd_cluster.py, relies on it)."""

from __future__ import annotations

import time

import pytest

from vsc.cli import main as vsc_main
from vsc.follower import StreamRecord, vsd_urls
from vsc.process import VscProcess
from vsd.server import EmbeddedVsd
from vsplab.lab.ports import free_port


def test_vsd_urls_are_a_comma_separated_list():
    assert vsd_urls("http://a:8443") == ["http://a:8443"]
    assert vsd_urls(" http://a:8443, https://b:8443/nuage/api/v6 ,") == ["http://a:8443", "https://b:8443/nuage/api/v6"]
    with pytest.raises(ValueError, match="'b:8443'"):
        vsd_urls("http://a:8443,b:8443")
    with pytest.raises(ValueError, match="no VSD URL"):
        vsd_urls(" , ")


def test_vsc_run_refuses_a_bad_vsd_list(capsys):
    assert vsc_main(["run", "--vsd", "http://127.0.0.1:1,127.0.0.1:2"]) == 2
    assert "expected an http:// or https:// URL" in capsys.readouterr().err


def test_the_record_catches_repeated_and_skipped_revisions():
    rec = StreamRecord()
    rec.opened("http://a", 10)
    for line in ({"kind": "event", "revision": 11}, {"kind": "heartbeat", "revision": 11},
                 {"kind": "event", "revision": 12}):
        rec.line(line)
    assert (rec.events, rec.anomalies, rec.first_event, rec.last_event) == (2, 0, 11, 12)
    rec.opened("http://b", 11)  # resumed one revision short: 12 comes again
    rec.line({"kind": "event", "revision": 12})
    rec.line({"kind": "event", "revision": 14})
    assert rec.anomalies == 2 and rec.connections == 2
    assert rec.anomaly_list == ["repeated r12 from http://b (expected r13)",
                                "skipped to r14 from http://b (expected r13)"]
    rec.line({"kind": "snapshot", "revision": 20, "objects": []})
    rec.line({"kind": "event", "revision": 21})
    assert rec.anomalies == 2 and rec.snapshots == 1


def test_a_vsd_that_does_not_answer_is_skipped_for_the_next(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    with EmbeddedVsd() as vsd, VscProcess(vsd_url=f"{dead},{vsd.url}", of_port=free_port(),
                                          agent_port=free_port(), status_port=free_port(),
                                          log_file=tmp_path / "vl-cl-vsc.log") as vsc:
        end = time.monotonic() + 30
        while not (st := vsc.status())["stream_connected"]:
            assert time.monotonic() < end, st
            time.sleep(0.05)
        rec = st["vsd_stream"]
        assert rec["vsd"] == f"{vsd.url}/nuage/api/v6" and rec["failovers"] >= 1
        assert rec["vsds"] == [f"{dead}/nuage/api/v6", f"{vsd.url}/nuage/api/v6"]
