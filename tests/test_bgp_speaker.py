"""Two `Speaker`s, each with its real ExaBGP child, peered over loopback (127.0.0.2 and 127.0.0.3, no
root needed): routes advertised by one arrive decoded and equal at the other, withdrawals and
replacements too, over eBGP and iBGP; a killed ExaBGP is noticed by the peer, restarted, and the
routes come back. Times are printed (`pytest -s`); none is asserted beyond the protocol's own."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import pytest

from vsc.bgp.evpn import canonical_route
from vsc.bgp.exabgp_config import Peer, SpeakerConfig
from vsc.bgp.exabgp_json import parse_line
from vsc.bgp.loopback import loopback_pair, make_routes, throughput, transfer
from vsc.bgp.route import MacIpRoute
from vsc.bgp.speaker import Speaker

NAME = "vl-bgp-test"
A, B = "127.0.0.2", "127.0.0.3"


def _our_processes() -> list[int]:
    """Processes whose command line names a temp dir of these tests' speakers (ExaBGP, relays)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"/{NAME}-".encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test must leave no ExaBGP or relay behind; any that is left is killed, then reported."""
    yield
    deadline = time.monotonic() + 5
    while (left := _our_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"processes left behind: {left}"


def _routes(vtep: str, rd: str) -> list[MacIpRoute]:
    base = MacIpRoute(rd=rd, mac="02:00:0a:01:00:01", ip="10.1.0.1", vni=5001, next_hop=vtep,
                      route_targets=("65000:5001",), communities=("5001:3", "5001:7"))
    return [
        base,
        dataclasses.replace(base, mac="02:00:0A:01:00:02", ip="10.1.0.2", communities=("5001:4",)),
        dataclasses.replace(base, mac="02:00:0a:01:00:03", ip=None),  # MAC only
        dataclasses.replace(base, mac="02:00:0a:01:00:04", ip="2001:db8::4", vni=16000000,
                            route_targets=("65000:5002", "192.0.2.1:9", "4200000000:3"), communities=()),
        dataclasses.replace(base, rd="65001:77", mac="02:00:0a:01:00:05", ip="10.1.0.5", ethernet_tag=12),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("asn_a, asn_b", [(65001, 65002), (65000, 65000)], ids=["ebgp", "ibgp"])
def test_routes_arrive_equal_then_replaced_then_withdrawn(asn_a, asn_b):
    with loopback_pair(asn_a, asn_b, name=NAME) as (a, b):
        routes = _routes(A, f"{A}:5001")
        expected = {r.key: r for r in map(canonical_route, routes)}
        started = time.monotonic()
        a.speaker.advertise(routes)
        b.recorder.wait(lambda r: r.routes.get(A, {}) == expected, 10, "routes from A")
        print(f"\n{len(routes)} routes A->B in {time.monotonic() - started:.3f} s")
        assert b.speaker.received()[A] == expected
        assert a.speaker.sessions() == [{"peer": B, "asn": asn_b, "state": "up", "routes_received": 0,
                                         "routes_advertised": len(routes)}]
        assert b.speaker.sessions()[0]["routes_received"] == len(routes)

        a.speaker.advertise(routes)  # idempotent: nothing new to send
        moved = dataclasses.replace(routes[0], next_hop="127.0.0.9")
        a.speaker.advertise([moved])
        b.recorder.wait(lambda r: r.routes[A][moved.key].next_hop == "127.0.0.9", 10, "replaced route")
        assert len(b.recorder.held(A)) == len(routes)

        a.speaker.withdraw([routes[1].key, (routes[2].rd, routes[2].mac.upper(), None)])
        b.recorder.wait(lambda r: len(r.routes[A]) == len(routes) - 2, 10, "withdrawals")
        assert set(b.speaker.received()[A]) == {routes[0].key, routes[3].key, routes[4].key}

        # the other way round, over the same session
        back = make_routes(3, B, f"{B}:5001", start=100)
        transfer(b, a, back, timeout=10)
        assert a.speaker.received()[B] == {r.key: canonical_route(r) for r in back}


@pytest.mark.slow
def test_tcp_md5():
    with loopback_pair(name=NAME, md5=("s3cret", "s3cret")) as (a, b):
        transfer(a, b, make_routes(3, A, f"{A}:5001"), timeout=10)
    with pytest.raises(TimeoutError, match="up"):
        with loopback_pair(name=NAME, md5=("s3cret", "other"), timeout=4):
            pass


@pytest.mark.slow
def test_own_routes_are_ignored():
    with loopback_pair(name=NAME) as (a, b):
        # B advertises a route under A's RD: to A it is its own route come back, and ignored.
        echo = make_routes(1, B, f"{A}:5001")
        foreign = make_routes(1, B, f"{B}:5001", start=1)
        b.speaker.advertise(echo + foreign)
        a.recorder.wait(lambda r: foreign[0].key in r.routes.get(B, {}), 10, "B's own route")
        time.sleep(0.3)
        assert list(a.speaker.received()[B]) == [foreign[0].key]


def test_as_path_loop_is_ignored_and_withdraws_what_it_replaces():
    """An eBGP peer reflecting our route back (AS path holds our ASN, as FRR does): read from the
    JSON ExaBGP writes, no processes needed."""
    seen = []
    speaker = Speaker(SpeakerConfig(router_id=A, local_as=65001, listen_address=A, peers=[Peer(B, 65002)]),
                      on_routes=lambda peer, announced, withdrawn: seen.append((announced, withdrawn)))
    nlri = "02250001c0a84d01138900000000000000000000000000003002000a010001200a010001001389"

    def update(path: list[int]) -> str:
        return json.dumps({"type": "update", "neighbor": {
            "address": {"peer": B}, "direction": "receive", "message": {"update": {
                "attribute": {"as-path": {"0": {"element": "as-sequence", "value": path}}},
                "announce": {"l2vpn evpn": {"192.168.77.1": [{"code": 2, "raw": nlri}]}}}}}})

    def receive(line: str) -> None:
        speaker._received_update(parse_line(line))
        speaker._callbacks.put(None)
        speaker._deliver()  # the callbacks, here rather than on the speaker's thread

    speaker._peers[B].state = "up"
    receive(update([65002]))
    ((announced, withdrawn),) = seen
    assert [r.rd for r in announced] == ["192.168.77.1:5001"] and withdrawn == []
    receive(update([65002, 65001]))
    assert seen[1] == ([], [announced[0].key])
    assert speaker.received()[B] == {}


@pytest.mark.slow
def test_killed_exabgp_is_noticed_restarted_and_routes_come_back():
    hold = 3
    with loopback_pair(hold_time=hold, name=NAME) as (a, b):
        ours, theirs = make_routes(50, A, f"{A}:5001"), make_routes(40, B, f"{B}:5001", start=1000)
        transfer(a, b, ours, timeout=10)
        transfer(b, a, theirs, timeout=10)

        victim = a.speaker.exabgp_pid
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        gone = b.recorder.wait(lambda r: not r.routes.get(A), hold + 2, "B reporting A's routes withdrawn")
        assert gone <= hold, f"withdrawn after {gone:.2f} s, beyond the hold time"
        a.recorder.wait(lambda r: not r.routes.get(B), 5, "A reporting B's routes withdrawn")
        a.recorder.wait_session(B, "up", 30, since=killed)
        back_at_b = b.recorder.wait(lambda r: len(r.routes.get(A, {})) == len(ours), 30, "A's routes again")
        back_at_a = a.recorder.wait(lambda r: len(r.routes.get(B, {})) == len(theirs), 30, "B's routes again")
        since_kill = time.monotonic() - killed
        assert a.speaker.exabgp_pid not in (None, victim) and a.speaker.restarts == 1
        assert b.recorder.held(A) == {r.key: canonical_route(r) for r in ours}
        assert a.speaker.received()[B] == {r.key: canonical_route(r) for r in theirs}
        print(f"\nExaBGP killed: B saw A's routes withdrawn after {gone:.2f} s (hold {hold} s); "
              f"everything back {since_kill:.2f} s after the kill (B had A's again {back_at_b:.2f} s, "
              f"A had B's {back_at_a:.2f} s after that)")


@pytest.mark.slow
def test_frozen_exabgp_hold_timer_then_session_reset_readvertises():
    """A frozen ExaBGP (SIGSTOP: the TCP session stays open) is detected by the peer's hold timer;
    once thawed, its session resets and comes back, and ExaBGP, which forgot the routes, gets them
    all again from the speaker."""
    hold = 3
    with loopback_pair(hold_time=hold, name=NAME) as (a, b):
        ours = make_routes(30, A, f"{A}:5001")
        transfer(a, b, ours, timeout=10)
        frozen = a.speaker.exabgp_pid
        os.kill(frozen, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            gone = b.recorder.wait(lambda r: not r.routes.get(A), hold + 3, "B's hold timer")
        finally:
            os.kill(frozen, signal.SIGCONT)
        thawed = time.monotonic()
        back = b.recorder.wait(lambda r: len(r.routes.get(A, {})) == len(ours), 30, "A's routes again")
        assert a.speaker.exabgp_pid == frozen and a.speaker.restarts == 0  # the same ExaBGP
        assert b.recorder.held(A) == {r.key: canonical_route(r) for r in ours}
        print(f"\nExaBGP frozen: B withdrew A's routes {gone:.2f} s later (hold {hold} s); "
              f"{thawed - stopped:.2f} s frozen; routes back {back:.2f} s after the thaw")
        assert hold - 1 <= gone <= hold + 2.5  # ExaBGP checks its timers about once a second


@pytest.mark.slow
def test_two_peers_share_commands_and_a_late_peer_gets_the_whole_table():
    """A peers with B and C. While only B is up, A's changes go to B alone; once C comes up it is
    sent A's whole table, withdrawals already applied; afterwards one command serves both."""
    from vsc.bgp.loopback import Recorder, free_port

    addresses = {"a": A, "b": B, "c": "127.0.0.4"}
    asns = {"a": 65001, "b": 65002, "c": 65003}
    port = free_port(*addresses.values())
    sides: dict[str, tuple[Speaker, Recorder]] = {}

    def start(me: str, peers: list[str]) -> None:
        recorder = Recorder()
        config = SpeakerConfig(router_id=addresses[me], local_as=asns[me], listen_address=addresses[me],
                               listen_port=port, name=NAME,
                               peers=[Peer(addresses[p], asns[p], port=port, hold_time=3) for p in peers])
        speaker = Speaker(config, recorder.on_routes, recorder.on_session)
        sides[me] = (speaker, recorder)
        speaker.start()

    try:
        start("a", ["b", "c"])
        start("b", ["a"])
        (a, a_seen), b_seen = sides["a"], sides["b"][1]
        a_seen.wait_session(B, "up", 30)
        routes = make_routes(20, A, f"{A}:5001")
        a.advertise(routes)
        a.withdraw([routes[0].key])
        b_seen.wait(lambda r: len(r.routes.get(A, {})) == 19, 10, "B holding A's routes")
        assert {s["peer"]: s["routes_advertised"] for s in a.sessions()} == {B: 19, "127.0.0.4": 0}

        start("c", ["a"])
        c, c_seen = sides["c"]
        c_seen.wait(lambda r: len(r.routes.get(A, {})) == 19, 30, "C given A's table on coming up")
        assert routes[0].key not in c.received()[A]

        commands = a.commands_sent
        a.advertise(make_routes(5, A, f"{A}:5001", start=100))
        for seen in (b_seen, c_seen):
            seen.wait(lambda r: len(r.routes.get(A, {})) == 24, 10, "the next routes at both peers")
        assert a.commands_sent == commands + 1  # `neighbor B , neighbor C announce ...`
        assert a.refused_commands == 0
    finally:
        for speaker, _ in sides.values():
            speaker.stop()


@pytest.mark.slow
def test_one_carrier_prefix_for_every_batch_loses_nothing():
    """ExaBGP queues routes by prefix; with a single carrier prefix reused by every batch, batches
    with different attributes still all arrive (ExaBGP keeps one queue bucket per attribute set).
    The speaker rotates carriers anyway (vsc/bgp/announce.py says why)."""
    with loopback_pair(name=NAME, carrier_prefix="100.64.0.9/32") as (a, b):
        routes = [dataclasses.replace(r, communities=(f"5001:{n}",))
                  for n, r in enumerate(make_routes(60, A, f"{A}:5001"))]
        for route in routes:  # one call each: the writer sends whatever has piled up, in many batches
            a.speaker.advertise([route])
        b.recorder.wait(lambda r: len(r.routes.get(A, {})) == len(routes), 10, "every batch")
        assert b.recorder.held(A) == {r.key: canonical_route(r) for r in routes}


@pytest.mark.slow
def test_throughput_unit():
    """benchmarks/bgp.py's measurement, small: every route arrives, each way; the rate is printed."""
    result = throughput(2000, name=NAME)
    print(f"\n2000 routes: {result['a_to_b']['routes_per_s']} routes/s A->B, "
          f"{result['b_to_a']['routes_per_s']} routes/s B->A; CPU {result['a_to_b']['cpu_s']}")


def test_start_failure_is_a_clear_error():
    # ExaBGP cannot bind an address this machine does not have: it exits, and start says so.
    config = SpeakerConfig(router_id="192.0.2.77", local_as=65001, listen_address="192.0.2.77",
                           listen_port=1790, peers=[Peer("192.0.2.78", 65002)], name=NAME)
    speaker = Speaker(config, on_routes=lambda *_: None)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with 1 before connecting its API relay(.|\n)*can not bind"):
        speaker.start(timeout=10)
    assert time.monotonic() - started < 5  # told at once, not after the timeout
