"""The NFD8 workload with another number of tiers or rules (`--tiers`, `--acls`), built so that 3 tiers
and 7 ACLs give exactly `vsplab.workload.tree.nfd8` (a test holds the two to that).

The tiers form a chain, as web -> app -> db do: container g is in tier g mod T; the first tier takes
tcp/80 and tcp/443 from anywhere, each tier sends the next on its own port (8080, 8081, ...; the last
hop is tcp/5432) and takes that port from the previous one, every tier but the last takes tcp/7946
from itself, and the last talks tcp/5433 to itself. With the 4 rules of `all` every container is under
7 rules; `--acls` above 7 adds, per tier, "allow tcp/(10000+i) in from the same tier".
"""

from __future__ import annotations

from vsplab.workload.tree import Placement, Tree, _mac, vtep_of

NFD8_NAMES = ("web", "app", "db")


def tier_names(tiers: int) -> list[str]:
    return list(NFD8_NAMES) if tiers == 3 else [f"tier{k + 1}" for k in range(tiers)]


def hop_port(k: int, tiers: int) -> int:
    """The port tier k-1 sends tier k on."""
    return 5432 if k == tiers - 1 else 8080 + k - 1


def chain(n_hosts: int, per_host: int, tiers: int = 3, acls: int = 7) -> tuple[Tree, Placement]:
    if tiers < 2 or tiers > 250:
        raise ValueError(f"--tiers {tiers}: between 2 and 250")
    if acls < 7:
        raise ValueError(f"--acls {acls}: the NFD8 policy puts every container under 7 rules; more can be added")
    t, p = Tree(), Placement()
    ent = t.enterprise("nfd8")
    dom = t.domain(ent, "nfd8", 5001)
    names = tier_names(tiers)
    subs = [t.subnet(t.zone(dom, f"zone-{n}"), f"{n}", f"10.{k + 1}.0.0/16") for k, n in enumerate(names)]
    members: list[list[str]] = [[] for _ in names]
    for h in range(n_hosts):
        p.host(h + 1, vtep_of(h + 1))
    for g in range(n_hosts * per_host):
        h, slot, tier = g // per_host, g % per_host, g % tiers
        n = g // tiers + 2
        mac, ip = _mac(g + 1), f"10.{tier + 1}.{n >> 8}.{n & 0xFF}"
        vp = t.vport(subs[tier], dom, f"c{g}", mac, ip)
        members[tier].append(vp)
        p.port(h + 1, 10 + slot, vp, mac, ip)
    groups = [t.policy_group(dom, n, k + 1, members[k]) for k, n in enumerate(names)]
    every = t.policy_group(dom, "all", tiers + 1, [v for m in members for v in m])
    dns = t.macro_group(ent, "dns", [t.network(ent, "dns1", "10.0.0.53/32"), t.network(ent, "dns2", "10.0.0.54/32")])
    mgmt = t.network(ent, "mgmt", "192.168.100.0/24")
    tin, teg = t.template(dom, "ingress"), t.template(dom, "egress")
    pg, last = "POLICYGROUP", tiers - 1
    # Ingress = what the group sends ("out"), egress = what it receives ("in"); the order of creation
    # (and so every ID) is nfd8()'s for 3 tiers.
    t.entry(tin, "ingress", 10, location=(pg, every), network=("NETWORK_MACRO_GROUP", dns), protocol="17",
            dport="53", stateful=True)
    t.entry(teg, "egress", 10, location=(pg, every), network=("ENTERPRISE_NETWORK", mgmt), protocol="6",
            dport="22", stateful=True)
    t.entry(teg, "egress", 20, location=(pg, groups[0]), protocol="6", dport="80", stateful=True)
    t.entry(teg, "egress", 21, location=(pg, groups[0]), protocol="6", dport="443", stateful=True)
    ing, egr = 20, 22
    for k in range(tiers):
        if k > 0:
            t.entry(teg, "egress", egr, location=(pg, groups[k]), network=(pg, groups[k - 1]), protocol="6",
                    dport=str(hop_port(k, tiers)), stateful=True)
            egr += 1
        if k < last:
            t.entry(tin, "ingress", ing, location=(pg, groups[k]), network=(pg, groups[k + 1]), protocol="6",
                    dport=str(hop_port(k + 1, tiers)), stateful=True)
            ing += 1
            if k == 0:
                t.entry(teg, "egress", egr, location=(pg, groups[k]), network=(pg, groups[k]), protocol="6",
                        dport="7946", stateful=True)
                egr += 1
        else:
            t.entry(tin, "ingress", ing, location=(pg, groups[k]), network=(pg, groups[k]), protocol="6",
                    dport="5433", stateful=True)
            t.entry(teg, "egress", egr, location=(pg, groups[k]), network=(pg, groups[k]), protocol="6",
                    dport="5433", stateful=True)
            egr += 1
        if 0 < k < last:
            t.entry(teg, "egress", egr, location=(pg, groups[k]), network=(pg, groups[k]), protocol="6",
                    dport="7946", stateful=True)
            egr += 1
    for i in range(acls - 7):
        for k in range(tiers):
            t.entry(teg, "egress", 100 + i * tiers + k, location=(pg, groups[k]), network=(pg, groups[k]),
                    protocol="6", dport=str(10000 + i), stateful=True)
    t.entry(teg, "egress", 1000 + max(0, acls - 7) * tiers, action="DROP", location=(pg, every))
    t.entry(tin, "ingress", 1000, action="DROP", location=(pg, every))
    return t, p
