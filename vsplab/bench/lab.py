"""The benchmark's lab: one VSD (subprocess, SQLite in the work directory), N VSC processes federated
over MP-BGP EVPN (full-mesh eBGP between their ExaBGP speakers, each on its own loopback address), and
every simulated VRS in this process on one asyncio thread, the hosts split between the VSCs in
contiguous halves (thirds...). Hosts start empty, like hypervisors waiting for containers.

Everything started here is stopped by `close()`, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path

from vsplab.bench import measure
from vsplab.lab.ports import free_port, free_port_on

# The speakers' loopback addresses: 127.0.0.2-3 are the speaker tests', .10 up the scenario labs'.
BGP_FIRST_HOST = 100
FIRST_ASN = 65001


class MemoryLimit(RuntimeError):
    pass


class BenchLab:
    def __init__(self, workdir: Path, hosts: dict[int, tuple[str, str]], vscs: int = 2,
                 log_level: str = "WARNING") -> None:
        if vscs < 1 or vscs > len(hosts):
            raise ValueError(f"--vscs {vscs}: between 1 and the number of hosts ({len(hosts)})")
        self.workdir, self.hosts, self.n_vscs, self.log_level = workdir, hosts, vscs, log_level
        dpids = sorted(hosts)
        size = -(-len(dpids) // vscs)
        self.names = [f"vsc{i + 1}" for i in range(vscs)]
        self.vsc_of_host = {d: self.names[k // size] for k, d in enumerate(dpids)}
        self.stack = ExitStack()
        self.rss_limit_mb, self.rss_mb = 0, 0  # 0: no limit
        self.vsd = None
        self.client = None
        self.vscs: dict[str, object] = {}
        self.runtime = None

    def hosts_of(self, name: str) -> list[int]:
        return [d for d, v in self.vsc_of_host.items() if v == name]

    def __enter__(self) -> BenchLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.stack.close()

    def start(self, timeout: float = 120.0) -> None:
        from vrs.sim.runtime import SimRuntime
        from vsc.process import BgpOptions, VscProcess
        from vsd.client import VsdClient
        from vsd.server import EmbeddedVsd

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.vsd = self.stack.enter_context(EmbeddedVsd(db_url=f"sqlite:///{self.workdir / 'vsd.db'}",
                                                        log_path=str(self.workdir / "vsd.log")))
        self.client = VsdClient(self.vsd.api, self.vsd.user, self.vsd.password)
        self.stack.callback(self.client.close)
        addresses = [f"127.0.0.{BGP_FIRST_HOST + i}" for i in range(self.n_vscs)]
        bgp_port = free_port_on(addresses) if self.n_vscs > 1 else 0
        self.ports: dict[str, tuple[int, int]] = {}
        for i, name in enumerate(self.names):
            bgp = None
            if self.n_vscs > 1:
                peers = [f"{a}:{bgp_port}:{FIRST_ASN + k}" for k, a in enumerate(addresses) if k != i]
                bgp = BgpOptions(FIRST_ASN + i, addresses[i], f"{addresses[i]}:{bgp_port}", peers)
            of, agent = free_port(), free_port()
            self.ports[name] = (of, agent)
            vsc = VscProcess(vsd_url=self.vsd.url, user=self.vsd.user, password=self.vsd.password, of_port=of,
                             agent_port=agent, status_port=free_port(), state_dir=self.workdir / name,
                             log_file=self.workdir / f"{name}.log", log_level=self.log_level, bgp=bgp)
            self.stack.callback(vsc.stop)
            vsc.start(timeout=60)
            self.vscs[name] = vsc
        # Only simulated VRSs in this process's loop thread: cycle collection can wait (vrs sim does it too).
        self.runtime = SimRuntime(controller=None, agent=None, gc_freeze=True).run_in_thread()
        self.stack.callback(self.runtime.stop)

        def add_all() -> None:
            for dpid, (host, vtep) in sorted(self.hosts.items()):
                of, agent = self.ports[self.vsc_of_host[dpid]]
                self.runtime.add_host_now(host, dpid, vtep, [], ("127.0.0.1", of), ("127.0.0.1", agent))
        self.runtime.call(add_all)
        end = time.monotonic() + timeout
        for name, vsc in self.vscs.items():  # every host synced (the skeleton), every session up
            while True:
                self.check_alive()
                try:
                    vsc.wait_converged(min(1.0, max(end - time.monotonic(), 0.01)), datapaths=len(self.hosts_of(name)))
                    break
                except TimeoutError:
                    if time.monotonic() > end:
                        raise

    def check_alive(self) -> None:
        """Raise at once when a process of the lab has exited: waiting on it would only time out."""
        for name, vsc in self.vscs.items():
            if vsc.proc.poll() is not None:
                raise RuntimeError(f"VSC {name} exited with {vsc.proc.returncode} (log: {vsc.log_file})")
        if self.vsd.proc.poll() is not None:
            raise RuntimeError("the VSD exited")
        if self.rss_limit_mb and self.rss_mb > self.rss_limit_mb:
            raise MemoryLimit(f"the lab holds {self.rss_mb:,} MB resident, over the --max-rss-gb limit of "
                              f"{self.rss_limit_mb:,} MB: stopped before the machine runs out")

    def resident_mb(self) -> int:
        """What every process of the lab holds resident now (the sampler keeps `rss_mb` up to date)."""
        total = 0
        for pid in self.processes().values():
            try:
                total += measure.rss_mb(pid)
            except OSError:
                pass
        self.rss_mb = total
        return total

    # --- questions ------------------------------------------------------------------------------

    def vsd_revision(self) -> int:
        return self.client.request("GET", "vsplab/health").json()["committed"]

    def statuses(self) -> dict[str, dict]:
        return {name: vsc.status() for name, vsc in self.vscs.items()}

    def processes(self) -> dict[str, int]:
        """Every process of the lab by role: the VSD, each VSC and its ExaBGP, and this one."""
        out = {"vsd": self.vsd.proc.pid}
        for name, vsc in self.vscs.items():
            out[name] = vsc.proc.pid
            for child in measure.children(vsc.proc.pid):
                if "exabgp" in measure.cmdline(child):
                    out[f"{name}-exabgp"] = child
        out["bench (simulated VRSs, orchestrator)"] = os.getpid()
        return out

    def sim_thread_cpu(self) -> float:
        return measure.thread_cpu_seconds(os.getpid(), self.runtime._thread.native_id)

    def cpu_now(self) -> dict[str, float]:
        out = {}
        for role, pid in self.processes().items():
            try:
                out[role] = measure.cpu_seconds(pid)
            except OSError:
                pass
        out["simulated VRSs (thread)"] = self.sim_thread_cpu()
        return out

    def memory(self) -> dict[str, int]:
        """Peak resident MB of each process (the kernel's high-water mark, read before they stop)."""
        out = {}
        for role, pid in self.processes().items():
            try:
                out[role] = measure.peak_rss_mb(pid)
            except OSError:
                pass
        return out


def wait_all_converged(lab: BenchLab, expect: dict[str, dict], timeout: float, started: float,
                       stop_early=None) -> float:
    """Seconds from `started` (perf_counter) until every VSC reports converged with what `expect`
    names (revision, datapaths, endpoints, BGP routes) in one round of polls, confirmed by the next
    round seeing nothing move; raises TimeoutError with the last statuses otherwise."""
    end = time.monotonic() + timeout
    candidate, last_sig = None, None
    st: dict = {}
    while time.monotonic() < end:
        if stop_early is not None:
            stop_early()
        t = time.perf_counter()
        st = lab.statuses()
        ok = all(_meets(st[n], e) for n, e in expect.items())
        sig = tuple(_signature(st[n]) for n in sorted(st)) if ok else None
        if ok and candidate is not None and sig == last_sig:
            return candidate - started
        candidate, last_sig = (t if ok else None), sig
        time.sleep(0.05)
    brief = {n: {k: s.get(k) for k in ("converged", "revision", "vsd_revision", "endpoints")} | {
        "bgp": {k: (s.get("bgp") or {}).get(k) for k in ("received", "imported", "pending", "sessions_down")},
        "unsynced": [d for d, x in s["datapaths"].items() if not x["synced"] or x["pending"] or x["inflight"]][:5]}
        for n, s in st.items()}
    raise TimeoutError(f"not converged after {timeout} s: {brief}")


def _meets(st: dict, e: dict) -> bool:
    return (st["converged"] and st["revision"] >= e["revision"] and st["endpoints"] >= e["endpoints"]
            and sum(d["synced"] for d in st["datapaths"].values()) >= e["datapaths"]
            and (st.get("bgp") or {}).get("received", 0) >= e["bgp_received"])


def _signature(st: dict) -> tuple:
    sent = sum(sum(d["sent"].values()) for d in st["datapaths"].values() if d["sent"])
    bgp = st.get("bgp") or {}
    return st["revision"], st["endpoints"], sent, bgp.get("received"), bgp.get("advertised")
