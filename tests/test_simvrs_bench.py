"""Benchmark-style (prints figures, asserts only correctness): flow-mods per second end to end, built
by a controller process with our encoder, sent over TCP, received and indexed by one simulated VRS
in this process; and the memory the indexed flows take."""

from __future__ import annotations

import gc
import multiprocessing as mp
import socket
import time

import pytest

from openflow import encode
from openflow.flow import Flow, SetField, match
from vrs.sim import SimRuntime

N_FLOWS = 100_000
CHUNK = 1000


def workload(n: int) -> list[Flow]:
    # The NFD8 shape of vsc/pipeline.md table 20: one flow per remote endpoint.
    return [
        Flow(20, 100, match(metadata=1, reg0=0x0A000000 + i),
             actions=(SetField("reg6", i & 0xFF), SetField("reg7", 0), SetField("reg9", 1), SetField("tun_id", 5000),
                      SetField("tun_ipv4_dst", 0xC0A80000 + (i % 40))),
             goto=25, cookie=(5 << 56) | i)
        for i in range(n)
    ]


def controller(srv: socket.socket, n: int, use_bundle: bool, out: mp.Queue) -> None:
    """Accept the switch, then encode and stream n flow-mods (in chunks, so that encoding here and
    indexing in the switch overlap as they would with a real controller) and a barrier."""
    flows = workload(n)  # the VSC's compile step, not part of the figure
    conn, _ = srv.accept()
    conn.sendall(encode.hello(1))
    t0 = time.perf_counter()
    t_enc = 0.0
    nbytes = 0
    xid = 1000
    if use_bundle:
        conn.sendall(encode.bundle_open(1, xid))
    for i in range(0, n, CHUNK):
        te = time.perf_counter()
        if use_bundle:
            data = b"".join(encode.bundle_add(1, encode.flow_mod(f, 0, xid + j), xid + j)
                            for j, f in enumerate(flows[i : i + CHUNK], 1))
        else:
            data = encode.flow_mods(flows[i : i + CHUNK], xid=xid)
        t_enc += time.perf_counter() - te
        xid += CHUNK
        nbytes += len(data)
        conn.sendall(data)
    if use_bundle:
        conn.sendall(encode.bundle_commit(1, xid + 1))
    conn.sendall(encode.barrier_request(7))
    buf = b""
    while True:  # until the barrier reply (type 21, xid 7) arrives; the hello and commit reply come first
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
        if bytes.fromhex("0415000800000007") in buf:
            break
    total = time.perf_counter() - t0
    out.put((t_enc, total, nbytes))
    conn.close()
    srv.close()


@pytest.mark.slow
@pytest.mark.parametrize("use_bundle", [False, True], ids=["plain", "bundle"])
def test_flow_mods_per_second_over_tcp(use_bundle, capsys):
    srv = socket.create_server(("127.0.0.1", 0))  # listening before the fork: no race with the switch
    port = srv.getsockname()[1]
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=controller, args=(srv, N_FLOWS, use_bundle, q), daemon=True)
    proc.start()
    srv.close()
    gc.collect()
    rt = SimRuntime(("127.0.0.1", port), None, gc_freeze=True)
    try:
        rss0 = rt.run_in_thread().stats()["rss_bytes"]
        rt.add_host("vl-bench", 1, "192.168.99.1")
        t_enc, total, nbytes = q.get(timeout=120)
        stats = rt.stats()
        (h,) = stats["hosts"]
        assert h["flows"] == N_FLOWS and h["errors_sent"] == 0
        per_flow_mem = (stats["rss_bytes"] - rss0) / N_FLOWS
        with capsys.disabled():
            print(f"\n[{'bundle' if use_bundle else 'plain'}] {N_FLOWS} flow-mods ({nbytes / N_FLOWS:.0f} B each): "
                  f"encode {1e6 * t_enc / N_FLOWS:.2f} us/flow-mod, end to end {total:.2f} s = "
                  f"{N_FLOWS / total:,.0f} flow-mods/s (encode+send+decode+index, 2 processes); "
                  f"sim memory ~{per_flow_mem:.0f} B/flow (RSS delta)")
    finally:
        rt.stop()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


N_HOSTS, PER_HOST = 40, 5_000


def fleet_controller(srv: socket.socket, n_hosts: int, per_host: int, out: mp.Queue) -> None:
    """Accept n_hosts switches, then push per_host flows to each in one bundle per switch, all
    switches interleaved (as a VSC programming a whole domain at once), and wait for every barrier."""
    flows = workload(per_host)
    conns = []
    for _ in range(n_hosts):
        c, _ = srv.accept()
        c.sendall(encode.hello(1))
        conns.append(c)
    t0 = time.perf_counter()
    # Encoded once and sent to every switch, as the VSC does for the flows all hosts of a domain share.
    data, _ = encode.bundle_flow_mods(1, flows, 1000)
    pending = {c: data + encode.barrier_request(7) for c in conns}
    # Round-robin 64 KiB slices so that every switch is fed at once.
    while pending:
        for c in list(pending):
            c.sendall(pending[c][:65536])
            pending[c] = pending[c][65536:]
            if not pending[c]:
                del pending[c]
    for c in conns:
        buf = b""
        while bytes.fromhex("0415000800000007") not in buf:
            chunk = c.recv(65536)
            if not chunk:
                break
            buf += chunk
    out.put(time.perf_counter() - t0)
    for c in conns:
        c.close()


@pytest.mark.slow
def test_many_switches_in_one_process(capsys):
    srv = socket.create_server(("127.0.0.1", 0), backlog=N_HOSTS)
    port = srv.getsockname()[1]
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=fleet_controller, args=(srv, N_HOSTS, PER_HOST, q), daemon=True)
    proc.start()
    srv.close()
    gc.collect()
    rt = SimRuntime(("127.0.0.1", port), None, gc_freeze=True)
    try:
        rss0 = rt.run_in_thread().stats()["rss_bytes"]
        rt.add_hosts([{"name": f"vl-f{i}", "datapath_id": i + 1, "vtep_ip": f"192.168.98.{i + 1}"}
                      for i in range(N_HOSTS)])
        total = q.get(timeout=300)
        stats = rt.stats()
        n = N_HOSTS * PER_HOST
        assert stats["total_flows"] == n and all(h["errors_sent"] == 0 for h in stats["hosts"])
        with capsys.disabled():
            print(f"\n[fleet] {N_HOSTS} simulated VRSs x {PER_HOST} flows in bundles: {total:.2f} s = "
                  f"{n / total:,.0f} flow-mods/s; RSS +{(stats['rss_bytes'] - rss0) / 2**20:.0f} MB "
                  f"(~{(stats['rss_bytes'] - rss0) / n:.0f} B/flow incl. staging)")
    finally:
        rt.stop()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
