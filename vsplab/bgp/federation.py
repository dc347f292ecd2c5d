"""A lab's BGP: the plan of its speakers, the route reflectors it runs, the options each VSC starts
with, how many routes each VSC must hold before the lab counts as converged, and the sessions as the
speakers report them. Every lab mode shares it through `vsplab.lab.base.Lab`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from vsc.process import BgpOptions
from vsplab.bgp.frr import DIR_PREFIX, FrrError, RouteReflector
from vsplab.bgp.frr import ESTABLISHED as FRR_ESTABLISHED
from vsplab.bgp.plan import BgpPlan
from vsplab.bgp.routes import fetch_routes, routes_text
from vsplab.report import ESTABLISHED, BgpSession, bgp_table
from vsplab.scenario.model import Scenario


class LabFederation:
    def __init__(self, plan: BgpPlan, workdir: Path):
        self.plan, self.workdir = plan, workdir
        self.reflectors: dict[str, RouteReflector] = {}

    @classmethod
    def of(cls, scenario: Scenario, workdir: Path, free_port: Callable[[list[str]], int]) -> LabFederation | None:
        """None for a scenario without `bgp:`. `free_port(addresses)`: a port free on all of them."""
        plan = BgpPlan.of(scenario)
        if plan is None:
            return None
        return cls(replace(plan, port=free_port(plan.addresses())), workdir)

    def start_reflectors(self, stack: ExitStack, console: Console) -> None:
        """Start every route reflector; `stack` stops each (by its own process) at teardown."""
        for me in self.plan.reflectors():
            rr = RouteReflector(me, self.plan, self.workdir / f"{DIR_PREFIX}{me.name}")
            stack.callback(rr.stop)
            self.reflectors[me.name] = rr.start()
            console.print(f"route reflector {me.name}: FRR bgpd, AS {me.asn}, on {me.address}:{self.plan.port}")

    def vsc_options(self, name: str) -> BgpOptions:
        return self.plan.vsc_options(name)

    def describe(self, name: str) -> str:
        me = self.plan.speakers[name]
        peers = ", ".join(p.name for p in self.plan.peers_of(name)) or "nobody"
        return f"BGP AS {me.asn} on {me.address}:{self.plan.port}, peers {peers}"

    def routes_expected(self, name: str, endpoints: dict[str, int]) -> int:
        return self.plan.routes_expected(name, endpoints)

    def check_running(self) -> None:
        for name, rr in self.reflectors.items():
            if not rr.alive():
                raise FrrError(f"route reflector {name} (bgpd) exited:\n{rr.log_tail()}")

    # --- what the speakers say --------------------------------------------------------------------

    def routes(self, vscs: dict) -> dict[str, dict | str]:
        """Each VSC's routes (`vscs`: name -> its VscProcess)."""
        return fetch_routes(vscs)

    def sessions(self, statuses: dict[str, dict | None]) -> list[BgpSession]:
        """Every session, from each VSC's `/status` (`statuses`: VSC name -> status, None for a VSC
        that did not answer) and each reflector's bgpd; peers by their scenario names."""
        out = []
        for vsc, st in statuses.items():
            if st is None:
                out += [BgpSession(vsc, p.name, "VSC not answering", 0, 0) for p in self.plan.peers_of(vsc)]
                continue
            for s in (st.get("bgp") or {}).get("sessions", []):
                out.append(BgpSession(vsc, self.plan.name_at(s["peer"]), s.get("state", "?"),
                                      s.get("routes_received", 0), s.get("routes_advertised", 0)))
        for name, rr in self.reflectors.items():
            try:
                found = rr.sessions()
            except FrrError as e:
                out += [BgpSession(name, p.name, f"unknown ({e})", 0, 0) for p in rr.peers]
                continue
            for s in found:
                state = ESTABLISHED if s.state == FRR_ESTABLISHED else s.state
                out.append(BgpSession(name, self.plan.name_at(s.peer), state, s.routes_received, s.routes_advertised))
        return out

    def report_text(self, statuses: dict[str, dict | None], routes: dict[str, dict | str] | None = None,
                    width: int = 120) -> str:
        """`vsplab bgp`: the sessions, each VSC's route counts, and the routes each reflector holds;
        with `routes` (`vsplab bgp --routes`: each VSC's `/bgp`, see vsplab/bgp/routes.py) every route
        each VSC advertises and receives."""
        console = Console(file=io.StringIO(), width=width, force_terminal=False)
        console.print(bgp_table(self.sessions(statuses)))
        for vsc, st in statuses.items():
            bgp = (st or {}).get("bgp") or {}
            console.print(f"{vsc} ({self.describe(vsc)}): {bgp.get('advertised', 0)} routes advertised, "
                          f"{bgp.get('received', 0)} received, {bgp.get('imported', 0)} imported as endpoints, "
                          f"{bgp.get('pending', 0)} pending", highlight=False)
        for name, rr in self.reflectors.items():
            console.print(f"\n{name}: show bgp l2vpn evpn route", highlight=False)
            try:
                console.print(rr.vtysh("show bgp l2vpn evpn route").rstrip() or "(no routes)", highlight=False,
                              markup=False)
            except FrrError as e:
                console.print(f"(unavailable: {e})", highlight=False, markup=False)
        if routes is not None:
            console.print("\n" + routes_text(self.plan, routes), end="", highlight=False, markup=False,
                          soft_wrap=True)
        return console.file.getvalue()
