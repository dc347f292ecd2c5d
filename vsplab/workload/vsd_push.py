"""Create a `vsplab.workload.tree.Tree` in a VSD through its REST API, in bulk where the API allows it (one
POST per kind and parent, one PUT per membership list), and report the VSD's IDs. Used by the
whole-control-plane benchmark and the VSD integration tests."""

from __future__ import annotations

from vsplab.workload.tree import Placement, Tree

# Creation order: every object's parent (and every ID an entry names) exists before it.
_ORDER = ["enterprise", "enterprisenetwork", "networkmacrogroup", "domain", "zone", "subnet", "policygroup",
          "ingressacltemplate", "egressacltemplate", "ingressaclentrytemplate", "egressaclentrytemplate",
          "vport", "vminterface"]
_COPY = {
    "enterprise": ("name",), "enterprisenetwork": ("name", "address", "netmask"), "networkmacrogroup": ("name",),
    "zone": ("name",), "subnet": ("name", "address", "netmask", "gateway"), "policygroup": ("name", "type"),
    "ingressacltemplate": ("name", "active", "defaultAllowIP", "defaultAllowNonIP", "priority", "priorityType"),
    "egressacltemplate": ("name", "active", "defaultAllowIP", "defaultAllowNonIP", "priority", "priorityType"),
}


def push(client, tree: Tree) -> dict[str, str]:
    """Returns the tree's IDs -> the VSD's IDs."""
    ids: dict[str, str] = {}
    by_kind: dict[str, list[dict]] = {}
    for o in tree.objects:
        by_kind.setdefault(o["entityType"], []).append(o)
    for kind in _ORDER:
        groups: dict[str, list[dict]] = {}
        for o in by_kind.get(kind, ()):
            # VM interfaces are created with their VMs, all in one bulk POST /vms: their own
            # parents (one VM each) do not exist yet, so they must not split the batch
            parent = "" if kind == "vminterface" else o["entity"].get("parentID", "")
            groups.setdefault(parent, []).append(o)
        for parent, objs in groups.items():
            created = _create(client, kind, ids.get(parent, ""), objs, ids)
            for o, c in zip(objs, created, strict=True):
                ids[o["entity"]["ID"]] = c["ID"]
    for o in tree.objects:  # memberships, once every member exists
        if o["entityType"] == "policygroup":
            client.assign(f"policygroups/{ids[o['entity']['ID']]}/vports", [ids[v] for v in o["assoc"]["vport"]])
        elif o["entityType"] == "networkmacrogroup":
            client.assign(f"networkmacrogroups/{ids[o['entity']['ID']]}/enterprisenetworks",
                          [ids[n] for n in o["assoc"]["enterprisenetwork"]])
    return ids


def _create(client, kind: str, parent: str, objs: list[dict], ids: dict[str, str]) -> list[dict]:
    ents = [o["entity"] for o in objs]
    if kind == "enterprise":
        return [client.create("", "enterprises", {"name": e["name"]}) for e in ents]
    if kind == "domain":
        out = []
        for e in ents:
            tmpl = client.create(f"enterprises/{parent}", "domaintemplates", {"name": f"{e['name']}-template"})
            out.append(client.create(f"enterprises/{parent}", "domains", {"name": e["name"], "templateID": tmpl["ID"]}))
        return out
    if kind == "vport":
        return client.create(f"subnets/{parent}", "vports", [
            {"name": e["name"], "type": "CONTAINER", "addressSpoofing": "INHERITED"} for e in ents])
    if kind == "vminterface":
        vms = client.create("", "vms", [{"name": e["name"], "UUID": ids[e["VPortID"]], "interfaces": [
            {"name": "eth0", "MAC": e["MAC"], "IPAddress": e["IPAddress"], "VPortID": ids[e["VPortID"]]}]}
            for e in ents])
        return [{"ID": vm["ID"]} for vm in vms]
    if kind.endswith("aclentrytemplate"):
        rows = []
        for e in ents:
            row = {k: v for k, v in e.items() if k not in ("ID", "parentID", "parentType")}
            for ref in ("locationID", "networkID"):
                if row.get(ref):
                    row[ref] = ids[row[ref]]
            rows.append(row)
        return client.create(f"{kind[:-len('entrytemplate')]}templates/{parent}", f"{kind}s", rows)
    parent_type = objs[0]["entity"].get("parentType")
    path = f"{parent_type}s/{parent}" if parent_type else ""
    return client.create(path, f"{kind}s", [{k: e[k] for k in _COPY[kind] if k in e} for e in ents])


def relabel(tree: Tree, placement: Placement, ids: dict[str, str]) -> None:
    """Rewrite the tree and placement to the VSD's IDs (what the VSC and the VRSs will see)."""
    for o in tree.objects:
        e = o["entity"]
        for ref in ("ID", "parentID", "VPortID", "locationID", "networkID"):
            if e.get(ref) in ids:
                e[ref] = ids[e[ref]]
        o["assoc"] = {k: [ids[i] for i in v] for k, v in o["assoc"].items()}
    for msgs in placement.hosts.values():
        for m in msgs:
            if m.get("vport_id"):
                m["vport_id"] = ids[m["vport_id"]]
