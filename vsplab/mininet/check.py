"""Check a scenario's expectations with real packets from inside the Mininet hosts: the emulator's
probes (vsplab/emu/probes.py: TCP connect with an echo naming the answering namespace, ICMP echo
witnessed at the destination, a UDP datagram), opened in each Mininet host's namespace through the
name the lab attached to it. Same verdicts, budgets and retries as emu mode (vsplab/emu/check.py):
denied probes cost their whole budget, so the expectations run in parallel."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from vsplab.emu.check import PING_TRIES, PING_WAIT, TCP_TIMEOUT, UDP_TRIES, UDP_WAIT
from vsplab.emu.probes import Listeners, ping, tcp_connect, udp_send
from vsplab.mininet.fabric import host_netns
from vsplab.report import ExpectationResult
from vsplab.scenario.to_vsd import PlacedContainer


def probe(listeners: Listeners, src: PlacedContainer, dst: PlacedContainer, protocol: str,
          port: int | None) -> tuple[str, str]:
    ns, dst_ns = host_netns(src.name), host_netns(dst.name)
    if protocol == "tcp":
        listeners.tcp_on(dst_ns, dst.ip, port)
        ok, why, _ = tcp_connect(ns, dst.ip, port, TCP_TIMEOUT, expect_netns=dst_ns)
        return ("allow", "") if ok else ("deny", f"TCP {why}")
    if protocol == "icmp":
        rtts = ping(ns, dst.ip, count=PING_TRIES, timeout=PING_WAIT, stop_on_reply=True, witness=dst_ns)
        return ("allow", "") if rtts else ("deny", f"no echo reply from {dst.name} to {PING_TRIES} requests")
    if protocol == "udp":
        listener = listeners.udp_on(dst_ns, dst.ip, port)
        for _ in range(UDP_TRIES):
            if udp_send(ns, dst.ip, port, listener, UDP_WAIT)[0]:
                return "allow", ""
        return "deny", f"{UDP_TRIES} datagrams, none received"
    raise ValueError(f"unknown protocol {protocol!r}")


def check_expectations(listeners: Listeners, scenario, placed: dict[str, PlacedContainer],
                       workers: int = 8) -> list[ExpectationResult]:
    # every listener first, so no probe races the server it needs
    for x in scenario.expect:
        dst = placed[x.to]
        if x.protocol == "tcp":
            listeners.tcp_on(host_netns(dst.name), dst.ip, x.port)
        elif x.protocol == "udp":
            listeners.udp_on(host_netns(dst.name), dst.ip, x.port)

    def one(x) -> ExpectationResult:
        t0 = time.perf_counter()
        try:
            observed, detail = probe(listeners, placed[x.from_], placed[x.to], x.protocol, x.port)
        except Exception as e:  # a probe that blows up is a failed check, reported, not a crashed run
            observed, detail = "error", f"{type(e).__name__}: {e}"
        return ExpectationResult(x.from_, x.to, x.protocol, x.port, x.expect, observed, detail,
                                 time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as ex:
        return list(ex.map(one, scenario.expect))
