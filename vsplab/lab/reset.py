"""`vsplab reset`: a kept lab back to its scenario's initial state without restarting anything. What a
run of faults left broken is mended first (the lab's `mend_faults`, set by vsplab/faults/run.py: links
up, netem gone, processes started, containers back on their hosts); then the VSD's policy is put back
to the scenario's through its REST API - each domain's policy groups, their members, the ACL templates'
defaults and entries (extra ones deleted, missing ones created, changed ones updated) - the VSCs
converge on it and every expectation is checked again.

It restores what a scenario's policy is made of; an enterprise, domain, zone or subnet deleted from the
VSD is reported, not rebuilt (its vports and the containers on them would need new identities)."""

from __future__ import annotations

import ipaddress
import time
from types import SimpleNamespace

from vsplab.scenario.model import AclTemplate, Scenario
from vsplab.scenario.to_vsd import acl_entry

# the attributes of an ACL entry the scenario decides (vsplab/scenario/to_vsd.py)
ENTRY_FIELDS = ("description", "action", "locationType", "locationID", "networkType", "networkID", "etherType",
                "protocol", "priority", "stateful", "sourcePort", "destinationPort")


class ResetError(RuntimeError):
    pass


def _by_name(items: list[dict], name: str, what: str) -> dict:
    found = next((x for x in items if x.get("name") == name), None)
    if found is None:
        raise ResetError(f"{what} {name!r} is gone from the VSD: reset puts policy back, it does not rebuild it "
                         "(restart the lab)")
    return found


def restore_vsd(client, scenario: Scenario, placed: dict) -> list[str]:
    """Put the VSD's policy objects back to the scenario's; what was changed, one line each."""
    changes: list[str] = []
    for ent in scenario.enterprises:
        e = _by_name(client.list("enterprises"), ent.name, "enterprise")
        ids = SimpleNamespace(groups={}, subnets={}, zones={}, macros={}, macro_groups={})
        for m in client.list(f"enterprises/{e['ID']}/enterprisenetworks"):
            ids.macros[(ent.name, m["name"])] = m["ID"]
        for g in client.list(f"enterprises/{e['ID']}/networkmacrogroups"):
            ids.macro_groups[(ent.name, g["name"])] = g["ID"]
        for m in ent.network_macros:
            if (ent.name, m.name) not in ids.macros:
                net = ipaddress.IPv4Network(m.address)
                ids.macros[(ent.name, m.name)] = client.create(f"enterprises/{e['ID']}", "enterprisenetworks", {
                    "name": m.name, "address": str(net.network_address), "netmask": str(net.netmask)})["ID"]
                changes.append(f"{ent.name}: network macro {m.name} created again")
        domains = client.list(f"enterprises/{e['ID']}/domains")
        for dom in ent.domains:
            d = _by_name(domains, dom.name, f"domain {ent.name}/")
            changes += _restore_domain(client, scenario, placed, ent.name, dom, d["ID"], ids)
    return changes


def _restore_domain(client, scenario, placed, ent: str, dom, domain_id: str, ids) -> list[str]:
    changes: list[str] = []
    where = f"{ent}/{dom.name}"
    for z in client.list(f"domains/{domain_id}/zones"):
        ids.zones[(ent, dom.name, z["name"])] = z["ID"]
        for sn in client.list(f"zones/{z['ID']}/subnets"):
            ids.subnets[(ent, sn["name"])] = sn["ID"]
    groups = {g["name"]: g for g in client.list(f"domains/{domain_id}/policygroups")}
    for name, g in groups.items():
        if name not in dom.policy_groups:
            client.delete(f"policygroups/{g['ID']}")
            changes.append(f"{where}: policy group {name} deleted (not in the scenario)")
    for name in dom.policy_groups:
        if name not in groups:
            groups[name] = client.create(f"domains/{domain_id}", "policygroups", {"name": name, "type": "SOFTWARE"})
            changes.append(f"{where}: policy group {name} created again")
        ids.groups[(ent, dom.name, name)] = groups[name]["ID"]
        want = sorted(p.vport_id for p in placed.values()
                      if (p.enterprise, p.domain) == (ent, dom.name) and name in p.groups)
        have = sorted(v["ID"] for v in client.list(f"policygroups/{groups[name]['ID']}/vports"))
        if want != have:
            client.assign(f"policygroups/{groups[name]['ID']}/vports", want)
            changes.append(f"{where}: policy group {name} members put back ({len(have)} -> {len(want)})")
    for direction in ("ingress", "egress"):
        changes += _restore_acl(client, ent, dom, domain_id, direction, ids)
    return changes


def _restore_acl(client, ent: str, dom, domain_id: str, direction: str, ids) -> list[str]:
    changes: list[str] = []
    where = f"{ent}/{dom.name} {direction}"
    tmpl: AclTemplate = getattr(dom, direction) or AclTemplate()
    defaults = {"defaultAllowIP": tmpl.default_allow_ip, "defaultAllowNonIP": tmpl.default_allow_non_ip,
                "active": True}
    templates = client.list(f"domains/{domain_id}/{direction}acltemplates")
    if not templates:
        templates = [client.create(f"domains/{domain_id}", f"{direction}acltemplates",
                                   {"name": f"{dom.name}-{direction}", **defaults})]
        changes.append(f"{where}: ACL template created again")
    t, extra = templates[0], templates[1:]
    for x in extra:
        client.delete(f"{direction}acltemplates/{x['ID']}")
        changes.append(f"{where}: ACL template {x.get('name')} deleted (not in the scenario)")
    if any(t.get(k) != v for k, v in defaults.items()):
        client.update(f"{direction}acltemplates/{t['ID']}", defaults)
        changes.append(f"{where}: template defaults put back")
    want = {e["priority"]: e for e in (acl_entry(r, i, direction, ent, dom.name, ids) for i, r in enumerate(tmpl.rules))}
    kind = f"{direction}aclentrytemplates"
    for have in client.list(f"{direction}acltemplates/{t['ID']}/{kind}"):
        w = want.pop(have.get("priority"), None)
        if w is None:
            client.delete(f"{kind}/{have['ID']}")
            changes.append(f"{where}: entry {have.get('description') or have['ID']} deleted (not in the scenario)")
        elif any(have.get(k) != w.get(k) for k in ENTRY_FIELDS if k in w):
            client.update(f"{kind}/{have['ID']}", w)
            changes.append(f"{where}: entry {w['description']} put back")
    for w in want.values():
        client.create(f"{direction}acltemplates/{t['ID']}", kind, w)
        changes.append(f"{where}: entry {w['description']} created again")
    return changes


def reset_lab(lab, timeout: float = 120.0) -> dict:
    """The `reset` control request: mend, restore the VSD, converge, check. The answer's `text` lists
    what was changed and the checks' verdict; `ok` is whether every expectation holds again."""
    t0 = time.perf_counter()
    mend = getattr(lab, "mend_faults", None)
    mended = mend() if mend is not None else []
    changes = [f"mended: {m}" for m in mended] + restore_vsd(lab.client, lab.scenario, lab.placed)
    lab.wait_converged(timeout=timeout)
    report = lab.check()
    failed = [r for r in report.results if not r.passed]
    lines = changes or ["nothing differed from the scenario"]
    lines.append(f"{len(report.results) - len(failed)}/{len(report.results)} expectations hold "
                 f"({time.perf_counter() - t0:.2f} s)")
    lines += [f"FAILED {r.label}: expected {r.expected}, observed {r.observed} {r.detail}" for r in failed]
    return {"text": "\n".join(lines) + "\n", "ok": not failed, "changes": changes}
