"""Check a scenario's expectations with real packets from inside the Mininet hosts: the emulator's
probes (vsplab/emu/probes.py: TCP connect with an echo naming the answering namespace, ICMP echo
witnessed at the destination, a UDP datagram), opened in each Mininet host's namespace through the
name the lab attached to it. Same verdicts, budgets and retries as emu mode (vsplab/emu/check.py):
many probes in flight, denials confirmed by a second volley and the switches' drop counters."""

from __future__ import annotations

from vsplab.emu import check as emu_check
from vsplab.emu.probes import Listeners
from vsplab.mininet.fabric import host_netns
from vsplab.report import ExpectationResult
from vsplab.scenario.to_vsd import PlacedContainer


def probe(listeners: Listeners, src: PlacedContainer, dst: PlacedContainer, protocol: str,
          port: int | None) -> tuple[str, str]:
    if protocol == "tcp":  # a kept lab's `vsplab trace` may ask for a port no expectation listened on
        listeners.tcp_on(host_netns(dst.name), dst.ip, port)
    return emu_check.probe(listeners, src, dst, protocol, port, netns_of=host_netns)


def check_expectations(listeners: Listeners, scenario, placed: dict[str, PlacedContainer], workers: int = 8,
                       drops=None, notes: dict[str, str] | None = None) -> list[ExpectationResult]:
    """Many probes in flight, denials confirmed by `drops` (the switches' drop-flow count) as in emu mode."""
    return emu_check.check_expectations(listeners, scenario, placed, workers, netns_of=host_netns, drops=drops,
                                        notes=notes)
