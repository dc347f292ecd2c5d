"""Check a scenario's expectations with real packets from inside the containers (emu mode): a TCP
connect with a few bytes echoed back, ICMP echo, a UDP datagram. `allow` means the exchange completed
(for UDP: the datagram arrived); anything else is `deny`, with what was missing as the detail.

The first packet towards a VTEP can be lost while OVS's userspace tunnel resolves the neighbour, so
every probe retries within its time budget (`BUDGET`); a denied probe costs that whole budget. Probing
`concurrent` (the default) runs up to 256 probes at once from one event loop (vsplab/emu/volley.py),
each with the same budget, and a deny must be seen twice: every probe that got no answer is sent again
in a second volley. `sequential` is the older way, kept to compare against (benchmarks/emu_checks.py):
one probe at a time on each of `workers` threads."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vsplab.emu.probes import Listeners, ping, tcp_connect, udp_send
from vsplab.emu.volley import Budget, Shot, fire
from vsplab.report import ExpectationResult
from vsplab.scenario.to_vsd import PlacedContainer

TCP_TIMEOUT = 2.0  # the kernel resends a lost SYN after 1 s: two tries fit
PING_TRIES, PING_WAIT = 3, 0.5
UDP_TRIES, UDP_WAIT = 3, 0.4
BUDGET = Budget(TCP_TIMEOUT, PING_TRIES, PING_WAIT, UDP_TRIES, UDP_WAIT)
PROBING = ("concurrent", "sequential")


def container_netns(name: str) -> str:
    return f"vl-c-{name}"


NetnsOf = Callable[[str], str]  # container name -> the network namespace it lives in


def open_listeners(listeners: Listeners, expectations, placed: dict[str, PlacedContainer],
                   netns_of: NetnsOf = container_netns) -> None:
    """Listeners first, all of them, so no probe races the server it needs."""
    for x in expectations:
        dst = placed[x.to]
        if x.protocol == "tcp":
            listeners.tcp_on(netns_of(dst.name), dst.ip, x.port)
        elif x.protocol == "udp":
            listeners.udp_on(netns_of(dst.name), dst.ip, x.port)


def _verdict(protocol: str, dst: PlacedContainer, passed: bool, why: str) -> tuple[str, str]:
    """A probe's outcome in the words of the report (the same for either way of probing)."""
    if passed:
        return "allow", ""
    if protocol == "tcp":
        return "deny", f"TCP {why}"
    if protocol == "icmp":
        return "deny", f"no echo reply from {dst.name} to {PING_TRIES} requests"
    return "deny", f"{UDP_TRIES} datagrams, none received"


def probe(listeners: Listeners, src: PlacedContainer, dst: PlacedContainer, protocol: str,
          port: int | None, netns_of: NetnsOf = container_netns) -> tuple[str, str]:
    ns, dst_ns = netns_of(src.name), netns_of(dst.name)
    if protocol == "tcp":
        ok, why, _ = tcp_connect(ns, dst.ip, port, TCP_TIMEOUT, expect_netns=dst_ns)
        return _verdict(protocol, dst, ok, why)
    if protocol == "icmp":
        rtts = ping(ns, dst.ip, count=PING_TRIES, timeout=PING_WAIT, stop_on_reply=True, witness=dst_ns)
        return _verdict(protocol, dst, bool(rtts), "")
    if protocol == "udp":
        for _ in range(UDP_TRIES):
            ok, why = udp_send(ns, dst.ip, port, listeners.udp_on(dst_ns, dst.ip, port), UDP_WAIT)
            if ok:
                return "allow", ""
        return _verdict(protocol, dst, False, "")
    raise ValueError(f"unknown protocol {protocol!r}")


def _one(listeners: Listeners, x, placed: dict[str, PlacedContainer], netns_of: NetnsOf) -> ExpectationResult:
    """One expectation probed on its own (the sequential way)."""
    t0 = time.perf_counter()
    try:
        observed, detail = probe(listeners, placed[x.from_], placed[x.to], x.protocol, x.port, netns_of)
    except Exception as e:  # a probe that blows up is a failed check, reported, not a crashed run
        observed, detail = "error", f"{type(e).__name__}: {e}"
    return ExpectationResult(x.from_, x.to, x.protocol, x.port, x.expect, observed, detail, time.perf_counter() - t0)


def check_expectations(listeners: Listeners, scenario, placed: dict[str, PlacedContainer],
                       workers: int = 8, netns_of: NetnsOf = container_netns, probing: str = "concurrent",
                       drops: Callable[[], int] | None = None,
                       notes: dict[str, str] | None = None) -> list[ExpectationResult]:
    """Every expectation probed with real packets (`probing`: see the module doc); `netns_of` says
    where a container lives (emu's own namespaces, or the names the Mininet lab gives its hosts).
    `drops` (concurrent): the datapaths' drop-flow packet count now (vsplab/emu/drops.py); the
    denials of the confirming volley must be matched by at least as many dropped packets, else they
    are probed again one at a time. What the confirmation found goes into `notes`."""
    if probing not in PROBING:
        raise ValueError(f"probing {probing!r}: one of {', '.join(PROBING)}")
    open_listeners(listeners, scenario.expect, placed, netns_of)
    if probing == "concurrent":
        return _check_concurrently(listeners, scenario.expect, placed, netns_of, drops, workers,
                                   notes if notes is not None else {})
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as ex:
        return list(ex.map(lambda x: _one(listeners, x, placed, netns_of), scenario.expect))


def _check_concurrently(listeners: Listeners, expectations, placed: dict[str, PlacedContainer], netns_of: NetnsOf,
                        drops: Callable[[], int] | None, workers: int, notes: dict[str, str]) -> list[ExpectationResult]:
    def shot(x) -> Shot:
        return Shot(netns_of(placed[x.from_].name), netns_of(placed[x.to].name), placed[x.to].ip, x.protocol, x.port)

    first = fire(listeners, [shot(x) for x in expectations], BUDGET)
    # a deny is two misses: whatever got no answer goes again, in a volley of its own
    missed = [i for i, s in enumerate(first) if not s.passed and not s.error]
    before = drops() if drops is not None and missed else 0
    second = dict(zip(missed, fire(listeners, [shot(expectations[i]) for i in missed], BUDGET), strict=True))
    results = []
    for i, (x, s) in enumerate(zip(expectations, first, strict=True)):
        again = second.get(i)
        final = again if again is not None else s
        if s.error:
            observed, detail = "error", s.why
        else:
            observed, detail = _verdict(x.protocol, placed[x.to], bool(final.passed), final.why)
        results.append(ExpectationResult(x.from_, x.to, x.protocol, x.port, x.expect, observed, detail,
                                         s.seconds + (again.seconds if again else 0.0)))
    denied = [i for i in missed if results[i].observed == "deny"]
    if drops is not None and denied:
        dropped = drops() - before
        if dropped >= len(denied):
            notes["denials"] = (f"{len(denied)} denied probes each unanswered twice; the drop flows counted "
                                f"{dropped} packets meanwhile")
        else:  # silence the pipeline does not account for: the old way decides
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as ex:
                for i, r in zip(denied, ex.map(lambda i: _one(listeners, expectations[i], placed, netns_of), denied),
                                strict=True):
                    results[i] = r
            notes["denials"] = (f"{len(denied)} denied probes but only {dropped} packets counted by the drop flows: "
                                "probed again one at a time")
    return results


def rtt_summary(rtts: list[float], noun: str = "replies") -> str:
    if not rtts:
        return f"no {noun}"
    ms = [r * 1000 for r in rtts]
    return f"min {min(ms):.3f} / median {statistics.median(ms):.3f} / max {max(ms):.3f} ms ({len(ms)} {noun})"
