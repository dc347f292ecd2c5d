"""The VSC's status interface for the lab front end and for people: plain HTTP + JSON.

    GET /status            revision applied, VSD revision, datapaths (connected, synced, flows desired,
                           pending, in flight, flow-mods sent, last sync's add/modify/delete), endpoints,
                           problems, `bgp` (null without BGP; else the speaker's sessions and the routes
                           advertised, received, imported and pending), `busy_s` (seconds spent
                           compiling VSD, agent and BGP input, and diffing/encoding/sending flow-mods),
                           and `converged`
    GET /bgp               the routes themselves (404 without BGP): received per peer (RD, MAC, IP, VNI,
                           next hop, RTs, communities; imported into which domain, or why not) and
                           advertised (the same, with the vport and domain they stand for)
    GET /flows?dpid=N      the desired flows of a VRS, one per line (ovs-ofctl style)
    GET /explain?cookie=C  which VSD object a cookie names
    GET /audit, /intent, POST /resync   the drift audit (vsc/audit.py)
    POST /impact           {"domain": ID, "objects": [...]}: what that policy for the domain (e.g. its draft as
                           applied) would change - each VRS's ACL flows gained and lost, every endpoint pair x
                           protocol x port class whose ACL verdict changes (vsc/impact.py)
    GET /cookies?dpid=N    the same for every cookie of a VRS's desired flows at once (or ?cookie=C,D,...):
                           {"0x...": {kind, entityType, ID, name, priority}}; one pass over the view
                           whatever the number of cookies (the teaching page's flow and trace views)
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

from openflow.text import format_flow
from vsc import audit, impact
from vsc.core import Vsc


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer

    def log_message(self, fmt, *args):  # keep the VSC log for the VSC's own events
        pass

    def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        core = self.server.core
        try:
            if u.path == "/status":
                self._reply(200, orjson.dumps(core.status()))
            elif u.path == "/bgp":
                if core.peering is None:
                    self._reply(404, orjson.dumps({"error": "this VSC does not speak BGP (no --bgp-asn)"}))
                else:
                    self._reply(200, orjson.dumps(core.peering.routes()))
            elif u.path == "/flows":
                self._reply(200, _flow_text(core, int(q["dpid"], 0)).encode(), "text/plain")
            elif u.path == "/explain":
                self._reply(200, orjson.dumps(core.explain(int(q["cookie"], 0))))
            elif u.path == "/cookies":
                if "dpid" in q:
                    wanted = {f.cookie for f in core.flows(int(q["dpid"], 0))}
                else:
                    wanted = {int(c, 0) for c in q["cookie"].split(",") if c}
                self._reply(200, orjson.dumps({hex(c): o for c, o in core.name_cookies(wanted).items()}))
            elif (audited := audit.answer(core, self.command, u.path, q)) is not None:
                self._reply(audited[0], orjson.dumps(audited[1]))
            else:
                known = "/status, /bgp, /flows, /explain or /cookies"
                self._reply(404, orjson.dumps({"error": f"no such path {u.path}; try {known}"}))
        except (KeyError, ValueError) as e:
            self._reply(400, orjson.dumps({"error": f"bad query: {e}"}))

    def do_POST(self) -> None:  # only /resync changes anything (vsc/audit.py)
        if urlsplit(self.path).path == "/impact":  # computes only (vsc/impact.py)
            n = int(self.headers.get("Content-Length") or 0)
            if not 0 <= n <= impact.MAX_BODY:
                self._reply(413, orjson.dumps({"error": f"Content-Length: at most {impact.MAX_BODY} bytes"}))
                return
            code, body = impact.answer(self.server.core, self.rfile.read(n))
            self._reply(code, orjson.dumps(body))
            return
        self.do_GET()


def _flow_text(core: Vsc, dpid: int) -> str:
    return "".join(format_flow(f, show_stats=False) + "\n" for f in core.flows(dpid))


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, core: Vsc, host: str, port: int) -> None:
        self.core = core
        super().__init__((host, port), _Handler)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="vsc-status", daemon=True)
        t.start()
        return t
