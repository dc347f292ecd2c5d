"""Continuous probes while faults run: each chosen pair is tried back to back in a thread of its own,
every attempt recorded with its start, end and outcome, so every interruption shows. In emu mode an
attempt is a fresh TCP connection from one container's namespace to the other's echo listener (a new
conntrack entry each time: the whole pipeline, ACLs included); in sim mode it is a traced exchange
through the simulated VRSs (ARP, request, reply), lost too when the simulated underlay's delay on its
path exceeds the attempt's timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vsplab.emu.disruption import Attempt

INTERVAL = 0.05
TIMEOUT = 0.25  # an attempt slower than this is lost


@dataclass
class Prober:
    label: str  # "web1 -> app1 tcp/8080"
    attempt: Callable[[], tuple[bool, str]]  # one try: (passed, why not)
    interval: float = INTERVAL
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"probe {self.label}")

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                ok, why = self.attempt()
            except Exception as e:  # a probe that blows up is a lost attempt, not a dead thread
                ok, why = False, f"{type(e).__name__}: {e}"
            t1 = time.monotonic()
            self.attempts.append(Attempt(t0, t1, ok, why))
            self._stop.wait(max(0.0, self.interval - (t1 - t0)))

    def window(self, t0: float, t1: float | None) -> tuple[int, int]:
        """(attempts, lost) among those that started in [t0, t1)."""
        sel = [a for a in list(self.attempts) if a.start >= t0 and (t1 is None or a.start < t1)]
        return len(sel), sum(not a.ok for a in sel)

    def outages(self, origin: float) -> list[dict]:
        """Each run of failed attempts: from the first failure's start to the next success's end
        (seconds since `origin`), and how many attempts it lost."""
        out, run = [], []
        for a in list(self.attempts):
            if not a.ok:
                run.append(a)
                continue
            if run:
                out.append({"from": run[0].start - origin, "seconds": a.end - run[0].start, "lost": len(run),
                            "why": run[-1].why})
                run = []
        if run:
            out.append({"from": run[0].start - origin, "seconds": None, "lost": len(run), "why": run[-1].why})
        return out

    def summary(self, origin: float) -> dict:
        return {"pair": self.label, "attempts": len(self.attempts), "lost": sum(not a.ok for a in self.attempts),
                "outages": [o for o in self.outages(origin) if o["seconds"] is not None],
                "still_out": any(o["seconds"] is None for o in self.outages(origin))}


def probe_label(p) -> str:
    return f"{p.from_} -> {p.to} {p.protocol}" + (f"/{p.port}" if p.port else "")


def emu_probers(lab, probes) -> list[Prober]:
    """TCP connects between containers of an emu lab, to echo listeners opened here."""
    from vsplab.emu.check import container_netns
    from vsplab.emu.probes import tcp_connect

    out = []
    for p in probes:
        src, dst = lab.placed[p.from_], lab.placed[p.to]
        lab.listeners.tcp_on(container_netns(dst.name), dst.ip, p.port)

        def attempt(src=src, dst=dst, port=p.port) -> tuple[bool, str]:
            ok, why, _ = tcp_connect(container_netns(src.name), dst.ip, port, TIMEOUT,
                                     expect_netns=container_netns(dst.name))
            return ok, why
        out.append(Prober(probe_label(p), attempt))
    return out


def sim_probers(lab, probes) -> list[Prober]:
    """Traced exchanges through a sim lab's simulated VRSs (on their loop thread)."""
    from vsplab.lab.probe import probe

    gateways = lab.scenario.gateways()
    fabric = lab.runtime.fabric
    out = []
    for p in probes:
        src, dst = lab.placed[p.from_], lab.placed[p.to]

        def attempt(src=src, dst=dst, p=p) -> tuple[bool, str]:
            verdict, detail = lab.runtime.call(probe, fabric, src, dst, p.protocol, p.port, gateways)
            if verdict != "allow":
                return False, detail
            delay = fabric.path_delay_ms(src.host, dst.host) if hasattr(fabric, "path_delay_ms") else 0.0
            if 2 * delay / 1000 > TIMEOUT:  # request and reply both cross the underlay
                return False, f"underlay delay {delay:.0f} ms each way exceeds the {TIMEOUT * 1000:.0f} ms timeout"
            return True, ""
        out.append(Prober(probe_label(p), attempt))
    return out
