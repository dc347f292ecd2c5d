"""Where each BGP speaker of a scenario listens, and what it should hear: pure, from the scenario.

Every speaker (a VSC's ExaBGP, a route reflector's bgpd) gets its own loopback address, 127.0.0.10,
.11, ... in the scenario's order, all on one port: Linux answers all of 127.0.0.0/8 on `lo`, so a sim
lab needs no root, and each speaker both listens on and connects from its own address, which is how
its peers tell it apart. The router ids of the scenario stay what the speakers call themselves (and
the first half of each VSC's route distinguishers); the addresses are only where they meet.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsc.process import BgpOptions
from vsplab.scenario.model import Scenario

FIRST_HOST = 10  # 127.0.0.2 and .3 are the speaker tests' (vsc/bgp/loopback.py); keep out of their way


@dataclass(frozen=True)
class BgpSpeaker:
    name: str
    asn: int
    router_id: str
    address: str  # where it listens and connects from
    reflector: bool = False


@dataclass(frozen=True)
class BgpPlan:
    speakers: dict[str, BgpSpeaker]  # by scenario name: controllers first, then route reflectors
    peerings: tuple[tuple[str, str], ...]
    port: int
    hold_time: int
    md5: str | None = None

    @classmethod
    def of(cls, scenario: Scenario, port: int = 179, first_host: int = FIRST_HOST) -> BgpPlan | None:
        """The plan of a checked scenario; None when it has no `bgp:` section."""
        if scenario.bgp is None:
            return None
        named = [(c.name, c.asn, c.router_id, False) for c in scenario.controllers]
        named += [(r.name, r.asn, r.router_id, True) for r in scenario.bgp.route_reflectors]
        if first_host + len(named) > 255:
            raise ValueError(f"{len(named)} BGP speakers do not fit 127.0.0.{first_host}-255")
        speakers = {name: BgpSpeaker(name, asn, rid, f"127.0.0.{first_host + i}", reflector)
                    for i, (name, asn, rid, reflector) in enumerate(named)}
        return cls(speakers, tuple(tuple(p) for p in scenario.bgp.peerings), port, scenario.bgp.hold_time,
                   scenario.bgp.md5)

    def addresses(self) -> list[str]:
        return [s.address for s in self.speakers.values()]

    def reflectors(self) -> list[BgpSpeaker]:
        return [s for s in self.speakers.values() if s.reflector]

    def peers_of(self, name: str) -> list[BgpSpeaker]:
        return [self.speakers[b if a == name else a] for a, b in self.peerings if name in (a, b)]

    def name_at(self, address: str) -> str:
        """The scenario's name for the speaker at `address` (the address itself if none is there)."""
        return next((s.name for s in self.speakers.values() if s.address == address), address)

    def vsc_options(self, name: str) -> BgpOptions:
        """`vsc run`'s BGP options for controller `name`."""
        me = self.speakers[name]
        return BgpOptions(asn=me.asn, router_id=me.router_id, listen=f"{me.address}:{self.port}",
                          peers=[f"{p.address}:{self.port}:{p.asn}" for p in self.peers_of(name)],
                          hold_time=self.hold_time, md5=self.md5)

    def routes_expected(self, name: str, endpoints: dict[str, int]) -> int:
        """How many routes controller `name` should hold from its peers once everyone has converged,
        counted per session as the VSC counts them, given each controller's local endpoints: a VSC
        sends its own endpoints (it passes on nothing it learned), a reflector everything it heard
        from its other peers (never a peer's own routes back over iBGP; over eBGP those come back and
        the VSC drops them as its own)."""
        total = 0
        for p in self.peers_of(name):
            if p.reflector:
                total += sum(endpoints.get(q.name, 0) for q in self.peers_of(p.name) if q.name != name)
            else:
                total += endpoints.get(p.name, 0)
        return total
