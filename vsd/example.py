"""The three-tier example: enterprise "acme", L3 domain "prod" with zones and subnets web/app/db, one
policy group per tier, ingress and egress ACLs allowing web->app tcp/8080 and app->db tcp/5432
(stateful, default deny IP), and two vports with a VM each per tier, built through the API in bulk.

ACL direction follows Nuage: an ingress entry's location is the traffic's source and its network the
destination; an egress entry's location is the destination and its network the source."""

from __future__ import annotations

from vsd.client import VsdClient

TIERS = (("web", "10.1.0.0"), ("app", "10.2.0.0"), ("db", "10.3.0.0"))
FLOWS = (("web", "app", 8080), ("app", "db", 5432))
PER_TIER = 2


def _mac(n: int) -> str:
    return f"02:00:0a:00:{n >> 8:02x}:{n & 0xFF:02x}"  # locally administered, unique per VM here


def build_three_tier(client: VsdClient, enterprise: str = "acme", domain: str = "prod") -> dict:
    ent = client.create("", "enterprises", {"name": enterprise, "description": "vsplab three-tier example"})
    tmpl = client.create(f"enterprises/{ent['ID']}", "domaintemplates", {"name": f"{domain}-template"})
    dom = client.create(f"enterprises/{ent['ID']}", "domains", {"name": domain, "templateID": tmpl["ID"]})
    zones = client.create(f"domains/{dom['ID']}", "zones", [{"name": t} for t, _ in TIERS])
    subnets = {}
    for (tier, net), zone in zip(TIERS, zones, strict=True):
        subnets[tier] = client.create(f"zones/{zone['ID']}", "subnets",
                                      {"name": tier, "address": net, "netmask": "255.255.255.0"})
    pgs = client.create(f"domains/{dom['ID']}", "policygroups",
                        [{"name": t, "type": "SOFTWARE", "description": f"{t} tier"} for t, _ in TIERS])
    pg = {p["name"]: p for p in pgs}
    acls = {}
    for direction in ("ingress", "egress"):
        acl = client.create(f"domains/{dom['ID']}", f"{direction}acltemplates", {
            "name": f"{domain}-{direction}", "active": True, "defaultAllowIP": False, "defaultAllowNonIP": False})
        entries = []
        for i, (src, dst, port) in enumerate(FLOWS):
            location, network = (src, dst) if direction == "ingress" else (dst, src)
            entries.append({"description": f"{src} -> {dst} tcp/{port}", "action": "FORWARD",
                            "locationType": "POLICYGROUP", "locationID": pg[location]["ID"],
                            "networkType": "POLICYGROUP", "networkID": pg[network]["ID"],
                            "etherType": "0x0800", "protocol": "6", "sourcePort": "*",
                            "destinationPort": str(port), "priority": 100 + 10 * i, "stateful": True})
        acls[direction] = {"template": acl["ID"], "entries": [
            e["ID"] for e in client.create(f"{direction}acltemplates/{acl['ID']}", f"{direction}aclentrytemplates",
                                           entries)]}
    vports, vms, members = {}, [], {}
    n = 0
    for tier, _ in TIERS:
        created = client.create(f"subnets/{subnets[tier]['ID']}", "vports",
                                [{"name": f"{tier}{k + 1}", "type": "VM", "addressSpoofing": "INHERITED"}
                                 for k in range(PER_TIER)])
        vports[tier] = [v["ID"] for v in created]
        members[tier] = vports[tier]
        batch = []
        for v in created:
            n += 1
            batch.append({"name": v["name"], "UUID": v["ID"],
                          "interfaces": [{"name": "eth0", "MAC": _mac(n), "VPortID": v["ID"]}]})
        vms.extend(client.create("", "vms", batch))
    for tier, ids in members.items():
        client.assign(f"policygroups/{pg[tier]['ID']}/vports", ids)
    endpoints = {vm["name"]: {"ip": vm["interfaces"][0]["IPAddress"], "mac": vm["interfaces"][0]["MAC"],
                              "vport": vm["interfaces"][0]["VPortID"], "vm": vm["ID"]} for vm in vms}
    return {
        "enterprise": enterprise, "enterprise_id": ent["ID"], "domain": domain, "domain_id": dom["ID"],
        "domain_template_id": tmpl["ID"], "route_target": dom.get("routeTarget"), "vni": dom.get("serviceID"),
        "zones": len(zones), "subnets": len(subnets), "policy_groups": len(pgs),
        "acl_entries": sum(len(a["entries"]) for a in acls.values()),
        "vports": sum(len(v) for v in vports.values()), "vms": len(vms),
        "subnet_ids": {t: s["ID"] for t, s in subnets.items()},
        "policy_group_ids": {t: p["ID"] for t, p in pg.items()},
        "acls": acls, "vport_ids": vports, "endpoints": endpoints,
    }
