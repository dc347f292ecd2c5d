"""The questions a kept lab answers for `vsplab explain`, `vsplab lint --lab` and `vsplab diff --lab`,
registered on the lab's control socket (`vsplab.lab.control.register_op`): the lab package never
imports this one (it uses the lab's probe helpers)."""

from __future__ import annotations

from vsplab.lab.control import register_op
from vsplab.policy.compiled import Compiled
from vsplab.policy.explain import case_for, explanation, render
from vsplab.policy.state import from_lab
from vsplab.policy.verdicts import exchange


def explain_op(lab, req: dict) -> dict:
    runtime = getattr(lab, "runtime", None)
    if runtime is None and lab.MODE != "emu":
        raise ValueError(f"explain traces through simulated VRSs (sim mode) or with ofproto/trace on the "
                         f"emulated hosts' switches (emu mode); this lab is in {lab.MODE} mode")
    for key in ("from", "to"):
        if req.get(key) not in lab.placed:
            raise KeyError(f"{key}: no container {req.get(key)!r}; containers: {', '.join(lab.placed)}")
    case = case_for(req["from"], req["to"], req.get("proto") or "icmp", req.get("port"))
    compiled = Compiled(from_lab(lab))
    if runtime is None:
        from vsplab.policy.emu_explain import emu_exchange

        outcome = emu_exchange(lab, compiled, case)
    else:  # traced on the simulator's loop thread so it never races OpenFlow traffic
        outcome = runtime.call(exchange, runtime.fabric, compiled, case, None, True)
    vscs = {h.name: lab.vsc_name(h) for h in lab.scenario.hosts}
    bgp = None
    src_vsc = vscs[lab.placed[case.src].host]
    if lab.federation is not None and src_vsc != vscs[lab.placed[case.dst].host]:
        from vsplab.bgp.routes import fetch_routes

        answer = fetch_routes({src_vsc: lab.vscs[src_vsc]})[src_vsc]
        bgp = answer if isinstance(answer, dict) else None
    x = explanation(compiled, case, outcome, vscs, bgp)
    return {"text": render(x), "explain": x, "verdict": x["verdict"]}


def lint_op(lab, req: dict) -> dict:
    from vsplab.policy.lint import lint_compiled

    report = lint_compiled(Compiled(from_lab(lab)))
    return {"text": report.text(), "lint": report.to_dict()}


def diff_op(lab, req: dict) -> dict:
    from vsplab.policy.diff import diff_states
    from vsplab.policy.drafts import draft_state, find_domain, vsc_agreement

    live = from_lab(lab)
    draft = draft_state(live, req.get("domain"))
    d = diff_states(live, draft)
    # the endpoint behind the diff: each VSC's POST /impact, held to the traces
    vscs = vsc_agreement(d, live, draft, find_domain(live.objects, req.get("domain"))["ID"], lab.vscs, lab.hosts_of)
    lines = [f"VSC {n} (POST /impact): {v['detail']}" for n, v in vscs.items()]
    return {"text": "\n".join([d.text(), *lines]), "diff": {**d.to_dict(), "vscs": vscs}}


def register_ops() -> None:
    """Make every lab this process serves answer explain, lint and diff."""
    register_op("explain", explain_op)
    register_op("lint", lint_op)
    register_op("diff", diff_op)
