"""`vsplab bench nfd8 --ui`: the rollout on the teaching page (vsplab/ui) while it runs. The bench's
lab answers the page's questions on a control socket like a scenario lab's (vsplab/lab/control.py):
`lab` (the VSCs, the hosts, and the containers their simulated VRSs hold right now, so the topology
grows as they arrive), `rollout` (containers up and flows per host, sampled once a second) and
`flows` (a host's table). Read-only; it samples the switches on the simulator's own loop thread."""

from __future__ import annotations

import threading
import time
from collections import Counter

from openflow import text
from vsc.pipeline import Table
from vsplab.bench.lab import BenchLab
from vsplab.bench.workload import Workload
from vsplab.lab.control import LabControlServer

INTERVAL = 1.0  # s between samples: the page polls once a second


def _counts(rt) -> tuple[int, dict[str, int]]:
    """Containers up (a DELIVER flow each, as the bench's own sampler counts them) and flows per host."""
    up = sum(h.switch.tables[Table.DELIVER].count for h in rt.hosts.values()
             if h.switch.tables[Table.DELIVER] is not None)
    return up, {name: h.switch.flow_count() for name, h in rt.hosts.items()}


class RolloutView:
    def __init__(self, lab: BenchLab, w: Workload) -> None:
        self.lab, self.w = lab, w
        self.members = {m.name: m for m in w.members}
        self.phase = "starting the lab"
        self.t0 = time.perf_counter()
        self.series: list[tuple[float, int, dict[str, int]]] = []  # (t, containers up, flows per host)
        self._stop = threading.Event()
        self.sock = lab.workdir / "control.sock"
        self._server = LabControlServer(self.sock, self.answer)
        self._thread = threading.Thread(target=self._sample, name="bench-ui-sampler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def mark(self, phase: str) -> None:
        """A new phase, with a sample of the moment it began (the end of a rollout is worth a point)."""
        self.phase = phase
        self._take()

    def _sample(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._take()

    def _take(self) -> None:
        rt = self.lab.runtime
        if rt is None:
            return
        try:
            up, flows = rt.call(_counts, rt, timeout=10)
        except Exception:  # the lab is going down, or busy past the timeout: the next tick tries again
            return
        self.series.append((round(time.perf_counter() - self.t0, 2), up, flows))

    def answer(self, req: dict) -> dict:
        op = req.get("op")
        if op == "lab":
            return self.describe()
        if op == "rollout":
            hosts = sorted({h for _, _, f in self.series for h in f}, key=lambda h: (len(h), h))
            return {"phase": self.phase, "containers": self.w.containers, "t": [s[0] for s in self.series],
                    "containers_up": [s[1] for s in self.series],
                    "flows": {h: [s[2].get(h, 0) for s in self.series] for h in hosts}}
        if op == "flows":
            rt, host, table = self.lab.runtime, req.get("host"), req.get("table")
            if rt is None or host not in rt.hosts:
                raise KeyError(f"no host {host!r}")
            counts = rt.call(lambda: Counter(t for t, _ in rt.hosts[host].switch.flows(None)))
            return {"text": rt.dump_flows(host, table), "per_table": dict(sorted(counts.items()))}
        raise ValueError(f"{op!r}: a benchmark's lab answers lab, rollout and flows (no traces while it rolls out)")

    def describe(self) -> dict:
        lab, rt = self.lab, self.lab.runtime
        names = {dpid: name for dpid, (name, _) in lab.hosts.items()}

        def ports():
            return [(name, p.name, p.ip) for name, h in rt.hosts.items() for p in h.switch.container_ports()]
        containers = []
        for host, port, ip in (rt.call(ports) if rt is not None else []):
            m = self.members.get(port.removeprefix("vl-"))
            containers.append({"name": port, "host": host, "enterprise": "nfd8", "domain": "nfd8",
                               "subnet": m.subnet if m else "?", "ip": text.ip_str(ip),
                               "groups": sorted(m.groups) if m else []})
        return {"scenario": f"nfd8 rollout ({self.w.containers:,} containers)", "mode": "bench",
                "vsd": lab.client.api if lab.client else None,
                "vscs": [{"name": n, "status_url": f"http://{v.listen}:{v.status_port}",
                          "hosts": [names[d] for d in lab.hosts_of(n)]} for n, v in lab.vscs.items()],
                "hosts": [{"name": names[d], "vsc": lab.vsc_of_host[d]} for d in sorted(names)],
                "containers": containers, "results": [], "reflectors": [], "bgp": []}
