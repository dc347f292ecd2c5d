"""The teaching page's HTTP server: the stdlib's threading server on 127.0.0.1, server-rendered HTML
and SVG, two static files (a stylesheet and a little vanilla JavaScript that polls for live updates),
nothing from the internet. Read-only: every answer is read through `LabSource`.

    GET /                   topology                GET /fragment/topology   the SVG alone (live updates)
    GET /matrix             policy matrix           GET /api/version         what changed, for polling
    GET /trace?from=A&to=B&proto=tcp&port=N         GET /api/lab             the lab's description (JSON)
    GET /flows?host=H&table=N&q=TEXT                GET /api/rollout         rollout samples (JSON)
    GET /rollout            rollout charts
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from vsplab.ui import flowtable, matrix, pages, svg, walk
from vsplab.ui.layout import lay_out
from vsplab.ui.source import LabSource

STATIC = Path(__file__).parent / "static"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
PROTOS = ("tcp", "udp", "icmp")


class BadRequest(ValueError):
    """A query the page cannot answer: 400, naming the field."""


class _Handler(BaseHTTPRequestHandler):
    server: UiServer

    def log_message(self, fmt, *args):  # a projector polling every few seconds is not news
        pass

    def _reply(self, code: int, body: bytes | str, ctype: str = "text/html; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        ui = self.server
        try:
            route = _ROUTES.get(u.path)
            if route is not None:
                self._reply(200, *route(ui, q))
            elif u.path.startswith("/static/") and (STATIC / u.path[8:]).is_file() and "/" not in u.path[8:]:
                f = STATIC / u.path[8:]
                self._reply(200, f.read_bytes(), _TYPES.get(f.suffix, "application/octet-stream"))
            else:
                self._reply(404, pages.error(f"no page {u.path}; try {', '.join(h for h, _ in pages.NAV)}"))
        except BadRequest as e:
            self._reply(400, ui.page(u.path, pages.error(str(e))))
        except Exception as e:  # the lab or a VSC did not answer: say so on the page, keep serving
            self._reply(502, pages.error(f"{type(e).__name__}: {e}"))


def _topology(ui: UiServer, q: dict):
    lab = ui.source.lab()
    body = pages.topology(ui.topology_svg(lab), svg.legend(lab), lab, ui.version(lab))
    return (pages.shell("Topology", lab, body, "/"),)


def _fragment(ui: UiServer, q: dict):
    return (ui.topology_svg(ui.source.lab()), "image/svg+xml")


def _version(ui: UiServer, q: dict):
    lab = ui.source.lab()
    counts = {"containers": len(lab["containers"]), "hosts": len(lab["hosts"])}
    return orjson.dumps({"version": ui.version(lab), **counts}), "application/json"


def _matrix(ui: UiServer, q: dict):
    lab = ui.source.lab()
    return (pages.shell("Policy matrix", lab, pages.matrix(matrix.build(ui.source.policy(), lab)), "/matrix"),)


def _trace(ui: UiServer, q: dict):
    lab = ui.source.lab()
    body = pages.trace_form(lab, q)
    if q.get("from") and q.get("to"):
        if lab["mode"] not in ("sim", "emu"):
            raise BadRequest(f"from, to: the page traces sim labs (the simulated VRS) and emu labs (ofproto/trace); "
                             f"this lab is in {lab['mode']} mode")
        names = {c["name"] for c in lab["containers"]}
        for fld in ("from", "to"):
            if q[fld] not in names:
                raise BadRequest(f"{fld}: no container {q[fld]!r} in this lab")
        proto = q.get("proto", "tcp")
        if proto not in PROTOS:
            raise BadRequest(f"proto: {proto!r} is not one of {', '.join(PROTOS)}")
        port = _int(q, "port") if proto != "icmp" else None
        if proto != "icmp" and port is None:
            raise BadRequest(f"port: {proto} needs a destination port")
        w = ui.source.walk(q["from"], q["to"], proto, port)
        owners: dict[str, dict] = {}
        by_host: dict[str, set[str]] = {}
        for p in w["passes"]:
            for s in p["steps"]:
                if s["cookie"]:
                    by_host.setdefault(s["switch"], set()).add(s["cookie"])
        for host, cookies in by_host.items():
            owners.update(ui.source.owners(host, cookies))
        body += f'<div id="walk">{walk.render(w, owners, ui.source.policy())}</div>'
    return (pages.shell("Trace", lab, body, "/trace"),)


def _flows(ui: UiServer, q: dict):
    lab = ui.source.lab()
    hosts = [h["name"] for h in lab["hosts"]]
    host = q.get("host") or (hosts[0] if hosts else "")
    if host not in hosts:
        raise BadRequest(f"host: no host {host!r} in this lab")
    table = _int(q, "table")
    dump, per_table = ui.source.flows(host, table)
    v = flowtable.view(dump, table, q.get("q", ""), per_table)
    found = ui.source.owners(host, {f.cookie for f in v.rows})
    policy = ui.source.policy()
    table_of = {f.cookie: f.table for f in v.rows}
    owners = {c: walk.owner_text(o, table_of.get(c, 0), policy) for c, o in found.items()}
    return (pages.shell("Flows", lab, pages.flows(lab, host, v, owners, q), "/flows"),)


def _rollout(ui: UiServer, q: dict):
    return (pages.shell("Rollout", ui.source.lab(), pages.rollout(), "/rollout"),)


def _api_rollout(ui: UiServer, q: dict):
    return orjson.dumps(ui.source.rollout()), "application/json"


def _api_lab(ui: UiServer, q: dict):
    return orjson.dumps(ui.source.lab()), "application/json"


def _int(q: dict, name: str) -> int | None:
    v = q.get(name, "")
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise BadRequest(f"{name}: {v!r} is not a number") from None


_ROUTES = {"/": _topology, "/fragment/topology": _fragment, "/api/version": _version, "/matrix": _matrix,
           "/trace": _trace, "/flows": _flows, "/rollout": _rollout, "/api/rollout": _api_rollout,
           "/api/lab": _api_lab}


class UiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, source: LabSource, port: int = 0, host: str = "127.0.0.1") -> None:
        self.source = source
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/"

    def page(self, path: str, body: str) -> str:
        try:
            return pages.shell("vsplab", self.source.lab(), body, path)
        except Exception:
            return body

    def statuses(self, lab: dict) -> dict[str, dict | None]:
        return {v["name"]: self.source.vsc_status(v) for v in lab["vscs"]}

    def topology_svg(self, lab: dict) -> str:
        return svg.topology_svg(lay_out(lab), lab, self.statuses(lab))

    def version(self, lab: dict) -> str:
        """Changes when anything the topology draws changes: placements, BGP, a VSC's state line."""
        lines = [svg.vsc_line(s) for s in self.statuses(lab).values()]
        key = orjson.dumps([[(c["name"], c["host"]) for c in lab["containers"]], lab.get("bgp"), lines])
        return hashlib.blake2b(key, digest_size=8).hexdigest()

    def start(self) -> UiServer:
        self._thread = threading.Thread(target=self.serve_forever, name="vsplab-ui", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.source.close()
