"""Follows the VSD's change stream (docs/interfaces.md section 1), resuming from the last applied
revision after a VSC restart (the revision is saved with the view) or a VSD restart (reconnect with
`since`). Runs in a plain thread; the stream is read line by line with http.client."""

from __future__ import annotations

import base64
import http.client
import logging
import threading
from urllib.parse import urlsplit

import orjson

from vsc.core import Vsc

log = logging.getLogger("vsc.follower")

API = "/nuage/api/v6"
READ_TIMEOUT = 15.0  # the VSD sends a heartbeat every 5 s of silence


class StreamFollower:
    def __init__(self, core: Vsc, url: str, user: str, password: str, org: str) -> None:
        self.core, self.user, self.password, self.org = core, user, password, org
        u = urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname or "127.0.0.1", u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        if self.prefix.endswith(API):
            self.prefix = self.prefix[: -len(API)]
        self.api_key: str | None = None
        self._stop = threading.Event()
        self.last_error = ""
        core.expect_stream = True

    def _conn(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=READ_TIMEOUT)

    def _headers(self, secret: str) -> dict:
        token = base64.b64encode(f"{self.user}:{secret}".encode()).decode()
        return {"Authorization": f"XREST {token}", "X-Nuage-Organization": self.org,
                "Content-Type": "application/json"}

    def login(self) -> str:
        """GET /me with the password returns the APIKey every later call authenticates with."""
        c = self._conn()
        try:
            c.request("GET", f"{self.prefix}{API}/me", headers=self._headers(self.password))
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise ConnectionError(f"VSD login as {self.user}@{self.org}: HTTP {r.status} {body[:200]!r}")
            me = orjson.loads(body)
            me = me[0] if isinstance(me, list) else me
            return me["APIKey"]
        finally:
            c.close()

    def follow_once(self) -> None:
        if self.api_key is None:
            self.api_key = self.login()
        since = self.core.view.revision
        c = self._conn()
        try:
            c.request("GET", f"{self.prefix}{API}/vsplab/changes?since={since}", headers=self._headers(self.api_key))
            r = c.getresponse()
            if r.status == 401:
                self.api_key = None
                raise ConnectionError("change stream: HTTP 401 (API key expired?)")
            if r.status != 200:
                raise ConnectionError(f"change stream: HTTP {r.status} {r.read()[:200]!r}")
            self.core.stream_up(True)
            log.info("following the VSD change stream from revision %d", since)
            while not self._stop.is_set():
                line = r.readline()
                if not line:
                    raise ConnectionError("change stream closed by the VSD")
                line = line.strip()
                if line:
                    self.core.on_stream(orjson.loads(line))
        finally:
            self.core.stream_up(False)
            c.close()

    def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self.follow_once()
                backoff = 0.2
            except (OSError, ConnectionError, ValueError, KeyError, http.client.HTTPException) as e:
                if str(e) != self.last_error:
                    log.warning("VSD change stream: %s; retrying", e)
                self.last_error = str(e)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="vsc-follower", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()

