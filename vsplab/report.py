"""What a lab run found, and its three renderings: a terminal table, JSON, and JUnit XML (one test case
per expectation, so CI systems and lab graders can read it). A federated lab adds its BGP sessions, as
each speaker reports them (a table beside the reachability table, `bgp.sessions` in the JSON)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table


@dataclass
class ExpectationResult:
    source: str
    destination: str
    protocol: str
    port: int | None
    expected: str  # allow | deny
    observed: str  # allow | deny | error
    detail: str = ""  # where it was dropped, or what went wrong
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.expected == self.observed

    @property
    def where(self) -> str:
        """The detail without the matched flow's text (which the failure lines and JSON keep)."""
        head, sep, _ = self.detail.partition("): ")
        return head + ")" if sep else self.detail

    @property
    def label(self) -> str:
        port = f"/{self.port}" if self.port else ""
        return f"{self.source} -> {self.destination} {self.protocol}{port}"


ESTABLISHED = "up"  # what the VSC's status says of an established session; a reflector's is read as the same


@dataclass
class BgpSession:
    vsc: str  # the speaker reporting it: a VSC, or a route reflector of the lab
    peer: str
    state: str
    routes_received: int
    routes_advertised: int

    @property
    def up(self) -> bool:
        return self.state == ESTABLISHED


def bgp_table(sessions: list[BgpSession], title: str = "BGP sessions") -> Table:
    table = Table(title=title)
    for col in ("speaker", "peer", "state", "routes received", "routes advertised"):
        table.add_column(col)
    for s in sessions:
        state = f"[green]{s.state}[/]" if s.up else f"[bold red]{s.state}[/]"
        table.add_row(s.vsc, s.peer, state, str(s.routes_received), str(s.routes_advertised))
    return table


@dataclass
class LabReport:
    scenario: str
    mode: str
    results: list[ExpectationResult] = field(default_factory=list)
    objects: int = 0
    containers: int = 0
    hosts: int = 0
    flows_per_host: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    started: float = field(default_factory=time.time)
    bgp_sessions: list[BgpSession] | None = None  # None: the scenario has no BGP
    # the faults run (vsplab/faults/timeline.py Timeline: ok, to_json(), junit_cases(suite)); None: no faults
    timeline: object | None = None

    @property
    def failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.passed]

    @property
    def sessions_down(self) -> list[BgpSession]:
        return [s for s in self.bgp_sessions or [] if not s.up]

    @property
    def ok(self) -> bool:
        return (bool(self.results) and not self.failures and not self.sessions_down
                and (self.timeline is None or self.timeline.ok))

    def to_json(self) -> dict:
        out = {
            "scenario": self.scenario, "mode": self.mode, "ok": self.ok,
            "objects": self.objects, "containers": self.containers, "hosts": self.hosts,
            "flows_per_host": self.flows_per_host, "timings": self.timings,
            "expectations": [{**asdict(r), "passed": r.passed} for r in self.results],
        }
        if self.bgp_sessions is not None:
            out["bgp"] = {"sessions": [asdict(s) for s in self.bgp_sessions]}
        if self.timeline is not None:
            out["faults"] = self.timeline.to_json()
        return out

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def write_junit(self, path: str | Path) -> None:
        suite = ET.Element("testsuite", name=f"vsplab.{self.scenario}.{self.mode}",
                           tests=str(len(self.results)), failures=str(len(self.failures)),
                           errors="0", time=f"{sum(self.timings.values()):.3f}")
        for r in self.results:
            case = ET.SubElement(suite, "testcase", classname=f"{self.scenario}.{self.mode}",
                                 name=f"{r.label} expect {r.expected}", time=f"{r.seconds:.3f}")
            if not r.passed:
                failure = ET.SubElement(case, "failure", message=f"expected {r.expected}, observed {r.observed}")
                failure.text = r.detail
        if self.timeline is not None:  # one case per fault step and per step and expectation
            cases, failures = self.timeline.junit_cases(suite)
            suite.set("tests", str(len(self.results) + cases))
            suite.set("failures", str(len(self.failures) + failures))
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        table = Table(title=f"{self.scenario} ({self.mode} mode): reachability")
        for col in ("from", "to", "proto", "port", "expect", "observed", "", "detail"):
            table.add_column(col)
        for r in self.results:
            mark = "[green]PASS[/]" if r.passed else "[bold red]FAIL[/]"
            table.add_row(r.source, r.destination, r.protocol, str(r.port or ""), r.expected,
                          r.observed, mark, r.where)
        console.print(table)
        if self.bgp_sessions is not None:
            console.print(bgp_table(self.bgp_sessions))
        flows = ", ".join(f"{h}={n}" for h, n in sorted(self.flows_per_host.items()))
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        console.print(f"objects: {self.objects} VSD objects, {self.containers} containers on {self.hosts} hosts")
        console.print(f"flows per host: {flows}")
        console.print(f"time: {phases}")
        verdict = "[green]all expectations hold[/]" if self.ok else f"[bold red]{len(self.failures)} of {len(self.results)} expectations failed[/]"
        console.print(f"{len(self.results) - len(self.failures)}/{len(self.results)} passed: {verdict}")
        for r in self.failures:
            console.print(f"[red]FAILED[/] {r.label}: expected {r.expected}, observed {r.observed} {r.detail}")
        for s in self.sessions_down:
            console.print(f"[red]BGP DOWN[/] {s.vsc} -> {s.peer}: {s.state}")
