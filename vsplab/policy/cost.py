"""What a policy costs each VRS in flows, predicted from the VSD objects and the placement by the
pipeline's own arithmetic (vsc/pipeline.md: the skeleton, per domain present on the host its conntrack
zone, tunnel classification and per subnet an ARP responder and a gateway echo, per local endpoint five
flows (+2 with non-IP), per remote endpoint of its domains one, and each ACL entry what
`vsc.acl.predicted_flows` says it expands to), then checked against what the compiler produced."""

from __future__ import annotations

from dataclasses import dataclass, field

from vsc.acl import non_ip_allowed, predicted_flows
from vsc.compiler import endpoints_by_domain, pipeline_flows
from vsplab.policy.compiled import Compiled

LOCAL_FLOWS, NON_IP_FLOWS = 5, 2


@dataclass
class HostCost:
    host: str
    predicted: int
    compiled: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.predicted == self.compiled

    def to_dict(self) -> dict:
        return {"host": self.host, "predicted": self.predicted, "compiled": self.compiled, "ok": self.ok,
                "parts": self.parts}


def predict(compiled: Compiled) -> list[HostCost]:
    view, locs = compiled.view, compiled.prog.locs
    by_domain = endpoints_by_domain(view, locs)
    acl_cost = {d: sum(predicted_flows(view, d).values()) for d in by_domain}
    out = []
    for h in compiled.state.hosts:
        host = locs.hosts[h.dpid]
        parts = {"skeleton": len(pipeline_flows(host)), "domain": 0, "subnets": 0, "acl": 0, "local endpoints": 0,
                 "remote endpoints": 0}
        for d, eps in by_domain.items():
            local = [e for e in eps if e.dpid == h.dpid]
            if not local:
                continue
            subnets = view.subnets_of_domain(d)
            parts["domain"] += 1 + (host.tunnel_ofport is not None)
            parts["subnets"] += len(subnets) + sum(s.gateway is not None for s in subnets)
            parts["acl"] += acl_cost[d]
            parts["local endpoints"] += len(local) * (LOCAL_FLOWS + NON_IP_FLOWS * non_ip_allowed(view, d))
            parts["remote endpoints"] += len({e.ip for e in eps if e.dpid != h.dpid})
        out.append(HostCost(h.name, sum(parts.values()), len(compiled.flows[h.name]), parts))
    return out
