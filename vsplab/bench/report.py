"""What `vsplab bench nfd8` prints at the end of a run, and the command's entry point: the run (or the
sweep, or only the plot), the JSON, and the exit code that verification decided."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vsplab.bench import nfd8


def print_result(res: dict, console: Console) -> None:
    t = Table(title=f"NFD8 {res['model']}: {res['containers']:,} containers, {res['hosts']} hosts, "
                    f"{res['vscs']} VSC(s)", show_header=False)
    conv = res.get("convergence_s")
    pub = nfd8.PUBLISHED
    t.add_row("converged in", f"{conv} s ({res.get('containers_per_s')} containers/s; published: "
                              f"{pub['containers']:,} in {pub['seconds']} s on {pub['machines']} machines)"
              if conv else "[red]not converged[/]")
    ph = res.get("phases", {})
    if ph:
        vp = ph["vsd_push"]
        t.add_row("VSD push", f"{vp['rest_calls']} REST calls, {vp['rest_s']} s inside them; last answer at "
                              f"{vp['done_s']} s, containers plugged by {vp['containers_attached_s']} s")
        t.add_row("stream", f"every VSC at the VSD's last revision at {ph['stream']['done_s']} s")
        t.add_row("compile (VSC busy)", ", ".join(f"{n} {v} s" for n, v in ph["compile"]["busy_s"].items()))
        t.add_row("OpenFlow (VSC busy)", ", ".join(f"{n} {v} s" for n, v in ph["openflow"]["busy_s"].items()))
        if ph["bgp"]["done_s"] is not None:
            t.add_row("BGP", f"every route received at {ph['bgp']['done_s']} s; import busy "
                             + ", ".join(f"{n} {v} s" for n, v in ph["bgp"]["import_busy_s"].items()))
    t.add_row("flow-mods", f"{res.get('flow_mods', 0):,} applied by the VRSs; the VSCs' count on their current "
                           f"connections: {res.get('flow_mods_by_kind')}")
    if res.get("flows_per_host"):
        f, a = res["flows_per_host"], res["acl_flows_per_host"]
        t.add_row("flows per host", f"min {f['min']:,} median {f['median']:,} max {f['max']:,} "
                                    f"(ACL flows: {a['min']:,}-{a['max']:,}); {res['flows_total']:,} in all")
    t.add_row("routes per VSC", ", ".join(f"{n}: {r['advertised']:,} out / {r['received']:,} in"
                                          for n, r in res.get("routes_per_vsc", {}).items()))
    t.add_row("ACL entries in the VSD", f"{res.get('acl_entries', 0):,} ({res.get('vsd_objects', 0):,} objects)")
    for role, p in res.get("processes", {}).items():
        rss = f", peak RSS {p['peak_rss_mb']:,} MB" if p.get("peak_rss_mb") is not None else ""
        t.add_row(f"  {role}", f"{p['cpu_s']} CPU s{rss}")
    t.add_row("peak RSS, all processes", f"{res.get('peak_rss_total_mb')} MB (sum of each process's peak)")
    t.add_row("load average", f"{res['load_avg_start']} at start, {res.get('load_avg_end')} at the end")
    if "traces" in res:
        tr, fc = res["traces"], res["flows_check"]
        t.add_row("traces", f"{tr['cases']:,} cases ({tr['allowed']} allowed, {tr['denied']} denied; "
                            f"{tr['by_placement']}), {res['verified_pairs']:,} container pairs: "
                            f"{tr['disagreements']} disagree with the policy")
        t.add_row("flows", f"{fc['hosts'] - fc['hosts_differing']}/{fc['hosts']} hosts hold exactly their "
                           f"VSC's desired flows")
    if "acl_change" in res:
        c = res["acl_change"]
        t.add_row("one ACL entry changed", f"{c['seconds']} s from the REST PUT to the last VRS, {c['flow_mods']} "
                                           f"flow-mods; ACL tables as desired on every host: {c['ok']}")
    ok = res.get("verified_ok")
    t.add_row("verified", "[green]yes[/]" if ok else "[red]NO[/]")
    console.print(t)
    if not ok:
        for d in res.get("traces", {}).get("first_disagreements", [])[:5]:
            console.print(f"[red]disagrees[/] {d['src']} -> {d['dst']} {d['proto']}/{d['port']} ({d['where']}): "
                          f"policy {d['expected']}/{d['reply_expected']}, traced {d['traced']}/{d['reply_traced']}"
                          f"\n{d['trace']}", highlight=False)
        for host, d in res.get("flows_check", {}).get("differences", {}).items():
            console.print(f"[red]flows differ[/] {host}: {d['installed']} installed, {d['desired']} desired; "
                          f"missing {d['missing_n']} e.g. {d['missing']}; extra {d['extra_n']} e.g. {d['extra']}",
                          highlight=False)
        for key in ("vsc_problems", "vsc_input_errors", "not_converged"):
            if res.get(key):
                console.print(f"[red]{key}[/] {res[key]}", highlight=False)


def main(o, argv: list[str] | None = None, tamper=None, console: Console | None = None) -> int:
    """`vsplab bench nfd8`; returns the exit code (0 only when verified)."""
    console = console or Console()
    err = nfd8.check_options(o)
    if err:
        console.print(f"[red]error[/] {err}", highlight=False)
        return 2
    command = "vsplab bench nfd8" + ("".join(f" {a}" for a in argv) if argv is not None else "")
    png = Path(o.png) if o.png else nfd8.RESULTS / "nfd8.png"
    if o.plot:
        from vsplab.bench.plot import render

        render(nfd8.RESULTS / "nfd8.json", nfd8.RESULTS / "nfd8-sweep.json", png)
        console.print(f"wrote {png}")
        return 0
    if o.sweep:
        from vsplab.bench.sweep import run_sweep

        return run_sweep(o, command, console, png)
    res = nfd8.run_point(o, console, tamper=tamper, show_progress=console.is_terminal or sys.stderr.isatty())
    res["command"] = command
    print_result(res, console)
    path = Path(o.json) if o.json else nfd8.default_json(o)
    nfd8.write_json(res, path)
    console.print(f"wrote {path}")
    if not o.json and path.name == "nfd8.json":
        from vsplab.bench.plot import render

        render(path, nfd8.RESULTS / "nfd8-sweep.json", png)
        console.print(f"wrote {png}")
    return 0 if res["verified_ok"] else 1
