"""The faults themselves, what every mode does alike: the VSD and the VSCs are real processes in every
mode (killed with SIGKILL, started again on the same ports and state), an ACL entry is deleted through
the VSD's REST API, a VSC's BGP speaker (its ExaBGP) is killed, a BGP session's TCP connection is
destroyed (`ss -K`: both speakers sit on loopback addresses of this machine). A mode adds its host
faults in vsplab/faults/emu_actions.py and sim_actions.py.

Each action returns what it needs remembered for detection (a "context" dict). Whatever an action
leaves broken is recorded in `undo` (name -> callable), so `restore()` (a reset, the end of a run) puts
the lab back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from vsplab.bench.measure import argv, children
from vsplab.scenario.fault_model import FaultStep
from vsplab.scenario.to_vsd import PROTOCOLS


class FaultError(RuntimeError):
    pass


def sigkill(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Actions:
    """The faults any lab can take; `lab` is a vsplab.lab.base.Lab."""

    def __init__(self, lab):
        self.lab = lab
        self.undo: dict[str, object] = {}  # what is broken now -> how to mend it
        self.home: dict[str, str] = {}  # container -> the host the scenario puts it on, once moved

    def run(self, step: FaultStep) -> dict:
        fn = getattr(self, "do_" + step.action.replace("-", "_"))
        ctx = fn(step) or {}
        if step.action == "tamper-flow":  # nothing in the control plane notices: the drift audit does
            ctx["found"], ctx["what"], ctx["repair_flow_mods"] = self.audit_and_repair()
        return ctx

    # --- a flow changed behind the VSC's back (the mode changes it, the audit finds and repairs it) ---

    def tamper_target(self, host: str):
        """The first allowed TCP expectation sent from `host`: its ingress ACL flows are what is tampered."""
        x = next((x for x in self.lab.scenario.expect if x.expect == "allow" and x.protocol == "tcp"
                  and self.lab.placed[x.from_].host == host), None)
        if x is None:
            raise FaultError(f"no allowed TCP expectation is sent from {host}: nothing there to tamper with")
        return x

    def audit_and_repair(self) -> tuple[float | None, str, int]:
        """(when the audit found drift, what it found, flow-mods the repair sent), vsplab/audit."""
        from vsplab.audit import audit_lab

        report = audit_lab(self.lab, repair=True)
        found = time.monotonic() if report.flows else None
        what = "; ".join(f"{f.host}: {f.what} flow in table {f.table} [{f.object_text()}]" for f in report.flows[:2])
        what += f" and {len(report.flows) - 2} more" if len(report.flows) > 2 else ""
        if not report.ok:
            raise FaultError("the audit's repair left drift: " + "; ".join(report.lines()[-3:]))
        return found, what, report.repair_flow_mods

    def restore(self) -> list[str]:
        """Mend everything still broken (latest first); what was mended."""
        done = []
        for name in reversed(list(self.undo)):
            self.undo.pop(name)()
            done.append(name)
        return done

    # --- processes ----------------------------------------------------------------------------------

    def do_kill(self, step: FaultStep) -> dict:
        kind, name = step.process()
        self.kill(kind, name)
        self.undo[f"{kind} {name or ''}".strip()] = lambda: self.start(kind, name)
        return {}

    def do_start(self, step: FaultStep) -> dict:
        kind, name = step.process()
        self.start(kind, name)
        self.undo.pop(f"{kind} {name or ''}".strip(), None)
        return {}

    def do_restart(self, step: FaultStep) -> dict:
        kind, name = step.process()
        self.kill(kind, name)
        self.start(kind, name)
        return {}

    def kill(self, kind: str, name: str | None) -> None:
        if kind == "vsd":
            self._vsd().kill()
        elif kind == "vsc":
            vsc = self.lab.vscs[name]
            if vsc.proc is None or vsc.proc.poll() is not None:
                raise FaultError(f"VSC {name} is not running")
            sigkill(vsc.proc.pid)
            vsc.proc.wait()
        else:
            self.kill_on_host(kind, name)

    def start(self, kind: str, name: str | None) -> None:
        if kind == "vsd":
            vsd = self._vsd()
            if vsd.proc is None:
                vsd.start()
                self.started(vsd.proc.pid, "vsd")
        elif kind == "vsc":
            vsc = self.lab.vscs[name]
            if vsc.proc is None or vsc.proc.poll() is not None:
                vsc.start()
                self.started(vsc.proc.pid, "vsc.cli")
        else:
            self.start_on_host(kind, name)

    def _vsd(self):
        if self.lab.vsd is None:
            raise FaultError("the lab uses the VSD given with --vsd: it kills only what it started")
        return self.lab.vsd

    def started(self, pid: int, marker: str) -> None:
        """A process the lab started anew (emu mode records it for `vsplab clean`)."""

    def kill_on_host(self, kind: str, host: str) -> None:
        raise FaultError(f"{self.lab.MODE} mode cannot kill {kind}")

    def start_on_host(self, kind: str, host: str) -> None:
        raise FaultError(f"{self.lab.MODE} mode cannot start {kind}")

    # --- a container moved to another host (the mode's `move` unplugs and plugs it) ---------------------

    def do_move(self, step: FaultStep) -> dict:
        name, to = step.move.container, step.move.to
        p = self.lab.placed[name]
        if p.host == to:
            raise FaultError(f"{name} is on {to} already")
        home = self.home.setdefault(name, p.host)
        self.move(name, to)
        if to == home:
            self.undo.pop(f"move {name}", None)
        else:
            self.undo[f"move {name}"] = lambda: self.move(name, home)
        return {}

    def move(self, name: str, to: str) -> None:
        raise FaultError(f"{self.lab.MODE} mode cannot move a container")

    # --- policy through the VSD ---------------------------------------------------------------------

    def do_delete_acl(self, step: FaultStep) -> dict:
        client = self.lab.client
        entry, path, template = find_acl_entry(client, self.lab.scenario, step.delete_acl)
        client.delete(f"{path}/{entry['ID']}")
        kept = {k: v for k, v in entry.items() if k in _ENTRY_FIELDS}
        self.undo[f"acl {step.label}"] = lambda: client.create(template, path, kept)
        return {"revision": self.lab.vsd_revision(), "entry": entry["ID"]}

    # --- BGP --------------------------------------------------------------------------------------------

    def speaker_address(self, vsc: str) -> str:
        return self.lab.federation.plan.speakers[vsc].address

    def do_stop_bgp(self, step: FaultStep) -> dict:
        """Kill the VSC's ExaBGP outright; the VSC's supervisor starts it again (vsc/bgp/speaker.py)."""
        vsc = self.lab.vscs[step.stop_bgp]
        found = [p for p in children(vsc.proc.pid) if any(Path(a).name == "exabgp" for a in argv(p))]
        if not found:
            raise FaultError(f"VSC {step.stop_bgp} runs no ExaBGP")
        for pid in found:
            sigkill(pid)
        return {"exabgp": found}

    def do_cut_bgp(self, step: FaultStep) -> dict:
        a, b = (self.speaker_address(n) for n in step.cut_bgp)
        if os.geteuid() != 0:
            raise FaultError("cutting a BGP session destroys its TCP socket (ss -K): that needs root")
        flt = f"( src {a} and dst {b} ) or ( src {b} and dst {a} )"
        r = subprocess.run(["ss", "-K", "-t", flt], capture_output=True, text=True)
        killed = [line for line in r.stdout.splitlines()[1:] if line.strip()]
        if r.returncode or not killed:
            raise FaultError(f"ss -K found no BGP connection between {a} and {b}: {r.stderr.strip()}")
        return {}


# what an entry is made of (vsplab/scenario/to_vsd.py), to create it again
_ENTRY_FIELDS = ("description", "action", "locationType", "locationID", "networkType", "networkID", "etherType",
                 "protocol", "priority", "stateful", "sourcePort", "destinationPort")


def find_acl_entry(client, scenario, ref) -> tuple[dict, str, str]:
    """The VSD entry a scenario rule became (vsplab/scenario/to_vsd.py: its priority and protocol),
    the collection it is in and its template's path."""
    ent_dom = [(e, d) for e in scenario.enterprises for d in e.domains if ref.domain in (d.name, f"{e.name}/{d.name}")]
    ent, dom = ent_dom[0]
    rules = getattr(dom, ref.direction).rules
    rule = rules[ref.rule]
    priority = rule.priority if rule.priority is not None else 1000 + 10 * ref.rule
    e = next(x for x in client.list("enterprises") if x["name"] == ent.name)
    d = next(x for x in client.list(f"enterprises/{e['ID']}/domains") if x["name"] == dom.name)
    kind = ref.direction
    for t in client.list(f"domains/{d['ID']}/{kind}acltemplates"):
        for x in client.list(f"{kind}acltemplates/{t['ID']}/{kind}aclentrytemplates"):
            if x.get("priority") == priority and x.get("protocol") == PROTOCOLS[rule.protocol]:
                return x, f"{kind}aclentrytemplates", f"{kind}acltemplates/{t['ID']}"
    raise FaultError(f"the VSD has no {kind} entry of {ref.domain} rule {ref.rule} (priority {priority}): "
                     "deleted already?")
