"""os-ken, the VSC's OpenFlow stack, as the controller of two simulated VRSs: its handshake (hello,
features, port description) must succeed, flows pushed in ONF bundles with our encoder must commit,
os-ken's own flow-stats request must come back parseable by os-ken, and a packet then crosses the
tunnel in a trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from vrs.sim import Container, Packet, SimRuntime
from vsplab.lab.ports import free_port

APP = textwrap.dedent('''
    import json, os, sys
    from os_ken.base import app_manager
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
    from openflow import encode
    from openflow.flow import Flow, Output, SetField, match

    OUT = open(os.environ["VSPLAB_TEST_OUT"], "a", buffering=1)
    PEERS = {0x11: (0xC0A83302, 0x0A000002, 5), 0x22: (0xC0A83301, 0x0A000001, 7)}

    def emit(**kw):
        OUT.write(json.dumps(kw) + "\\n")

    class App(app_manager.OSKenApp):
        @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
        def features(self, ev):
            dp = ev.msg.datapath
            vtep, peer_ip, port = PEERS[dp.id]
            flows = [
                Flow(0, 100, match(in_port=port, eth_type=0x0800), goto=20),
                Flow(0, 100, match(in_port=1, tun_id=900), goto=30),
                Flow(20, 50, match(eth_type=0x0800, ipv4_dst=peer_ip),
                     actions=(SetField("tun_id", 900), SetField("tun_ipv4_dst", vtep), Output(1))),
                Flow(30, 50, match(eth_type=0x0800), actions=(Output(port),)),
            ]
            data, _ = encode.bundle_flow_mods(1, flows, 5000)
            dp.send(data)
            emit(event="features", dpid=dp.id, n_tables=ev.msg.n_tables)

        @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
        def ports(self, ev):
            emit(event="ports", dpid=ev.msg.datapath.id, names=sorted(p.name.decode() for p in ev.msg.body))

        @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
        def bundle_reply(self, ev):
            # The bundle commit reply, parsed by os-ken: ask for the flows with os-ken's own classes.
            dp = ev.msg.datapath
            if ev.msg.type == dp.ofproto.ONF_BCT_COMMIT_REPLY:
                dp.send_msg(dp.ofproto_parser.OFPFlowStatsRequest(dp))
                emit(event="committed", dpid=dp.id)

        @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
        def stats(self, ev):
            flows = [dict(table=s.table_id, priority=s.priority, match=str(s.match), inst=str(s.instructions))
                     for s in ev.msg.body]
            emit(event="flows", dpid=ev.msg.datapath.id, flows=flows)

        @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
        def error(self, ev):
            emit(event="error", type=ev.msg.type, code=ev.msg.code)
''')

LAUNCH = textwrap.dedent('''
    import sys
    from os_ken.lib import hub
    hub.patch(thread=False)
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    import os_ken.controller.controller  # noqa: registers the ofp-listen options
    cfg.CONF(args=sys.argv[1:], project="os_ken")
    AppManager.run_apps(["simvrs_osken_app"])
''')


def wait_for(path, pred, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        if pred(lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"timed out; os-ken app said: {path.read_text() if path.exists() else ''}")


@pytest.mark.slow
def test_osken_controls_two_sim_vrs(tmp_path):
    (tmp_path / "simvrs_osken_app.py").write_text(APP)
    out = tmp_path / "events.jsonl"
    port = free_port()
    env = {**os.environ, "VSPLAB_TEST_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "--ofp-listen-host", "127.0.0.1",
                             "--ofp-tcp-listen-port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "osken.log", "w"))
    rt = SimRuntime(("127.0.0.1", port), None)
    try:
        rt.run_in_thread()
        rt.add_host("vl-o1", 0x11, "192.168.51.1", [Container("vl-a", "02:00:00:00:00:0a", "10.0.0.1", ofport=5)])
        rt.add_host("vl-o2", 0x22, "192.168.51.2", [Container("vl-b", "02:00:00:00:00:0b", "10.0.0.2", ofport=7)])
        lines = wait_for(out, lambda ls: sum(x["event"] == "flows" for x in ls) == 2)
        assert not [x for x in lines if x["event"] == "error"], lines
        feats = {x["dpid"]: x for x in lines if x["event"] == "features"}
        assert set(feats) == {0x11, 0x22} and feats[0x11]["n_tables"] == 254
        ports = {x["dpid"]: x["names"] for x in lines if x["event"] == "ports"}
        assert ports[0x11] == ["br-int", "vl-a", "vxlan0"]
        flows = {x["dpid"]: x["flows"] for x in lines if x["event"] == "flows"}
        assert sorted((f["table"], f["priority"]) for f in flows[0x11]) == [(0, 100), (0, 100), (20, 50), (30, 50)]
        t20 = next(f for f in flows[0x11] if f["table"] == 20)
        assert "'ipv4_dst': '10.0.0.2'" in t20["match"] and "tun_ipv4_dst" in t20["inst"]
        r = rt.trace(Packet("tcp", "10.0.0.2", 80, source="vl-a"))
        assert r.delivered_to("vl-b") and r.tunnels == ["vl-o1 -> vl-o2 (vni 900)"], r.text()
        assert rt.trace(Packet("udp", "10.0.0.1", 53, source="vl-b")).delivered_to("vl-a")
    finally:
        rt.stop()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
