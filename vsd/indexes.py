"""Network-level indexes kept beside the tree: VNIs in use, subnets per domain, addresses per subnet, MACs
per domain, policy-group numbers per domain, ACL priorities per template, and who refers to whom (so a
referenced object cannot be deleted from under its referrers)."""

from __future__ import annotations

import ipaddress

from vsd.tree import Obj

ACL_ENTRIES = ("ingressaclentrytemplate", "egressaclentrytemplate")


_INDEXED = frozenset({"domain", "subnet", "vminterface", "policygroup", "user", *ACL_ENTRIES})


def ip_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


class Indexes:
    def __init__(self) -> None:
        self.vnis: set[int] = set()
        self.subnets: dict[str, dict[str, tuple[int, int]]] = {}  # domain -> subnet ID -> (network, prefix len)
        self.ips: dict[str, dict[int, str]] = {}  # subnet -> address -> vminterface ID
        # subnet -> where to start looking for a free address: allocation stays O(1) as a subnet fills up
        self.ip_hint: dict[str, int] = {}
        self.macs: dict[tuple[str | None, str], str] = {}  # (domain, lower-case MAC) -> vminterface ID
        self.pgids: dict[str, dict[int, str]] = {}  # domain -> policyGroupID -> policy group ID
        self.priorities: dict[str, dict[int, str]] = {}  # ACL template -> priority -> entry ID
        self.refs: dict[str, set[str]] = {}  # referenced ID -> referrer IDs
        self.users: dict[tuple[str | None, str], str] = {}  # (enterprise, userName) -> user ID

    def _ref(self, target: str | None, referrer: str, add: bool) -> None:
        if not target:
            return
        if add:
            self.refs.setdefault(target, set()).add(referrer)
        else:
            s = self.refs.get(target)
            if s is not None:
                s.discard(referrer)
                if not s:
                    del self.refs[target]

    def _apply(self, obj: Obj, add: bool) -> None:
        d, kind = obj.data, obj.kind
        if kind not in _INDEXED:
            return
        if kind == "domain":
            self._ref(d.get("templateID"), obj.id, add)
            _set_member(self.vnis, d.get("serviceID"), add)
        elif kind == "subnet":
            _set_member(self.vnis, d.get("vnId"), add)
            net = ipaddress.IPv4Network(f"{d['address']}/{d['netmask']}")
            per = self.subnets.setdefault(obj.domain, {})
            if add:
                per[obj.id] = (int(net.network_address), net.prefixlen)
            else:
                per.pop(obj.id, None)
        elif kind == "vminterface":
            self._ref(d.get("VPortID"), obj.id, add)
            mac_key = (obj.domain, (d.get("MAC") or "").lower())
            ips = self.ips.setdefault(d.get("attachedNetworkID"), {})
            addr = ip_int(d["IPAddress"]) if d.get("IPAddress") else None
            subnet = d.get("attachedNetworkID")
            if add:
                self.macs[mac_key] = obj.id
                if addr is not None:
                    ips[addr] = obj.id
            else:
                if self.macs.get(mac_key) == obj.id:
                    del self.macs[mac_key]
                if addr is not None and ips.get(addr) == obj.id:
                    del ips[addr]
                    self.ip_hint[subnet] = min(self.ip_hint.get(subnet, addr), addr)
        elif kind == "policygroup":
            per = self.pgids.setdefault(obj.domain, {})
            if add:
                per[d["policyGroupID"]] = obj.id
            elif per.get(d["policyGroupID"]) == obj.id:
                del per[d["policyGroupID"]]
        elif kind in ACL_ENTRIES:
            per = self.priorities.setdefault(obj.parent, {})
            if add:
                per[d["priority"]] = obj.id
            elif per.get(d["priority"]) == obj.id:
                del per[d["priority"]]
            self._ref(d.get("locationID"), obj.id, add)
            self._ref(d.get("networkID"), obj.id, add)
        elif kind == "user":
            key = (obj.enterprise, d.get("userName"))
            if add:
                self.users[key] = obj.id
            elif self.users.get(key) == obj.id:
                del self.users[key]

    def index_add(self, obj: Obj) -> None:
        self._apply(obj, True)

    def index_remove(self, obj: Obj) -> None:
        self._apply(obj, False)

    def free_vni(self) -> int:
        # VNIs are 24 bits; start above the small numbers operators tend to reserve by hand
        v = 4096 + len(self.vnis)
        while v in self.vnis:
            v += 1
        if v >= 1 << 24:
            v = next(x for x in range(4096, 1 << 24) if x not in self.vnis)
        return v


def _set_member(s: set, value, add: bool) -> None:
    if value is None:
        return
    if add:
        s.add(value)
    else:
        s.discard(value)
