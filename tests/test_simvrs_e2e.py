"""End to end over TCP: a raw asyncio OpenFlow controller (and agent-port listener) in the test accepts
two simulated VRSs, completes the handshake, pushes flows in bundles, reads them back with flow
stats, and a packet is traced across the VXLAN tunnel between them; ports come and go at run time
and the switches reconnect, flows kept, when the controller drops them."""

from __future__ import annotations

import asyncio
import json

import pytest

from openflow import decode, encode
from openflow.consts import (
    OFPBCT_COMMIT_REPLY,
    OFPMP_PORT_DESC,
    OFPT_BARRIER_REPLY,
    OFPT_ECHO_REQUEST,
    OFPT_EXPERIMENTER,
    OFPT_FEATURES_REPLY,
    OFPT_HELLO,
    OFPT_MULTIPART_REPLY,
    OFPT_PORT_STATUS,
)
from openflow.flow import Flow, Output, SetField, match
from vrs.sim import Container, Packet, SimRuntime

VTEP1, VTEP2 = "192.168.50.1", "192.168.50.2"
IP_A, IP_B = 0x0A000001, 0x0A000002


class SwitchConn:
    """The controller's view of one connected switch."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.async_msgs: asyncio.Queue[bytes] = asyncio.Queue()
        self.replies: dict[int, list[bytes]] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.xid = 100
        self.dpid = None
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                head = await self.reader.readexactly(8)
                body = await self.reader.readexactly(int.from_bytes(head[2:4], "big") - 8)
                msg = head + body
                _, t, _, xid = decode.parse_header(msg)
                if t == OFPT_ECHO_REQUEST:
                    self.writer.write(bytes([4, 3]) + msg[2:])
                elif t in (OFPT_PORT_STATUS, OFPT_HELLO):
                    await self.async_msgs.put(msg)
                else:
                    self.replies.setdefault(xid, []).append(msg)
                    more = t == OFPT_MULTIPART_REPLY and decode.multipart_reply(msg)[1] & 1
                    if not more and xid in self.waiters:
                        self.waiters.pop(xid).set_result(self.replies.pop(xid))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    async def request(self, build, *args) -> list[bytes]:
        xid = self.next_xid()
        fut = asyncio.get_running_loop().create_future()
        self.waiters[xid] = fut
        self.writer.write(build(*args, xid) if args else build(xid))
        return await asyncio.wait_for(fut, 10)

    async def handshake(self) -> None:
        hello = await asyncio.wait_for(self.async_msgs.get(), 10)
        assert hello[1] == OFPT_HELLO
        self.writer.write(encode.hello(1))
        (feat,) = await self.request(encode.features_request)
        assert feat[1] == OFPT_FEATURES_REPLY
        self.dpid = int.from_bytes(feat[8:16], "big")
        assert feat[20] == 254  # n_tables

    async def port_names(self) -> set[str]:
        replies = await self.request(lambda x: encode.multipart_request(x, OFPMP_PORT_DESC))
        body = b"".join(decode.multipart_reply(r)[2] for r in replies)
        return {body[i + 16 : i + 32].rstrip(b"\0").decode() for i in range(0, len(body), 64)}

    async def push_bundle(self, flows: list[Flow], bundle_id: int) -> None:
        msg, commit_xid = encode.bundle_flow_mods(bundle_id, flows, self.next_xid() + 1000)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[commit_xid] = fut
        self.writer.write(msg)
        (reply,) = await asyncio.wait_for(fut, 10)
        assert reply[1] == OFPT_EXPERIMENTER and reply[21] == OFPBCT_COMMIT_REPLY, reply.hex()

    async def flows(self) -> list[Flow]:
        replies = await self.request(encode.flow_stats_request)
        return [s.flow for r in replies for s in decode.flow_stats_reply(decode.multipart_reply(r)[2])]


class Controller:
    def __init__(self) -> None:
        self.conns: asyncio.Queue[SwitchConn] = asyncio.Queue()
        self.agent_lines: list[dict] = []
        self.agent_event = asyncio.Event()
        self.agent_writers: list[asyncio.StreamWriter] = []

    async def start(self, host: str = "127.0.0.1") -> tuple[int, int]:
        async def on_of(r, w):
            await self.conns.put(SwitchConn(r, w))

        async def on_agent(r, w):
            self.agent_writers.append(w)
            while line := await r.readline():
                self.agent_lines.append(json.loads(line))
                self.agent_event.set()

        self.of_server = await asyncio.start_server(on_of, host, 0)
        self.agent_server = await asyncio.start_server(on_agent, "127.0.0.1", 0)
        return self.of_server.sockets[0].getsockname()[1], self.agent_server.sockets[0].getsockname()[1]

    async def accept(self, n: int) -> dict[int, SwitchConn]:
        out = {}
        for _ in range(n):
            c = await asyncio.wait_for(self.conns.get(), 15)
            await c.handshake()
            out[c.dpid] = c
        return out

    async def agent_wait(self, pred, timeout: float = 10) -> None:
        async def loop():
            while not pred(self.agent_lines):
                self.agent_event.clear()
                await self.agent_event.wait()

        await asyncio.wait_for(loop(), timeout)


def host_flows(vtep_peer: str, local_port: int, peer_ip: int, vni: int) -> list[Flow]:
    peer = int.from_bytes(bytes(map(int, vtep_peer.split("."))), "big")
    return [
        Flow(0, 100, match(in_port=local_port, eth_type=0x0800), actions=(SetField("reg6", 1),), goto=20),
        Flow(0, 100, match(in_port=1, tun_id=vni), actions=(SetField("reg6", 2),), goto=20),
        Flow(20, 50, match(reg6=1, eth_type=0x0800, ipv4_dst=peer_ip),
             actions=(SetField("tun_id", vni), SetField("tun_ipv4_dst", peer), Output(1)), cookie=0x0500000000000001),
        Flow(20, 50, match(reg6=2, eth_type=0x0800), actions=(Output(local_port),)),
    ]


@pytest.mark.slow
def test_two_sim_vrs_handshake_bundle_stats_trace_and_reconnect():
    async def main():
        ctl = Controller()
        of_port, agent_port = await ctl.start()
        rt = SimRuntime(("127.0.0.1", of_port), ("127.0.0.1", agent_port)).run_in_thread()
        try:
            rt.add_host("vl-h1", 0x11, VTEP1, [Container("vl-a", "02:00:00:00:00:0a", "10.0.0.1", "vp-a", 5)])
            rt.add_host("vl-h2", 0x22, VTEP2, [Container("vl-b", "02:00:00:00:00:0b", "10.0.0.2", "vp-b", 7)])
            sw = await ctl.accept(2)
            assert set(sw) == {0x11, 0x22}
            assert {"vxlan0", "vl-a", "br-int"} <= await sw[0x11].port_names()
            f1 = host_flows(VTEP2, 5, IP_B, 900)
            f2 = host_flows(VTEP1, 7, IP_A, 900)
            await asyncio.gather(sw[0x11].push_bundle(f1, 1), sw[0x22].push_bundle(f2, 1))
            (barrier,) = await sw[0x11].request(encode.barrier_request)
            assert barrier[1] == OFPT_BARRIER_REPLY
            got = await sw[0x11].flows()
            assert sorted(got, key=repr) == sorted((f.canonical() for f in f1), key=repr)

            r = await asyncio.to_thread(rt.trace, Packet("tcp", "10.0.0.2", 80, source="vl-a"))
            assert r.delivered_to("vl-b") and r.tunnels == ["vl-h1 -> vl-h2 (vni 900)"], r.text()
            r = await asyncio.to_thread(rt.trace, Packet("tcp", "10.0.0.1", 22, source="vl-b"))
            assert r.delivered_to("vl-a")

            # Agent channel: hello, tunnel and port-up for each host.
            await ctl.agent_wait(lambda ls: sum(m["op"] == "port-up" for m in ls) >= 2)
            ups = {m["name"]: m for m in ctl.agent_lines if m["op"] == "port-up"}
            assert ups["vl-a"] == {"op": "port-up", "datapath_id": 0x11, "ofport": 5, "name": "vl-a",
                                   "vport_id": "vp-a", "mac": "02:00:00:00:00:0a", "ip": "10.0.0.1"}
            assert {"op": "tunnel", "datapath_id": 0x22, "ofport": 1} in ctl.agent_lines
            assert {"op": "hello", "datapath_id": 0x11, "name": "vl-h1", "vtep_ip": VTEP1} in ctl.agent_lines

            # A container plugged in at run time: PORT_STATUS on OpenFlow and port-up on the agent channel.
            await asyncio.to_thread(rt.add_port, "vl-h1", Container("vl-c", "02:00:00:00:00:0c", "10.0.0.3"))
            status = await asyncio.wait_for(sw[0x11].async_msgs.get(), 5)
            assert status[1] == OFPT_PORT_STATUS and b"vl-c" in status
            await ctl.agent_wait(lambda ls: any(m.get("name") == "vl-c" for m in ls))
            await asyncio.to_thread(rt.remove_port, "vl-h1", "vl-c")
            await ctl.agent_wait(lambda ls: any(m["op"] == "port-down" for m in ls))

            # The VSC's agent port drops the connection: the VRS reconnects and replays everything.
            for w in ctl.agent_writers:
                w.close()
            await ctl.agent_wait(lambda ls: sum(m["op"] == "hello" for m in ls) == 4)
            await ctl.agent_wait(lambda ls: sum(m == ups["vl-a"] for m in ls) == 2)

            # The controller goes away: the switch reconnects and still has its flows.
            sw[0x11].writer.close()
            (again,) = (await ctl.accept(1)).values()
            assert again.dpid == 0x11
            assert len(await again.flows()) == len(f1)
            stats = await asyncio.to_thread(rt.stats)
            h1 = next(h for h in stats["hosts"] if h["name"] == "vl-h1")
            assert h1["connects"] == 2 and h1["flows"] == 4 and h1["flow_mods"] == 4
            dump = await asyncio.to_thread(rt.dump_flows, "vl-h1")
            (line,) = [x for x in dump.splitlines() if "cookie=0x500000000000001" in x]
            assert "table=20, n_packets=1, n_bytes=64, priority=50,ip,reg6=0x1,nw_dst=10.0.0.2 actions=" \
                   "set_field:0x384->tun_id,set_field:192.168.50.2->tun_dst,output:1" in line
        finally:
            rt.stop()
            ctl.of_server.close()
            ctl.agent_server.close()

    asyncio.run(main())
