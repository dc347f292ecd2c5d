"""VSD REST fuzz, the long run: the generator of `tests/vsd_fuzz.py` (hypothesis) with a fresh seed each
run and as many requests as asked, against one VSD child process on SQLite.

    .venv/bin/python benchmarks/vsd_fuzz.py                         # 50,000 requests
    .venv/bin/python benchmarks/vsd_fuzz.py --requests 200000 --seed 7

Unlike the CI test (`tests/test_vsd_fuzz.py`, 5,000 requests, fixed seed, stops at the first 5xx and
shrinks it), this run goes on past failures and lists them. It reports the answers by status, every
5xx with the request that caused it, the slowest health-check answer (polled every 20 ms from another
process), and whether a restart shows the same state the VSD held in memory. Prints the figures and
writes benchmarks/results/vsd_fuzz.json; exits 1 if any request got a 5xx or the state differed.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vsd_fixtures import HealthProbe  # noqa: E402
from tests.vsd_fuzz import build_world, request, send  # noqa: E402
from vsd.client import VsdClient  # noqa: E402
from vsd.server import EmbeddedVsd  # noqa: E402

BATCH = 20  # requests per hypothesis example


def _snapshot(vsd: EmbeddedVsd, password: str) -> dict:
    with VsdClient(vsd.api, vsd.user, password, vsd.enterprise) as c:
        stream = c.changes(0)
        line = next(stream)
        stream.close()
    return line


def run(requests: int, run_seed: int) -> dict:
    vsd = EmbeddedVsd()
    with vsd:
        world = build_world(vsd)
        failures: list[dict] = []
        client = httpx.Client(timeout=30)
        t0 = time.monotonic()
        progress = [t0]

        @seed(run_seed)
        @settings(max_examples=max(1, requests // BATCH), deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(request(world), min_size=BATCH, max_size=BATCH))
        def fuzz(batch):
            for req in batch:
                try:
                    r = send(world, client, req)
                except httpx.HTTPError as e:  # a hang or a dropped connection is a failure too
                    failures.append({"error": repr(e), "request": repr(req)})
                    continue
                if r.status_code >= 500:
                    failures.append({"status": r.status_code, "request": repr(req), "answer": r.text[:500]})
            if time.monotonic() - progress[0] > 10:
                progress[0] = time.monotonic()
                print(f"  {world.sent:,} requests, {len(failures)} failures", flush=True)

        with HealthProbe(vsd) as probe:
            fuzz()
        elapsed = time.monotonic() - t0
        client.close()
        before = _snapshot(vsd, world.passwords.get("root", vsd.password))
        vsd.stop()
        vsd.start()
        same = _snapshot(vsd, vsd.password) == before
    return {"requests": world.sent, "seed": run_seed, "seconds": round(elapsed, 1),
            "per_second": round(world.sent / elapsed), "statuses": dict(sorted(world.statuses.items())),
            "failures": failures, "health_worst_ms": round(probe.worst * 1000, 1), "health_polls": probe.count,
            "health_failures": probe.failures, "restart_shows_the_same_state": same}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=None, help="default: a fresh one, printed")
    args = p.parse_args()
    run_seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"VSD REST fuzz: {args.requests:,} requests, seed {run_seed}", flush=True)
    result = run(args.requests, run_seed)
    result.update({"python": platform.python_version(), "machine": platform.machine(),
                   "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"{result['requests']:,} requests in {result['seconds']} s ({result['per_second']}/s); "
          f"statuses {result['statuses']}")
    print(f"5xx or broken connections: {len(result['failures'])}; health check worst "
          f"{result['health_worst_ms']} ms over {result['health_polls']} polls; restart shows the same state: "
          f"{result['restart_shows_the_same_state']}")
    for f in result["failures"][:20]:
        print("  ", json.dumps(f)[:400])
    out = ROOT / "benchmarks" / "results" / "vsd_fuzz.json"
    out.write_text(json.dumps({**result, "failures": result["failures"][:100]}, indent=1) + "\n")
    print(f"wrote {out}")
    ok = not result["failures"] and not result["health_failures"] and result["restart_shows_the_same_state"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
