"""`vsd export` / `vsd import`: a whole enterprise as one YAML document, through the API.

The document nests the tree (domains > zones > subnets > vports) and refers to objects by name, never
by ID, so it can be loaded into another VSD (or the same one under a new enterprise name). Numbers the
VSD allocates (VNIs, route targets, policy-group numbers) are left out and allocated afresh on import;
endpoint addresses (VM interface MAC and IP) are kept. Users and groups are not exported: their
passwords cannot be read back."""

from __future__ import annotations

from vsd.client import VsdClient
from vsd.schema import ALLOCATED, DERIVED, SYSTEM_ATTRS

FORMAT = 1
_REFS = {"templateID", "locationID", "networkID", "VPortID"}
_NETWORK_KINDS = {"POLICYGROUP": "policygroups", "SUBNET": "subnets", "ZONE": "zones",
                  "ENTERPRISE_NETWORK": "enterprisenetworks", "NETWORK_MACRO_GROUP": "networkmacrogroups"}


def _attrs(kind: str, obj: dict) -> dict:
    drop = SYSTEM_ATTRS | DERIVED.get(kind, frozenset()) | ALLOCATED.get(kind, frozenset()) | _REFS
    return {k: v for k, v in obj.items() if v is not None and k not in drop and k != "interfaces"}


def export_enterprise(client: VsdClient, name: str) -> dict:
    found = client.list("enterprises", filter=f'name == "{name}"')
    if not found:
        raise SystemExit(f"no enterprise named {name!r}")
    ent = found[0]
    e = ent["ID"]
    names: dict[str, str] = {}  # ID -> name, for references inside the enterprise
    doc: dict = {"vsd_export": FORMAT, "enterprise": _attrs("enterprise", ent)}
    nets = client.list(f"enterprises/{e}/enterprisenetworks")
    names.update({n["ID"]: n["name"] for n in nets})
    doc["enterprisenetworks"] = [_attrs("enterprisenetwork", n) for n in nets]
    doc["networkmacrogroups"] = []
    for g in client.list(f"enterprises/{e}/networkmacrogroups"):
        names[g["ID"]] = g["name"]
        doc["networkmacrogroups"].append({**_attrs("networkmacrogroup", g), "members": [
            names[m["ID"]] for m in client.list(f"networkmacrogroups/{g['ID']}/enterprisenetworks")]})
    tmpls = client.list(f"enterprises/{e}/domaintemplates")
    names.update({t["ID"]: t["name"] for t in tmpls})
    doc["domaintemplates"] = [_attrs("domaintemplate", t) for t in tmpls]
    doc["domains"], vport_path = [], {}
    for d in client.list(f"enterprises/{e}/domains"):
        dd = {**_attrs("domain", d), "template": names[d["templateID"]], "zones": []}
        for z in client.list(f"domains/{d['ID']}/zones"):
            names[z["ID"]] = z["name"]
            zd = {**_attrs("zone", z), "subnets": []}
            for s in client.list(f"zones/{z['ID']}/subnets"):
                names[s["ID"]] = s["name"]
                vports = client.list(f"subnets/{s['ID']}/vports", page_size=5000)
                for v in vports:
                    vport_path[v["ID"]] = [d["name"], z["name"], s["name"], v["name"]]
                zd["subnets"].append({**_attrs("subnet", s), "vports": [_attrs("vport", v) for v in vports]})
            dd["zones"].append(zd)
        dd["policygroups"] = []
        for p in client.list(f"domains/{d['ID']}/policygroups"):
            names[p["ID"]] = p["name"]
            members = client.list(f"policygroups/{p['ID']}/vports", page_size=5000)
            dd["policygroups"].append({**_attrs("policygroup", p), "vports": [vport_path[m["ID"]][1:] for m in members]})
        for direction in ("ingress", "egress"):
            dd[f"{direction}acltemplates"] = []
            for t in client.list(f"domains/{d['ID']}/{direction}acltemplates"):
                if t.get("policyState") == "DRAFT":  # an open draft is not the enterprise's policy
                    continue
                entries = []
                for en in client.list(f"{direction}acltemplates/{t['ID']}/{direction}aclentrytemplates"):
                    entries.append({**_attrs(f"{direction}aclentrytemplate", en),
                                    "location": names.get(en.get("locationID")),
                                    "network": names.get(en.get("networkID"))})
                dd[f"{direction}acltemplates"].append({**_attrs(f"{direction}acltemplate", t), "entries": entries})
        doc["domains"].append(dd)
    doc["vms"] = []
    for vm in client.list(f"enterprises/{e}/vms", page_size=5000):
        doc["vms"].append({**_attrs("vm", vm), "interfaces": [
            {**_attrs("vminterface", i), "vport": vport_path[i["VPortID"]]} for i in vm.get("interfaces", [])]})
    return doc


def import_enterprise(client: VsdClient, doc: dict, name: str | None = None) -> dict[str, int]:
    if not isinstance(doc, dict) or doc.get("vsd_export") != FORMAT:
        raise SystemExit("not a `vsd export` document (vsd_export: 1 missing)")
    counts: dict[str, int] = {}

    def made(kind: str, objs):
        objs = objs if isinstance(objs, list) else [objs]
        counts[kind] = counts.get(kind, 0) + len(objs)
        return objs

    ent = made("enterprises", client.create("", "enterprises", {**doc["enterprise"],
                                                                  **({"name": name} if name else {})}))[0]
    e = ent["ID"]
    ids: dict[tuple, str] = {}
    if doc.get("enterprisenetworks"):
        for n in made("enterprisenetworks", client.create(f"enterprises/{e}", "enterprisenetworks",
                                                          doc["enterprisenetworks"])):
            ids[("enterprisenetworks", n["name"])] = n["ID"]
    for g in doc.get("networkmacrogroups", []):
        obj = made("networkmacrogroups", client.create(f"enterprises/{e}", "networkmacrogroups",
                                                       {k: v for k, v in g.items() if k != "members"}))[0]
        ids[("networkmacrogroups", g["name"])] = obj["ID"]
        client.assign(f"networkmacrogroups/{obj['ID']}/enterprisenetworks",
                      [ids[("enterprisenetworks", m)] for m in g.get("members", [])])
    for t in doc.get("domaintemplates", []):
        ids[("domaintemplates", t["name"])] = made("domaintemplates", client.create(
            f"enterprises/{e}", "domaintemplates", t))[0]["ID"]
    vport_ids: dict[tuple, str] = {}
    for d in doc.get("domains", []):
        body = {k: v for k, v in d.items() if not isinstance(v, list) and k != "template"}
        dom = made("domains", client.create(f"enterprises/{e}", "domains",
                                            {**body, "templateID": ids[("domaintemplates", d["template"])]}))[0]
        local = dict(ids)
        for z in d.get("zones", []):
            zone = made("zones", client.create(f"domains/{dom['ID']}", "zones",
                                               {k: v for k, v in z.items() if k != "subnets"}))[0]
            local[("zones", z["name"])] = zone["ID"]
            for s in z.get("subnets", []):
                sn = made("subnets", client.create(f"zones/{zone['ID']}", "subnets",
                                                   {k: v for k, v in s.items() if k != "vports"}))[0]
                local[("subnets", s["name"])] = sn["ID"]
                if s.get("vports"):
                    for v in made("vports", client.create(f"subnets/{sn['ID']}", "vports", s["vports"])):
                        vport_ids[(d["name"], z["name"], s["name"], v["name"])] = v["ID"]
        members = {}
        if d.get("policygroups"):
            pgs = made("policygroups", client.create(f"domains/{dom['ID']}", "policygroups", [
                {k: v for k, v in p.items() if k != "vports"} for p in d["policygroups"]]))
            for p, obj in zip(d["policygroups"], pgs, strict=True):
                local[("policygroups", p["name"])] = obj["ID"]
                members[obj["ID"]] = [vport_ids[(d["name"], *path)] for path in p.get("vports", [])]
        for direction in ("ingress", "egress"):
            for t in d.get(f"{direction}acltemplates", []):
                tmpl = made(f"{direction}acltemplates", client.create(
                    f"domains/{dom['ID']}", f"{direction}acltemplates", {k: v for k, v in t.items() if k != "entries"}))[0]
                entries = [{**{k: v for k, v in en.items() if k not in ("location", "network")},
                            "locationID": _ref(local, en.get("locationType"), en.get("location")),
                            "networkID": _ref(local, en.get("networkType"), en.get("network"))}
                           for en in t.get("entries", [])]
                if entries:
                    made(f"{direction}aclentrytemplates", client.create(
                        f"{direction}acltemplates/{tmpl['ID']}", f"{direction}aclentrytemplates", entries))
        for pg_id, vps in members.items():
            client.assign(f"policygroups/{pg_id}/vports", vps)
    vms = [{**{k: v for k, v in vm.items() if k != "interfaces"},
            "interfaces": [{**{k: v for k, v in i.items() if k != "vport"}, "VPortID": vport_ids[tuple(i["vport"])]}
                           for i in vm.get("interfaces", [])]} for vm in doc.get("vms", [])]
    if vms:
        made("vms", client.create("", "vms", vms))
    return counts


def _ref(ids: dict, kind: str | None, name: str | None) -> str | None:
    if not kind or kind == "ANY" or name is None:
        return None
    return ids[(_NETWORK_KINDS[kind], name)]
