"""A VSC's BGP configuration and its `Peering` (vsc/bgp/peering.py) with a recording stand-in for the
ExaBGP speaker: syncs wait for the peers' routes, our routes are handed over in order and again after
a refusal, and `/status` counts sessions and routes into convergence. Over real ExaBGP:
tests/test_vsc_federation.py."""

from __future__ import annotations

import pytest

import vsc.core as core_mod
from tests.test_vsc_core import Wire
from tests.test_vsc_federation_units import RID_A, RID_B, Side, table20
from vrs.sim.fabric import SimFabric
from vrs.sim.host import SimVrs
from vsc.core import Vsc
from vsplab.workload.tree import nfd8


def test_bgp_options_on_the_command_line():
    from vsc.cli import _parser, bgp_config
    from vsc.process import BgpOptions

    def parse(*argv):
        return bgp_config(_parser().parse_args(["run", *argv]))

    assert parse() is None  # no BGP option: no speaker
    opts = BgpOptions(65001, "127.0.0.2", "127.0.0.2:1790", ["127.0.0.3:1791:65002", "192.0.2.9:65000"],
                      hold_time=3, md5="s3cret")
    c = parse(*opts.argv())
    assert (c.router_id, c.local_as, c.listen_address, c.listen_port) == ("127.0.0.2", 65001, "127.0.0.2", 1790)
    assert [(p.address, p.port, p.asn, p.hold_time, p.md5) for p in c.peers] == [
        ("127.0.0.3", 1791, 65002, 3, "s3cret"), ("192.0.2.9", 179, 65000, 3, "s3cret")]
    assert c.rd_is_own("127.0.0.2:5001") and not c.rd_is_own("127.0.0.3:5001")
    assert parse("--bgp-asn", "1", "--router-id", "10.0.0.1").listen_port == 179
    for argv, says in ((["--bgp-peer", "10.0.0.2:65000"], "--bgp-asn and --router-id"),
                       (["--bgp-asn", "1", "--router-id", "10.0.0.1", "--bgp-peer", "10.0.0.2"], "ADDR"),
                       (["--bgp-asn", "1", "--router-id", "10.0.0.1", "--bgp-peer", "10.0.0.2:x:1"], "port"),
                       (["--bgp-asn", "1", "--router-id", "nope"], "BGP options")):
        with pytest.raises(ValueError, match=says):
            parse(*argv)


class RecordingSpeaker:
    """Stands in for vsc.bgp.speaker.Speaker (same calls): records what the VSC hands it, and lets the
    test play the peer's side through the callbacks."""

    def __init__(self, config, on_routes, on_session=None) -> None:
        self.config, self.on_routes, self.on_session = config, on_routes, on_session
        self.calls: list[tuple[str, list]] = []
        self.state, self.refuse, self.received = "idle", 0, set()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def advertise(self, routes) -> None:
        self._take("advertise", list(routes))

    def withdraw(self, keys) -> None:
        self._take("withdraw", list(keys))

    def _take(self, op: str, items: list) -> None:
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("not now")
        self.calls.append((op, items))

    def deliver(self, peer: str, announced: list, withdrawn: list) -> None:
        self.received |= {r.key for r in announced}
        self.received -= set(withdrawn)
        self.on_routes(peer, announced, withdrawn)

    def sessions(self) -> list[dict]:
        return [{"peer": p.address, "asn": p.asn, "state": self.state, "routes_received": len(self.received),
                 "routes_advertised": 0} for p in self.config.peers]


def test_peering_waits_for_the_peers_routes_before_syncing_and_hands_routes_over_in_order(monkeypatch):
    from vsc.bgp import peering as peering_mod
    from vsc.bgp.peering import Peering
    from vsc.cli import _parser, bgp_config

    monkeypatch.setattr(core_mod, "AGENT_SETTLE", 0.0)
    monkeypatch.setattr(peering_mod, "SETTLE", 0.0)
    tree, placement = nfd8(n_hosts=4, per_host=3)
    fabric = SimFabric()
    b = Side(tree, placement, [3, 4], fabric, RID_B)
    core = Vsc()
    core.on_stream({"kind": "snapshot", "revision": 1, "objects": tree.objects})
    config = bgp_config(_parser().parse_args(["run", "--bgp-asn", "65001", "--router-id", RID_A,
                                              "--bgp-peer", "192.0.2.2:65002"]))
    peering = Peering(core, config, speaker_factory=RecordingSpeaker)
    peering._run = lambda: None  # the test hands over itself, in step
    peering.start()
    speaker = peering.speaker
    vrs = SimVrs("vl-vrs1", 1, "192.168.77.1", [], controller=None, agent=None)
    fabric.add(vrs.switch)
    w = Wire(core, 1, 0)
    w.switch = vrs.switch
    core.datapath_up(1, w.send)
    for m in placement.hosts[1]:
        core.on_agent(m)
    for _ in range(3):
        core.flush()
    assert not core.links[1].synced and not core.status()["converged"]  # the peer's routes are not in
    speaker.state = "up"
    speaker.on_session("192.0.2.2", "up")
    ann, _ = b.core.prog.fed.take_adverts()
    speaker.deliver("192.0.2.2", ann, [])
    for _ in range(3):
        core.flush()
    assert core.links[1].synced and core.links[1].sync_ops[2] == 0
    assert len(table20(vrs.switch)) == 6  # B's six, in the first sync
    # Ours: handed over once; a refused batch is kept and handed again, in order.
    peering.hand_over()
    assert [(op, len(items)) for op, items in speaker.calls] == [("advertise", 3)]
    core.on_agent({"op": "port-down", "datapath_id": 1, "ofport": placement.hosts[1][2]["ofport"]})
    core.flush()
    speaker.refuse = 1
    peering.hand_over()
    assert len(speaker.calls) == 1 and peering.status()["pending"] == 1
    peering.hand_over()
    assert speaker.calls[1][0] == "withdraw" and len(speaker.calls[1][1]) == 1
    st = core.status()
    assert st["converged"] and st["bgp"]["advertised"] == 2 and st["bgp"]["imported"] == 6
    extra = ("192.0.2.2:5001", "02:00:00:00:00:99", "10.9.9.9")
    speaker.received.add(extra)  # received, not yet handed on
    assert not core.status()["converged"]
    speaker.received.discard(extra)
    speaker.state = "down"
    assert core.status()["bgp"]["sessions_down"] == ["192.0.2.2"] and not core.status()["converged"]
