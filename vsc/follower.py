"""Follows the VSD's change stream (docs/interfaces.md section 1), resuming from the last applied
revision after a VSC restart (the revision is saved with the view) or a VSD restart (reconnect with
`since`). Runs in a plain thread, through the same client as the rest of vsplab's VSD tooling
(`vsd.client`), so there is one implementation of Nuage's login and API-key headers."""

from __future__ import annotations

import logging
import threading

import httpx

from vsc.core import Vsc
from vsd.client import VsdApiError, VsdClient, api_root

log = logging.getLogger("vsc.follower")

READ_TIMEOUT = 15.0  # the VSD sends a heartbeat every 5 s of silence
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 2.0


class StreamFollower:
    def __init__(self, core: Vsc, url: str, user: str, password: str, org: str) -> None:
        self.core, self.user, self.password, self.org = core, user, password, org
        self.api = api_root(url)
        self.client: VsdClient | None = None  # logged in; dropped when the VSD stops taking its API key
        self._stop = threading.Event()
        self.opened = False  # the last attempt got the stream: the next failure starts the backoff over
        self.last_error = ""
        core.expect_stream = True

    def _client(self) -> VsdClient:
        if self.client is None:
            self.client = VsdClient(self.api, self.user, self.password, self.org, timeout=READ_TIMEOUT)
        return self.client

    def _logout(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def follow_once(self) -> None:
        since = self.core.view.revision
        self.opened = False
        try:
            with self._client().change_stream(since, read_timeout=READ_TIMEOUT) as lines:
                self.opened = True
                self.core.stream_up(True)
                try:
                    log.info("following the VSD change stream from revision %d", since)
                    for line in lines:
                        if self._stop.is_set():
                            return
                        self.core.on_stream(line)
                finally:
                    self.core.stream_up(False)
        except VsdApiError as e:
            if e.status == 401:  # a VSD restored from an older database, or the user's password changed
                self._logout()
            raise
        if not self._stop.is_set():
            raise ConnectionError("change stream closed by the VSD")

    def run(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stop.is_set():
            try:
                self.follow_once()
            except (OSError, ConnectionError, ValueError, KeyError, httpx.HTTPError, VsdApiError) as e:
                if str(e) != self.last_error:
                    log.warning("VSD change stream: %s; retrying", e)
                self.last_error = str(e)
                if self.opened:
                    backoff = FIRST_BACKOFF
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._logout()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="vsc-follower", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
