"""Follows the VSD's change stream (docs/interfaces.md section 1), resuming from the last applied
revision after a VSC restart (the revision is saved with the view) or a VSD restart (reconnect with
`since`). Runs in a plain thread, through the same client as the rest of vsplab's VSD tooling
(`vsd.client`), so there is one implementation of Nuage's login and API-key headers.

Given several VSDs (the VSDs of one cluster, vsd/cluster.py), it follows one and, when that one goes
away or refuses, moves on to the next in the list at once, resuming from the same revision: every VSD
of a cluster serves the same revisions. It waits (backing off) only after every VSD in the list has
failed in a row. What it received is recorded as it arrived (`StreamRecord`, in the VSC's /status), so
a revision that came twice or was skipped shows, whichever VSD sent it."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field

import httpx

from vsc.core import Vsc
from vsd.client import VsdApiError, VsdClient, api_root

log = logging.getLogger("vsc.follower")

READ_TIMEOUT = 15.0  # the VSD sends a heartbeat every 5 s of silence
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 2.0
KEPT_ANOMALIES = 20


def vsd_urls(spec: str | list[str]) -> list[str]:
    """`--vsd` as given: one URL or a comma-separated list (or a list of those)."""
    items = [spec] if isinstance(spec, str) else spec
    urls = [u.strip() for item in items for u in item.split(",") if u.strip()]
    if not urls:
        raise ValueError("--vsd: no VSD URL given")
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise ValueError(f"--vsd {u!r}: expected an http:// or https:// URL")
    return urls


@dataclass
class StreamRecord:
    """The change stream as this VSC received it, across reconnects and VSDs."""

    vsd: str = ""  # the VSD followed now (or last)
    vsds: list[str] = field(default_factory=list)
    connections: int = 0
    failovers: int = 0  # moves from one VSD of the list to another
    snapshots: int = 0
    events: int = 0
    first_event: int | None = None
    last_event: int | None = None
    anomalies: int = 0  # events that were not the revision after the last one
    anomaly_list: list[str] = field(default_factory=list)  # the first KEPT_ANOMALIES of them
    _expect: int = 0

    def opened(self, url: str, since: int) -> None:
        """A new connection from `since`; after the first, what comes next is still judged against what
        came before, so a resume from the wrong revision shows too."""
        self.connections += 1
        self.vsd = url
        if self.connections == 1:
            self._expect = since + 1

    def line(self, line: dict) -> None:
        kind, rev = line.get("kind"), int(line.get("revision", 0))
        if kind == "snapshot":
            self.snapshots += 1
            self._expect = rev + 1
        elif kind == "event":
            self.events += 1
            if self.first_event is None:
                self.first_event = rev
            self.last_event = rev
            if rev != self._expect:
                self.anomalies += 1
                if len(self.anomaly_list) < KEPT_ANOMALIES:
                    what = "repeated" if rev < self._expect else "skipped to"
                    self.anomaly_list.append(f"{what} r{rev} from {self.vsd} (expected r{self._expect})")
            self._expect = max(self._expect, rev + 1)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class StreamFollower:
    def __init__(self, core: Vsc, urls: str | list[str], user: str, password: str, org: str) -> None:
        self.core, self.user, self.password, self.org = core, user, password, org
        self.apis = [api_root(u) for u in vsd_urls(urls)]
        self.api = self.apis[0]  # the VSD followed now
        self.clients: dict[str, VsdClient] = {}  # logged in, per VSD; dropped when it stops taking its key
        self._stop = threading.Event()
        self.opened = False  # the last attempt got the stream: the next failure starts the backoff over
        self.last_error = ""
        self.record = StreamRecord(vsds=list(self.apis))
        core.expect_stream = True
        core.stream_record = self.record.as_dict

    def _client(self) -> VsdClient:
        client = self.clients.get(self.api)
        if client is None:
            client = self.clients[self.api] = VsdClient(self.api, self.user, self.password, self.org,
                                                        timeout=READ_TIMEOUT)
        return client

    def _logout(self, api: str | None = None) -> None:
        for key in [api] if api else list(self.clients):
            client = self.clients.pop(key, None)
            if client is not None:
                client.close()

    def follow_once(self) -> None:
        since = self.core.view.revision
        self.opened = False
        try:
            with self._client().change_stream(since, read_timeout=READ_TIMEOUT) as lines:
                self.opened = True
                self.record.opened(self.api, since)
                self.core.stream_up(True)
                try:
                    log.info("following the VSD change stream from revision %d (%s)", since, self.api)
                    for line in lines:
                        if self._stop.is_set():
                            return
                        self.record.line(line)
                        self.core.on_stream(line)
                finally:
                    self.core.stream_up(False)
        except VsdApiError as e:
            if e.status == 401:  # a VSD restored from an older database, or the user's password changed
                self._logout(self.api)
            raise
        if not self._stop.is_set():
            raise ConnectionError("change stream closed by the VSD")

    def _next_vsd(self) -> None:
        if len(self.apis) > 1:
            self.api = self.apis[(self.apis.index(self.api) + 1) % len(self.apis)]
            self.record.failovers += 1
            log.warning("VSD change stream: moving on to %s", self.api)

    def run(self) -> None:
        backoff, failed = FIRST_BACKOFF, 0
        while not self._stop.is_set():
            try:
                self.follow_once()
            except (OSError, ConnectionError, ValueError, KeyError, httpx.HTTPError, VsdApiError) as e:
                if str(e) != self.last_error:
                    log.warning("VSD change stream of %s: %s; retrying", self.api, e)
                self.last_error = str(e)
                if self.opened:
                    backoff, failed = FIRST_BACKOFF, 0
                failed += 1
                self._next_vsd()
                if failed % len(self.apis) == 0:  # every VSD of the list failed in a row: wait a little
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        self._logout()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="vsc-follower", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
