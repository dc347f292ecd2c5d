"""Load a scenario file and check it as a whole: every reference resolves, names are unique, addresses
fit their subnets, BGP peerings make sense (vsplab/scenario/bgp_check.py). Every problem names the
file, the line and the field; what is legal but questionable lands in `Scenario.warnings`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .bgp_check import check_bgp
from .fault_check import check_faults, check_mode
from .loader import LineMap, ScenarioError, load_yaml
from .model import Container, Domain, Enterprise, Scenario, Subnet, Zone

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_END_KINDS = ("subnet", "zone", "macro", "macrogroup")


@dataclass(frozen=True)
class SubnetRef:
    enterprise: Enterprise
    domain: Domain
    zone: Zone
    subnet: Subnet


def load_scenario(path: str | Path, mode: str | None = None, skip_impossible_faults: bool = False) -> Scenario:
    """The checked scenario; with `mode`, also refuse the faults that mode cannot perform (or, with
    `skip_impossible_faults`, leave them out, each named in a warning)."""
    data, lm = load_yaml(path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError([lm.error(_loc(err["loc"]), _message(err)) for err in e.errors()]) from None
    problems = check(scenario, lm) + check_faults(scenario, lm)
    if mode is not None and not problems:
        problems = check_mode(scenario, lm, mode, skip=skip_impossible_faults)
    if problems:
        raise ScenarioError(problems)
    return scenario


def _loc(loc: tuple) -> tuple:
    # pydantic reports aliased fields by alias already; tagged unions add a type name we drop
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def subnet_index(scenario: Scenario) -> dict[str, list[SubnetRef]]:
    """Subnets by plain name and by ENTERPRISE/NAME."""
    index: dict[str, list[SubnetRef]] = {}
    for ent in scenario.enterprises:
        for dom in ent.domains:
            for zone in dom.zones:
                for sn in zone.subnets:
                    ref = SubnetRef(ent, dom, zone, sn)
                    index.setdefault(sn.name, []).append(ref)
                    index.setdefault(f"{ent.name}/{sn.name}", []).append(ref)
    return index


def resolve_subnet(scenario: Scenario, name: str) -> SubnetRef:
    refs = subnet_index(scenario).get(name, [])
    if len(refs) != 1:
        raise KeyError(name)
    return refs[0]


def check(s: Scenario, lm: LineMap) -> list:
    problems: list = []
    err = problems.append

    def unique(items, path, what):
        seen = set()
        for i, item in enumerate(items):
            if item.name in seen:
                err(lm.error(path + (i, "name"), f"duplicate {what} name {item.name!r}"))
            seen.add(item.name)

    unique(s.controllers, ("controllers",), "controller")
    unique(s.hosts, ("hosts",), "host")
    unique(s.enterprises, ("enterprises",), "enterprise")
    unique(s.containers, ("containers",), "container")
    controllers = {c.name for c in s.controllers}
    for i, h in enumerate(s.hosts):
        if h.vsc is not None and h.vsc not in controllers:
            err(lm.error(("hosts", i, "vsc"), f"unknown controller {h.vsc!r} (known: {sorted(controllers)})"))

    for ei, ent in enumerate(s.enterprises):
        ep = ("enterprises", ei)
        unique(ent.domains, ep + ("domains",), "domain")
        unique(ent.network_macros, ep + ("network_macros",), "network macro")
        unique(ent.macro_groups, ep + ("macro_groups",), "macro group")
        macros = {m.name for m in ent.network_macros}
        for gi, g in enumerate(ent.macro_groups):
            for mi, m in enumerate(g.members):
                if m not in macros:
                    err(lm.error(ep + ("macro_groups", gi, "members", mi), f"unknown network macro {m!r}"))
        subnet_names: set[str] = set()
        for di, dom in enumerate(ent.domains):
            dp = ep + ("domains", di)
            unique(dom.zones, dp + ("zones",), "zone")
            if len(set(dom.policy_groups)) != len(dom.policy_groups):
                err(lm.error(dp + ("policy_groups",), "a policy group is listed twice"))
            nets: list[tuple[ipaddress.IPv4Network, tuple]] = []
            for zi, zone in enumerate(dom.zones):
                for si, sn in enumerate(zone.subnets):
                    sp = dp + ("zones", zi, "subnets", si)
                    if sn.name in subnet_names:
                        err(lm.error(sp + ("name",), f"duplicate subnet name {sn.name!r} in enterprise {ent.name!r}"))
                    subnet_names.add(sn.name)
                    for other, op in nets:
                        if other.overlaps(sn.network):
                            err(lm.error(sp + ("address",), f"{sn.address} overlaps {other} (line {lm.line_of(op)}) in domain {dom.name!r}"))
                    nets.append((sn.network, sp + ("address",)))
                    if sn.gateway is not None and not _host_in(sn.gateway, sn.network):
                        err(lm.error(sp + ("gateway",), f"gateway {sn.gateway} is not a host address of {sn.address}"))
            for kind in ("ingress", "egress"):
                tmpl = getattr(dom, kind)
                for ri, rule in enumerate(tmpl.rules if tmpl else []):
                    rp = dp + (kind, "rules", ri)
                    for end, key in ((rule.from_, "from"), (rule.to, "to")):
                        problem = _check_end(end, ent, dom)
                        if problem:
                            err(lm.error(rp + (key,), problem))
                    if rule.protocol not in ("tcp", "udp") and (rule.port is not None or rule.src_port is not None):
                        err(lm.error(rp + ("port",), f"ports need protocol tcp or udp, not {rule.protocol}"))

    subnets = subnet_index(s)
    hosts = {h.name for h in s.hosts}
    ips: dict[tuple[str, str, str], int] = {}
    macs: dict[str, int] = {}
    for ci, c in enumerate(s.containers):
        cp = ("containers", ci)
        if c.host not in hosts:
            err(lm.error(cp + ("host",), f"unknown host {c.host!r}"))
        refs = subnets.get(c.subnet, [])
        if not refs:
            err(lm.error(cp + ("subnet",), f"unknown subnet {c.subnet!r}"))
            continue
        if len(refs) > 1:
            err(lm.error(cp + ("subnet",), f"subnet name {c.subnet!r} is ambiguous: write ENTERPRISE/{c.subnet}"))
            continue
        ref = refs[0]
        for gi, g in enumerate(c.groups):
            if g not in ref.domain.policy_groups:
                err(lm.error(cp + ("groups", gi), f"unknown policy group {g!r} in domain {ref.domain.name!r}"))
        _check_addresses(c, ref, cp, lm, err, ips, macs)

    names = {c.name for c in s.containers}
    for xi, x in enumerate(s.expect):
        xp = ("expect", xi)
        for end, key in ((x.from_, "from"), (x.to, "to")):
            if end not in names:
                err(lm.error(xp + (key,), f"unknown container {end!r}"))
        if x.protocol in ("tcp", "udp") and x.port is None:
            err(lm.error(xp + ("port",), f"{x.protocol} needs a port"))
        if x.protocol == "icmp" and x.port is not None:
            err(lm.error(xp + ("port",), "icmp has no port"))
    bgp_problems, warnings = check_bgp(s, lm)
    problems += bgp_problems
    s.warnings.extend(warnings)
    return problems


def _host_in(ip: str, net: ipaddress.IPv4Network) -> bool:
    try:
        a = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return a in net and a not in (net.network_address, net.broadcast_address)


def _check_end(end: str, ent: Enterprise, dom: Domain) -> str | None:
    if end == "any" or end in dom.policy_groups:
        return None
    kind, _, name = end.partition(":")
    if not name or kind not in _END_KINDS:
        return (f"{end!r} is neither a policy group of domain {dom.name!r} ({', '.join(dom.policy_groups) or 'none'}) "
                f"nor any, subnet:NAME, zone:NAME, macro:NAME, macrogroup:NAME")
    known = {
        "subnet": {sn.name for z in dom.zones for sn in z.subnets},
        "zone": {z.name for z in dom.zones},
        "macro": {m.name for m in ent.network_macros},
        "macrogroup": {g.name for g in ent.macro_groups},
    }[kind]
    return None if name in known else f"unknown {kind} {name!r}"


def _check_addresses(c: Container, ref: SubnetRef, cp, lm, err, ips, macs):
    if c.ip is not None:
        if not _host_in(c.ip, ref.subnet.network):
            err(lm.error(cp + ("ip",), f"{c.ip} is not a host address of subnet {ref.subnet.name} ({ref.subnet.address})"))
        elif c.ip == ref.subnet.gateway_ip:
            err(lm.error(cp + ("ip",), f"{c.ip} is the gateway of subnet {ref.subnet.name}"))
        else:
            key = (ref.enterprise.name, ref.domain.name, c.ip)
            if key in ips:
                err(lm.error(cp + ("ip",), f"{c.ip} is already used by containers[{ips[key]}]"))
            ips[key] = cp[1]
    if c.mac is not None:
        if not _MAC.match(c.mac):
            err(lm.error(cp + ("mac",), f"{c.mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)"))
        elif c.mac.lower() in macs:
            err(lm.error(cp + ("mac",), f"{c.mac} is already used by containers[{macs[c.mac.lower()]}]"))
        else:
            macs[c.mac.lower()] = cp[1]
