"""The command line of `vsplab diff`, `vsplab explain` and `vsplab lint` (added to `vsplab` by
vsplab/cli.py). Exit codes: diff 0 = no verdict changes, 1 = changes; explain 0 = delivered, 2 = not;
lint 0 = no findings and the flow prediction holds, 1 = otherwise."""

from __future__ import annotations

import functools
import json

from rich.console import Console

_err = Console(stderr=True)


def _refusing(cmd):
    """Bad input or an unreachable lab: one line naming it and exit 2, not a traceback."""
    @functools.wraps(cmd)
    def run(args) -> int:
        from vsplab.lab.control import LabControlError

        try:
            return cmd(args)
        except (LabControlError, ValueError, KeyError) as e:
            _err.print(f"[red]error[/] {e}", highlight=False)
            return 2
    return run


def _emit(text: str, data: dict, json_to: str | None) -> None:
    if json_to == "-":
        print(json.dumps(data, indent=2))
        return
    print(text)
    if json_to:
        with open(json_to, "w") as f:
            json.dump(data, f, indent=2)


def _lab(args):
    from vsplab.lab.control import LabControl

    return LabControl.find(args.lab)


@_refusing
def cmd_diff(args) -> int:
    if args.before and args.after:
        from vsplab.policy.diff import diff_states
        from vsplab.policy.state import from_scenario

        d = diff_states(from_scenario(args.before), from_scenario(args.after))
        text, data = d.text(), d.to_dict()
    elif args.before or args.after:
        raise ValueError("give two scenario files (BEFORE AFTER), or none to compare a running lab's live policy "
                         "with its draft (--domain)")
    else:
        answer = _lab(args).request(op="diff", domain=args.domain)
        text, data = answer["text"], answer["diff"]
    _emit(text, data, args.json)
    return 1 if data["changes"] else 0


@_refusing
def cmd_explain(args) -> int:
    answer = _lab(args).request(op="explain", **{"from": args.source, "to": args.destination, "proto": args.proto,
                                                 "port": args.port})
    _emit(answer["text"], answer["explain"], "-" if args.json else None)
    return 0 if answer["verdict"] == "allow" else 2


@_refusing
def cmd_lint(args) -> int:
    if args.scenario:
        from vsplab.policy.compiled import Compiled
        from vsplab.policy.lint import lint_compiled
        from vsplab.policy.state import from_scenario

        report = lint_compiled(Compiled(from_scenario(args.scenario)))
        text, data = report.text(), report.to_dict()
    else:
        answer = _lab(args).request(op="lint")
        text, data = answer["text"], answer["lint"]
    _emit(text, data, args.json)
    return 0 if not data["findings"] and data["prediction_ok"] else 1


def add_commands(sub) -> None:
    d = sub.add_parser("diff", help="what a policy change does: every (source, destination, protocol, port class) "
                       "whose verdict changes, with the entries responsible, and each VRS's flows gained and lost")
    d.add_argument("before", nargs="?", help="scenario file before the change")
    d.add_argument("after", nargs="?", help="scenario file after the change")
    d.add_argument("--domain", help="without files: a running lab's domain (name or ID) whose open draft to "
                   "compare with its live policy (default: the one domain with a draft open)")
    d.add_argument("--lab", help="the lab's directory (default: the most recent running lab)")
    d.add_argument("--json", metavar="FILE", help="also write the diff as JSON (- : JSON only, on stdout)")
    d.set_defaults(func=cmd_diff)

    e = sub.add_parser("explain", help="why a packet between two containers of a running lab (sim or emu) is "
                       "delivered or dropped: vports, groups, ACL entries, tables, tunnel, reply path")
    e.add_argument("source")
    e.add_argument("destination")
    e.add_argument("--proto", choices=["tcp", "udp", "icmp"], default="icmp")
    e.add_argument("--port", type=int)
    e.add_argument("--json", action="store_true", help="the answer as JSON")
    e.add_argument("--lab")
    e.set_defaults(func=cmd_explain)

    li = sub.add_parser("lint", help="shadowed and redundant entries, empty groups, ingress/egress contradictions, "
                        "stateless allows without their reply, and the flows each VRS will cost")
    li.add_argument("scenario", nargs="?", help="a scenario file (default: the running lab's live policy)")
    li.add_argument("--lab")
    li.add_argument("--json", metavar="FILE", help="also write the findings as JSON (- : JSON only, on stdout)")
    li.set_defaults(func=cmd_lint)

