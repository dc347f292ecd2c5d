"""`vsc` console script: `vsc run --vsd URL --user U --password P --org csp --state-dir DIR`, and for
EVPN federation with other VSCs `--bgp-asn N --router-id A.B.C.D --bgp-peer ADDR[:PORT]:ASN ...`.

`vsc run --config /etc/vsplab/vsc.yaml` reads any of run's options from that file (flags win).

`vsc enrol DPID --state-dir DIR --secret-file PATH [--vtep-ip A.B.C.D]` enrols a VRS: its secret goes into
DIR's enrolment table and to PATH for `vrs run --secret-file PATH` (vsc/enrolment.py); a running VSC
picks it up. `vsc run --require-enrolment` refuses every VRS that is not enrolled.

os-ken 4.x ships no osken-manager, so this starts the app manager itself (import order matters:
app_manager before controller, or os-ken hits a circular import)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from daemonconf import journal_logging, mark_subparser, parse_with_config
from vsc.agent import AgentServer
from vsc.core import Vsc, tune_gc
from vsc.follower import StreamFollower, vsd_urls
from vsc.status import StatusServer

log = logging.getLogger("vsc")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vsc", description="vsplab VSC: OpenFlow 1.3 controller on os-ken")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = mark_subparser(sub.add_parser("run", help="run the controller"))
    r.add_argument("--vsd", metavar="URL[,URL...]",
                   help="VSD base URL, e.g. http://127.0.0.1:8443 (omit to run without a VSD); the VSDs of a "
                   "cluster as a comma-separated list (--vsd http://a:8443,http://b:8443,http://c:8443): the VSC "
                   "follows one and fails over to the next when it goes away, resuming from its last revision")
    r.add_argument("--user", default="csproot")
    r.add_argument("--password", default="csproot")
    r.add_argument("--org", default="csp")
    r.add_argument("--listen", default="127.0.0.1", help="address for OpenFlow, agent and status ports")
    r.add_argument("--of-port", type=int, default=6653)
    r.add_argument("--agent-port", type=int, default=6634)
    r.add_argument("--status-port", type=int, default=6635)
    r.add_argument("--state-dir", help="keeps the view and its revision across restarts")
    r.add_argument("--view", help="a VSD snapshot (JSON: {revision, objects}) to serve without a VSD")
    r.add_argument("--log-level", default="INFO")
    r.add_argument("--require-enrolment", action="store_true",
                   help="refuse VRSs not enrolled in --state-dir's table (default: a lab's trust; see `vsc enrol`)")
    r.add_argument("--echo-interval", type=float, default=10.0,
                   help="seconds between echo requests to each switch (default 10)")
    r.add_argument("--echo-misses", type=int, default=5,
                   help="unanswered echo requests before a switch is disconnected (default 5)")
    b = r.add_argument_group("EVPN federation (MP-BGP through ExaBGP; none of these: no BGP at all)")
    b.add_argument("--bgp-asn", type=int, help="this VSC's AS number")
    b.add_argument("--router-id", help="BGP router id, IPv4; also the first half of this VSC's RDs")
    b.add_argument("--bgp-listen", metavar="ADDR[:PORT]",
                   help="where ExaBGP listens and connects from (default: the router id, port 179)")
    b.add_argument("--bgp-peer", action="append", default=[], metavar="ADDR[:PORT]:ASN",
                   help="a VSC or route reflector to peer with (repeatable; port default 179)")
    b.add_argument("--bgp-hold-time", type=int, default=9, help="seconds (default 9)")
    b.add_argument("--bgp-md5", help="TCP MD5 password for every peer")
    e = sub.add_parser("enrol", help="enrol a VRS by its datapath ID: a secret for `vrs run --secret-file`")
    e.add_argument("datapath_id", type=lambda t: int(t, 0), help="the VRS's datapath ID (decimal or 0x...)")
    e.add_argument("--state-dir", required=True, help="the VSC's --state-dir (holds enrolment.json)")
    e.add_argument("--secret-file", help="write the secret here for the VRS (else it is printed)")
    e.add_argument("--vtep-ip", help="pin the VRS's VTEP (default: the first one it reports)")
    e.add_argument("--remove", action="store_true", help="unenrol it instead")
    return p


def enrol(args: argparse.Namespace) -> int:
    from vsc.enrolment import Enrolment, EnrolmentError, write_secret

    try:
        table = Enrolment(args.state_dir)
        if args.remove:
            if not table.remove(args.datapath_id):
                print(f"vsc enrol: datapath {args.datapath_id} was not enrolled", file=sys.stderr)
                return 1
            return 0
        secret = table.issue(args.datapath_id, args.vtep_ip)
    except (EnrolmentError, ValueError, OSError) as e:
        print(f"vsc enrol: {e}", file=sys.stderr)
        return 2
    if args.secret_file:
        print(write_secret(args.secret_file, secret))
    else:
        print(secret.hex())
    return 0


def _address_port(text: str, what: str) -> tuple[str, int]:
    addr, sep, port = text.rpartition(":")
    if not sep:
        return text, 179
    if not port.isdigit():
        raise ValueError(f"{what} {text!r}: the port must be a number")
    return addr, int(port)


def bgp_config(args: argparse.Namespace):
    """The speaker's configuration from the command line, None when no BGP option is given. Raises
    ValueError naming the option at fault."""
    from vsc.bgp.speaker import Peer, SpeakerConfig  # only a VSC that speaks BGP pays for it

    given = args.bgp_asn is not None or args.router_id or args.bgp_listen or args.bgp_peer or args.bgp_md5
    if not given:
        return None
    if args.bgp_asn is None or not args.router_id:
        raise ValueError("--bgp-asn and --router-id are both needed for BGP")
    address, port = _address_port(args.bgp_listen or args.router_id, "--bgp-listen")
    peers = []
    for spec in args.bgp_peer:
        head, sep, asn = spec.rpartition(":")
        if not sep or not asn.isdigit():
            raise ValueError(f"--bgp-peer {spec!r}: expected ADDR[:PORT]:ASN")
        paddr, pport = _address_port(head, "--bgp-peer")
        try:
            peers.append(Peer(paddr, int(asn), pport, md5=args.bgp_md5, hold_time=args.bgp_hold_time))
        except ValueError as e:
            raise ValueError(f"--bgp-peer {spec!r}: {e}") from None
    rid = args.router_id
    try:
        # Our own routes coming back (over eBGP or through a reflector) carry our RDs: "<router id>:n".
        return SpeakerConfig(router_id=rid, local_as=args.bgp_asn, listen_address=address, listen_port=port,
                             peers=peers, is_own_rd=lambda rd: rd.startswith(f"{rid}:"))
    except ValueError as e:
        raise ValueError(f"BGP options: {e}") from None


def run(args: argparse.Namespace) -> int:
    journal_logging(args.log_level)
    try:
        bgp = bgp_config(args)
    except ValueError as e:
        print(f"vsc: {e}", file=sys.stderr)
        return 2
    if args.require_enrolment and not args.state_dir:
        print("vsc: --require-enrolment needs --state-dir (where the enrolment table is)", file=sys.stderr)
        return 2
    if args.echo_interval <= 0 or args.echo_misses < 1:
        print("vsc: --echo-interval must be positive and --echo-misses at least 1", file=sys.stderr)
        return 2
    try:
        urls = vsd_urls(args.vsd) if args.vsd else None
    except ValueError as e:
        print(f"vsc: {e}", file=sys.stderr)
        return 2
    tune_gc()
    try:
        core = Vsc(args.state_dir, require_enrolment=args.require_enrolment)
    except ValueError as e:  # an enrolment table that cannot be read
        print(f"vsc: {e}", file=sys.stderr)
        return 2
    core.start()
    agent = AgentServer(core, args.listen, args.agent_port)
    threading.Thread(target=agent.serve_forever, name="vsc-agent", daemon=True).start()
    StatusServer(core, args.listen, args.status_port).start()
    if bgp is not None:
        from vsc.bgp.peering import Peering

        try:
            Peering(core, bgp).start()
        except RuntimeError as e:  # ExaBGP did not come up: say why rather than run unfederated
            log.error("BGP speaker: %s", e)
            core.stop()
            return 1
        log.info("BGP: AS %d, router id %s, listening on %s:%d, peers %s", bgp.local_as, bgp.router_id,
                 bgp.listen_address, bgp.listen_port,
                 ", ".join(f"{p.address}:{p.port} AS {p.asn}" for p in bgp.peers) or "none")
    follower = None
    if urls:
        follower = StreamFollower(core, urls, args.user, args.password, args.org)
        follower.start()
    else:
        if args.view:
            import orjson

            snap = orjson.loads(open(args.view, "rb").read())
            core.on_stream({"kind": "snapshot", "revision": snap.get("revision", 1), "objects": snap["objects"]})
        core.view_ready = True  # without a VSD the loaded (or empty) view is the whole truth

    def _term(signum, frame):
        if follower:
            follower.stop()
        core.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)

    from os_ken import cfg
    from os_ken.lib import hub

    hub.patch()
    from os_ken.base import app_manager  # before os_ken.controller (circular import otherwise)
    from os_ken.controller import controller  # noqa: F401  registers the --ofp-* options

    cfg.CONF(args=[f"--ofp-listen-host={args.listen}", f"--ofp-tcp-listen-port={args.of_port}"], project="os_ken")
    # Echo requests drop a switch that went silent or stopped inside a message: os-ken's default
    # (no limit) would keep such a connection, and its datapath ID, forever. (Options, not flags.)
    cfg.CONF.set_override("echo_request_interval", args.echo_interval)
    cfg.CONF.set_override("maximum_unreplied_echo_requests", args.echo_misses)
    import vsc.app

    vsc.app.CORE = core
    log.info("VSC: OpenFlow %s:%d, agent %d, status %d; %s", args.listen, args.of_port, args.agent_port,
             args.status_port, "only enrolled VRSs" if args.require_enrolment else
             f"enrolled VRSs ({len(core.sessions.enrolment.datapaths())}) proven, others trusted on first contact")
    app_manager.AppManager.run_apps(["vsc.app"])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_with_config(_parser(), argv)
    if args.cmd == "run":
        return run(args)
    if args.cmd == "enrol":
        return enrol(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
