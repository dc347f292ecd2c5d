"""One policy change on the converged lab, measured on the wire: an ACL entry's port changed through
the VSD's REST API (web's "tcp/443 in from anywhere" becomes tcp/8443), timed from the PUT until every
VSC has applied it and had every resulting flow-mod acknowledged by its VRSs; then every host's ACL
tables (up to `CHECKED_HOSTS` of them) are compared with its VSC's desired ones."""

from __future__ import annotations

import time
from collections import Counter

from vsc.pipeline import Table
from vsplab.bench.lab import BenchLab, wait_all_converged
from vsplab.bench.verify import desired_text
from vsplab.bench.workload import Workload

CHECKED_HOSTS = 50  # every host up to this many, else this many spread evenly (a host's check reads all its flows)
ACL_TABLES = (f" table={int(Table.INGRESS_ACL)},", f" table={int(Table.EGRESS_ACL)},")


def _sent(statuses: dict) -> int:
    return sum(sum(v for k, v in d["sent"].items() if k != "bundles")
               for st in statuses.values() for d in st["datapaths"].values() if d["sent"])


def acl_change(lab: BenchLab, w: Workload, ids: dict[str, str], expect: dict[str, dict], timeout: float) -> dict:
    entry = next(o["entity"] for o in w.objects if o["entityType"] == "egressaclentrytemplate"
                 and o["entity"].get("destinationPort") == "443")
    before = _sent(lab.statuses())
    t0 = time.perf_counter()
    lab.client.update(f"egressaclentrytemplates/{ids[entry['ID']]}", {"destinationPort": "8443"})
    revision = lab.vsd_revision()
    seconds = wait_all_converged(lab, {n: {**e, "revision": revision} for n, e in expect.items()}, timeout, t0)
    flow_mods = _sent(lab.statuses()) - before
    from openflow.text import format_flow

    differing = []
    hosts = sorted(w.hosts.items())
    checked = hosts[::max(1, len(hosts) // CHECKED_HOSTS)]
    for dpid, (host, _) in checked:
        desired = Counter(x for x in desired_text(lab.vscs[lab.vsc_of_host[dpid]], dpid) if any(t in x for t in ACL_TABLES))

        def installed(host=host):
            sw = lab.runtime.hosts[host].switch
            return Counter(format_flow(rule.flow(t), show_stats=False) for table in (Table.INGRESS_ACL, Table.EGRESS_ACL)
                           for t, rule in sw.flows(table))
        if lab.runtime.call(installed) != desired or not any("tp_dst=8443" in x for x in desired):
            differing.append(host)
    return {"what": "web's tcp/443-in entry -> tcp/8443, one REST PUT", "seconds": round(seconds, 3),
            "flow_mods": flow_mods, "hosts_checked": len(checked), "hosts_differing": differing[:5], "ok": not differing}
