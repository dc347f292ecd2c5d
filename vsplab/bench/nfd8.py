"""`vsplab bench nfd8`: the Networking Field Day 8 rollout (40 hosts x 500 containers, 7 ACLs each) through
the whole federated control plane on this machine, verified pair by pair.

    VSD (REST, bulk) -> change stream -> N VSCs (os-ken, federated over ExaBGP) -> simulated VRSs

The clock starts at the first REST call of the orchestrator (vsplab/bench/orchestrator.py) and stops
when every VSC reports, in two consecutive rounds with nothing moving, that it has applied the VSD's
last revision, placed all its own containers, programmed every route its peers sent and has every
flow-mod acknowledged by its VRSs (barrier replies). Then, off the clock, verification decides the exit
code: traces against the reference policy and every host's flows against its VSC's desired flows
(vsplab/bench/verify.py).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from vsplab.bench import measure
from vsplab.bench.change import acl_change
from vsplab.bench.lab import BenchLab, MemoryLimit, wait_all_converged
from vsplab.bench.orchestrator import Orchestrator
from vsplab.bench.sampler import Sampler, rate_series
from vsplab.bench.verify import cases, flow_counts, installed_vs_desired, trace_all
from vsplab.bench.workload import MODELS, Workload

RESULTS = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "results"
PUBLISHED = {"containers": 20_000, "seconds": 480, "machines": 42}
TARGET_S, TARGET_RSS_MB = 30, 8 * 1024
NFD8_TIERS, NFD8_ACLS = 3, 7  # anchors.md: web/app/db, every container under exactly 7 rules


def add_arguments(p) -> None:
    p.add_argument("--hosts", type=int, default=40)
    p.add_argument("--per-host", type=int, default=500)
    p.add_argument("--acls", type=int, default=NFD8_ACLS, help="rules per container (NFD8: 7; more add same-tier rules)")
    p.add_argument("--tiers", type=int, default=NFD8_TIERS, help="application tiers in a chain (NFD8: 3, web/app/db)")
    p.add_argument("--vscs", type=int, default=2, help="VSCs federated over MP-BGP EVPN; hosts split between them")
    p.add_argument("--model", choices=MODELS, default="tagged",
                   help="tagged: policy groups; per-pair: one ACL entry per allowed container pair")
    p.add_argument("--arrival-rate", type=float, default=0,
                   help="containers per second (default 0: as fast as the orchestrator can push)")
    p.add_argument("--batch", type=int, default=1000, help="containers per orchestrator batch at full speed")
    p.add_argument("--seed", type=int, default=1, help="seed of the traced pairs")
    p.add_argument("--pairs", type=int, default=1000, help="random container pairs to trace (plus every group pair)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for convergence")
    p.add_argument("--json", metavar="FILE", help="default: benchmarks/results/nfd8[-MODEL]-HOSTSxPER_HOST.json")
    p.add_argument("--sweep", action="store_true",
                   help="tagged and per-pair at several sizes (vsplab/bench/sweep.py), JSON and PNG")
    p.add_argument("--png", metavar="FILE", help="the plot (default: benchmarks/results/nfd8.png)")
    p.add_argument("--plot", action="store_true", help="only draw the PNG from the JSON results already written")
    p.add_argument("--keep-logs", metavar="DIR", help="keep the VSD's and VSCs' logs in DIR")
    p.add_argument("--ui", nargs="?", const=0, type=int, metavar="PORT",
                   help="the rollout live on the teaching page (vsplab/ui) on 127.0.0.1:PORT (default: a free port)")
    p.add_argument("--max-rss-gb", type=float, default=16,
                   help="stop the run when the lab's processes hold more than this resident (0: no limit)")


def check_options(o) -> str | None:
    if not 2 <= o.tiers <= 250 or o.acls < NFD8_ACLS:
        return f"--tiers {o.tiers} --acls {o.acls}: 2 to 250 tiers, at least {NFD8_ACLS} ACLs (vsplab/bench/tiers.py)"
    if o.hosts < 1 or o.per_host < 1 or o.hosts * o.per_host < 2:
        return "--hosts and --per-host: at least two containers"
    if o.vscs < 1 or o.vscs > o.hosts:
        return f"--vscs {o.vscs}: between 1 and --hosts"
    if getattr(o, "ui", None) is not None and (o.sweep or o.plot):
        return "--ui shows one rollout: not with --sweep or --plot"
    return None


def default_json(o) -> Path:
    model = "" if o.model == "tagged" else f"-{o.model}"
    shape = "" if (o.tiers, o.acls) == (NFD8_TIERS, NFD8_ACLS) else f"-{o.tiers}tiers-{o.acls}acls"
    name = ("nfd8" if (o.hosts, o.per_host, o.model, shape) == (40, 500, "tagged", "")
            else f"nfd8{model}-{o.hosts}x{o.per_host}{shape}")
    return RESULTS / f"{name}.json"


def run_point(o, console: Console, tamper=None, show_progress: bool = True) -> dict:
    """One rollout: bring the lab up, roll out, wait for convergence, verify; the results as a dict."""
    w = Workload(o.hosts, o.per_host, o.model, o.tiers, o.acls)
    res: dict = {"benchmark": "vsplab bench nfd8", "model": o.model, "hosts": o.hosts, "per_host": o.per_host,
                 "containers": w.containers, "acls_per_container": o.acls, "tiers": o.tiers, "vscs": o.vscs,
                 "arrival_rate": o.arrival_rate or "max", "seed": o.seed,
                 "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
                 "load_avg_start": measure.load_average()}
    workdir = Path(tempfile.mkdtemp(prefix="vl-bench-nfd8-"))
    try:
        with BenchLab(workdir, w.hosts, o.vscs) as lab:
            lab.rss_limit_mb = int(o.max_rss_gb * 1024)
            console.print(f"{w.containers:,} containers on {o.hosts} hosts, {o.vscs} VSC(s), model {o.model}: "
                          f"starting the lab ...")
            lab.start(timeout=o.timeout)
            view = _teaching_view(o, lab, w, console)
            _rollout(o, lab, w, res, console, show_progress)
            if view is not None:
                view.mark("converged; verifying" if res.get("converged") else "not converged")
            if tamper is not None:
                tamper(lab, w)
            if "stopped_at_s" in res:  # what was reached is in the time series; checking it would prove nothing
                res["verified_ok"], res["verified_pairs"] = False, 0
            else:
                _verify(o, lab, w, res, console)
            if o.model == "tagged" and res.get("converged"):
                with console.status("one ACL entry changed through the VSD: timing it to the last VRS"):
                    res["acl_change"] = acl_change(lab, w, res.pop("_ids"), res.pop("_expect"), o.timeout)
                res["verified_ok"] = res["verified_ok"] and res["acl_change"]["ok"]
    finally:
        if o.keep_logs:
            Path(o.keep_logs).mkdir(parents=True, exist_ok=True)
            for f in workdir.glob("*.log"):
                shutil.copy(f, Path(o.keep_logs) / f.name)
        shutil.rmtree(workdir, ignore_errors=True)
    res["load_avg_end"] = measure.load_average()
    res.pop("_ids", None)
    res.pop("_expect", None)
    return res


def _teaching_view(o, lab: BenchLab, w: Workload, console: Console):
    """With --ui: the page, fed by the bench lab's control socket (vsplab/bench/live.py)."""
    if getattr(o, "ui", None) is None:
        return None
    from vsplab.bench.live import RolloutView
    from vsplab.ui.launch import beside

    view = RolloutView(lab, w)
    lab.stack.callback(view.close)
    url = beside(view.sock, lab.vsd.api, lab.vsd.user, lab.vsd.password, lab.vsd.enterprise, o.ui, lab.stack)
    view.mark("rolling out")
    console.print(f"UI at {url}rollout", highlight=False, soft_wrap=True)
    return view


def _rollout(o, lab: BenchLab, w: Workload, res: dict, console: Console, show: bool) -> None:
    cpu0 = lab.cpu_now()
    orch = Orchestrator(w, lab.client, lab.runtime, rate=o.arrival_rate, batch=o.batch)
    t0 = time.perf_counter()
    local = {n: sum(1 for m in w.members if lab.vsc_of_host[m.dpid] == n) for n in lab.names}
    revision = 0
    expect = {n: {"revision": 0, "datapaths": len(lab.hosts_of(n)), "endpoints": local[n],
                  "bgp_received": w.containers - local[n] if o.vscs > 1 else 0} for n in lab.names}
    with Sampler(lab, orch.done, w.containers, t0, console=console, show=show) as sampler:
        try:
            rollout = orch.run(t0, progress=lab.check_alive)
            revision = lab.vsd_revision()
            for e in expect.values():
                e["revision"] = revision
            res["convergence_s"] = round(wait_all_converged(lab, expect, o.timeout, t0, lab.check_alive), 3)
            res["converged"] = True
        except (TimeoutError, MemoryLimit) as e:
            rollout = orch.done
            res["converged"], res["convergence_s"], res["not_converged"] = False, None, str(e)[:3000]
            res["stopped_at_s"] = round(time.perf_counter() - t0, 2)
            console.print(f"[red]not converged[/] {e}", highlight=False)
    cpu1, statuses = lab.cpu_now(), lab.statuses()
    memory = lab.memory()
    res["vsd_revision"] = revision
    res["_ids"], res["_expect"] = rollout.ids, expect  # for the change that follows (not written out)
    res.update(_figures(w, res, rollout, sampler.series, statuses, local))
    res["processes"] = {role: {"cpu_s": round(cpu1[role] - cpu0.get(role, 0.0), 2), "peak_rss_mb": memory.get(role)}
                        for role in cpu1}
    res["peak_rss_total_mb"] = sum(memory.values())


def _figures(w: Workload, res: dict, rollout, series: list[dict], statuses: dict, local: dict) -> dict:
    sent = {k: sum(d["sent"].get(k, 0) for st in statuses.values() for d in st["datapaths"].values() if d["sent"])
            for k in ("add", "modify", "delete", "bundles")}
    conv = res.get("convergence_s")
    last_rev = res["vsd_revision"]
    stream_done = next((s["t"] for s in series if "vscs" in s and all(
        v["revision"] >= last_rev for v in s["vscs"].values())), None) if last_rev else None
    bgp_done = next((s["t"] for s in series if "vscs" in s and all(
        v["routes_received"] >= w.containers - local[n] for n, v in s["vscs"].items())), None) \
        if len(statuses) > 1 else None
    busy = {n: st.get("busy_s", {}) for n, st in statuses.items()}
    return {
        "containers_per_s": round(w.containers / conv, 1) if conv else None,
        "containers_per_s_series": rate_series(series),
        "time_series": [[s["t"], s["attached"], s["containers_up"], s["flows_installed"], s["rss_mb"]]
                        for s in series if "error" not in s],
        "time_series_columns": ["t_s", "containers_attached", "containers_up", "flows_installed", "lab_rss_mb"],
        "phases": {
            "note": "phases overlap (a pipeline); *_done_s are seconds after the clock started, read from the "
                    "samples (0.25 s apart); busy_s are seconds a VSC spent in that work (its /status busy_s)",
            "vsd_push": {"rest_s": round(rollout.rest_s, 2), "rest_calls": rollout.rest_calls,
                         "policy_s": round(rollout.base_s, 3), "done_s": round(rollout.push_done_s, 2),
                         "containers_attached_s": round(rollout.attach_done_s, 2)},
            "stream": {"done_s": stream_done, "after_last_push_s": None if stream_done is None else
                       round(max(stream_done - rollout.push_done_s, 0), 2)},
            "compile": {"busy_s": {n: round(b.get("vsd", 0) + b.get("agent", 0) + b.get("bgp", 0), 2)
                                   for n, b in busy.items()},
                        "by_input_s": busy},
            "openflow": {"busy_s": {n: b.get("openflow") for n, b in busy.items()}, "done_s": conv},
            "bgp": {"done_s": bgp_done, "import_busy_s": {n: b.get("bgp") for n, b in busy.items()}},
        },
        "flow_mods": sent["add"] + sent["modify"] + sent["delete"], "flow_mods_by_kind": sent,
        "routes_per_vsc": {n: {k: (st.get("bgp") or {}).get(k, 0) for k in ("advertised", "received", "imported")}
                           for n, st in statuses.items()},
        "vsd_objects": rollout.objects, "acl_entries": rollout.entries or sum(
            1 for o in w.objects if o["entityType"].endswith("aclentrytemplate")),
        "orchestrator_batches": rollout.batches,
        "vsc_problems": {n: st.get("problems") for n, st in statuses.items() if st.get("problems")},
        "vsc_input_errors": {n: st.get("input_errors") for n, st in statuses.items() if st.get("input_errors")},
    }


def _spread(values: list[int]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else {}


def _verify(o, lab: BenchLab, w: Workload, res: dict, console: Console) -> None:
    t = time.perf_counter()
    with console.status("verifying: tracing pairs, comparing every host's flows with its VSC's"):
        counts = flow_counts(lab.runtime)
        res["flows_per_host"] = _spread([c["flows"] for c in counts.values()])
        res["acl_flows_per_host"] = _spread([c["acl"] for c in counts.values()])
        res["flows_total"] = sum(c["flows"] for c in counts.values())
        # The VSCs count what they sent per connection: a VRS that reconnected (1,000 hosts do) starts a
        # new count there. The VRSs count every flow-mod they applied, whichever connection brought it.
        res["flow_mods_sent_on_current_connections"] = res["flow_mods"]
        res["flow_mods"] = sum(c["flow_mods"] for c in counts.values())
        traces = trace_all(lab.runtime, w, cases(w, lab.vsc_of_host, o.pairs, o.seed))
        flows = installed_vs_desired(lab, w)
    res["traces"], res["flows_check"] = traces, flows
    res["verified_pairs"] = traces["container_pairs"]
    res["verify_s"] = round(time.perf_counter() - t, 1)
    res["verified_ok"] = bool(res.get("converged") and not traces["disagreements"] and not flows["hosts_differing"]
                              and not res.get("vsc_problems") and not res.get("vsc_input_errors"))


def write_json(res: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
