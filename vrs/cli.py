"""The `vrs` command. `vrs sim` hosts simulated VRSs in this process until interrupted:

    vrs sim [--controller 127.0.0.1:6653] [--agent 127.0.0.1:6634 | --no-agent]
            [--control unix:/path/sim.sock | HOST:PORT] [--hosts hosts.json] [--count N --containers M]

It prints one JSON line {"control": ADDRESS, "hosts": [...]} once the hosts exist, so a parent
process (the `vsplab` front end) knows where to send control requests (vrs.sim.control).

`vrs run` is the agent beside a real Open vSwitch (vrs/agent); `vrs plug` / `vrs unplug` attach and
detach one container (namespace + veth) on that host:

    vrs run --vsc 10.0.0.1 --vtep-ip 192.168.1.11 --datapath-id 11 [--db unix:PATH] [--datapath-type system]
            [--config /etc/vsplab/vrs.yaml]   (the file: any of run's options as keys, e.g. vtep_ip; flags win)
            [--secret-file FILE]   (from `vsc enrol 11 ... --secret-file FILE`: docs/interfaces.md section 2)
    vrs plug web1 --mac 02:00:00:00:00:01 --ip 10.1.0.11/24 --gateway 10.1.0.1 --vport-id ID [--netns NS]
    vrs unplug web1 [--netns NS]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys

from daemonconf import parse_with_config


def _addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host or "127.0.0.1", int(port)


def generated_hosts(count: int, containers: int, vtep_base: str, prefix: str) -> list[dict]:
    base = int(ipaddress.IPv4Address(vtep_base))
    hosts = []
    for i in range(1, count + 1):
        cs = [{"name": f"{prefix}{i}-c{j}", "mac": f"02:00:{i >> 8 & 255:02x}:{i & 255:02x}:{j >> 8 & 255:02x}:{j & 255:02x}",
               "ip": str(ipaddress.IPv4Address((10 << 24) | (i << 10) | j)), "vport_id": None}
              for j in range(1, containers + 1)]
        hosts.append({"name": f"{prefix}{i}", "datapath_id": i, "vtep_ip": str(ipaddress.IPv4Address(base + i - 1)),
                      "containers": cs})
    return hosts


async def _sim(args) -> int:
    from vrs.sim.host import host_args
    from vrs.sim.runtime import SimRuntime

    rt = SimRuntime(args.controller, None if args.no_agent else args.agent, gc_freeze=True)
    rt.attach(asyncio.get_running_loop())
    specs = json.load(open(args.hosts)) if args.hosts else []
    specs += generated_hosts(args.count, args.containers, args.vtep_base, args.prefix)
    for n, spec in enumerate(specs, 1):
        try:
            rt.add_host_now(**host_args(spec))
        except (ValueError, KeyError, TypeError) as e:
            print(f"vrs sim: host #{n} ({spec.get('name', '?')}): {e}", file=sys.stderr)
            return 2
        if len(specs) > 20 and n % 20 == 0:
            print(f"vrs sim: {n}/{len(specs)} hosts", file=sys.stderr)
    bound = await rt.serve_control(args.control) if args.control else None
    print(json.dumps({"control": bound, "hosts": list(rt.hosts)}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await rt.stop_async()
    return 0


def _agent_parsers(sub) -> None:
    from vrs.agent.cli import add_parsers

    add_parsers(sub)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vrs")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sim", help="host simulated VRSs (OpenFlow 1.3 to the VSC, flows in memory)")
    s.add_argument("--controller", type=_addr, default=("127.0.0.1", 6653), help="VSC OpenFlow HOST:PORT")
    s.add_argument("--agent", type=_addr, default=("127.0.0.1", 6634), help="VSC agent-channel HOST:PORT")
    s.add_argument("--no-agent", action="store_true", help="do not open the agent channel")
    s.add_argument("--control", help="serve the control protocol on unix:PATH or HOST:PORT (port 0: any)")
    s.add_argument("--hosts", help="JSON file: list of {name, datapath_id, vtep_ip, containers: [...]}")
    s.add_argument("--count", type=int, default=0, help="also generate this many hosts")
    s.add_argument("--containers", type=int, default=0, help="containers per generated host")
    s.add_argument("--vtep-base", default="192.168.100.1", help="VTEP of the first generated host")
    s.add_argument("--prefix", default="vl-sim", help="name prefix of generated hosts")
    _agent_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_with_config(parser(), argv)
    if args.cmd == "sim":
        return asyncio.run(_sim(args))
    from vrs.agent.cli import run_command

    return run_command(args, reparse=lambda: parse_with_config(parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
