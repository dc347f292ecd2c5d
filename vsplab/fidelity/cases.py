"""Which traffic the fidelity check compares: every expectation of the scenario, plus a seeded random
sample of other container pairs, protocols and ports (the seed is printed, so a disagreement found
by one run can be replayed)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

PROTOCOLS = ("tcp", "udp", "icmp")


@dataclass(frozen=True)
class Case:
    src: str
    dst: str
    protocol: str
    port: int | None
    origin: str  # "expect" or "sample"
    expect: str | None = None  # the scenario's verdict, for expectations

    @property
    def label(self) -> str:
        port = f"/{self.port}" if self.port is not None else ""
        return f"{self.src} -> {self.dst} {self.protocol}{port}"

    def to_dict(self) -> dict:
        return asdict(self)


def scenario_ports(scenario) -> list[int]:
    """Ports the scenario talks about (expectations and single-port rules): the interesting ones."""
    ports = {x.port for x in scenario.expect if x.port}
    for ent in scenario.enterprises:
        for dom in ent.domains:
            for acl in (dom.ingress, dom.egress):
                for r in (acl.rules if acl else []):
                    if isinstance(r.port, int):
                        ports.add(r.port)
                    elif isinstance(r.port, str) and r.port.isdigit():
                        ports.add(int(r.port))
    return sorted(ports)


def build_cases(scenario, samples: int, seed: int) -> list[Case]:
    cases = [Case(x.from_, x.to, x.protocol, x.port, "expect", x.expect) for x in scenario.expect]
    seen = {(c.src, c.dst, c.protocol, c.port) for c in cases}
    rng = random.Random(seed)
    names = [c.name for c in scenario.containers]
    ports = scenario_ports(scenario) or [80]
    pairs = [(a, b) for a in names for b in names if a != b]
    tries = 0 if pairs else samples * 50  # fewer than two containers: nothing to sample
    while len(cases) < len(scenario.expect) + samples and tries < samples * 50:
        tries += 1
        src, dst = rng.choice(pairs)
        proto = rng.choice(PROTOCOLS)
        port = None
        if proto != "icmp":
            # half the time a port some rule names (where verdicts flip), else any unprivileged port
            port = rng.choice(ports) if rng.random() < 0.5 else rng.randint(1024, 65000)
        if (src, dst, proto, port) in seen:
            continue
        seen.add((src, dst, proto, port))
        cases.append(Case(src, dst, proto, port, "sample"))
    return cases
