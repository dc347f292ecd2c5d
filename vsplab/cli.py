"""`vsplab`: the lab front end.

    vsplab run SCENARIO [--mode sim|emu|mininet] [--vsd URL] [--json F] [--junit F] [--keep] [--revoke]
                       [--skip-impossible-faults]   (a scenario's faults: its timeline in the report)
                       [--datapath netdev|afxdp|afxdp-nonpmd] [--probing concurrent|sequential]   (emu)
    vsplab run SCENARIO --mode real --inventory FILE   on hosts where the daemons already run (vagrant/)
    vsplab clean [--dry-run]               remove what an interrupted emu or Mininet lab (or a lab's route
                                           reflector) left behind
    vsplab flows HOST [--lab DIR]          show a running lab's host flow table (ovs-ofctl style)
    vsplab trace FROM TO [--proto tcp --port 80] [--lab DIR]
    vsplab bgp [--lab DIR] [--routes]      show a running federated lab's BGP sessions and route counts;
                                           --routes: every route each VSC advertises and receives
    vsplab audit [--lab DIR] [--repair] [--json]   a running lab's drift, VSD to VSC to datapath; --repair
                                           resyncs only what differs (exit 1 while drift remains)
    vsplab ui --vsd URL [--lab DIR] [--port N]   the teaching page of a running lab (also `run --ui [PORT]`)
    vsplab diff BEFORE.yaml AFTER.yaml [--json F]   every (source, destination, protocol, port class) whose
                                           verdict an edit changes, and each VRS's flows gained and lost;
                                           without files: a running lab's live policy vs its draft (--domain)
    vsplab explain FROM TO [--proto tcp --port 80] [--json] [--lab DIR]   why a running lab (sim, emu) delivers or
                                           drops it: vports, groups, ACL entries, tables, tunnel, reply
    vsplab lint [SCENARIO] [--json F]      shadowed/redundant entries, empty groups, contradictions, stateless
                                           allows without replies, flows per VRS (default: the running lab)
    vsplab reset [--lab DIR]               a kept lab back to its scenario's initial state (VSD policy, faults
                                           mended), without restarting it; then every expectation checked
    vsplab check SCENARIO                  only validate a scenario file
    vsplab bench nfd8 [--hosts 40 --per-host 500 --vscs 2 --model tagged|per-pair] [--sweep]
                                           the NFD8 rollout through the federated control plane, verified
    vsplab demo                            the VSD alone: build the three-tier example through its API
"""

from __future__ import annotations

import argparse
import signal
import sys

from rich.console import Console

console = Console()


def _cmd_check(args) -> int:
    from vsplab.scenario.check import load_scenario

    s = load_scenario(args.scenario, mode=args.mode)  # with --mode: the faults that mode cannot perform too
    for warning in s.warnings:
        console.print(f"[yellow]warning[/] {warning}", highlight=False)
    console.print(f"{args.scenario}: ok ({len(s.hosts)} hosts, {len(s.containers)} containers, "
                  f"{len(s.expect)} expectations)")
    return 0


def _cmd_run(args) -> int:
    if args.revoke and args.mode != "emu":
        console.print("[red]error[/] --revoke is measured in emu mode only (add --mode emu)")
        return 2
    if args.datapath and args.mode != "emu":
        console.print("[red]error[/] --datapath applies to emu mode only (add --mode emu)")
        return 2
    if args.probing and args.mode != "emu":
        console.print("[red]error[/] --probing applies to emu mode only (add --mode emu)")
        return 2
    if (args.mode == "real") != bool(args.inventory):
        console.print("[red]error[/] --mode real and --inventory FILE go together (the hosts, the VSD and the "
                      "VSCs it runs on: vsplab/real/inventory.py)")
        return 2
    if args.mode == "real" and (args.keep or args.vsd):
        console.print("[red]error[/] --mode real uses the inventory's VSD and keeps nothing: drop --keep and --vsd")
        return 2
    if args.ui is not None and args.mode not in ("sim", "emu"):
        console.print("[red]error[/] --ui serves sim and emu labs; drop --mode or --ui")
        return 2
    from vsplab.policy.ops import register_ops

    register_ops()  # a kept lab also answers `vsplab explain`, `lint` and `diff`
    if args.ui:
        from vsplab.ui.launch import port_taken

        if why := port_taken(args.ui):
            console.print(f"[red]error[/] --ui {args.ui}: {why}; choose another port or leave it out for a free one")
            return 2
    # the command line picks the mode's lab: vsplab.lab (the shared steps) knows none of them
    options = dict(vsd_url=args.vsd, keep=args.keep or args.ui is not None, console=console)
    if args.mode == "real":
        from vsplab.real.lab import RealError, run_real_scenario

        try:
            report = run_real_scenario(args.scenario, args.inventory, console=console)
        except RealError as e:
            console.print(f"[red]error[/] {e}", highlight=False)
            return 1
    elif args.mode == "emu":
        from vsplab.emu.lab import run_emu_scenario
        from vsplab.fidelity.walk import register_walk

        register_walk()  # the teaching page's trace: ofproto/trace on the real switches
        report = run_emu_scenario(args.scenario, revoke=args.revoke, datapath=args.datapath, probing=args.probing,
                                  on_keep=_ui_beside(args.ui), **options,
                                  **_faults(args))
    elif args.mode == "mininet":
        from vsplab.mininet.lab import run_mininet_scenario

        report = run_mininet_scenario(args.scenario, **options)
    else:
        from vsplab.lab.run import run_sim_scenario

        report = run_sim_scenario(args.scenario, **_faults(args), on_keep=_ui_beside(args.ui), **options)
    if args.json:
        report.write_json(args.json)
    if args.junit:
        report.write_junit(args.junit)
    return 0 if report.ok else 1


def _ui_beside(port: int | None):
    """With --ui: once the lab is up, the teaching page beside it, and its one line of address."""
    if port is None:
        return None

    def start(lab, sock):
        from vsplab.ui.launch import for_lab

        print(f"UI at {for_lab(lab, sock, port)}", flush=True)

    return start


def _cmd_ui(args) -> int:
    import time

    from vsd.client import VsdClient
    from vsplab.lab.control import LabControl
    from vsplab.ui.launch import serve

    server = serve(LabControl.find(args.lab), VsdClient(args.vsd, args.user, args.password, args.org), args.port)
    print(f"UI at {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.close()


def _faults(args) -> dict:
    """A scenario's `faults:` run once its lab is checked (vsplab/faults), their timeline in the report."""
    def run(lab) -> None:
        from vsplab.faults.run import run_faults

        run_faults(lab)

    return dict(after_check=run, skip_impossible_faults=args.skip_impossible_faults)


def _cmd_clean(args) -> int:
    from vsplab.bgp import leftovers as bgp_leftovers
    from vsplab.emu import leftovers as emu_leftovers
    from vsplab.lab.leftovers_cli import leftovers_main
    from vsplab.mininet import leftovers as mininet_leftovers

    cmd = ["leftovers" if args.dry_run else "cleanup"]
    codes = [leftovers_main(cmd, emu_leftovers, "vsplab.emu"), leftovers_main(cmd, mininet_leftovers, "vsplab.mininet"),
             leftovers_main(cmd, bgp_leftovers, "vsplab.bgp")]
    return max(codes)


def _cmd_flows(args) -> int:
    from vsplab.lab.control import LabControl

    print(LabControl.find(args.lab).flows(args.host), end="")
    return 0


def _cmd_trace(args) -> int:
    from vsplab.lab.control import LabControl

    text, verdict = LabControl.find(args.lab).trace(args.source, args.destination, args.proto, args.port)
    print(text)
    return 0 if verdict == "allow" else 2


def _cmd_reset(args) -> int:
    from vsplab.lab.control import LabControl

    answer = LabControl.find(args.lab).request(op="reset")
    print(answer["text"], end="")
    return 0 if answer["ok"] else 1


def _cmd_bgp(args) -> int:
    from vsplab.lab.control import LabControl

    print(LabControl.find(args.lab).request(op="bgp", routes=args.routes)["text"], end="")
    return 0


def _cmd_audit(args) -> int:
    import json

    from vsplab.lab.control import LabControl

    answer = LabControl.find(args.lab).request(op="audit", repair=args.repair, recompile=args.recompile or None)
    print(json.dumps(answer["report"], indent=2) if args.json else answer["text"])
    return 0 if answer["clean"] else 1


def _cmd_fidelity(args) -> int:
    from vsplab.fidelity.run import run_fidelity

    report = run_fidelity(args.scenario, samples=args.samples, seed=args.seed, json_path=args.json,
                          real=not args.no_real, console=console)
    return 0 if report.ok else 1


def _cmd_bench_nfd8(args) -> int:
    from vsplab.bench.report import main as bench_main

    return bench_main(args, args.argv[2:], console=console)


def _cmd_demo(args) -> int:
    from vsd.client import VsdClient
    from vsd.example import build_three_tier
    from vsd.server import EmbeddedVsd

    with EmbeddedVsd() as vsd:
        console.print(f"VSD listening on {vsd.url} (db {vsd.db_url}), user {vsd.user}")
        summary = build_three_tier(VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise))
        for key, value in summary.items():
            if not isinstance(value, dict | list):
                console.print(f"  {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # a shell without job control starts `vsplab run --keep &` with SIGINT ignored; Ctrl-C (kill -INT) is
    # how a kept lab or a page is stopped and cleaned up, so take it back
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    p = argparse.ArgumentParser(prog="vsplab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a scenario and check its expectations")
    r.add_argument("scenario")
    r.add_argument("--mode", choices=["sim", "emu", "mininet", "real"], default="sim",
                   help="sim: simulated VRSs, traces (no root); emu: real OVS per emulated host, real packets "
                        "(root); mininet: the same on Mininet 2.3 switches and hosts (root); real: on the "
                        "hosts of --inventory, where the daemons already run (vagrant/README.md)")
    r.add_argument("--inventory", metavar="FILE",
                   help="real: the VSD, the VSCs' status addresses and how to reach each host (ssh or netns)")
    r.add_argument("--vsd", help="use this VSD (API URL) instead of starting an embedded one")
    r.add_argument("--json", metavar="FILE", help="write the result as JSON")
    r.add_argument("--junit", metavar="FILE", help="write the result as JUnit XML")
    r.add_argument("--keep", action="store_true", help="keep the lab running after the checks (Ctrl-C stops it)")
    r.add_argument("--revoke", action="store_true",
                   help="emu: afterwards delete an allowing ACL entry and time how fast real connections stop")
    r.add_argument("--datapath", choices=["netdev", "afxdp", "afxdp-nonpmd"],
                   help="emu: OVS port type, overriding the scenario's `dataplane:` (default netdev, which works "
                        "everywhere; afxdp needs AF_XDP in the kernel and OVS, and a busy core per host)")
    r.add_argument("--probing", choices=["concurrent", "sequential"],
                   help="emu: probe the expectations many at a time (default; denials confirmed by a second try "
                        "and the drop flows' counters) or one at a time on 8 threads, as before (vsplab/emu/check.py)")
    r.add_argument("--skip-impossible-faults", action="store_true",
                   help="leave out (each named in a warning) the scenario's fault steps this mode cannot perform, "
                        "instead of refusing the file")
    r.add_argument("--ui", nargs="?", const=0, type=int, metavar="PORT",
                   help="serve the teaching page on 127.0.0.1:PORT (default: a free port) and keep the lab up "
                        "until Ctrl-C (sim mode)")
    r.set_defaults(func=_cmd_run)

    u = sub.add_parser("ui", help="serve the teaching page of a running lab (`vsplab run --keep`) on 127.0.0.1")
    u.add_argument("--vsd", required=True, help="the lab's VSD API URL (printed by `vsplab run` as `VSD at`, "
                   "plus /nuage/api/v6)")
    u.add_argument("--user", default="csproot")
    u.add_argument("--password", default="csproot")
    u.add_argument("--org", default="csp")
    u.add_argument("--lab", help="the lab's directory (default: the most recent running lab)")
    u.add_argument("--port", type=int, default=0, help="default: a free port")
    u.set_defaults(func=_cmd_ui)

    cl = sub.add_parser("clean", help="list (--dry-run) or remove what an interrupted emu or Mininet lab left behind")
    cl.add_argument("--dry-run", action="store_true")
    cl.set_defaults(func=_cmd_clean)

    c = sub.add_parser("check", help="validate a scenario file")
    c.add_argument("scenario")
    c.add_argument("--mode", choices=["sim", "emu", "mininet"],
                   help="also refuse the fault steps this mode cannot perform, naming their lines")
    c.set_defaults(func=_cmd_check)

    f = sub.add_parser("flows", help="dump a host's flow table from a running lab")
    f.add_argument("host")
    f.add_argument("--lab", help="the lab's directory (default: the most recent running lab)")
    f.set_defaults(func=_cmd_flows)

    t = sub.add_parser("trace", help="trace a packet between two containers of a running lab")
    t.add_argument("source")
    t.add_argument("destination")
    t.add_argument("--proto", choices=["tcp", "udp", "icmp"], default="icmp")
    t.add_argument("--port", type=int)
    t.add_argument("--lab")
    t.set_defaults(func=_cmd_trace)

    rs = sub.add_parser("reset", help="bring a kept lab back to its scenario's initial state without restarting "
                        "it (mend what faults left, the VSD's policy as the scenario has it), then check")
    rs.add_argument("--lab", help="the lab's directory (default: the most recent running lab)")
    rs.set_defaults(func=_cmd_reset)

    b = sub.add_parser("bgp", help="show a running lab's BGP sessions, route counts and reflectors' routes")
    b.add_argument("--lab", help="the lab's directory (default: the most recent running lab)")
    b.add_argument("--routes", action="store_true", help="also list every route each VSC advertises and receives "
                   "(RD, MAC, IP, VNI, next hop, RTs, communities) and what became of each received one")
    b.set_defaults(func=_cmd_bgp)

    au = sub.add_parser("audit", help="a running lab's drift: VSD intent vs each VSC's view, desired vs installed "
                        "flows of every datapath (OpenFlow flow stats), each named by its VSD object")
    au.add_argument("--lab", help="the lab's directory (default: the most recent running lab)")
    au.add_argument("--repair", action="store_true", help="resync only the datapaths that differ, then audit again")
    au.add_argument("--json", action="store_true", help="the report as JSON")
    au.add_argument("--recompile", action="store_true", help="have each VSC compile its view from scratch to compare "
                    "with its desired flows even above 50,000 flows (it holds the VSC for seconds)")
    au.set_defaults(func=_cmd_audit)

    fi = sub.add_parser("fidelity", help="emu lab: compare the simulator's traces of the real flows with "
                        "ofproto/trace and real packets (root)")
    fi.add_argument("scenario")
    fi.add_argument("--samples", type=int, default=12, help="random extra cases besides the expectations")
    fi.add_argument("--seed", type=int, help="seed of the sample (printed; default: random)")
    fi.add_argument("--json", metavar="FILE", help="write every case and its verdicts as JSON")
    fi.add_argument("--no-real", action="store_true", help="trace only, send no real packets")
    fi.set_defaults(func=_cmd_fidelity)

    be = sub.add_parser("bench", help="scale benchmarks of the whole control plane")
    bn = be.add_subparsers(dest="benchmark", required=True).add_parser(
        "nfd8", help="the NFD8 rollout (20,000 containers, 140K ACLs) through federated VSCs, verified")
    from vsplab.bench.nfd8 import add_arguments

    add_arguments(bn)
    bn.set_defaults(func=_cmd_bench_nfd8)

    d = sub.add_parser("demo", help="start a VSD and build the three-tier example through its REST API")
    d.set_defaults(func=_cmd_demo)

    from vsplab.policy.commands import add_commands

    add_commands(sub)  # diff, explain, lint

    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a benchmark records as its command line
    from vsplab.bgp.frr import FrrError
    from vsplab.scenario.loader import ScenarioError

    try:
        return args.func(args)
    except ScenarioError as e:
        console.print(f"[red]scenario error[/]\n{e}", highlight=False)
        return 2
    except FrrError as e:
        console.print(f"[red]error[/] {e}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; everything this run started has been stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
