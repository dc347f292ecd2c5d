"""The teaching page's HTML, rendered on the server: one shell with a navigation bar, and the
topology, policy matrix, trace, flows and rollout views. Pure: models in, HTML out."""

from __future__ import annotations

from html import escape

from vsc.pipeline import table_name
from vsplab.ui import flowtable
from vsplab.ui.matrix import DomainMatrix

NAV = (("/", "Topology"), ("/matrix", "Policy matrix"), ("/trace", "Trace"), ("/flows", "Flows"),
       ("/rollout", "Rollout"))


def shell(title: str, lab: dict, body: str, active: str) -> str:
    nav = "".join(f'<a href="{href}"{" class=active" if href == active else ""}>{escape(label)}</a>'
                  for href, label in NAV)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - vsplab</title>'
            '<link rel="stylesheet" href="/static/ui.css"></head><body>'
            f'<header><span class="lab">vsplab <b>{escape(lab["scenario"])}</b> ({escape(lab["mode"])} mode)</span>'
            f'<nav>{nav}</nav></header><main>{body}</main><script src="/static/ui.js"></script></body></html>')


def topology(svg: str, legend: str, lab: dict, version: str) -> str:
    counts = (f'{len(lab["vscs"])} VSC, {len(lab.get("reflectors", []))} route reflectors, '
              f'{len(lab["hosts"])} hosts, {len(lab["containers"])} containers')
    return (f'<h1>Topology</h1><p class="sub" id="counts">{escape(counts)}</p>{legend}'
            f'<div id="topology-wrap" data-live="/fragment/topology" data-version="{escape(version)}">{svg}</div>')


def _rule(r) -> str:
    port = f"/{r.port}" if r.port else ""
    return (f'<li class="rule {r.action}" title="{escape(r.name, quote=True)}">{escape(r.direction)} '
            f'{escape(r.protocol)}{escape(port)} <b>{r.action}</b>{" stateful" if r.stateful else ""} '
            f'<span class="sub">prio {r.priority}</span></li>')


def _check(c) -> str:
    what = f"{c.protocol}/{c.port}" if c.port else c.protocol
    return (f'<li class="check {"pass" if c.passed else "fail"}">{escape(c.source)} &rarr; {escape(c.destination)} '
            f'{escape(what)}: expect {escape(c.expected)}, saw {escape(c.observed)}</li>')


def matrix(domains: list[DomainMatrix]) -> str:
    out = ["<h1>Policy matrix</h1><p class=sub>rows: source, columns: destination. Each cell: the ACL entries "
           "between them (ingress: what the source may send; egress: what the destination may receive), "
           "then the scenario's checks between containers of those groups, expected against observed.</p>"]
    for m in domains:
        defaults = ", ".join(f"{d} default {v}" for d, v in sorted(m.defaults.items()))
        out.append(f'<h2>domain {escape(m.name)} <span class="sub">{escape(defaults)}</span></h2>')
        out.append(f'<table class="matrix" data-domain="{escape(m.name)}"><thead><tr><th>from \\ to</th>')
        out += [f"<th>{escape(e)}</th>" for e in m.ends]
        out.append("</tr></thead><tbody>")
        for src in m.ends:
            out.append(f"<tr><th>{escape(src)}</th>")
            for dst in m.ends:
                rules, checks = m.cells.get((src, dst), []), m.checks.get((src, dst), [])
                body = ("".join(_rule(r) for r in rules) or '<li class="none">no entry: default</li>') if (
                    rules or checks) else ""
                chk = "".join(_check(c) for c in checks)
                out.append(f'<td data-cell="{escape(src)}>{escape(dst)}"><ul>{body}</ul>'
                           f'{f"<ul class=checks>{chk}</ul>" if chk else ""}</td>')
            out.append("</tr>")
        out.append("</tbody></table>")
    if not domains:
        out.append("<p>No domains in the VSD (or no VSD credentials given).</p>")
    return "".join(out)


def _options(names: list[str], chosen: str | None) -> str:
    return "".join(f'<option{" selected" if n == chosen else ""}>{escape(n)}</option>' for n in names)


def trace_form(lab: dict, q: dict) -> str:
    names = sorted(c["name"] for c in lab["containers"])
    proto = q.get("proto", "tcp")
    protos = "".join(f'<option{" selected" if p == proto else ""}>{p}</option>' for p in ("tcp", "udp", "icmp"))
    return ('<h1>Trace</h1><form id="trace-form" method="get" action="/trace">'
            f'<label>from <select name="from" id="from">{_options(names, q.get("from"))}</select></label> '
            f'<label>to <select name="to" id="to">{_options(names, q.get("to"))}</select></label> '
            f'<label>protocol <select name="proto" id="proto">{protos}</select></label> '
            f'<label>port <input name="port" id="port" size="6" value="{escape(q.get("port", ""), quote=True)}">'
            '</label> <button type="submit" id="trace-go">trace</button></form>')


def flows(lab: dict, host: str, v: flowtable.FlowView, owners: dict[str, str], q: dict) -> str:
    hosts = [h["name"] for h in lab["hosts"]]
    tables = '<option value="">all</option>' + "".join(
        f'<option value="{t}"{" selected" if q.get("table") == str(t) else ""}>{t} {table_name(t)}</option>'
        for t in v.per_table)
    out = ['<h1>Flows</h1><form id="flows-form" method="get" action="/flows">'
           f'<label>host <select name="host" id="host">{_options(hosts, host)}</select></label> '
           f'<label>table <select name="table">{tables}</select></label> '
           f'<label>filter <input name="q" id="q" value="{escape(q.get("q", ""), quote=True)}"></label> '
           '<button type="submit">show</button></form>',
           '<table class="counts"><tr><th>table</th>' + "".join(
               f"<th>{t}<br><span class=sub>{table_name(t)}</span></th>" for t in v.per_table)
           + f'<th>all</th></tr><tr><td>flows</td>{"".join(f"<td>{n}</td>" for n in v.per_table.values())}'
           f"<td>{v.total}</td></tr></table>"]
    shown = f"showing the first {len(v.rows)} of {v.matching} matching flows; narrow the filter" if (
        v.matching > len(v.rows)) else f"{v.matching} matching flows"
    out.append(f'<p class="sub" id="flow-count">{escape(shown)}</p><table class="flows"><thead><tr><th>flow '
               '(ovs-ofctl dump-flows)</th><th>VSD object behind the cookie</th></tr></thead><tbody>')
    out += [f'<tr><td><code>{escape(f.text)}</code></td><td>{escape(owners.get(f.cookie, ""))}</td></tr>'
            for f in v.rows]
    out.append("</tbody></table>")
    return "".join(out)


def rollout() -> str:
    return ('<h1>Rollout</h1><p class="sub" id="rollout-state">waiting for samples</p>'
            '<div class="chart"><h2>containers up</h2><svg id="chart-containers" viewBox="0 0 800 260"></svg></div>'
            '<div class="chart"><h2>flows per host</h2><svg id="chart-flows" viewBox="0 0 800 260"></svg></div>')


def error(message: str) -> str:
    return f'<p class="error" id="error">{escape(message)}</p>'
