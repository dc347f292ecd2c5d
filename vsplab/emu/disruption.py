"""Traffic across a disruption (a restarted agent or switch): a probe that keeps connecting while it
happens, how long it was interrupted, and whether the host came back to the same flows.

The probe opens a fresh TCP connection every `interval` (each one is a new conntrack entry, so it
needs the whole pipeline, ACLs included, not just an established-state shortcut) with a short
timeout, so an outage shows as a run of failed attempts rather than one connect stuck in the
kernel's SYN back-off."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from vsplab.emu.probes import tcp_connect

# per-flow statistics and timers OVS updates by itself; everything else is what the VSC programmed
_VOLATILE = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]*,?\s*")


def normalized_flows(dump: str) -> list[str]:
    """An `ovs-ofctl dump-flows` text as a sorted list of flows without counters and ages."""
    flows = []
    for line in dump.splitlines():
        line = line.strip()
        if not line or line.startswith(("OFPST_FLOW", "NXST_FLOW")):
            continue
        flows.append(_VOLATILE.sub("", line).strip())
    return sorted(flows)


def flow_durations(dump: str) -> dict[str, float]:
    """Flow (without counters) -> its duration in seconds: a flow deleted and re-added starts again at 0."""
    out = {}
    for line in dump.splitlines():
        m = re.search(r"\bduration=([\d.]+)s", line)
        if m:
            out[_VOLATILE.sub("", line).strip()] = float(m.group(1))
    return out


@dataclass
class Attempt:
    start: float  # time.monotonic()
    end: float
    ok: bool
    why: str = ""


@dataclass
class Outage:
    first_lost: float  # when the first failing attempt started
    back: float  # when the first attempt that passed again completed
    lost: int  # failed attempts in between

    @property
    def seconds(self) -> float:
        return self.back - self.first_lost


@dataclass
class ContinuousProbe:
    """TCP connects from `netns` to `ip:port` (a `Listeners` echo server in `expect_netns`) every
    `interval` seconds in a thread, until `stop()`."""

    netns: str
    ip: str
    port: int
    expect_netns: str
    interval: float = 0.02
    timeout: float = 0.25
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"probe-{self.netns}")

    def start(self) -> ContinuousProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            ok, why, _ = tcp_connect(self.netns, self.ip, self.port, self.timeout, expect_netns=self.expect_netns)
            t1 = time.monotonic()
            self.attempts.append(Attempt(t0, t1, ok, why))
            self._stop.wait(max(0.0, self.interval - (t1 - t0)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def mark(self) -> int:
        """An index into the attempts so far, to look only at what follows."""
        return len(self.attempts)

    def wait_passing(self, since: int, count: int = 5, timeout: float = 30.0) -> None:
        """Until `count` attempts in a row after index `since` passed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            tail = self.attempts[since:]
            if len(tail) >= count and all(a.ok for a in tail[-count:]):
                return
            time.sleep(0.05)
        tail = self.attempts[since:]
        raise TimeoutError(f"{self.netns} -> {self.ip}:{self.port} not passing again after {timeout}s "
                           f"({sum(a.ok for a in tail)} of {len(tail)} attempts passed; last: "
                           f"{tail[-1].why if tail else 'none'})")

    def outage(self, since: int, until: int | None = None) -> Outage | None:
        """The interruption between attempt indexes `since` and `until`: first failure to first success
        after the last failure; None if every attempt passed."""
        window = self.attempts[since:until]
        failed = [i for i, a in enumerate(window) if not a.ok]
        if not failed:
            return None
        recovered = next((a for a in window[failed[-1] + 1:] if a.ok), None)
        if recovered is None:
            raise ValueError("the probe had not passed again by the end of the window")
        return Outage(window[failed[0]].start, recovered.end, len(failed))

    def summary(self, since: int = 0) -> str:
        window = self.attempts[since:]
        return f"{sum(a.ok for a in window)} of {len(window)} connects passed"
