"""`vsplab fidelity SCENARIO`: does the simulator forward exactly as real Open vSwitch does?

Runs the scenario in emu mode (real OVS per emulated host), loads each host's real flow table into a
simulated twin (vsplab/fidelity/simcopy.py), then for every expectation and a seeded sample of other
traffic compares the simulator's trace, ofproto/trace on the real switches, and real packets
(vsplab/fidelity/compare.py). Prints every disagreement, then `agreement: P% (N packets)`."""

from __future__ import annotations

import json
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from vsplab.fidelity.cases import Case, build_cases
from vsplab.fidelity.compare import CaseResult, Comparator
from vsplab.fidelity.simcopy import Tamper, build_twin

LEFTOVER_WAIT = 300.0  # another lab may hold the machine (one emulated lab at a time): wait this long


@dataclass
class FidelityReport:
    scenario: str
    seed: int
    results: list[CaseResult] = field(default_factory=list)
    flows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def agreed(self) -> int:
        return sum(1 for r in self.results if r.agrees)

    @property
    def percent(self) -> float:
        return 100.0 * self.agreed / len(self.results) if self.results else 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.agreed == len(self.results)

    def summary(self) -> str:
        # rounded down, so 99.96% never prints as a passing 100%
        return f"agreement: {int(self.percent * 10) / 10:g}% ({len(self.results)} packets)"

    def to_json(self) -> dict:
        return {"scenario": self.scenario, "seed": self.seed, "packets": len(self.results),
                "agreed": self.agreed, "agreement_percent": self.percent, "flows_per_host": self.flows,
                "seconds": round(self.seconds, 2), "cases": [r.to_dict() for r in self.results]}

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def print(self, console: Console) -> None:
        for r in self.results:
            if r.agrees:
                continue
            console.print(f"[red]DISAGREE[/] {r.case.label} ({r.case.origin})", highlight=False)
            for d in r.differences():
                console.print(f"    {d}", highlight=False, soft_wrap=True)
        artifacts = sum(len(p.ovs_artifacts) for r in self.results for p in r.packets)
        if artifacts:
            console.print(f"note: on {artifacts} tunnel outputs after a ct() recirculation ofproto/trace said "
                          "'Not tunneling to our own address' (a trace artifact: the tun_dst set before ct() "
                          "looks like the packet's own tunnel); followed as sent, as real packets are",
                          highlight=False)
        console.print(self.summary(), highlight=False)


def real_verdicts(lab, results: list[CaseResult], workers: int = 8) -> None:
    """The emulator's own probes (real sockets in the container namespaces), in parallel: a denied
    probe costs its whole timeout."""
    from vsplab.emu.check import container_netns, probe

    for r in results:  # listeners first, so no probe races the server it needs
        dst = lab.placed[r.case.dst]
        if r.case.protocol == "tcp":
            lab.listeners.tcp_on(container_netns(dst.name), dst.ip, r.case.port)
        elif r.case.protocol == "udp":
            lab.listeners.udp_on(container_netns(dst.name), dst.ip, r.case.port)

    def one(r: CaseResult) -> None:
        try:
            r.real, r.real_detail = probe(lab.listeners, lab.placed[r.case.src], lab.placed[r.case.dst],
                                          r.case.protocol, r.case.port)
        except Exception as e:  # a probe that blows up is a disagreement to show, not a crashed run
            r.real, r.real_detail = "error", f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fidelity-probe") as ex:
        list(ex.map(one, results))


def compare_lab(lab, cases: list[Case], seed: int, tamper: Tamper | None = None,
                real: bool = True) -> FidelityReport:
    """Compare on a converged EmuLab. `tamper` edits the twin's copy of a host's flows (a test's way
    to prove a difference is noticed); `real=False` skips the real packets (they take seconds)."""
    t0 = time.perf_counter()
    twin = build_twin(lab, tamper)
    cmp = Comparator(lab, twin)
    report = FidelityReport(lab.scenario.name, seed, flows=twin.flows)
    report.results = [cmp.run(c) for c in cases]
    if real:
        real_verdicts(lab, report.results)
    else:
        for r in report.results:
            r.real, r.real_detail = "skipped", "real packets not sent (--no-real)"
    report.seconds = time.perf_counter() - t0
    return report


def _show_logs(lab, console: Console, lines: int = 15) -> None:
    for log in sorted(Path(lab.workdir).glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        console.print(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail), highlight=False, markup=False)


def start_lab(lab, console: Console, wait: float = LEFTOVER_WAIT) -> None:
    """Start, push, plug, converge. Another engineer's lab may hold the machine: wait for it to go
    (never touch it) rather than fail at once."""
    from vsplab.emu.leftovers import LeftoversError

    end = time.monotonic() + wait
    said = -1e9
    while True:
        try:
            with console.status("starting the VSD, the VSC and the emulated hosts (OVS, vrs)"):
                lab.start()
            break
        except LeftoversError as e:
            if time.monotonic() > end:
                raise
            if time.monotonic() >= said + 60:  # once a minute is enough to show it is not stuck
                said = time.monotonic()
                console.print("another emulated lab holds the machine; waiting for it to finish "
                              f"({str(e).splitlines()[1].strip()})")
            time.sleep(5)
        except Exception:
            _show_logs(lab, console)  # closing the lab deletes its directory, logs included
            raise
    with console.status("pushing the scenario, plugging containers, waiting for the VSC"):
        lab.push()
        lab.plug()
        lab.wait_converged()


def run_fidelity(path: str, samples: int = 12, seed: int | None = None, json_path: str | None = None,
                 real: bool = True, tamper: Tamper | None = None, console: Console | None = None,
                 wait: float = LEFTOVER_WAIT) -> FidelityReport:
    from vsplab.emu.lab import EmuLab
    from vsplab.scenario.check import load_scenario

    console = console or Console()
    scenario = load_scenario(path)
    seed = seed if seed is not None else random.SystemRandom().randrange(1_000_000)
    cases = build_cases(scenario, samples, seed)
    console.print(f"{scenario.name}: {len(scenario.expect)} expectations + "
                  f"{len(cases) - len(scenario.expect)} sampled cases (seed {seed}; replay with --seed {seed})")
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM tears the lab down too
    try:
        with EmuLab(scenario, console=console) as lab:
            start_lab(lab, console, wait)
            with console.status("tracing in the simulator and in OVS, sending real packets"):
                report = compare_lab(lab, cases, seed, tamper, real)
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(f"flows compared: {', '.join(f'{h} {n}' for h, n in report.flows.items())}; "
                  f"{report.seconds:.1f}s")
    report.print(console)
    if json_path:
        report.write_json(json_path)
    return report
