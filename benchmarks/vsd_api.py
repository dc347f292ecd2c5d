"""VSD benchmark: single-object creates per second and bulk objects per second, SQLite over loopback.

    .venv/bin/python benchmarks/vsd_api.py                      # defaults below
    .venv/bin/python benchmarks/vsd_api.py --single 5000 --connections 8 --bulk 20000 --rounds 3

The VSD runs as `python -m vsd serve` (a child process, the default SQLite store in a temp dir) so the
server and this client each have one of the machine's two cores. The client is a minimal HTTP/1.1
keep-alive client on asyncio: httpx costs more CPU per request than the server does, which would
measure the client instead of the VSD.

1. Single creates: POST /subnets/{id}/vports, one vport per request, over C concurrent keep-alive
   connections (and, for honesty, over one connection with one request at a time). Every 201 is counted
   only after the VSD committed the object to disk (the VSD answers after its group commit).
2. Bulk: POST of a list of N vports to the same path, one transaction; the best and the median of
   `--rounds` requests.

Prints the figures and writes benchmarks/results/vsd_api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vsd.client import VsdClient  # noqa: E402
from vsd.server import EmbeddedVsd  # noqa: E402

TARGET_SINGLE_PER_S = 1_000
TARGET_BULK_PER_S = 20_000


class Conn:
    """One keep-alive HTTP/1.1 connection: request, then read exactly one response."""

    def __init__(self, host: str, port: int, headers: bytes) -> None:
        self.host, self.port, self.headers = host, port, headers

    async def open(self) -> Conn:
        self.r, self.w = await asyncio.open_connection(self.host, self.port)
        return self

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.w.write(b"POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s"
                     % (path.encode(), self.host.encode(), self.headers, len(body), body))
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.r.readexactly(length)

    def close(self) -> None:
        self.w.close()


async def single_creates(port: int, headers: bytes, path: str, n: int, connections: int, tag: str) -> float:
    conns = [await Conn("127.0.0.1", port, headers).open() for _ in range(connections)]
    counter = iter(range(n))
    failures: list[bytes] = []

    async def worker(c: Conn) -> None:
        for i in counter:
            status, body = await c.post(path, orjson.dumps({"name": f"{tag}-{i}", "type": "CONTAINER"}))
            if status != 201:
                failures.append(body)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    if failures:
        raise SystemExit(f"{len(failures)} creates failed, e.g. {failures[0][:300]!r}")
    return n / elapsed


async def bulk_creates(port: int, headers: bytes, path: str, n: int, rounds: int) -> list[float]:
    c = await Conn("127.0.0.1", port, headers).open()
    times = []
    for r in range(rounds):
        body = orjson.dumps([{"name": f"bulk{r}-{i}", "type": "CONTAINER"} for i in range(n)])
        t0 = time.perf_counter()
        status, answer = await c.post(path, body)
        times.append(time.perf_counter() - t0)
        if status != 201 or len(orjson.loads(answer)["response"]) != n:
            raise SystemExit(f"bulk create failed: HTTP {status} {answer[:300]!r}")
        await asyncio.sleep(1.0)  # let the VSD fold the log into its object table between rounds
    c.close()
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--single", type=int, default=5000, help="single creates per measurement")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--bulk", type=int, default=20_000, help="objects per bulk request")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vsd_api.json"))
    args = p.parse_args()

    with EmbeddedVsd() as vsd:
        client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        ent = client.create("", "enterprises", {"name": "vl-bench"})
        tmpl = client.create(f"enterprises/{ent['ID']}", "domaintemplates", {"name": "vl-bench-t"})
        dom = client.create(f"enterprises/{ent['ID']}", "domains", {"name": "vl-bench", "templateID": tmpl["ID"]})
        zone = client.create(f"domains/{dom['ID']}", "zones", {"name": "vl-bench"})
        subnet = client.create(f"zones/{zone['ID']}", "subnets",
                               {"name": "vl-bench", "address": "10.128.0.0", "netmask": "255.255.0.0"})
        token = base64.b64encode(f"{vsd.user}:{client.api_key}".encode())
        headers = (b"Authorization: XREST %s\r\nX-Nuage-Organization: csp\r\nContent-Type: application/json\r\n"
                   % token)
        path = f"/nuage/api/v6/subnets/{subnet['ID']}/vports"
        port = vsd.port

        asyncio.run(single_creates(port, headers, path, 500, args.connections, "warm"))
        multi = asyncio.run(single_creates(port, headers, path, args.single, args.connections, "c"))
        one = asyncio.run(single_creates(port, headers, path, max(args.single // 2, 1), 1, "s"))
        times = asyncio.run(bulk_creates(port, headers, path, args.bulk, args.rounds))
        total = client.count(f"subnets/{subnet['ID']}/vports")
        client.close()

    best, median = min(times), statistics.median(times)
    # every acknowledged create must be in the store, no more and no fewer
    expected = 500 + args.single + max(args.single // 2, 1) + args.bulk * args.rounds
    result = {
        "benchmark": "vsd_api",
        "store": "sqlite (WAL, synchronous=NORMAL), loopback HTTP/1.1 keep-alive",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "single_creates_per_s": round(multi, 1),
        "single_creates_connections": args.connections,
        "single_creates_per_s_one_connection": round(one, 1),
        "single_creates_measured": args.single,
        "bulk_objects_per_request": args.bulk,
        "bulk_seconds_best": round(best, 3),
        "bulk_seconds_median": round(median, 3),
        "bulk_objects_per_s_best": round(args.bulk / best, 1),
        "bulk_objects_per_s_median": round(args.bulk / median, 1),
        "vports_in_store": total,
        "vports_expected": expected,
        "verified_ok": total == expected,
        "load_avg_at_end": round(os.getloadavg()[0], 2),
        "targets": {"single_creates_per_s": TARGET_SINGLE_PER_S, "bulk_objects_per_s": TARGET_BULK_PER_S},
    }
    print(f"single creates: {multi:,.0f}/s over {args.connections} connections "
          f"(target {TARGET_SINGLE_PER_S:,}), {one:,.0f}/s over one connection")
    print(f"bulk: {args.bulk:,} vports in {best:.3f} s best, {median:.3f} s median "
          f"= {args.bulk / best:,.0f} objects/s best, {args.bulk / median:,.0f} median "
          f"(target {TARGET_BULK_PER_S:,}/s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if total != expected:
        print(f"FAILED: the store holds {total:,} vports, {expected:,} were acknowledged")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
