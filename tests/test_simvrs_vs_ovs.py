"""Can a controller tell a simulated VRS from Open vSwitch? One test controller drives a real OVS
(userspace datapath, own network namespace) and a simulated VRS with the same messages: both must
accept and refuse the same flow-mods with the same OpenFlow errors, treat bundles and deletes the
same way, and report the same flows in their flow stats.

Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from openflow import decode, encode, text, textparse
from openflow.consts import (
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFC_MODIFY,
    OFPFF_CHECK_OVERLAP,
    OFPFF_RESET_COUNTS,
    OFPT_ERROR,
)
from openflow.flow import OFPP_IN_PORT, Ct, DecTtl, Flow, MatchField, Move, Output, SetField, match
from tests.test_simvrs_e2e import Controller
from vrs.sim import SimRuntime

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]

SIM_DPID, OVS_DPID = 0x5C1, 0x5C2
CTL_IP, NS_IP = "169.254.78.1", "169.254.78.2"


def sh(*cmd: str, ns: str | None = None, env: dict | None = None, check: bool = True) -> str:
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, env=env)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(full)}: {r.stderr.strip()}")
    return r.stdout


class RealOvs:
    """A netdev ovs-vswitchd with br-int (fail_mode=secure, OpenFlow 1.3, vxlan0 on ofport 1) in its
    own namespace, reaching the test's controller over a veth pair."""

    def __init__(self, workdir, tag: str):
        self.ns, self.veth, self.dir = f"vl-scmp{tag}", f"vl-scm{tag}", workdir
        self.env = {**os.environ, "OVS_RUNDIR": str(workdir), "OVS_LOGDIR": str(workdir), "OVS_DBDIR": str(workdir)}

    def start(self, of_port: int | None, ports: tuple[int, ...] = ()) -> None:
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "set", "lo", "up", ns=self.ns)
        if of_port is not None:  # the controller is reached over a veth pair from the root namespace
            sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
            sh("ip", "addr", "add", f"{CTL_IP}/30", "dev", self.veth)
            sh("ip", "link", "set", self.veth, "up")
            sh("ip", "addr", "add", f"{NS_IP}/30", "dev", "eth0", ns=self.ns)
            sh("ip", "link", "set", "eth0", "up", ns=self.ns)
        db, sock = str(self.dir / "conf.db"), f"unix:{self.dir}/db.sock"
        sh("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema")
        sh("ovsdb-server", db, f"--remote=p{sock}", "--pidfile", "--detach", f"--log-file={self.dir}/db.log",
           ns=self.ns, env=self.env)
        self.vsctl("--no-wait", "init")
        sh("ovs-vswitchd", sock, "--pidfile", "--detach", f"--log-file={self.dir}/vswitchd.log", ns=self.ns,
           env=self.env)
        self.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
                   "protocols=OpenFlow13", f"other-config:datapath-id={OVS_DPID:016x}",
                   "other-config:disable-in-band=true")
        self.vsctl("add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan",
                   "options:remote_ip=flow", "options:key=flow", "ofport_request=1")
        for n in ports:  # veth ends as stand-ins for container ports, at the ofports asked for
            sh("ip", "link", "add", f"vl-p{n}", "type", "veth", "peer", "name", f"vl-q{n}", ns=self.ns)
            sh("ip", "link", "set", f"vl-p{n}", "up", ns=self.ns)
            self.vsctl("add-port", "br-int", f"vl-p{n}", "--", "set", "interface", f"vl-p{n}", f"ofport_request={n}")
        if of_port is not None:
            self.vsctl("set-controller", "br-int", f"tcp:{CTL_IP}:{of_port}")

    def vsctl(self, *args: str) -> str:
        return sh("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", *args, ns=self.ns, env=self.env)

    def ofctl(self, *args: str) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", *args, ns=self.ns, env=self.env)

    def trace(self, flow: str) -> str:
        return sh("ovs-appctl", "ofproto/trace", "br-int", flow, ns=self.ns, env=self.env)

    def dump(self) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int", ns=self.ns, env=self.env)

    def stop(self) -> None:
        for name in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
            pidfile = self.dir / name
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(0.2)
        sh("ip", "link", "del", self.veth, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


ARP = match(eth_type=0x0806, arp_op=1, arp_tpa=(0x0A000000, 0xFFFFFF00))
GOOD = [
    Flow(0, 100, match(in_port=1, eth_type=0x0800, tun_id=5001), actions=(SetField("reg8", 2),
         Move("ipv4_src", "reg0", 32)), goto=20, write_metadata=(1, 0xFFFFFFFFFFFFFFFF), cookie=0x0200000000000001),
    Flow(10, 100, ARP, actions=(Move("eth_src", "eth_dst", 48), SetField("eth_src", 0x02FEFEFEFEFE),
         SetField("arp_op", 2), Move("arp_sha", "arp_tha", 48), SetField("arp_sha", 0x02FEFEFEFEFE),
         Move("arp_tpa", "reg10", 32), Move("arp_spa", "arp_tpa", 32), Move("reg10", "arp_spa", 32),
         Output(OFPP_IN_PORT)), cookie=0x0300000000000002),
    Flow(20, 100, match(metadata=1, reg0=0x0A000002), actions=(SetField("reg6", 4), SetField("reg9", 1),
         SetField("tun_id", 5001), SetField("tun_ipv4_dst", 0xC0A80002)), goto=25, cookie=0x0500000000000003),
    Flow(35, 100, match(metadata=1, eth_type=0x0800), actions=(Ct(zone=1, table=40),)),
    Flow(40, 100, match(eth_type=0x0800, ct_state=(0x22, 0x22)), goto=48),
    Flow(45, 30000, match(eth_type=0x0800, ip_proto=6, reg2=(4, 4), reg4=(8, 8), tcp_dst=(0x1F40, 0xFFC0)),
         actions=(Ct(commit=True, zone=1, table=48),)),
    Flow(48, 10, match(reg1=0, reg9=1), actions=(Output(1),)),
    Flow(60, 100, match(reg1=7, eth_type=0x0800), actions=(SetField("eth_src", 0x02FEFEFEFEFE), SetField("eth_dst", 0x0200000000AA),
         DecTtl(), Output(7)), idle_timeout=300, hard_timeout=600),
    Flow(70, 1, match(eth_dst=(0x010000000000, 0x010000000000)), actions=(Output(2),)),
    Flow(5, 5, (MatchField("reg3", 0x4, 0x4), MatchField("reg4", 1, 0xFFFFFFFF))),  # an all-ones mask is exact
]
BAD = [
    Flow(30, 1, actions=(Output(2),), goto=20),  # goto backwards
    Flow(1, 1, match(reg0=1), actions=(SetField("arp_op", 2),)),  # ARP field without an ARP match
    Flow(1, 1, match(eth_type=0x0806), actions=(Ct(zone=1),)),  # conntrack needs IP
    Flow(1, 1, match(eth_type=0x0806), actions=(DecTtl(),)),
    Flow(1, 1, match(tcp_dst=80)),  # missing prerequisites
    Flow(1, 1, match(eth_type=0x0800, tcp_dst=80)),
    Flow(1, 1, match(eth_type=0x0800, ip_proto=17, udp_dst=53), actions=(SetField("tcp_dst", 1),)),
    Flow(254, 1, actions=(Output(2),)),  # table 254 is not usable
    Flow(255, 1, actions=(Output(2),)),
    Flow(5, 5, (MatchField("reg3", 0x5, 0x4),)),  # value bits outside the mask
    Flow(5, 5, match(eth_type=0x0800, ipv4_dst=(0x0A000001, 0xFFFFFF00))),
]


async def send_and_sync(conn, msgs: list[bytes]) -> dict[int, tuple[int, int]]:
    """Send, then a barrier; the OpenFlow errors that came back, by xid: (type, code)."""
    conn.writer.write(b"".join(msgs))
    await conn.request(encode.barrier_request)
    errors = {}
    for xid, replies in list(conn.replies.items()):
        for r in replies:
            if r[1] == OFPT_ERROR:
                t, code = int.from_bytes(r[8:10], "big"), int.from_bytes(r[10:12], "big")
                if t == 0xFFFF:  # experimenter error: compare the experimenter code
                    code = int.from_bytes(r[10:12], "big")
                errors[xid] = (t, code)
        del conn.replies[xid]
    return errors


async def flows_of(conn) -> list[str]:
    replies = await conn.request(encode.flow_stats_request)
    stats = [s for r in replies for s in decode.flow_stats_reply(decode.multipart_reply(r)[2])]
    return sorted(text.format_flow(s.flow, s, show_stats=False) for s in stats)


def test_a_controller_cannot_tell_the_sim_from_ovs(tmp_path):
    async def main():
        ctl = Controller()
        of_port, _ = await ctl.start("0.0.0.0")
        ovs = RealOvs(tmp_path, str(os.getpid() % 10000))
        rt = SimRuntime(("127.0.0.1", of_port), None)
        try:
            ovs.start(of_port)
            rt.run_in_thread()
            rt.add_host("vl-simcmp", SIM_DPID, "192.168.78.1")
            conns = await ctl.accept(2)
            sim, real = conns[SIM_DPID], conns[OVS_DPID]

            async def both(msgs):
                return await asyncio.gather(send_and_sync(sim, msgs), send_and_sync(real, msgs))

            # Every flow, one flow-mod each: same acceptances, same errors.
            msgs = [encode.flow_mod(f, xid=1000 + i) for i, f in enumerate(GOOD + BAD)]
            e_sim, e_ovs = await both(msgs)
            assert e_sim == e_ovs, (e_sim, e_ovs)
            assert set(e_ovs) == {1000 + len(GOOD) + i for i in range(len(BAD))}
            f_sim, f_ovs = await asyncio.gather(flows_of(sim), flows_of(real))
            assert f_sim == f_ovs and len(f_sim) == len(GOOD)
            # OVS's own dump text loads into the simulator as the same flows.
            assert sorted(text.format_flow(f, show_stats=False) for f in textparse.parse_dump(ovs.dump())) == f_ovs

            # Bundles: a message refused when added leaves the bundle usable; one that fails when
            # applied (an overlap) makes the whole commit fail and leaves nothing behind.
            five = [Flow(3, 1, match(reg0=i), actions=(Output(2),)) for i in range(5)]
            overlap = encode.flow_mod(Flow(3, 1, match(reg0=(0, 0xF0)), actions=(Output(3),)), xid=2006,
                                      flags=OFPFF_CHECK_OVERLAP)
            msgs = [encode.bundle_open(9, 2000)] + [encode.bundle_add(9, encode.flow_mod(f), 2001 + i)
                                                    for i, f in enumerate(five)]
            msgs += [encode.bundle_add(9, overlap, 2006), encode.bundle_add(9, encode.flow_mod(BAD[0]), 2007),
                     encode.bundle_commit(9, 2008)]
            e_sim, e_ovs = await both(msgs)
            assert e_sim == e_ovs and 2007 in e_sim and 2006 in e_sim, (e_sim, e_ovs)
            f_sim, f_ovs = await asyncio.gather(flows_of(sim), flows_of(real))
            assert f_sim == f_ovs and len(f_sim) == len(GOOD)
            data, _ = encode.bundle_flow_mods(8, five, 3000)
            assert await both([data]) == [{}, {}]
            # Modify, strict and loose deletes, delete by cookie.
            ops = [encode.flow_mod(Flow(3, 0, match(reg0=1), actions=(Output(3),)), OFPFC_MODIFY, 4001),
                   encode.flow_mod(Flow(3, 1, match(reg0=2)), OFPFC_DELETE, 4002, strict=True),
                   encode.flow_mod(Flow(255, 0, cookie=0x0500000000000000), OFPFC_DELETE, 4003,
                                   cookie_mask=0xFF00000000000000),
                   encode.flow_mod(Flow(255, 0, match(eth_type=0x0800)), OFPFC_DELETE, 4004, out_port=7)]
            assert await both(ops) == [{}, {}]
            f_sim, f_ovs = await asyncio.gather(flows_of(sim), flows_of(real))
            assert f_sim == f_ovs and len(f_sim) == len(GOOD) - 2 + 4
            # Cookies under modify: without a cookie mask the cookie is replaced; with one it filters.
            ops = [encode.flow_mod(Flow(3, 0, match(reg0=3), actions=(Output(4),), cookie=0x77), OFPFC_MODIFY, 5001),
                   encode.flow_mod(Flow(3, 0, match(reg0=4), actions=(Output(5),), cookie=0x99), OFPFC_MODIFY, 5002,
                                   cookie_mask=0xFF),  # no flow has cookie 0x99: nothing changes
                   encode.flow_mod(Flow(3, 1, match(reg0=4), actions=(Output(6),), cookie=0x55), OFPFC_ADD, 5003,
                                   flags=OFPFF_RESET_COUNTS)]
            assert await both(ops) == [{}, {}]
            f_sim, f_ovs = await asyncio.gather(flows_of(sim), flows_of(real))
            assert f_sim == f_ovs, (set(f_sim) - set(f_ovs), set(f_ovs) - set(f_sim))
            # Filtered flow stats (table, cookie, out_port) select the same flows.
            for kw in ({"table": 3}, {"cookie": 0x0300000000000002, "cookie_mask": 0xFFFFFFFFFFFFFFFF},
                       {"out_port": 1}, {"out_port": OFPP_IN_PORT}):
                r_sim, r_ovs = await asyncio.gather(sim.request(lambda x, kw=kw: encode.flow_stats_request(x, **kw)),
                                                    real.request(lambda x, kw=kw: encode.flow_stats_request(x, **kw)))
                count = [len(decode.flow_stats_reply(b"".join(decode.multipart_reply(r)[2] for r in rs)))
                         for rs in (r_sim, r_ovs)]
                assert count[0] == count[1] > 0, (kw, count)
        finally:
            rt.stop()
            ovs.stop()
            ctl.of_server.close()
            ctl.agent_server.close()

    asyncio.run(main())
