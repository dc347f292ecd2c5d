"""Whether the rollout is right, decided after the clock stops: packets traced through the simulated
VRSs against the reference policy (vsplab/bench/policy.py), and every host's installed flows against
the desired flows of the VSC that programs it (`GET /flows`), line for line in `ovs-ofctl` form.

Traced: every ordered pair of tiers, for each port a rule names and one no rule names, placed on one
host, on two hosts of one VSC and across VSCs; then `pairs` random container pairs on random ports
(seeded). Each case is a new connection (request) and its reply; the reply of an allowed stateful
connection must come back, any other reply is judged as a packet of its own.
"""

from __future__ import annotations

import random
import urllib.request
from collections import Counter
from dataclasses import dataclass

from vsplab.bench.policy import PROTOCOLS
from vsplab.bench.workload import Member, Workload

UNNAMED_PORT = 9999  # a port no NFD8 rule names
CHUNK = 200  # traces per call into the simulator's loop


@dataclass(frozen=True, slots=True)
class Case:
    src: Member
    dst: Member
    proto: str
    port: int
    sport: int
    where: str  # same host | same VSC | across VSCs


def _where(a: Member, b: Member, vsc_of_host: dict[int, str]) -> str:
    if a.dpid == b.dpid:
        return "same host"
    return "same VSC" if vsc_of_host[a.dpid] == vsc_of_host[b.dpid] else "across VSCs"


def cases(w: Workload, vsc_of_host: dict[int, str], pairs: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    names = {p: n for n, p in PROTOCOLS.items()}
    ports = [(names[p], port) for p, port in w.policy.ports()] + [("tcp", UNNAMED_PORT)]
    tiers: dict[str, list[Member]] = {}
    for m in w.members:
        tiers.setdefault(next(iter(sorted(m.groups - {"all"})), "none"), []).append(m)
    out: list[Case] = []
    sport = iter(range(20000, 65000))
    for _, srcs in sorted(tiers.items()):
        for _, dsts in sorted(tiers.items()):
            for where in ("same host", "same VSC", "across VSCs"):
                found = [(a, b) for a in rng.sample(srcs, min(len(srcs), 40))
                         for b in rng.sample(dsts, min(len(dsts), 40)) if a is not b and _where(a, b, vsc_of_host) == where]
                if not found:
                    continue
                for proto, port in ports:
                    a, b = rng.choice(found)
                    out.append(Case(a, b, proto, port, next(sport), where))
    for _ in range(pairs):
        a, b = rng.sample(w.members, 2)
        # Half on a port the policy opens for this pair when there is one: most random pairs share no
        # rule, and allowed cases must be tested as often as denied ones.
        opened = [(pr, p) for pr, p in ports if w.policy.verdict(a.endpoint, b.endpoint, PROTOCOLS[pr], 1, p)[0]]
        if opened and rng.random() < 0.5:
            proto, port = rng.choice(opened)
        else:
            proto, port = rng.choice(ports) if rng.random() < 0.8 else ("tcp", rng.randint(1, 65535))
        out.append(Case(a, b, proto, port, next(sport), _where(a, b, vsc_of_host)))
    return out


def trace_all(runtime, w: Workload, todo: list[Case]) -> dict:
    """Trace every case on the simulator's loop; the disagreements with the policy and counts."""
    from vrs.sim.packet import Packet

    def run(chunk: list[Case]) -> list[tuple[Case, bool, bool, bool, bool, str]]:
        fab, res = runtime.fabric, []
        for c in chunk:
            want, want_back = w.policy.verdict(c.src.endpoint, c.dst.endpoint, PROTOCOLS[c.proto], c.sport, c.port)
            r = fab.trace(Packet(proto=c.proto, source=f"vl-{c.src.name}", dst_ip=c.dst.ip,
                                 dst_port=c.port, src_port=c.sport))
            got = r.delivered_to(f"vl-{c.dst.name}")
            back = fab.trace(Packet(proto=c.proto, source=f"vl-{c.dst.name}", dst_ip=c.src.ip, dst_port=c.sport,
                                    src_port=c.port, tcp_flags="SA" if c.proto == "tcp" else None))
            got_back = back.delivered_to(f"vl-{c.src.name}")
            bad = got != want or got_back != want_back
            res.append((c, want, got, want_back, got_back, r.text() if bad else ""))
        return res

    results = []
    for i in range(0, len(todo), CHUNK):
        results += runtime.call(run, todo[i:i + CHUNK], timeout=600)
    wrong = [{"src": c.src.name, "dst": c.dst.name, "proto": c.proto, "port": c.port, "where": c.where,
              "expected": want, "traced": got, "reply_expected": want_back, "reply_traced": got_back, "trace": text}
             for c, want, got, want_back, got_back, text in results if got != want or got_back != want_back]
    allowed = sum(1 for _, want, *_ in results if want)
    return {"cases": len(results), "allowed": allowed, "denied": len(results) - allowed,
            "by_placement": dict(Counter(c.where for c, *_ in results)),
            "container_pairs": len({(c.src.name, c.dst.name) for c, *_ in results}),
            "disagreements": len(wrong), "first_disagreements": wrong[:10]}


def desired_text(vsc, dpid: int) -> list[str]:
    """A VSC's desired flows for one VRS, in `ovs-ofctl` form (`GET /flows`)."""
    with urllib.request.urlopen(f"http://{vsc.listen}:{vsc.status_port}/flows?dpid={dpid}", timeout=600) as r:
        return r.read().decode().splitlines()


def installed_vs_desired(lab, w: Workload) -> dict:
    """Each host's flows, as its switch holds them, against its VSC's desired flows. The VSCs format
    theirs in their own processes while this one formats the switches': fetched a few hosts ahead."""
    from concurrent.futures import ThreadPoolExecutor

    from openflow.text import format_flow

    rt = lab.runtime
    mismatched = {}
    hosts = sorted(w.hosts.items())
    window = 4  # hosts fetched ahead: enough to keep the VSCs busy, few enough to hold in memory
    with ThreadPoolExecutor(max_workers=max(2, len(lab.vscs))) as pool:
        fetch = [lambda d=d: pool.submit(desired_text, lab.vscs[lab.vsc_of_host[d]], d) for d, _ in hosts]
        ahead = [f() for f in fetch[:window]]
        for k, (_, (host, _)) in enumerate(hosts):
            fut = ahead[k]
            if k + window < len(hosts):
                ahead.append(fetch[k + window]())

            def installed(host=host):
                return Counter(format_flow(rule.flow(t), show_stats=False) for t, rule in rt.hosts[host].switch.flows())
            have = rt.call(installed, timeout=600)
            desired = Counter(fut.result())
            if have != desired:
                missing, extra = desired - have, have - desired
                mismatched[host] = {"desired": sum(desired.values()), "installed": sum(have.values()),
                                    "missing": sorted(missing)[:3], "extra": sorted(extra)[:3],
                                    "missing_n": sum(missing.values()), "extra_n": sum(extra.values())}
    return {"hosts": len(w.hosts), "hosts_differing": len(mismatched), "differences": dict(list(mismatched.items())[:5])}


def flow_counts(runtime) -> dict[str, dict[str, int]]:
    """Per host: all flows, ACL flows (tables 45 and 55), remote-endpoint flows (table 20) and the
    flow-mods it has applied (over every connection it had)."""
    from vsc.pipeline import Table

    def count():
        out = {}
        for name, h in runtime.hosts.items():
            t = h.switch.tables
            n = {k: (t[k].count if t[k] is not None else 0) for k in (Table.INGRESS_ACL, Table.EGRESS_ACL, Table.ENDPOINT)}
            out[name] = {"flows": h.switch.flow_count(), "acl": n[Table.INGRESS_ACL] + n[Table.EGRESS_ACL],
                         "endpoint_table": n[Table.ENDPOINT], "flow_mods": h.switch.stats["flow_mods"]}
        return out
    return runtime.call(count, timeout=600)
