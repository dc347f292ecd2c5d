"""Who the VSC takes for a VRS (vsc/identity.py, vsc/links.py, vsc/enrolment.py): a second OpenFlow
connection claiming a connected datapath is refused and changes nothing; an agent that proves nothing
moves no endpoint of a VRS that proved its secret; a bad field is answered and the session goes on;
a silent OpenFlow connection is closed; a switch repeating errors logs a few lines, not one each.

The process tests run a VSD, a VSC subprocess and simulated VRSs over TCP, with raw OpenFlow and
agent-channel peers as the impostors."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from openflow import consts as C
from openflow import encode
from tests.of_peers import Peer, connect_switch
from vrs.agent.identity import prove
from vrs.sim.host import Container
from vrs.sim.runtime import SimRuntime
from vsc.cli import main as vsc_main
from vsc.enrolment import Enrolment, read_secret
from vsc.identity import NOBODY
from vsc.links import DESC_ASKS, DESC_RETRY, Link, Links
from vsc.pipeline import Kind, cookie
from vsc.process import VscProcess
from vsplab.lab.ports import free_port
from vsplab.workload.tree import nfd8

# --- the admission rules alone ---------------------------------------------------------------------


class Conn:
    """What a Link needs of a connection: sent bytes recorded, close counted."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = 0

    def send(self, buf: bytes) -> None:
        self.sent.append(buf)

    def close(self) -> None:
        self.closed += 1

    def desc_xid(self) -> int:
        asks = [m for m in self.sent if m[1] == C.OFPT_MULTIPART_REQUEST]
        return int.from_bytes(asks[-1][4:8], "big")


def gate() -> tuple[Links, list[str]]:
    reported: list[str] = []
    return Links(lambda dpid: None, reported.append), reported


def link(conn: Conn, dpid: int = 7) -> Link:
    return Link(dpid, conn.send, conn.close, f"peer-{id(conn)}")


def test_a_second_connection_for_a_connected_datapath_is_refused_not_taken_over():
    links, reported = gate()
    first, second = Conn(), Conn()
    links.connect(link(first), None, 0.0)
    assert links.up[7].send == first.send and not first.sent  # nobody named a token: no question asked
    links.connect(link(second), None, 0.0)
    assert second.closed == 1 and links.up[7].send == first.send
    assert "already connected" in reported[-1]
    assert links.disconnect(7, second.send) is None and 7 in links.up  # the refused one leaving changes nothing
    assert links.disconnect(7, first.send) is not None and 7 not in links.up


def test_only_the_connection_showing_the_agents_token_is_admitted():
    links, reported = gate()
    impostor, vrs = Conn(), Conn()
    links.connect(link(impostor), NOBODY, 0.0)  # enrolled, no proven agent yet: nobody qualifies
    links.connect(link(vrs), NOBODY, 0.0)
    assert not links.up and len(links.waiting[7]) == 2
    links.described(7, impostor.send, impostor.desc_xid(), "vsplab-of-guess", NOBODY, 0.1)
    links.described(7, vrs.send, vrs.desc_xid(), "vsplab-of-right", NOBODY, 0.1)
    assert not links.up
    links.token_changed(7, "vsplab-of-right", 0.2)  # the proven agent names its switch's token
    links.described(7, vrs.send, vrs.desc_xid(), "vsplab-of-right", "vsplab-of-right", 0.3)
    assert links.up[7].send == vrs.send
    now = 0.3
    for _ in range(DESC_ASKS + 1):  # asked again (a switch applies a new dp-desc late), then closed
        links.described(7, impostor.send, impostor.desc_xid(), "vsplab-of-guess", "vsplab-of-right", now)
        now += DESC_RETRY
        links.retry(now)
    assert impostor.closed == 1 and "vsplab-of-guess" in reported[-1] and links.up[7].send == vrs.send
    assert 7 not in links.waiting


def test_vsc_enrol_writes_a_private_secret_and_the_table(tmp_path):
    assert vsc_main(["enrol", "0x11", "--state-dir", str(tmp_path / "st"), "--secret-file",
                     str(tmp_path / "s" / "h1.secret"), "--vtep-ip", "192.0.2.1"]) == 0
    secret = read_secret(tmp_path / "s" / "h1.secret")
    assert (tmp_path / "s" / "h1.secret").stat().st_mode & 0o777 == 0o600
    entry = Enrolment(tmp_path / "st").get(0x11)
    assert entry.secret == secret and entry.vtep_ip == "192.0.2.1"
    assert (tmp_path / "st" / "enrolment.json").stat().st_mode & 0o777 == 0o600
    assert vsc_main(["enrol", "17", "--state-dir", str(tmp_path / "st"), "--remove"]) == 0
    assert Enrolment(tmp_path / "st").get(17) is None


# --- over TCP: a VSD, a VSC process, simulated VRSs, impostors --------------------------------------


class Lab:
    """A VSD holding a small NFD8 tree, a VSC following it, and two simulated VRSs (enrolled unless
    told otherwise)."""

    def __init__(self, tmp, vsd, enrol: bool = True, require: bool = False) -> None:
        from vsd.client import VsdClient
        from vsplab.workload.vsd_push import push, relabel

        self.tree, self.placement = nfd8(n_hosts=2, per_host=3)
        self.client = VsdClient(vsd.api, vsd.user, vsd.password)
        relabel(self.tree, self.placement, push(self.client, self.tree))
        self.names = {o["entity"]["ID"]: o["entity"]["name"] for o in self.tree.objects
                      if o["entityType"] == "vport"}
        self.of, self.agent = free_port(), free_port()
        self.log = tmp / "vsc.log"
        self.vsc = VscProcess(vsd_url=vsd.url, user=vsd.user, password=vsd.password, of_port=self.of,
                              agent_port=self.agent, status_port=free_port(), state_dir=tmp / "state",
                              log_file=self.log, require_enrolment=require)
        self.rt = SimRuntime(controller=None, agent=None)
        self.enrol = enrol
        self.secrets: dict[int, bytes] = {}

    def __enter__(self) -> Lab:
        self.vsc.start()
        self.rt.run_in_thread()
        for dpid in self.placement.hosts:
            self.add_host(dpid)
        return self

    def __exit__(self, *exc) -> None:
        self.rt.stop()
        self.vsc.stop()

    def add_host(self, dpid: int) -> None:
        msgs = self.placement.hosts[dpid]
        if self.enrol and dpid not in self.secrets:
            self.secrets[dpid] = self.vsc.enrol(dpid, vtep_ip=msgs[0]["vtep_ip"])
        conts = [Container(f"vl-{self.names[m['vport_id']]}", m["mac"], m["ip"], m["vport_id"], m["ofport"])
                 for m in msgs if m["op"] == "port-up"]
        self.rt.call(self.rt.add_host_now, msgs[0]["name"], dpid, msgs[0]["vtep_ip"], conts,
                     ("127.0.0.1", self.of), ("127.0.0.1", self.agent), self.secrets.get(dpid))

    def converged(self, timeout: float = 30.0) -> dict:
        return self.vsc.wait_converged(timeout, datapaths=2, endpoints=6)

    def flows(self) -> dict:
        """host -> {flow key: (cookie, created)} as the simulated switches hold them."""
        def grab():
            return {name: {r.flow(t).canonical().key: (r.cookie, r.created) for t, r in h.switch.flows()}
                    for name, h in self.rt.hosts.items()}
        return self.rt.call(grab)

    def port_up(self, dpid: int, index: int) -> dict:
        return [m for m in self.placement.hosts[dpid] if m["op"] == "port-up"][index]

    def change_policy(self, before_revision: int) -> int:
        """Move one egress ACL entry to another port in the VSD; returns its flows' cookie once the VSC
        has followed."""
        entry = next(o["entity"] for o in self.tree.objects if o["entityType"] == "egressaclentrytemplate"
                     and o["entity"]["destinationPort"] == "443")
        self.client.update(f"egressaclentrytemplates/{entry['ID']}", {"destinationPort": "8443"})
        end = time.monotonic() + 20
        while self.vsc.status()["revision"] <= before_revision:
            assert time.monotonic() < end, "the VSC did not follow the VSD"
            time.sleep(0.05)
        return cookie(Kind.ACL_ENTRY, entry["ID"])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def assert_policy_reached_every_host(lab: Lab, before: dict, acl_cookie: int) -> None:
    """Every VRS holds what the VSC wants, and what changed on it is that ACL entry's flows only."""
    st = lab.converged()
    after = lab.flows()
    for d in st["datapaths"].values():
        assert d["connected"] and d["synced"] and len(after[d["name"]]) == d["flows_desired"]
    for host in before:
        gone = {k: v for k, v in before[host].items() if k not in after[host]}
        new = {k: v for k, v in after[host].items() if k not in before[host]}
        assert new and {v[0] for v in (*gone.values(), *new.values())} == {acl_cookie}, host


class AgentPeer:
    """A raw agent-channel session: JSON lines out, the VSC's answers in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.challenge: dict | None = None

    def nonce(self) -> str:
        if self.challenge is None:
            self.challenge = json.loads(self.file.readline())
        return self.challenge["nonce"]

    def say(self, *msgs) -> None:
        self.sock.sendall(b"".join((m if isinstance(m, bytes) else json.dumps(m).encode()) + b"\n" for m in msgs))

    def answer(self) -> dict | None:
        """The VSC's next answer other than the challenge; None once it closed the session."""
        try:
            for line in iter(self.file.readline, b""):
                msg = json.loads(line)
                if msg.get("op") == "challenge":
                    self.challenge = msg
                    continue
                return msg
        except ConnectionResetError:  # closed with our lines unread
            pass
        return None

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class SwitchImpostor:
    """A raw OpenFlow switch claiming `dpid`: answers echo requests and describes itself as `desc`."""

    def __init__(self, port: int, dpid: int, desc: str) -> None:
        self.peer = connect_switch(port, dpid)
        self.desc = desc
        self.asked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and not self.peer.eof:
            msg = self.peer.recv(0.2)
            if msg is not None and msg[1] == C.OFPT_MULTIPART_REQUEST and int.from_bytes(msg[8:10], "big") == 0:
                self.asked += 1
                body = b"\0" * (256 * 3 + 32) + self.desc.encode().ljust(256, b"\0")
                self.peer.send(struct.pack("!BBHIHH4x", 4, C.OFPT_MULTIPART_REPLY, 16 + len(body),
                                           int.from_bytes(msg[4:8], "big"), 0, 0) + body)

    def closed_by_vsc(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.peer.eof and time.monotonic() < end:
            time.sleep(0.05)
        return self.peer.eof

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.peer.close()


@pytest.fixture
def vsd(tmp_path):
    from vsd.server import EmbeddedVsd

    v = EmbeddedVsd(log_path=str(tmp_path / "vsd.log")).start()
    try:
        yield v
    finally:
        v.close()


@pytest.mark.slow
def test_a_switch_claiming_a_connected_datapath_and_leaving_does_not_wedge_the_vrs(vsd, tmp_path):
    """Finding 1: it used to replace the VRS's connection, then take it away when it left."""
    with Lab(tmp_path, vsd, enrol=False) as lab:  # the lab trust: nothing enrolled
        st = lab.converged()
        before = lab.flows()
        peer = connect_switch(lab.of, 1)  # hello, features reply as datapath 1...
        closed = peer.closed_within(10)  # ... and the VSC hangs up on it
        peer.close()  # (and it leaves, in any case)
        assert closed is not None, "the VSC kept a second connection for a connected datapath"
        assert lab.flows() == before
        assert_policy_reached_every_host(lab, before, lab.change_policy(st["revision"]))
        assert "refused: datapath 0000000000000001 is already connected" in lab.log_text()


@pytest.mark.slow
def test_an_impostor_on_openflow_and_the_agent_channel_changes_nothing(vsd, tmp_path):
    """Test 3: a known datapath ID and another container's vport ID get an impostor nowhere, and the
    VRS it pretends to be keeps receiving policy, also across its own reconnect."""
    with Lab(tmp_path, vsd) as lab:
        st = lab.converged()
        before = lab.flows()
        victim = lab.port_up(2, 0)  # a container on host 2
        # OpenFlow: the same datapath ID as host 1, describing itself with a made-up token.
        switch = SwitchImpostor(lab.of, 1, "vsplab-of-" + "0" * 32)
        assert switch.closed_by_vsc(10)
        switch.close()
        # Agent channel: host 1's datapath without the secret, a wrong proof, then a datapath of its own.
        for hello in ({"op": "hello", "datapath_id": 1, "name": "x", "vtep_ip": "10.66.0.1"},
                      {"op": "hello", "datapath_id": 1, "name": "x", "vtep_ip": "10.66.0.1", "proof": "00" * 32}):
            agent = AgentPeer(lab.agent)
            agent.say(hello)  # (its port-ups would come next: the session ends here)
            assert "enrolled" in agent.answer()["error"]
            assert agent.answer() is None  # the session was closed
            agent.close()
        time.sleep(1.0)
        assert lab.flows() == before
        revision = lab.change_policy(st["revision"])
        assert_policy_reached_every_host(lab, before, revision)

        # Host 1 goes away; the impostor connects in the gap, then host 1 comes back empty.
        st = lab.converged()
        lab.rt.remove_host(lab.placement.hosts[1][0]["name"])
        end = time.monotonic() + 10
        while lab.vsc.status()["datapaths"]["1"]["connected"]:
            assert time.monotonic() < end
            time.sleep(0.05)
        switch = SwitchImpostor(lab.of, 1, "vsplab-of-" + "1" * 32)
        end = time.monotonic() + 10
        while not switch.asked:  # the VSC asks it what it is: not what host 1's agent said
            assert time.monotonic() < end
            time.sleep(0.05)
        assert not lab.vsc.status()["datapaths"]["1"]["connected"]
        lab.add_host(1)
        st = lab.converged()
        assert switch.closed_by_vsc(10)
        switch.close()
        after = lab.flows()
        name1 = lab.placement.hosts[1][0]["name"]
        assert st["datapaths"]["1"]["last_sync_ops"][0] == len(after[name1]) == st["datapaths"]["1"]["flows_desired"]

        # The lab trust lets a datapath nobody enrolled report itself, but not take an enrolled VRS's
        # container, nor speak for another datapath. (The VSC then waits for its switch: not converged.)
        before = lab.flows()
        agent = AgentPeer(lab.agent)
        agent.say({"op": "hello", "datapath_id": 66, "name": "x", "vtep_ip": "10.66.0.1"},
                  {**victim, "datapath_id": 66, "ofport": 40})
        assert agent.answer()["op"] == "welcome"  # the lab trust: an unknown datapath may report itself...
        assert "proved its identity" in agent.answer()["error"]  # ... but not move an enrolled VRS's vport
        agent.say({**victim, "datapath_id": 2, "ofport": 41})  # nor speak for another datapath
        assert "not this session's" in agent.answer()["error"]
        time.sleep(1.0)
        assert lab.flows() == before
        status = lab.vsc.status()
        assert status["datapaths"]["66"]["ports"] == 0 and status["endpoints"] == 6
        agent.close()


@pytest.mark.slow
def test_a_vsc_requiring_enrolment_refuses_an_unknown_datapath(vsd, tmp_path):
    with Lab(tmp_path, vsd, require=True) as lab:
        lab.converged()
        agent = AgentPeer(lab.agent)
        agent.say({"op": "hello", "datapath_id": 66, "name": "x", "vtep_ip": "10.66.0.1"})
        assert "not enrolled" in agent.answer()["error"] and agent.answer() is None
        agent.close()
        # an enrolled VRS that moved its VTEP must be enrolled again
        secret = lab.secrets[2]
        agent = AgentPeer(lab.agent)
        hello = prove({"op": "hello", "datapath_id": 2, "name": "x", "vtep_ip": "10.66.0.2"}, secret, agent.nonce())
        agent.say(hello)
        assert "enrolled at VTEP" in agent.answer()["error"]
        agent.close()
        assert lab.vsc.status()["converged"]


@pytest.mark.slow
def test_a_bad_field_is_answered_and_the_session_goes_on(tmp_path):
    """Finding 2's `"mac": 5`: it used to raise inside the VSC and drop the agent's connection."""
    agent_port = free_port()
    with VscProcess(of_port=free_port(), agent_port=agent_port, status_port=free_port(),
                    log_file=tmp_path / "vsc.log") as vsc:
        agent = AgentPeer(agent_port)
        agent.say({"op": "hello", "datapath_id": 50, "name": "h", "vtep_ip": "192.0.2.50"},
                  {"op": "port-up", "datapath_id": 50, "ofport": 3, "name": "a", "vport_id": "v-a", "mac": 5,
                   "ip": "10.0.0.3"},
                  b"[1, 2]",
                  {"op": "port-up", "datapath_id": 50, "ofport": 4, "name": "b", "vport_id": "v-b",
                   "mac": "02:00:00:00:00:04", "ip": "10.0.0.4"})
        end = time.monotonic() + 10
        while vsc.status()["datapaths"].get("50", {}).get("ports") != 1:
            assert time.monotonic() < end, vsc.status()
            time.sleep(0.05)
        errors = vsc.status()["input_errors"]
        assert any("mac must be" in e for e in errors) and any("not a JSON object" in e for e in errors)
        agent.close()


@pytest.mark.slow
def test_a_silent_openflow_connection_is_closed(tmp_path):
    """Finding 3: with os-ken's defaults a connection holding a partial header, or silent after the
    handshake, stayed open (and its datapath ID taken) for good."""
    with VscProcess(of_port=(of := free_port()), agent_port=free_port(), status_port=free_port(),
                    log_file=tmp_path / "vsc.log", echo_interval=0.5, echo_misses=2) as vsc:
        partial = connect_switch(of, 0x61)
        partial.send(encode.hello(9)[:3])  # three bytes of a header, then nothing
        silent = connect_switch(of, 0x62)
        assert partial.closed_within(15) is not None and silent.closed_within(15) is not None
        partial.close()
        silent.close()
        assert vsc.status()["input_errors"] == []


@pytest.mark.slow
def test_a_switch_repeating_errors_logs_a_few_lines(tmp_path):
    """Finding 3: one ERROR line per undecodable flow-stats reply or error message from a switch."""
    log = tmp_path / "vsc.log"
    with VscProcess(of_port=(of := free_port()), agent_port=free_port(), status_port=free_port(),
                    log_file=log) as vsc:
        peer: Peer = connect_switch(of, 0x71)
        bad_entry = struct.pack("!H", 4) + b"\0" * 46  # a flow-stats entry shorter than its fixed part
        for i in range(100):
            peer.send(encode.header(C.OFPT_ERROR, 0x5000 + i, struct.pack("!HH", 1, 1)))
            peer.send(struct.pack("!BBHIHH4x", 4, C.OFPT_MULTIPART_REPLY, 16 + len(bad_entry), 0x6000 + i,
                                  C.OFPMP_FLOW, 0) + bad_entry)
        peer.send(encode.echo_request(0x7000))
        assert peer.until(lambda m: m[1] == C.OFPT_ECHO_REPLY)[0] is not None  # the VSC read them all
        time.sleep(1.0)  # and handled them
        assert vsc.status()["datapaths"] == {}  # (no agent reported it: nothing to program)
        lines = [ln for ln in log.read_text().splitlines() if "datapath 0000000000000071 error" in ln]
        assert 1 <= len(lines) <= 10, len(lines)
        peer.close()
