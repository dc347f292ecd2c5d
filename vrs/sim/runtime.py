"""The process that hosts many simulated VRSs on one asyncio loop, usable in-process (the lab front end,
tests) or behind the control socket (`vrs sim`). Every method is safe to call from any thread: the
work runs on the loop's thread, so it never races the OpenFlow traffic."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable

from vrs.sim.fabric import SimFabric, TraceResult
from vrs.sim.host import Container, SimVrs, host_args
from vrs.sim.packet import Packet

log = logging.getLogger(__name__)


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class SimRuntime:
    def __init__(self, controller: tuple[str, int] | None = ("127.0.0.1", 6653),
                 agent: tuple[str, int] | None = ("127.0.0.1", 6634), gc_freeze: bool = False):
        """gc_freeze: trade cycle collection for ~20% less CPU per flow-mod (see ofconn.GC_FREEZE_EVERY);
        meant for a process that only hosts simulated VRSs (`vrs sim` turns it on)."""
        if gc_freeze:
            import gc

            from vrs.sim import ofconn

            ofconn.GC_FREEZE_EVERY = 20_000
            # Young-generation collections every 700 allocations find nothing to free in a stream of
            # flow-mods (their objects live until deleted); collect far less often.
            gc.set_threshold(50_000, 20, 20)
        self.controller = controller
        self.agent = agent
        self.fabric = SimFabric()
        self.hosts: dict[str, SimVrs] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []

    # --- running ----------------------------------------------------------------------------------

    def run_in_thread(self) -> SimRuntime:
        """Start a private event loop in a daemon thread; returns self."""
        ready = threading.Event()

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=main, name="vrs-sim", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def attach(self, loop: asyncio.AbstractEventLoop) -> SimRuntime:
        """Use an event loop the caller runs (e.g. inside an asyncio application)."""
        self.loop = loop
        return self

    def call(self, fn: Callable, *args, timeout: float = 60.0):
        """Run fn(*args) on the loop thread and return its result (awaiting it if a coroutine)."""
        if self.loop is None:
            raise RuntimeError("the runtime is not running: call run_in_thread() or attach(loop)")
        if threading.current_thread() is self._thread or _on_loop(self.loop):
            raise RuntimeError("call() from the loop thread would deadlock; use the methods directly")

        async def run():
            r = fn(*args)
            return await r if asyncio.iscoroutine(r) else r

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is None:
            return
        try:
            self.call(self.stop_async, timeout=10)
        except (RuntimeError, concurrent.futures.TimeoutError):
            pass
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            if self._thread.is_alive():
                # an overloaded loop (a thousand switches resyncing) still inside a callback: closing a
                # running loop raises, and its thread is a daemon that ends with the process
                log.warning("simulated VRSs' event loop still busy 30 s after stop: left to the process's exit")
            else:
                self.loop.close()
            self._thread = None
        self.loop = None

    async def stop_async(self) -> None:
        for s in self._servers:
            s.close()
        self._servers.clear()
        for h in list(self.hosts.values()):
            await h.stop()

    # --- hosts (loop-thread versions end in _now) -------------------------------------------------

    def add_host_now(self, name: str, datapath_id: int, vtep_ip: int | str,
                     containers: Iterable[Container] = (), controller: tuple[str, int] | None = None,
                     agent: tuple[str, int] | None = None, secret: bytes | None = None) -> SimVrs:
        """controller/agent: this host's VSC, when hosts of one process follow different VSCs; secret:
        its enrolment secret (`vsc enrol`)."""
        if name in self.hosts:
            raise ValueError(f"host {name} already exists")
        h = SimVrs(name, datapath_id, vtep_ip, list(containers), controller or self.controller,
                   agent or self.agent, secret=secret)
        self.fabric.add(h.switch)
        self.hosts[name] = h
        h.start()
        return h

    def add_host(self, name: str, datapath_id: int, vtep_ip: int | str,
                 containers: Iterable[Container] = ()) -> SimVrs:
        """Create a simulated VRS; it starts connecting to the controller and the agent port."""
        return self.call(self.add_host_now, name, datapath_id, vtep_ip, list(containers))

    def add_hosts(self, specs: Iterable[dict]) -> list[SimVrs]:
        """Many hosts at once: dicts with name, datapath_id, vtep_ip and containers (list of dicts)."""
        return self.call(lambda: [self.add_host_now(**host_args(s)) for s in specs])

    async def remove_host_now(self, name: str) -> None:
        h = self.hosts.pop(name)
        self.fabric.remove(name)
        await h.stop()

    def remove_host(self, name: str) -> None:
        self.call(self.remove_host_now, name)

    def add_port(self, host: str, container: Container):
        return self.call(lambda: self.hosts[host].add_port(container))

    def remove_port(self, host: str, name: str):
        return self.call(lambda: self.hosts[host].remove_port(name))

    # --- questions ----------------------------------------------------------------------------

    def trace(self, packet: Packet, commit: bool = True) -> TraceResult:
        return self.call(self.fabric.trace, packet, commit)

    def dump_flows(self, host: str, table: int | None = None) -> str:
        return self.call(lambda: self.hosts[host].dump_flows(table))

    def load_dump(self, host: str, dump: str) -> int:
        return self.call(lambda: self.hosts[host].load_dump(dump))

    def stats_now(self) -> dict:
        hosts = [h.stats() for h in self.hosts.values()]
        return {"hosts": hosts, "total_flows": sum(h["flows"] for h in hosts),
                "total_flow_mods": sum(h["flow_mods"] for h in hosts), "rss_bytes": rss_bytes()}

    def stats(self) -> dict:
        return self.call(self.stats_now)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until every host has its OpenFlow (and agent) connection up."""
        waits = [h.of.connected.wait() for h in self.hosts.values() if h.of]
        waits += [h.agent.connected.wait() for h in self.hosts.values() if h.agent]
        await asyncio.wait_for(asyncio.gather(*waits), timeout)

    # --- control socket -----------------------------------------------------------------------

    async def serve_control(self, address: str) -> str:
        """Serve the JSON-lines control protocol (vrs.sim.control) on 'unix:PATH' or 'HOST:PORT'
        (port 0 picks a free one); returns the address actually bound."""
        from vrs.sim.control import serve

        server, bound = await serve(self, address)
        self._servers.append(server)
        return bound

    def start_control(self, address: str) -> str:
        return self.call(self.serve_control, address)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
