"""Run a scenario's `faults:` on a converged, checked lab and measure each step's recovery.

    continuous probes (vsplab/faults/probes.py) and the VSCs' status (watch.py) recorded throughout
    for each step: wait for its `at` (or go on at once: the previous step has recovered), inject it
    (actions.py + the mode's), find when it was noticed (detect.py), re-check the expectations it
    declares until they hold (or its timeout), count probes lost and flow-mods spent
    then mend whatever the steps left broken, wait for convergence, check every expectation again

The timeline (timeline.py) goes into the lab's report: printed here, and in `--json` / `--junit`."""

from __future__ import annotations

import time
from types import SimpleNamespace

from rich.console import Console

from vsplab.faults.actions import Actions, FaultError
from vsplab.faults.detect import before_counters, detect
from vsplab.faults.probes import Prober, emu_probers, sim_probers
from vsplab.faults.timeline import StepRecord, Timeline
from vsplab.faults.watch import StatusWatcher
from vsplab.report import ExpectationResult
from vsplab.scenario.fault_model import FaultStep
from vsplab.scenario.model import Expectation

RECHECK_PAUSE = 0.2


def actions_for(lab) -> Actions:
    if lab.MODE == "emu":
        from vsplab.faults.emu_actions import EmuActions

        return EmuActions(lab)
    if lab.MODE == "sim":
        from vsplab.faults.sim_actions import SimActions

        return SimActions(lab)
    raise FaultError(f"{lab.MODE} mode runs no faults")


def check_now(lab, expectations: list[Expectation]) -> list[ExpectationResult]:
    """These expectations checked as the lab's own check does it (traces, or real packets)."""
    shim = SimpleNamespace(expect=expectations, gateways=lab.scenario.gateways)
    if lab.MODE == "emu":
        from vsplab.emu.check import check_expectations

        return check_expectations(lab.listeners, shim, lab.placed)
    from vsplab.lab.probe import check_expectations

    return lab.runtime.call(check_expectations, lab.runtime.fabric, shim, lab.placed)


def declared(scenario, step: FaultStep) -> list[Expectation]:
    """What must hold after `step`: its `expect` list (or every expectation), those it turns into denies
    flipped."""
    idx = range(len(scenario.expect)) if step.expect == "all" else ([] if step.expect == "none" else step.expect)
    denied = set(step.now_denied)
    return [scenario.expect[i].model_copy(update={"expect": "deny"}) if i in denied else scenario.expect[i]
            for i in idx]


def recheck(lab, expectations: list[Expectation], deadline: float) -> tuple[float | None, list[ExpectationResult]]:
    """Check until every one holds (the time that passing round began) or `deadline`."""
    results: list[ExpectationResult] = []
    while True:
        t = time.monotonic()
        results = check_now(lab, expectations)
        if all(r.passed for r in results):
            return t, results
        if time.monotonic() >= deadline:
            return None, results
        time.sleep(RECHECK_PAUSE)


def run_faults(lab, console: Console | None = None) -> Timeline | None:
    """Run `lab.scenario.faults`; the timeline, also stored as `lab.report.timeline`. None: no faults."""
    scenario = lab.scenario
    if not scenario.faults:
        return None
    console = console or lab.console
    actions = actions_for(lab)
    lab.mend_faults = actions.restore  # what `vsplab reset` calls first on a kept lab
    timeline = Timeline(scenario.name, lab.MODE)
    lab.report.timeline = timeline
    probers: list[Prober] = (emu_probers if lab.MODE == "emu" else sim_probers)(lab, scenario.probes)
    watcher = StatusWatcher(lab.vscs).start()
    for p in probers:
        p.start()
    origin = time.monotonic()
    ends: list[float] = []
    try:
        for i, step in enumerate(scenario.faults):
            with console.status(f"fault step {i}: {step.label}"):
                rec, end = _step(lab, actions, watcher, probers, scenario, i, origin)
            timeline.steps.append(rec)
            ends.append(end)
        with console.status("mending what the faults left, checking every expectation"):
            mended = actions.restore()
            if mended:
                console.print(f"mended after the faults: {', '.join(mended)}", highlight=False)
            try:
                lab.wait_converged(timeout=120)
            except (TimeoutError, RuntimeError) as e:
                console.print(f"[red]not converged after the faults:[/] {str(e)[:300]}", highlight=False)
            _, timeline.final = recheck(lab, list(scenario.expect), time.monotonic() + 30)
    finally:
        for p in probers:
            p.stop()
        watcher.stop()
    for rec, end, nxt in zip(timeline.steps, ends, [r.injected for r in timeline.steps[1:]] + [None], strict=True):
        t0 = origin + (rec.injected or 0.0)
        t1 = origin + nxt if nxt is not None else end
        sent = lost = 0
        for p in probers:
            s, lo = p.window(t0, t1)
            sent, lost = sent + s, lost + lo
        rec.probes_sent, rec.probes_lost = sent, lost
    timeline.probes = [p.summary(origin) for p in probers]
    timeline.print(console)
    return timeline


def _step(lab, actions: Actions, watcher: StatusWatcher, probers, scenario, i: int,
          origin: float) -> tuple[StepRecord, float]:
    step = scenario.faults[i]
    rec = StepRecord(i, step.label, step.line, waits_for_recovery=step.expect != "none")
    if step.at is not None:
        time.sleep(max(0.0, origin + step.at - time.monotonic()))
    nxt = scenario.faults[i + 1].at if i + 1 < len(scenario.faults) else None
    deadline = time.monotonic() + step.timeout
    if nxt is not None:  # the next step comes at its time, recovered or not
        deadline = min(deadline, origin + nxt)
    ctx: dict = {}
    if step.action in ("kill", "restart") and step.process()[0] == "ovs-vswitchd":
        host = step.process()[1]
        ctx["counters"] = before_counters(watcher, lab.vsc_name(next(h for h in scenario.hosts if h.name == host)))
    t_inj = time.monotonic()
    rec.injected = t_inj - origin
    try:
        ctx.update(actions.run(step))
    except Exception as e:  # a step that cannot be done is a failed step in the timeline, not a crash
        rec.error = f"{type(e).__name__}: {e}"
        return rec, time.monotonic()
    # detection first: a re-check run before the fault has taken effect (a BGP session not yet down)
    # would pass and count as a recovery that never was
    d = detect(step, ctx, lab, watcher, probers, t_inj)
    if d.at is not None:
        rec.detected, rec.detected_by = d.at - origin, d.by
    rec.events = {k: v - origin for k, v in d.events.items()}
    end = time.monotonic()
    if rec.waits_for_recovery:
        t_ok, rec.results = recheck(lab, declared(scenario, step), deadline)
        end = time.monotonic()
        if t_ok is None:
            rec.cut_short = nxt is not None and end >= origin + nxt - 0.5
            if not rec.cut_short:
                rec.error = f"the expectations did not hold again within {step.timeout:g} s"
        else:
            rec.recovered = t_ok - origin
    # a repair's resync may pass the VSC's per-connection counters by: the audit counts what it sent.
    # Counted up to a sample taken now: a resync done just before recovery may not be in a poll yet
    rec.flow_mods = max(watcher.flow_mods_between(t_inj, watcher.poll_now()), ctx.get("repair_flow_mods", 0))
    return rec, end
