"""benchmarks/bgp.py at a small size (500 routes), as a user runs it: it must exit 0 and report every
route programmed and verified, both parts, both directions. Correctness only: times are the
benchmark's business (DEVELOPERS.md), so none is asserted here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ROUTES = 500


def test_bgp_benchmark_small_size_verifies_every_route(tmp_path):
    out = tmp_path / "bgp.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bgp.py"), "--routes", str(ROUTES), "--out", str(out),
           "--work-dir", str(tmp_path / "work")]
    # Its own process group: on a timeout, the VSCs it started go with it (their ExaBGPs die with them).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        text, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(text)
    assert proc.returncode == 0, text[-3000:]

    result = json.loads(out.read_text())
    speakers = result["speaker_to_speaker"]
    assert speakers["routes"] == ROUTES and speakers["a_to_b"]["routes_per_s"] > 0
    vscs = result["vsc_to_vsc"]
    assert vscs["routes"] == ROUTES and vscs["verified"] is True
    assert vscs["met"] is None  # the 10 s target is for 20,000 routes only
    for leg in ("a_to_b", "b_to_a"):
        r = vscs[leg]
        assert r["routes"] == ROUTES and r["receiver_hosts"] == 4 and r["sender_hosts"] == 2
        assert r["checks"] and all(r["checks"].values()), r["checks"]
        assert len(r["checks"]) == 7
        # The clock started after the receiver's hosts had dropped the routes, and ran forward.
        assert r["hosts_emptied_before_t0_s"] >= 0 and 0 < r["received_s"] and 0 < r["programmed_s"]
    assert "FAIL" not in text and "verified: yes" in text
