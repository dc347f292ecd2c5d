"""The rollout as it happens: a thread that samples the lab every `interval` seconds into a time series
and draws the progress bars (containers up, flows installed).

A container counts as up when its VRS can deliver to it: its DELIVER flow (table 60, one per local
endpoint) is installed. The flows bar's total is what the VSCs want installed right now (it grows
as containers arrive).
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vsc.pipeline import Table


class Sampler:
    def __init__(self, lab, rollout, containers: int, t0: float, interval: float = 0.25,
                 console: Console | None = None, show: bool = True) -> None:
        self.lab, self.rollout, self.containers, self.t0, self.interval = lab, rollout, containers, t0, interval
        self.series: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, disable=not show, transient=False)
        self._up = self.progress.add_task("containers up", total=containers)
        self._flows = self.progress.add_task("flows installed", total=None)
        # Without a terminal (CI, a log file) the bars cannot redraw: a line every few seconds instead.
        self.console, self.plain, self._printed = console or Console(), not show, -10.0

    def __enter__(self) -> Sampler:
        self.progress.start()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.sample()  # the end state, once more
        self.progress.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as e:  # a sample is worth less than the run: note it and go on
                self.series.append({"t": round(time.perf_counter() - self.t0, 3), "error": str(e)})

    def sample(self) -> dict:
        rt = self.lab.runtime

        def count():
            up = flows = 0
            for h in rt.hosts.values():
                t = h.switch.tables[Table.DELIVER]
                up += t.count if t is not None else 0
                flows += h.switch.flow_count()
            return up, flows
        up, flows = rt.call(count)
        t = time.perf_counter() - self.t0
        vscs = {}
        for name, st in self.lab.statuses().items():
            bgp = st.get("bgp") or {}
            vscs[name] = {"revision": st["revision"], "endpoints": st["endpoints"],
                          "flows_desired": sum(d["flows_desired"] for d in st["datapaths"].values()),
                          "routes_received": bgp.get("received", 0), "routes_imported": bgp.get("imported", 0),
                          "busy_s": st.get("busy_s", {})}
        s = {"t": round(t, 3), "attached": self.rollout.attached, "created": self.rollout.created,
             "containers_up": up, "flows_installed": flows, "rss_mb": self.lab.resident_mb(), "vscs": vscs}
        self.series.append(s)
        desired = sum(v["flows_desired"] for v in vscs.values())
        self.progress.update(self._up, completed=up)
        self.progress.update(self._flows, completed=flows, total=max(desired, flows))
        if self.plain and t - self._printed >= 2.0:
            self._printed = t
            self.console.print(f"{t:7.1f} s  containers up {up:,}/{self.containers:,}  flows installed "
                               f"{flows:,}/{max(desired, flows):,}  resident {s['rss_mb']:,} MB", highlight=False)
        return s


def first_time(series: list[dict], ok) -> float | None:
    """When a condition on a sample first held (the series' resolution is the sampling interval)."""
    return next((s["t"] for s in series if "error" not in s and ok(s)), None)


def rate_series(series: list[dict], key: str = "containers_up", window: float = 1.0) -> list[tuple[float, float]]:
    """(t, containers per second over the preceding `window` seconds) from the samples."""
    pts = [(s["t"], s[key]) for s in series if key in s]
    out = []
    j = 0
    for t, v in pts:
        while pts[j][0] < t - window:
            j += 1
        t0, v0 = pts[j]
        if t > t0:
            out.append((round(t, 2), round((v - v0) / (t - t0), 1)))
    return out
