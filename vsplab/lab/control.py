"""A running lab answers questions on a unix socket in its directory, so `vsplab flows` and
`vsplab trace` work from another terminal while `vsplab run --keep` holds the lab.

One JSON request per line, one JSON answer per line: {"op": "flows", "host": H} ->
{"ok": true, "text": ...}; {"op": "trace", "from": A, "to": B, "proto": P, "port": N} ->
{"ok": true, "text": ..., "verdict": "allow"|"deny"}.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

LABS_DIR = Path(os.environ.get("VSPLAB_LABS_DIR", Path(tempfile.gettempdir()) / "vsplab-labs"))


class LabControlError(RuntimeError):
    pass


# Ops a package above the lab adds to the labs this process serves (vsplab.policy: explain, lint, diff):
# name -> handler(lab, request) -> answer. The lab package never imports them.
EXTRA_OPS: dict[str, Callable[[object, dict], dict]] = {}


def register_op(name: str, handler: Callable[[object, dict], dict]) -> None:
    EXTRA_OPS[name] = handler


class LabControlServer:
    """Serves `handler(request: dict) -> dict` on `path` in a background thread."""

    def __init__(self, path: Path, handler):
        self.path = path

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    try:
                        answer = {"ok": True, **handler(json.loads(line))}
                    except Exception as e:  # the error goes back to the asking terminal, not into the lab
                        answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                    self.wfile.write(json.dumps(answer).encode() + b"\n")

        if path.exists():
            path.unlink()
        self._server = socketserver.ThreadingUnixStreamServer(str(path), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


class LabControl:
    """The client side, used by `vsplab flows` and `vsplab trace`."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def find(cls, lab_dir: str | None) -> LabControl:
        if lab_dir:
            sock = Path(lab_dir) / "control.sock"
        else:
            socks = sorted(LABS_DIR.glob("*/control.sock"), key=lambda p: p.stat().st_mtime)
            if not socks:
                raise LabControlError(f"no running lab found under {LABS_DIR}; start one with "
                                      "`vsplab run SCENARIO --keep`")
            sock = socks[-1]
        if not sock.exists():
            raise LabControlError(f"{sock} does not exist: is the lab still running?")
        return cls(sock)

    def request(self, **req) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.path))
            except OSError as e:
                raise LabControlError(f"cannot reach the lab at {self.path}: {e.strerror}") from None
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        if not answer.get("ok"):
            raise LabControlError(answer.get("error", "the lab refused the request"))
        return answer

    def flows(self, host: str) -> str:
        return self.request(op="flows", host=host)["text"]

    def trace(self, source: str, destination: str, proto: str, port: int | None) -> tuple[str, str]:
        a = self.request(op="trace", **{"from": source, "to": destination, "proto": proto, "port": port})
        return a["text"], a["verdict"]
