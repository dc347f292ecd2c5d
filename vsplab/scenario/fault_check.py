"""The scenario's `faults:` and `probes:` checked as a whole when the file is loaded: every step names
things the scenario has, and, once the mode is known, only what that mode can do. Sim mode breaks real
processes (the VSD, the VSCs, their BGP speakers) and its simulated underlay (drops, delays); it has no
Open vSwitch to restart and no host agent process. Mininet mode runs no faults. Each problem names the
file, the line and the field."""

from __future__ import annotations

from .fault_model import PROCESS_KINDS, AclEntryRef, FaultStep
from .loader import LineMap, ScenarioError
from .model import Scenario

# action -> what each mode can do; for kill/start/restart, the process kinds
_PROCESS_ACTIONS = ("kill", "start", "restart")
CAN = {
    "sim": {"kill": {"vsd", "vsc"}, "start": {"vsd", "vsc"}, "restart": {"vsd", "vsc"}, "link-down": True,
            "link-up": True, "netem": True, "clear-netem": True, "tamper-flow": True, "delete-acl": True,
            "stop-bgp": True, "cut-bgp": True, "move": True},
    "emu": {"kill": set(PROCESS_KINDS), "start": set(PROCESS_KINDS), "restart": set(PROCESS_KINDS),
            "link-down": True, "link-up": True, "netem": True, "clear-netem": True, "tamper-flow": True,
            "delete-acl": True, "stop-bgp": True, "cut-bgp": True, "move": True},
    "mininet": {},
}
PROBE_PROTOCOLS = {"sim": {"tcp", "udp", "icmp"}, "emu": {"tcp"}, "mininet": set()}


def check_faults(s: Scenario, lm: LineMap) -> list:
    """Problems with what the steps and probes name (mode-independent)."""
    problems: list = []
    err = problems.append
    controllers = {c.name for c in s.controllers}
    hosts = {h.name for h in s.hosts}
    containers = {c.name for c in s.containers}
    for i, step in enumerate(s.faults):
        path = ("faults", i, step.action)
        step._line = lm.line_of(("faults", i))
        if step.action in _PROCESS_ACTIONS:
            kind, name = step.process()
            if kind not in PROCESS_KINDS:
                err(lm.error(path, f"{step.target!r}: expected vsd, or vsc NAME, vrs HOST, ovs-vswitchd HOST, "
                                   "ovsdb-server HOST"))
            elif kind == "vsd" and name is not None:
                err(lm.error(path, "the lab has one VSD: write `vsd` alone"))
            elif kind == "vsc" and name not in controllers:
                err(lm.error(path, f"unknown controller {name!r} (known: {', '.join(sorted(controllers))})"))
            elif kind not in ("vsd", "vsc") and name not in hosts:
                err(lm.error(path, f"unknown host {name!r} (known: {', '.join(sorted(hosts))})"))
        elif step.action in ("link-down", "link-up", "netem", "clear-netem", "tamper-flow"):
            if step.target not in hosts:
                err(lm.error(path, f"unknown host {step.target!r} (known: {', '.join(sorted(hosts))})"))
        elif step.action in ("stop-bgp", "cut-bgp"):
            names = [step.target] if step.action == "stop-bgp" else list(step.target)
            if s.bgp is None:
                err(lm.error(path, "the scenario has no bgp: section: its controllers speak no BGP"))
            for n in names:
                if n not in controllers:
                    err(lm.error(path, f"unknown controller {n!r}"))
            if step.action == "cut-bgp" and s.bgp is not None and \
                    not any(set(p) == set(names) for p in s.bgp.peerings):
                err(lm.error(path, f"{' and '.join(names)} have no peering in bgp.peerings"))
        elif step.action == "delete-acl":
            problem = _acl_problem(s, step.delete_acl)
            if problem:
                err(lm.error(path, problem))
        elif step.action == "move":
            if step.move.container not in containers:
                err(lm.error(path + ("container",), f"unknown container {step.move.container!r}"))
            if step.move.to not in hosts:
                err(lm.error(path + ("to",), f"unknown host {step.move.to!r}"))
        if isinstance(step.expect, list):
            for j, x in enumerate(step.expect):
                if not 0 <= x < len(s.expect):
                    err(lm.error(("faults", i, "expect", j), f"no expectation {x} (the scenario has "
                                                             f"{len(s.expect)}, numbered from 0)"))
        for j, x in enumerate(step.now_denied):
            if not 0 <= x < len(s.expect) or s.expect[x].expect != "allow":
                err(lm.error(("faults", i, "now-denied", j), f"expectation {x} is no allow expectation of the "
                                                             "scenario"))
    for i, p in enumerate(s.probes):
        for end, key in ((p.from_, "from"), (p.to, "to")):
            if end not in containers:
                err(lm.error(("probes", i, key), f"unknown container {end!r}"))
        if (p.protocol in ("tcp", "udp")) != (p.port is not None):
            err(lm.error(("probes", i, "port"), f"{p.protocol} {'needs a' if p.port is None else 'has no'} port"))
    if s.probes and not s.faults:
        err(lm.error(("probes",), "probes run while faults do: this scenario has no faults:"))
    return problems


def _acl_problem(s: Scenario, ref: AclEntryRef) -> str | None:
    doms = [(e, d) for e in s.enterprises for d in e.domains if ref.domain in (d.name, f"{e.name}/{d.name}")]
    if len(doms) != 1:
        return (f"domain {ref.domain!r} is {'ambiguous: write ENTERPRISE/DOMAIN' if doms else 'unknown'}")
    tmpl = getattr(doms[0][1], ref.direction)
    rules = tmpl.rules if tmpl else []
    if ref.rule >= len(rules):
        return f"{ref.domain} {ref.direction} has {len(rules)} rules (numbered from 0): no rule {ref.rule}"
    return None


def check_mode(s: Scenario, lm: LineMap, mode: str, skip: bool = False) -> list:
    """Problems with steps and probes this mode cannot perform; with `skip`, such steps are left out
    of the scenario instead, each named in its warnings."""
    problems: list = []
    can = CAN.get(mode, {})
    kept = []
    for i, step in enumerate(s.faults):
        path = ("faults", i, step.action)
        why = _refusal(step, mode, can)
        if why and skip:
            s.warnings.append(ScenarioError.format_one(lm.error(path, f"left out: {why}")))
        elif why:
            problems.append(lm.error(path, why))
        else:
            kept.append(step)
    if skip:
        s.faults = kept
    for i, p in enumerate(s.probes):
        if p.protocol not in PROBE_PROTOCOLS.get(mode, set()):
            problems.append(lm.error(("probes", i, "protocol"), f"{mode} mode probes continuously with "
                                     f"{', '.join(sorted(PROBE_PROTOCOLS.get(mode, ()))) or 'nothing'}, "
                                     f"not {p.protocol}"))
    return problems


def _refusal(step: FaultStep, mode: str, can: dict) -> str | None:
    if not can:
        return f"{mode} mode runs no faults (sim and emu modes do)"
    allowed = can.get(step.action)
    if not allowed:
        return f"{mode} mode cannot {step.action}"
    if step.action in _PROCESS_ACTIONS:
        kind, _ = step.process()
        if kind not in allowed:
            return (f"{mode} mode cannot {step.action} {kind}: it runs no such process (it can "
                    f"{step.action} {', '.join(sorted(allowed))}; emu mode runs them all)")
    return None
