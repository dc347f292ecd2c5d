"""The pure parts of the vrs agent and the emulator, without root or OVS: what the agent tells the VSC
when ports change, its configuration, the agent channel's replay on reconnect, interface naming and
the leftovers manifest's idea of a live lab."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from daemonconf import parse_with_config
from vrs.agent.channel import AgentChannel
from vrs.agent.cli import _agent_config
from vrs.agent.container import ContainerSpec, PlugError
from vrs.agent.daemon import port_changes
from vrs.agent.ovsdb import PortState
from vrs.cli import main as vrs_main
from vrs.cli import parser as vrs_parser
from vsplab.emu import leftovers
from vsplab.emu.netns import IFNAMSIZ, ifname


def ps(name: str, ofport: int, vport: str = "v1", ip: str = "10.0.0.1") -> PortState:
    return PortState(name, ofport, vport, "02:00:00:00:00:01", ip)


def test_port_changes_are_minimal_and_ordered():
    a, b = ps("vl-a", 2), ps("vl-b", 3)
    assert port_changes({"vl-a": a}, {"vl-a": a}, 7) == []
    assert port_changes({}, {"vl-a": a}, 7) == [
        {"op": "port-up", "datapath_id": 7, "ofport": 2, "name": "vl-a", "vport_id": "v1",
         "mac": "02:00:00:00:00:01", "ip": "10.0.0.1"}]
    assert port_changes({"vl-a": a, "vl-b": b}, {"vl-a": a}, 7) == [
        {"op": "port-down", "datapath_id": 7, "ofport": 3, "name": "vl-b"}]
    # a port that moved to another ofport (re-plugged) goes down at its old number first
    moved = port_changes({"vl-a": a}, {"vl-a": ps("vl-a", 9)}, 7)
    assert [(m["op"], m["ofport"]) for m in moved] == [("port-down", 2), ("port-up", 9)]
    # so does one whose identity changed (the VSC places endpoints by vport and address)
    changed = port_changes({"vl-a": a}, {"vl-a": ps("vl-a", 2, ip="10.0.0.9")}, 7)
    assert [m["op"] for m in changed] == ["port-down", "port-up"] and changed[1]["ip"] == "10.0.0.9"


def test_agent_config_from_file_and_flags(tmp_path, capsys):
    conf = tmp_path / "vrs.yaml"
    conf.write_text("vsc: 10.0.0.1\nvtep_ip: 192.168.1.5\ndatapath_id: 5\nof_port: 6653\n")
    # flags win over the file
    c = _agent_config(parse_with_config(vrs_parser(), ["run", "--config", str(conf), "--of-port", "7000"]))
    assert (c.vsc_host, c.vtep_ip, c.datapath_id, c.of_port, c.bridge) == ("10.0.0.1", "192.168.1.5", 5, 7000,
                                                                           "br-int")
    assert c.spec.controllers == ("tcp:10.0.0.1:7000",) and c.db.startswith("unix:")
    with pytest.raises(ValueError, match="--vtep-ip"):
        _agent_config(vrs_parser().parse_args(["run", "--vsc", "10.0.0.1", "--datapath-id", "1"]))
    conf.write_text("vsc: 10.0.0.1\nvtep: 1.2.3.4\n")
    with pytest.raises(SystemExit) as e:
        parse_with_config(vrs_parser(), ["run", "--config", str(conf)])
    assert e.value.code == 2 and f"{conf} line 2: unknown key 'vtep'" in capsys.readouterr().err


def test_vrs_run_rejects_incomplete_configuration(capsys):
    assert vrs_main(["run", "--vsc", "10.0.0.1"]) == 2
    assert "--vtep-ip is required" in capsys.readouterr().err


def test_container_spec_checks_linux_limits():
    with pytest.raises(PlugError, match="longer than 15"):
        ContainerSpec("vl-a-very-long-name", "ns", "02:00:00:00:00:01", "10.0.0.1/24", None, None)
    with pytest.raises(PlugError, match="prefix length"):
        ContainerSpec("vl-a", "ns", "02:00:00:00:00:01", "10.0.0.1", None, None)


def test_ifname_fits_and_keeps_long_names_apart():
    assert ifname("vl-", "web1") == "vl-web1"
    a, b = ifname("vl-", "frontend-cache-01"), ifname("vl-", "frontend-cache-02")
    assert len(a) <= IFNAMSIZ and len(b) <= IFNAMSIZ and a != b and a.startswith("vl-")


def test_agent_channel_replays_everything_after_a_reconnect():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    state = [{"op": "hello", "datapath_id": 1}]
    ch = AgentChannel("127.0.0.1", port, lambda: list(state)).start()
    try:
        conn, _ = server.accept()
        f = conn.makefile("rb")
        assert json.loads(f.readline()) == {"op": "hello", "datapath_id": 1}
        assert ch.connected.wait(2)
        assert ch.send([{"op": "port-up", "ofport": 2}])
        assert json.loads(f.readline()) == {"op": "port-up", "ofport": 2}
        state.append({"op": "port-up", "ofport": 2})
        conn.close()  # the VSC goes away; the agent reconnects and replays the whole state
        f.close()
        conn, _ = server.accept()
        f = conn.makefile("rb")
        assert [json.loads(f.readline()) for _ in range(2)] == state
        conn.close()
    finally:
        ch.stop()
        server.close()


def test_a_manifest_names_its_owner_by_pid_and_start_time(tmp_path, monkeypatch):
    monkeypatch.setattr(leftovers, "MANIFEST", tmp_path / "emu.json")
    child = subprocess.Popen(["sleep", "30"])
    try:
        m = leftovers.Manifest(child.pid, str(tmp_path), netns=["vl-c-x"])
        m.save()
        loaded = leftovers.Manifest.load()
        assert loaded == m and loaded.started is not None
        assert leftovers._running_elsewhere(loaded)
    finally:
        child.kill()
        child.wait()
    assert not leftovers._running_elsewhere(loaded)  # dead: its leftovers may be removed
    assert not leftovers._running_elsewhere(leftovers.Manifest(os.getpid(), "x", started=1))
