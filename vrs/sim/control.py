"""The control protocol of a simulated-VRS process, so another process (the `vsplab` front end) can
create hosts, dump flows, trace and read stats. One request per line, one JSON answer per line, the
same framing as `vsplab.lab.control`: {"op": ...} -> {"ok": true, ...} or {"ok": false, "error": ...}.
A line may also be a short command: `flows HOST [TABLE]`, `stats`, `hosts`, `trace {json packet}`.

Ops:
- hosts -> {"hosts": [names]}
- create {"hosts": [{"name", "datapath_id", "vtep_ip", "containers": [{"name", "mac", "ip", "vport_id",
  "ofport"}]}]} -> {"created": [names]}
- remove_host {"name"}; add_port {"host", "container": {...}} -> {"ofport"}; remove_port {"host", "name"}
- flows {"host", "table"?} -> {"text": dump-flows text, "count": n}
- load_flows {"host", "text": dump-flows text} -> {"installed": n}
- trace {"packet": {Packet fields}, "commit": true} or {"from": container, "to": container or IP,
  "proto": "tcp", "port": 80} -> {"verdict": "delivered"|"dropped", "text", "result"}
- stats -> per-host counters, total flows and flow-mods, process RSS
- conntrack {"host"} -> {"connections": [...]}
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os

from vrs.sim.host import Container, host_args
from vrs.sim.packet import Packet


def _packet(rt, req: dict) -> Packet:
    if "packet" in req:
        return Packet.from_dict(req["packet"])
    if "from" not in req or "to" not in req:
        raise ValueError("trace needs 'packet', or 'from' and 'to'")
    dst = req["to"]
    try:
        ipaddress.IPv4Address(dst)
    except ValueError:
        _, port = rt.fabric.container(dst)
        if port.ip is None:
            raise ValueError(f"container {dst} has no IP address") from None
        dst = port.ip
    return Packet(proto=req.get("proto") or "tcp", dst_ip=dst, dst_port=req.get("port"), source=req["from"])


def handle(rt, req: dict) -> dict:
    """Answer one request (runs on the runtime's loop thread)."""
    op = req.get("op")
    if op == "hosts":
        return {"hosts": list(rt.hosts)}
    if op == "create":
        return {"created": [h.name for h in (rt.add_host_now(**host_args(s)) for s in req.get("hosts", []))]}
    if op == "add_port":
        return {"ofport": rt.hosts[req["host"]].add_port(Container.from_dict(req["container"])).ofport}
    if op == "remove_port":
        return {"ofport": rt.hosts[req["host"]].remove_port(req["name"]).ofport}
    if op == "flows":
        h = _host(rt, req)
        table = req.get("table")
        return {"text": h.dump_flows(None if table is None else int(table)),
                "count": h.switch.flow_count()}
    if op == "trace":
        r = rt.fabric.trace(_packet(rt, req), bool(req.get("commit", True)))
        return {"verdict": r.verdict, "text": r.text(), "result": r.to_dict()}
    if op == "load_flows":
        return {"installed": _host(rt, req).load_dump(req["text"])}
    if op == "stats":
        return rt.stats_now()
    if op == "conntrack":
        return {"connections": _host(rt, req).switch.conntrack.dump()}
    raise ValueError(f"unknown op {op!r}")


def _host(rt, req: dict):
    name = req.get("host")
    if name not in rt.hosts:
        raise KeyError(f"no simulated host {name!r} (have: {', '.join(rt.hosts) or 'none'})")
    return rt.hosts[name]


def parse_line(line: str) -> dict:
    line = line.strip()
    if line.startswith("{"):
        return json.loads(line)
    cmd, _, rest = line.partition(" ")
    rest = rest.strip()
    if cmd == "flows":
        host, _, table = rest.partition(" ")
        return {"op": "flows", "host": host, **({"table": int(table)} if table.strip() else {})}
    if cmd == "trace":
        body = json.loads(rest) if rest else {}
        return {"op": "trace", **body} if "packet" in body or "from" in body else {"op": "trace", "packet": body}
    return {"op": cmd, **(json.loads(rest) if rest else {})}


async def serve(rt, address: str):
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    answer = {"ok": True, **handle(rt, parse_line(line.decode()))}
                except Exception as e:  # the error goes back to the asking process, not into the sim
                    answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # the client went away, or the process is shutting down: nothing to answer
        finally:
            writer.close()

    if address.startswith("unix:"):
        path = address[5:]
        if os.path.exists(path):
            os.unlink(path)
        server = await asyncio.start_unix_server(client, path)
        return server, address
    host, _, port = address.rpartition(":")
    server = await asyncio.start_server(client, host or "127.0.0.1", int(port))
    h, p = server.sockets[0].getsockname()[:2]
    return server, f"{h}:{p}"
