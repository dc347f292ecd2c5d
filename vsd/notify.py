"""Wakes a clustered VSD's writer when another VSD commits: PostgreSQL's `LISTEN` on a connection of
its own (psycopg, autocommit), in a thread. A notification only says "look at the log"; the writer
reads what is new from `events`. The listener also wakes it every few seconds and after reconnecting,
so a notification lost with a connection delays a change by that much at most, never loses it. Other
payloads name other events (the CSP root's new password), each handed to its own callback."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("vsd.notify")

POLL_S = 2.0  # a look at the log even without a notification
RETRY_S = 1.0


class Listener:
    def __init__(self, url, channel: str, wake, own: str = "", events: dict | None = None) -> None:
        # SQLAlchemy's URL names its driver (postgresql+psycopg://); libpq takes plain postgresql://
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel, self.wake = channel, wake
        self.own = f"{own}:"  # payloads of this VSD's own commits start so: nothing new to read for them
        self.events = events or {}  # payload after the sender -> what to do when another VSD sends it
        self._stop = threading.Event()
        self._conn = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="vsd-listen", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.wake()  # whatever was committed before LISTEN took effect
                    while not self._stop.is_set():
                        got = [n.payload for n in conn.notifies(timeout=POLL_S, stop_after=1)]
                        if not got or not all(p.startswith(self.own) for p in got):
                            self.wake()
                        for p in got:
                            action = self.events.get(p.partition(":")[2])
                            if action is not None and not p.startswith(self.own):
                                action()
            except psycopg.Error as e:
                if not self._stop.is_set():
                    log.warning("LISTEN %s: %s; reconnecting", self.channel, e)
                    self._stop.wait(RETRY_S)
