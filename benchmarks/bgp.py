"""BGP benchmark: EVPN MAC/IP routes from one VSC speaker to another, through two ExaBGP processes.

    .venv/bin/python benchmarks/bgp.py                  # 20,000 routes each way
    .venv/bin/python benchmarks/bgp.py --routes 5000

Two `vsc.bgp.speaker.Speaker`s peer over loopback (127.0.0.2 and 127.0.0.3, eBGP, no root). The clock
starts when `advertise()` is handed all the routes and stops when the other speaker has decoded every
one of them (its `on_routes` callback saw them all): encoding, ExaBGP's command parsing and UPDATEs
on the wire, the receiving ExaBGP's decoding and JSON, and our decoding. Then the same the other way.
The CPU each ExaBGP and this process (both speakers) used is printed alongside, to show who the
bottleneck is.

The half "programmed in the receiving side's simulated VRSs" is measured by the VSC integration;
this file writes the speaker-to-speaker figure under the key `speaker_to_speaker` of
benchmarks/results/bgp.json (other keys there are left as they are).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsc.bgp.loopback import throughput  # noqa: E402

TARGET_ROUTES_PER_S = 2_000  # 20,000 routes in under 10 s, end to end (speaker to programmed VRS)
RESULTS = ROOT / "benchmarks" / "results" / "bgp.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{args.routes} EVPN MAC/IP routes, speaker to speaker over ExaBGP, each way ...", flush=True)
    result = throughput(args.routes, name="vl-bgp-bench")
    for label, title in (("a_to_b", "127.0.0.2 -> 127.0.0.3"), ("b_to_a", "127.0.0.3 -> 127.0.0.2")):
        leg = result[label]
        print(f"  {title}: {leg['seconds']:6.2f} s  {leg['routes_per_s']:7d} routes/s   CPU s: "
              + ", ".join(f"{k} {v}" for k, v in leg["cpu_s"].items()))
    slowest = min(result["a_to_b"]["routes_per_s"], result["b_to_a"]["routes_per_s"])
    print(f"slowest direction {slowest} routes/s; target for the whole path {TARGET_ROUTES_PER_S} routes/s")
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    existing["speaker_to_speaker"] = {
        **result, "target_routes_per_s": TARGET_ROUTES_PER_S, "met": slowest >= TARGET_ROUTES_PER_S,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.node(),
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
