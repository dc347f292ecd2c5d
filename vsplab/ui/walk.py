"""A packet's walk, table by table on each host, as the page shows it: the lab's traced passes (the
request, and the reply of a stateful flow), each step's matched flow and the VSD object behind its
cookie, and what decided: the ACL entry by its VSD name and priority, or the template's default
verdict, in the table that dropped or passed the packet. Pure: the walk, the cookies' owners and the
policy in, HTML out."""

from __future__ import annotations

from html import escape

from vsc.pipeline import ACL_DIRECTION, Table
from vsplab.ui.source import Policy


def owner_text(owner: dict | None, table: int, policy: Policy) -> str:
    """The VSD object behind a cookie, in the VSD's words."""
    if not owner or owner.get("ID") is None:
        return "pipeline skeleton (no VSD object)" if owner else ""
    kind = owner.get("kind")
    if kind == "ACL_ENTRY":
        e = policy.entries.get(owner["ID"])
        if e is None:
            return f"ACL entry {owner['ID']} (priority {owner.get('priority')})"
        action = "allow" if e.get("action") == "FORWARD" else "deny"
        return (f"{e['direction']} ACL entry \u201c{e.get('description') or e['ID']}\u201d, priority {e.get('priority')}, "
                f"{action}{', stateful' if e.get('stateful') else ''}")
    if kind == "ACL_DEFAULT":
        direction = ACL_DIRECTION.get(table)
        t = next((t for t in policy.templates.values()
                  if t.get("parentID") == owner["ID"] and t["direction"] == direction), None)
        if t is not None:
            verdict = "allow" if t.get("defaultAllowIP") else "deny"
            return (f"default verdict of {direction} ACL template \u201c{t.get('name')}\u201d of domain "
                    f"{owner.get('name')} (defaultAllowIP {str(bool(t.get('defaultAllowIP'))).lower()}): {verdict}, "
                    f"below every entry")
        return f"default ACL verdict of domain {owner.get('name')}"
    return f"{owner.get('entityType')} {owner.get('name') or owner['ID']} ({kind})"


def deciding_steps(p: dict) -> list[dict]:
    """The ACL tables' steps of one pass: what allowed it (each direction) or the one that dropped it."""
    return [s for s in p["steps"] if s["table"] in ACL_DIRECTION]


def pass_outcome(p: dict) -> str:
    if p["delivered"]:
        return "delivered to " + ", ".join(d["container"] or d["switch"] for d in p["delivered"])
    last = p["steps"][-1] if p["steps"] else None
    where = f' at {last["switch"]} table {last["table"]} ({last["table_name"]})' if last else ""
    return f"dropped{where}"


def render(walk: dict, owners: dict[str, dict], policy: Policy) -> str:
    out = []
    first = walk["passes"][0] if walk["passes"] else None
    if walk["verdict"] == "allow":
        banner = "delivered" + (" - request and reply" if len(walk["passes"]) > 1 else "")
    elif first is not None and not first["delivered"]:
        banner = pass_outcome(first)
    else:
        banner = f"dropped: {walk['detail']}"
    out.append(f'<p id="verdict" class="verdict {"ok" if walk["verdict"] == "allow" else "bad"}">{escape(banner)}</p>')
    if walk["detail"]:
        out.append(f'<p class="detail">{escape(walk["detail"])}</p>')
    for p in walk["passes"]:
        out.append(_pass(p, owners, policy))
    return "".join(out)


def _pass(p: dict, owners: dict[str, dict], policy: Policy) -> str:
    decided = [f'<li>{escape(s["switch"])} table {s["table"]} ({escape(s["table_name"])}): '
               f'{escape(owner_text(owners.get(s["cookie"]), s["table"], policy))}</li>'
               for s in deciding_steps(p)]
    stateful = [s for s in p["steps"] if s["table"] in (Table.INGRESS_STATE, Table.EGRESS_STATE) and s["flow"]
                and "ct_state=+est" in (s["flow"] or "")]
    if stateful:
        decided.append(f"<li>established connection: {escape(stateful[0]['switch'])} table {stateful[0]['table']} "
                       f"({escape(stateful[0]['table_name'])}) skips the ACL (the request's stateful entry)</li>")
    out = [f'<section class="pass" data-pass="{escape(p["label"])}"><h3>{escape(p["label"])}: '
           f'<span class="outcome">{escape(pass_outcome(p))}</span></h3>',
           f'<ul class="decided">{"".join(decided) or "<li>no ACL table reached</li>"}</ul>',
           '<table class="steps"><thead><tr><th>host</th><th>table</th><th>matched flow</th><th>actions</th>'
           '<th>VSD object</th></tr></thead><tbody>']
    for s in p["steps"]:
        acl = s["table"] in ACL_DIRECTION
        last = s is p["steps"][-1] and not p["delivered"]
        cls = " ".join(c for c in ("acl" if acl else "", "drop" if last else "") if c)
        actions = "<br>".join(escape(a) for a in s["actions"]) + (f'<br><i>{escape(s["note"])}</i>' if s["note"] else "")
        flow = escape(s["match"]) if s["flow"] is not None else "<i>no flow matched</i>"
        recirc = f' <span class="sub">recirc #{s["recirc"]}</span>' if s["recirc"] else ""
        out.append(f'<tr class="{cls}"><td>{escape(s["switch"])}</td><td>{s["table"]} {escape(s["table_name"])}{recirc}'
                   f'</td><td><code>{flow}</code></td><td><code>{actions}</code></td>'
                   f'<td>{escape(owner_text(owners.get(s["cookie"]), s["table"], policy))}</td></tr>')
    out.append("</tbody></table>")
    extra = [f"tunnel {t}" for t in p["tunnels"]] + [f"dropped: {d}" for d in p["drops"]]
    if extra:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(x)}</li>" for x in extra) + "</ul>")
    out.append("</section>")
    return "".join(out)
