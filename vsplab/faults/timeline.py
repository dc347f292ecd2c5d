"""What a run of faults measured, step by step, and its renderings: a terminal table, a JSON section
(`faults` in `vsplab run --json`) and JUnit test cases (one per step and one per step and expectation).

Times are seconds since the first step was injected. `detected`: when the controller or a peer noticed
(what noticed is in `detected_by`); `recovered`: when every expectation the step declares held again
(re-checked from the detection on, so a check run before the fault took effect cannot count);
`probes_lost`: continuous probe attempts that failed between this step's injection and the next
step's; `flow_mods`: what the VSCs sent their VRSs from the injection until recovery."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table

from vsplab.report import ExpectationResult


@dataclass
class StepRecord:
    index: int
    label: str  # "kill vsc vsc1"
    line: int | None  # of the step in the scenario file
    injected: float | None = None
    detected: float | None = None
    detected_by: str = ""
    recovered: float | None = None
    waits_for_recovery: bool = True  # False: `expect: none`, the step only breaks something
    cut_short: bool = False  # the next step came at its `at` before this one recovered: not a failure
    probes_sent: int = 0
    probes_lost: int = 0
    flow_mods: int = 0
    events: dict[str, float] = field(default_factory=dict)  # further named times (BGP withdraw, session up)
    results: list[ExpectationResult] = field(default_factory=list)  # the last re-check
    error: str = ""  # why the step failed: the action raised, or no recovery within its timeout

    @property
    def ok(self) -> bool:
        return not self.error and (self.cut_short or all(r.passed for r in self.results))

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "results"}
        out["ok"] = self.ok
        out["expectations"] = [{**asdict(r), "passed": r.passed} for r in self.results]
        return out


@dataclass
class Timeline:
    scenario: str
    mode: str
    steps: list[StepRecord] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)  # each continuous probe: pair, attempts, lost, outages
    final: list[ExpectationResult] = field(default_factory=list)  # every expectation once all steps ran

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and all(r.passed for r in self.final)

    def to_json(self) -> dict:
        return {"ok": self.ok, "steps": [s.to_json() for s in self.steps], "probes": self.probes,
                "final": [{**asdict(r), "passed": r.passed} for r in self.final]}

    def junit_cases(self, suite: ET.Element) -> tuple[int, int]:
        """Add one case per step and per step and expectation to `suite`; (cases, failures)."""
        cases = failures = 0
        cls = f"{self.scenario}.{self.mode}.faults"
        for s in self.steps:
            took = (s.recovered or s.detected or 0.0) - (s.injected or 0.0)
            case = ET.SubElement(suite, "testcase", classname=cls, name=f"step {s.index}: {s.label}",
                                 time=f"{max(took, 0.0):.3f}")
            cases += 1
            if s.error:
                ET.SubElement(case, "failure", message=s.error).text = s.error
                failures += 1
            for r in s.results:
                case = ET.SubElement(suite, "testcase", classname=cls,
                                     name=f"step {s.index}: {s.label}: {r.label} expect {r.expected}",
                                     time=f"{r.seconds:.3f}")
                cases += 1
                if not r.passed:
                    ET.SubElement(case, "failure", message=f"expected {r.expected}, observed {r.observed}").text = \
                        r.detail
                    failures += 1
        return cases, failures

    def print(self, console: Console) -> None:
        table = Table(title=f"{self.scenario} ({self.mode} mode): fault timeline (seconds since the first step)")
        for col in ("#", "step", "injected", "detected", "by", "recovered", "probes lost", "flow-mods", ""):
            table.add_column(col)

        def t(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        for s in self.steps:
            mark = "[green]ok[/]" if s.ok else "[bold red]FAIL[/]"
            recovered = t(s.recovered) if s.waits_for_recovery else "(not awaited)"
            recovered = "(next step came)" if s.cut_short and s.recovered is None else recovered
            table.add_row(str(s.index), s.label, t(s.injected), t(s.detected), s.detected_by, recovered,
                          f"{s.probes_lost}/{s.probes_sent}", str(s.flow_mods), mark)
        console.print(table)
        for s in self.steps:
            for name, when in s.events.items():
                console.print(f"  step {s.index} {name}: {when:.2f}", highlight=False)
            if s.error:
                console.print(f"[red]step {s.index} ({s.label}) failed:[/] {s.error}", highlight=False)
            for r in s.results:
                if not r.passed and not s.cut_short:
                    console.print(f"[red]  after step {s.index}: {r.label} expected {r.expected}, observed "
                                  f"{r.observed} {r.detail}[/]", highlight=False)
        for p in self.probes:
            console.print(f"probe {p['pair']}: {p['lost']} of {p['attempts']} attempts lost"
                          + "".join(f"; out {o['seconds']:.2f} s from {o['from']:.2f}" for o in p["outages"]),
                          highlight=False)
        held = sum(r.passed for r in self.final)
        verdict = "[green]the lab is back: every expectation holds[/]" if self.ok else "[bold red]faults run failed[/]"
        console.print(f"after all steps: {held}/{len(self.final)} expectations hold; {verdict}")
