"""`vsc` console script: `vsc run --vsd URL --user U --password P --org csp --state-dir DIR`.

os-ken 4.x ships no osken-manager, so this starts the app manager itself (import order matters:
app_manager before controller, or os-ken hits a circular import)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from vsc.agent import AgentServer
from vsc.core import Vsc, tune_gc
from vsc.follower import StreamFollower
from vsc.status import StatusServer

log = logging.getLogger("vsc")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vsc", description="vsplab VSC: OpenFlow 1.3 controller on os-ken")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the controller")
    r.add_argument("--vsd", help="VSD base URL, e.g. http://127.0.0.1:8443 (omit to run without a VSD)")
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
    return p


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tune_gc()
    core = Vsc(args.state_dir)
    core.start()
    agent = AgentServer(core, args.listen, args.agent_port)
    threading.Thread(target=agent.serve_forever, name="vsc-agent", daemon=True).start()
    StatusServer(core, args.listen, args.status_port).start()
    follower = None
    if args.vsd:
        follower = StreamFollower(core, args.vsd, args.user, args.password, args.org)
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
    import vsc.app

    vsc.app.CORE = core
    log.info("VSC: OpenFlow %s:%d, agent %d, status %d", args.listen, args.of_port, args.agent_port,
             args.status_port)
    app_manager.AppManager.run_apps(["vsc.app"])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "run":
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
