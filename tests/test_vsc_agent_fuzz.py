"""The agent channel under random and near-valid input (bounded, seeded): the VSC answers, keeps every
session that may go on, and keeps serving the VRSs that proved who they are - their flows untouched,
new containers still programmed.

In process, many thousands of messages go through `Vsc.on_agent` on sessions of their own: each is
applied or refused with an AgentError, nothing else. Over TCP, a few hundred sessions send random
bytes, JSON that is not an object, overlong lines and mutated messages to a VSC serving two enrolled
simulated VRSs."""

from __future__ import annotations

import json
import random
import socket
import time

import pytest

from vrs.agent.identity import prove
from vrs.sim.host import Container
from vrs.sim.runtime import SimRuntime
from vsc.core import Vsc
from vsc.locations import AgentError
from vsc.process import VscProcess
from vsplab.lab.ports import free_port
from vsplab.workload.tree import nfd8

SEED = 20261130
ODD_VALUES = [None, True, False, 0, -1, 1, 2 ** 63, 2 ** 64, 2 ** 70, -(2 ** 70), 1.5, float("inf"), "", "x", "1",
              "0x10", "02:00:00:00:00:01", "10.0.0.1", "300.1.1.1", "::1", "a" * 300, "é\u202e\0", [], [1], {},
              {"a": 1}, "aa:bb:cc:dd:ee:ff:00", "192.0.2.1/24"]
FIELDS = ["op", "datapath_id", "vtep_ip", "name", "ofport", "vport_id", "mac", "ip", "dp_desc", "proof"]


def valid_message(rng: random.Random, dpid: int, vports: list[str]) -> dict:
    op = rng.choice(["hello", "openflow", "tunnel", "port-up", "port-down"])
    if op == "hello":
        return {"op": op, "datapath_id": dpid, "name": f"f{dpid}", "vtep_ip": f"10.99.{dpid % 250}.{rng.randint(1, 250)}"}
    if op == "openflow":
        return {"op": op, "datapath_id": dpid, "dp_desc": f"vsplab-of-{rng.getrandbits(128):032x}"}
    if op == "tunnel":
        return {"op": op, "datapath_id": dpid, "ofport": rng.randint(1, 5)}
    if op == "port-down":
        return {"op": op, "datapath_id": dpid, "ofport": rng.randint(1, 40), "name": "p"}
    return {"op": op, "datapath_id": dpid, "ofport": rng.randint(1, 40), "name": f"p{rng.randint(0, 9)}",
            "vport_id": rng.choice([*vports, None, f"v-{rng.randint(0, 99)}"]),
            "mac": f"02:00:00:00:{rng.randint(0, 255):02x}:{rng.randint(0, 255):02x}", "ip": f"10.1.0.{rng.randint(1, 250)}"}


def mutate(rng: random.Random, msg: dict) -> dict:
    """A near-valid message: a field dropped, changed to an odd value, or added."""
    msg = dict(msg)
    for _ in range(rng.randint(1, 3)):
        what = rng.random()
        if what < 0.3 and msg:
            msg.pop(rng.choice(list(msg)))
        elif what < 0.9:
            msg[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
        else:
            msg[f"extra{rng.randint(0, 9)}"] = rng.choice(ODD_VALUES)
    return msg


def line(rng: random.Random, dpid: int, vports: list[str]) -> bytes:
    """One line an agent might send: mostly near-valid messages, some valid, some garbage."""
    kind = rng.random()
    if kind < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))).replace(b"\n", b" ")
    if kind < 0.2:
        return json.dumps(rng.choice([[1, 2], "text", 3, None, [{"op": "hello"}], {"op": []}])).encode()
    msg = valid_message(rng, dpid if rng.random() < 0.8 else rng.choice([1, 2, dpid + 1]), vports)
    if kind < 0.85:
        msg = mutate(rng, msg)
    return json.dumps(msg, allow_nan=True).encode()


def test_every_message_is_applied_or_refused_in_process(tmp_path):
    tree, placement = nfd8(n_hosts=2, per_host=3)
    core = Vsc(tmp_path)
    core.on_stream({"kind": "snapshot", "revision": 1, "objects": tree.objects})
    for dpid, msgs in placement.hosts.items():  # two enrolled VRSs, each on its proven session
        secret = core.sessions.enrolment.issue(dpid)
        session = core.sessions.open(f"vrs-{dpid}")
        assert core.on_agent(prove(msgs[0], secret, session.nonce), session) is None
        for m in msgs[1:]:
            assert core.on_agent(m, session) is None
    vports = [m["vport_id"] for m in placement.messages() if m["op"] == "port-up"]
    rng = random.Random(SEED)
    outcomes = {"applied": 0, "refused": 0}
    for i in range(300):
        session = core.sessions.open(f"fuzz-{i}")
        dpid = 100 + i
        if rng.random() < 0.7:
            core.on_agent({"op": "hello", "datapath_id": dpid, "name": "f", "vtep_ip": "10.99.0.1"}, session)
        for _ in range(60):
            try:
                msg = json.loads(line(rng, dpid, vports))
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            result = core.on_agent(msg, session)  # anything but an AgentError escaping fails the test
            assert result is None or isinstance(result, AgentError)
            outcomes["applied" if result is None else "refused"] += 1
        core.sessions.close(session)
    assert outcomes["applied"] > 1000 and outcomes["refused"] > 1000, outcomes
    # the VRSs nobody impersonated still hold every endpoint where they reported it
    for m in placement.messages():
        if m["op"] == "port-up":
            assert core.locs.by_vport[m["vport_id"]] == (m["datapath_id"], m["ofport"])


@pytest.mark.slow
def test_the_vsc_keeps_serving_under_agent_channel_fuzz(tmp_path):
    tree, placement = nfd8(n_hosts=2, per_host=3)
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"revision": 1, "objects": tree.objects}))
    names = {o["entity"]["ID"]: o["entity"]["name"] for o in tree.objects if o["entityType"] == "vport"}
    of, agent = free_port(), free_port()
    log = tmp_path / "vsc.log"
    vsc = VscProcess(view_file=view, of_port=of, agent_port=agent, status_port=free_port(),
                     state_dir=tmp_path / "state", log_file=log)
    rt = SimRuntime(controller=None, agent=None)
    vsc.start()
    rt.run_in_thread()
    try:
        for dpid, msgs in placement.hosts.items():
            secret = vsc.enrol(dpid, vtep_ip=msgs[0]["vtep_ip"])
            conts = [Container(f"vl-{names[m['vport_id']]}", m["mac"], m["ip"], m["vport_id"], m["ofport"])
                     for m in msgs if m["op"] == "port-up"]
            rt.call(rt.add_host_now, msgs[0]["name"], dpid, msgs[0]["vtep_ip"], conts, ("127.0.0.1", of),
                    ("127.0.0.1", agent), secret)
        vsc.wait_converged(30, datapaths=2, endpoints=6)

        def grab():
            return {n: {r.flow(t).canonical().key: (r.cookie, r.created) for t, r in h.switch.flows()}
                    for n, h in rt.hosts.items()}

        before = rt.call(grab)
        vports = [m["vport_id"] for m in placement.messages() if m["op"] == "port-up"]
        rng = random.Random(SEED)
        sent = 0
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", agent), timeout=10)
            dpid = 1000 + i
            lines = [line(rng, dpid, vports) for _ in range(rng.randint(1, 25))]
            if rng.random() < 0.7:
                lines.insert(0, json.dumps({"op": "hello", "datapath_id": dpid, "name": "f",
                                            "vtep_ip": "10.99.0.1"}).encode())
            if i % 50 == 0:
                lines.append(b"{" * 70_000)  # longer than a line may be
            try:
                sock.sendall(b"".join(x + b"\n" for x in lines))
                if rng.random() < 0.5:  # read the answers to the end, or hang up at once
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):
                        pass
            except OSError:
                pass  # the VSC ended the session (a refusal, an overlong line)
            finally:
                sock.close()
            sent += len(lines)
        assert sent > 2000
        time.sleep(1.0)
        st = vsc.status()  # still answering
        for dpid in placement.hosts:
            d = st["datapaths"][str(dpid)]
            assert d["connected"] and d["synced"] and d["verified"] and not d["pending"], d
        assert st["endpoints"] >= 6
        assert rt.call(grab) == before
        # and still serving: a container leaving host 2 takes its flows off host 1
        host1, host2 = (placement.hosts[d][0]["name"] for d in (1, 2))
        m = [x for x in placement.hosts[2] if x["op"] == "port-up"][0]
        rt.remove_port(host2, f"vl-{names[m['vport_id']]}")
        end = time.monotonic() + 15
        while len(rt.call(grab)[host1]) >= len(before[host1]):
            assert time.monotonic() < end, "the VSC stopped programming its VRSs"
            time.sleep(0.1)
        errors = [x for x in log.read_text(errors="replace").splitlines() if " ERROR " in x]
        assert len(errors) < 200, f"{len(errors)} ERROR lines for {sent} fuzz lines: not rate-limited"
        assert vsc.proc.poll() is None
    finally:
        rt.stop()
        vsc.stop()
