"""`vrs run`, `vrs plug` and `vrs unplug` (wired into vrs/cli.py beside `vrs sim`)."""

from __future__ import annotations

import json
import logging
import signal
import sys

from daemonconf import journal_logging, mark_subparser
from vrs.agent.container import ContainerSpec, PlugError, plug, unplug
from vrs.agent.daemon import AgentConfig, VrsAgent
from vrs.agent.identity import read_secret
from vrs.agent.ovsdb import Ovsdb, OvsdbError

DEFAULT_DB = "unix:/var/run/openvswitch/db.sock"
log = logging.getLogger("vrs.agent")


def add_parsers(sub) -> None:
    r = mark_subparser(sub.add_parser(
        "run", help="the agent beside real Open vSwitch: bridge over OVSDB, ports to the VSC"))
    r.add_argument("--db", default=DEFAULT_DB, help=f"OVSDB remote (default {DEFAULT_DB})")
    r.add_argument("--vsc", help="the VSC's address (OpenFlow and agent channel)")
    r.add_argument("--of-port", type=int, default=6653)
    r.add_argument("--agent-port", type=int, default=6634)
    r.add_argument("--bridge", default="br-int", help="integration bridge (default br-int)")
    r.add_argument("--datapath-type", choices=["netdev", "system"], default="netdev",
                   help="the bridge's datapath: netdev (userspace, works anywhere) or system (the kernel module)")
    r.add_argument("--extra-controller", action="append", default=[], metavar="tcp:IP:PORT",
                   help="another VSC the bridge also connects to (repeatable)")
    r.add_argument("--vtep-ip", help="this host's underlay (VXLAN) address")
    r.add_argument("--datapath-id", type=lambda s: int(s, 0), help="OpenFlow datapath id of the bridge")
    r.add_argument("--name", help="host name reported to the VSC")
    r.add_argument("--secret-file", help="this VRS's secret from `vsc enrol` (without one: a lab's trust)")
    r.add_argument("--log-file")
    r.add_argument("--log-level", default="INFO")
    for name, helptext in (("plug", "attach a container (namespace + veth) to the bridge"),
                           ("unplug", "detach a container and remove its namespace")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("container", help="container name (the bridge port is named vl-NAME unless --port)")
        c.add_argument("--netns", help="the container's namespace (default vl-c-NAME)")
        c.add_argument("--port", help="bridge port / host-side veth name (<= 15 characters)")
        c.add_argument("--db", default=DEFAULT_DB)
        c.add_argument("--bridge", default="br-int")
        if name == "plug":
            c.add_argument("--mac", required=True)
            c.add_argument("--ip", help="address with prefix length, e.g. 10.1.0.11/24")
            c.add_argument("--gateway")
            c.add_argument("--vport-id", help="the VSD vport ID (the VSC places the endpoint by it)")
            c.add_argument("--vm-id", help="the VSD VM ID (kept in external_ids:vm-uuid)")
            c.add_argument("--mtu", type=int, default=1450)


def _agent_config(args) -> AgentConfig:
    """The agent's configuration from its options (flags over `--config`'s file, daemonconf)."""
    for key in ("vsc", "vtep_ip", "datapath_id"):
        if getattr(args, key) in (None, ""):
            raise ValueError(f"--{key.replace('_', '-')} is required (flag or config file)")
    return AgentConfig(db=args.db, vsc_host=args.vsc, of_port=args.of_port, agent_port=args.agent_port,
                       bridge=args.bridge, vtep_ip=args.vtep_ip, datapath_id=args.datapath_id,
                       name=args.name or f"vrs-{args.datapath_id}", extra_controllers=list(args.extra_controller),
                       datapath_type=args.datapath_type,
                       secret=read_secret(args.secret_file) if args.secret_file else None)


def _run(args, reparse=None) -> int:
    """The agent until SIGTERM or SIGINT. SIGHUP (`systemctl reload vsplab-vrs`) reads the command line
    and its config file again (`reparse`): a configuration that does not stand is refused, named in the
    log, and the agent goes on as it was; one that does replaces the agent in this process, which picks
    up its bridge as an agent restart would (the VSC keeps trusting the same OpenFlow connection)."""
    try:
        config = _agent_config(args)
    except (ValueError, OSError) as e:
        print(f"vrs run: {e}", file=sys.stderr)
        return 2
    journal_logging(args.log_level, args.log_file)
    while True:
        agent, reloaded = VrsAgent(config), []

        def reload(*_, agent=agent, reloaded=reloaded) -> None:
            try:
                new = _agent_config(reparse())
            except SystemExit:  # a bad file: parse_with_config has said why on stderr
                log.error("reload refused: the config file does not stand; still running the previous one")
                return
            except (ValueError, OSError) as e:
                log.error("reload refused: %s; still running the previous configuration", e)
                return
            reloaded.append(new)
            agent.stop()

        signal.signal(signal.SIGTERM, lambda *_, agent=agent: agent.stop())
        signal.signal(signal.SIGINT, lambda *_, agent=agent: agent.stop())
        if reparse is not None:
            signal.signal(signal.SIGHUP, reload)
        try:
            agent.run()
        except OvsdbError as e:
            print(f"vrs run: {e}", file=sys.stderr)
            return 1
        if not reloaded:
            return 0
        config = reloaded[-1]
        log.info("reloaded: %s on %s, VSC %s:%d, VTEP %s", config.name, config.bridge, config.vsc_host,
                 config.of_port, config.vtep_ip)


def run_command(args, reparse=None) -> int:
    """`reparse()`: the command line parsed again, its config file read again (a reload)."""
    if args.cmd == "run":
        return _run(args, reparse)
    port = args.port or f"vl-{args.container}"
    netns = args.netns or f"vl-c-{args.container}"
    try:
        db = Ovsdb(args.db)
        try:
            if args.cmd == "plug":
                spec = ContainerSpec(name=port, netns=netns, mac=args.mac, ip=args.ip, gateway=args.gateway,
                                     vport_id=args.vport_id, mtu=args.mtu, vm_id=args.vm_id)
                ofport = plug(db, args.bridge, spec)
                print(json.dumps({"container": args.container, "port": port, "netns": netns, "ofport": ofport}))
            else:
                if not unplug(db, args.bridge, port, netns):
                    print(f"vrs unplug: nothing named {port!r} / {netns!r}", file=sys.stderr)
                    return 1
        finally:
            db.close()
    except (PlugError, OvsdbError) as e:
        print(f"vrs {args.cmd}: {e}", file=sys.stderr)
        return 1
    return 0
