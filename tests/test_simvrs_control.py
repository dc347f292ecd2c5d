"""`vrs sim` as its own process, driven through its control socket the way the lab front end does:
create hosts, load a dump-flows text, dump flows back, trace, stats, ports at run time, errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from vrs.sim import Packet, SimRuntime
from vrs.sim.host import Container
from vsplab.lab.ports import free_port

DUMP = """\
 cookie=0x5, duration=1.000s, table=0, n_packets=0, n_bytes=0, priority=100,ip,in_port=1 actions=goto_table:20
 cookie=0x6, duration=1.000s, table=0, n_packets=0, n_bytes=0, priority=110,tun_id=0x64,in_port=1 actions=goto_table:30
 cookie=0x7, duration=1.000s, table=20, n_packets=0, n_bytes=0, priority=50,ip,nw_dst=10.0.8.1 actions=set_field:0x64->tun_id,set_field:192.168.100.2->tun_dst,output:1
 cookie=0x8, duration=1.000s, table=30, n_packets=0, n_bytes=0, priority=50,ip,nw_dst=10.0.8.1 actions=output:2
"""


class Client:
    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")

    def raw(self, line: str) -> dict:
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        return json.loads(self.file.readline())

    def __call__(self, **req) -> dict:
        return self.raw(json.dumps(req))


@pytest.fixture
def sim(tmp_path):
    port = free_port()  # a controller port nobody listens on: the switches keep retrying
    sock = tmp_path / "sim.sock"
    proc = subprocess.Popen([sys.executable, "-m", "vrs.cli", "sim", "--controller", f"127.0.0.1:{port}",
                             "--no-agent", "--control", f"unix:{sock}", "--count", "2", "--containers", "2"],
                            stdout=subprocess.PIPE, text=True)
    try:
        hello = json.loads(proc.stdout.readline())
        assert hello == {"control": f"unix:{sock}", "hosts": ["vl-sim1", "vl-sim2"]}
        yield Client(str(sock))
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_control_socket(sim):
    assert sim(op="hosts")["hosts"] == ["vl-sim1", "vl-sim2"]
    # Host 1's containers are vl-sim1-c1 (10.0.4.1, ofport 2), host 2's vl-sim2-c1 (10.0.8.1, ofport 2).
    flows1 = DUMP.replace("output:2", "output:9")  # host 1 delivers nothing locally in this test
    assert sim(op="load_flows", host="vl-sim1", text=flows1) == {"ok": True, "installed": 4}
    assert sim(op="load_flows", host="vl-sim2", text=DUMP)["installed"] == 4
    text = sim.raw("flows vl-sim1")["text"]
    assert "priority=50,ip,nw_dst=10.0.8.1 actions=set_field:0x64->tun_id,set_field:192.168.100.2->tun_dst" in text
    assert len(text.splitlines()) == 4 and sim.raw("flows vl-sim1 20")["count"] == 4
    # vl-sim1's container 1 is on ofport 2, not 1: the classify flow (in_port=1) misses.
    r = sim(op="trace", **{"from": "vl-sim1-c1", "to": "vl-sim2-c1", "proto": "tcp", "port": 80})
    assert r["verdict"] == "dropped" and "No match." in r["text"]
    sim(op="load_flows", host="vl-sim1", text=" priority=200,ip,in_port=2 actions=goto_table:20")
    r = sim.raw('trace {"source": "vl-sim1-c1", "dst_ip": "10.0.8.1", "proto": "udp", "dst_port": 53}')
    assert r["verdict"] == "delivered", r["text"]
    assert r["result"]["delivered"][0]["container"] == "vl-sim2-c1"
    assert r["result"]["tunnels"] == ["vl-sim1 -> vl-sim2 (vni 100)"]
    assert sim(op="add_port", host="vl-sim2", container={"name": "vl-x", "mac": "02:00:00:00:99:99",
                                                         "ip": "10.9.9.9"})["ofport"] == 4
    assert sim(op="remove_port", host="vl-sim2", name="vl-x")["ofport"] == 4
    stats = sim.raw("stats")
    assert stats["total_flows"] == 9 and stats["rss_bytes"] > 0
    assert {h["name"]: h["ports"] for h in stats["hosts"]} == {"vl-sim1": 2, "vl-sim2": 2}
    bad = sim(op="flows", host="nope")
    assert not bad["ok"] and "no simulated host 'nope'" in bad["error"]
    bad = sim(op="load_flows", host="vl-sim1", text="priority=1 actions=resubmit(,2)")
    assert not bad["ok"] and "unsupported action" in bad["error"]
    bad = sim(op="load_flows", host="vl-sim1", text="table=3,priority=1 actions=goto_table:2")
    assert not bad["ok"] and "goto_table 2 from 3" in bad["error"]


def test_in_process_api_with_scapy_packet():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    rt = SimRuntime(None, None).run_in_thread()
    try:
        h = rt.add_host("vl-p1", 1, "192.168.7.1", [Container("vl-a", "02:00:00:00:00:01", "10.1.0.1"),
                                                      Container("vl-b", "02:00:00:00:00:02", "10.1.0.2")])
        assert [p.ofport for p in h.switch.container_ports()] == [2, 3]
        rt.load_dump("vl-p1", " priority=10,tcp,tp_dst=443 actions=output:3\n")
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.0.1", dst="10.1.0.2") / TCP(
            dport=443, flags="S")
        r = rt.trace(Packet.from_scapy(pkt, source="vl-a"))
        assert r.delivered_to("vl-b") and r.delivered[0].packet["tcp_dst"] == 443
        r = rt.trace(Packet.from_scapy(Ether(bytes(pkt)), source="vl-a").with_(dst_port=80))  # from wire bytes
        assert r.verdict == "dropped" and "table 0: no matching flow" in r.drops[0]
        assert "n_packets=1" in rt.dump_flows("vl-p1")
    finally:
        rt.stop()
