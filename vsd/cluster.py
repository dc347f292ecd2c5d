"""Several VSDs on one PostgreSQL database (Nuage ran the VSD as a three-node cluster): each keeps the
whole directory in memory, any of them takes writes, and all of them serve the change stream and the
push center. PostgreSQL orders the writes; there is no consensus of our own.

A write is a *turn*. A call that may change the directory first waits for one (`take_turn`), before it
looks at the tree. The writer thread grants turns in batches: it opens a transaction, takes one advisory
lock that every VSD's writes share (`pg_advisory_xact_lock`), reads the events the other VSDs committed
since this one last looked and has the event loop apply them (`vsd.replica`), and only then lets the
waiting calls run. They validate against the newest state and number their changes after the newest
revision; once each has submitted its changes (or failed), the writer inserts them, `NOTIFY`s the others
and commits, which releases the lock. So revisions are handed out under the lock, commit order is
revision order, and no two VSDs can hand out the same revision or leave a gap (the `events` primary key
would refuse a duplicate, and the VSD stops rather than serve a state it cannot keep).

Between writes, a listener (`vsd.notify`) wakes the writer on every `NOTIFY`, and it applies what the
others committed without the lock: since revisions become visible in order, a read of the log never
skips one. Everything the event loop learns from this thread it learns in the order it happened, so the
hub publishes committed changes in revision order whoever made them.

Compaction folds the log into `objects` under a lock of its own; each VSD skips what another already
folded."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import queue
import uuid

from sqlalchemy import select

from vsd.change import Change
from vsd.store import BACKLOG, BUSY_COMPACT, EVENT_COLUMNS, IDLE_COMPACT, Store, change_of
from vsd.tables import events

log = logging.getLogger("vsd.cluster")

WRITE_LOCK = 0x76736401
COMPACT_LOCK = 0x76736402
CHANNEL = "vsd_events"
_TURN, _CATCH_UP = "turn", "catch-up"
ROOT_CHANGED = "root"  # a notification's payload after the sender's ID: the root's password changed


class Turn:
    __slots__ = ("granted", "batch", "finished", "task")

    def __init__(self, granted: asyncio.Future) -> None:
        self.granted, self.batch, self.finished = granted, None, False
        # the call's own task: a task it starts inherits the turn in its context, but not the turn itself
        self.task = asyncio.current_task()


class Batch:
    """The calls granted one turn together and what they submitted, in revision order."""

    def __init__(self, done: concurrent.futures.Future, turns: int) -> None:
        self.done, self.open, self.items = done, turns, []

    def finish(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.done.done():
            self.done.set_result(self.items)


_current: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("vsd_turn", default=None)


class ClusterStore(Store):
    clustered = True

    def __init__(self, url: str, retention: int = 1_000_000) -> None:
        super().__init__(url, retention=retention)
        self.replica = None  # vsd.replica.Replica, set by the server: other VSDs' changes into this one's memory
        self.known = 0  # newest revision this VSD has read or written (the writer thread's own count)
        self._waiting: list[Turn] = []
        self._requested = False
        self._listener = None
        self.instance = uuid.uuid4().hex[:12]  # names this VSD's notifications, which it need not read back

    def set_meta(self, key: str, value: str, conn=None) -> None:
        super().set_meta(key, value, conn)
        if key == "root" and conn is not None:  # the CSP root's password is the cluster's, not this VSD's
            conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{self.instance}:{ROOT_CHANGED}')")

    def _root_changed(self) -> None:
        """(The listener's thread) another VSD set the root's password: take it, on the event loop."""
        self._loop.call_soon_threadsafe(self.replica.root_changed, self.get_meta("root"))

    def load(self, put) -> int:
        self.known = super().load(put)
        return self.known

    # --- the event loop's side

    async def take_turn(self) -> None:
        held = _current.get()
        if held is not None and held.task is asyncio.current_task() and held.batch is not None \
                and not held.finished:
            return  # this call holds a turn already (waiting for another would wait for itself)
        turn = Turn(self._loop.create_future())
        _current.set(turn)
        self._waiting.append(turn)
        if not self._requested:
            self._requested = True
            self._queue.put(_TURN)
        await turn.granted

    def poke(self) -> None:
        """Have the writer read what the other VSDs committed (thread-safe)."""
        self._queue.put(_CATCH_UP)

    def end_turn(self) -> None:
        """After a call: gives its turn back if it submitted nothing (refused, or it changed nothing)."""
        turn = _current.get()
        if turn is None or turn.task is not asyncio.current_task():
            return
        _current.set(None)
        if turn.batch is None:
            if turn in self._waiting:
                self._waiting.remove(turn)
        elif not turn.finished:
            turn.finished = True
            turn.batch.finish()

    def submit(self, changes: list[Change], who: tuple[str, str], request: str) -> asyncio.Future:
        turn = _current.get()
        if turn is None or turn.batch is None or turn.finished or turn.task is not asyncio.current_task():
            # numbered without the cluster's lock: another VSD may have handed out the same revisions
            raise RuntimeError("a change submitted outside a write turn (vsd.cluster.ClusterStore.take_turn)")
        fut = self._loop.create_future()
        turn.batch.items.append((changes, who, request, fut))
        turn.finished = True
        turn.batch.finish()
        return fut

    def _open(self, changes: list[Change], newest: int, done: concurrent.futures.Future) -> None:
        """On the event loop, holding the lock: catch up, then let the waiting calls run."""
        self._publish(changes)
        if self.replica.revision != newest:
            self._fatal(f"this VSD is at revision {self.replica.revision} but the database at {newest}")
        turns, self._waiting, self._requested = self._waiting, [], False
        batch = Batch(done, len(turns))
        if not turns:
            done.set_result([])
        for turn in turns:
            turn.batch = batch
            if turn.granted.done():  # its call was cancelled meanwhile
                batch.finish()
            else:
                turn.granted.set_result(None)

    def _publish(self, changes: list[Change]) -> None:
        if changes:
            try:
                changes = self.replica.apply(changes)
            except Exception:
                self._fatal("applying another VSD's changes failed", exc=True)
            self._on_commit(changes)

    # --- the writer thread

    def start(self, loop: asyncio.AbstractEventLoop, on_commit) -> None:
        from vsd.notify import Listener

        super().start(loop, on_commit)
        self._listener = Listener(self.engine.url, CHANNEL, self.poke, own=self.instance,
                                  events={ROOT_CHANGED: self._root_changed})
        self._listener.start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        super().stop()

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.05 if self._backlog else None)
                except queue.Empty:
                    self._compact(IDLE_COMPACT)
                    continue
                items = [item]
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _TURN in items:
                    self._write_turn()
                elif _CATCH_UP in items:
                    self._catch_up()
                if None in items:
                    while self._backlog:
                        self._compact(IDLE_COMPACT)
                    return
        except Exception:
            self._fatal("a cluster write failed", exc=True)

    def _read_new(self, conn) -> list[Change]:
        rows = conn.execute(select(*EVENT_COLUMNS).where(events.c.revision > self.known)
                            .order_by(events.c.revision)).all()
        changes = [change_of(r) for r in rows]
        if changes and changes[0].rev != self.known + 1:
            self._fatal(f"revisions {self.known + 1}..{changes[0].rev - 1} are no longer in the log "
                        "(pruned while this VSD was behind); restart it to reload")
        if changes:
            self.known = changes[-1].rev
            self._backlog.extend(changes)
        return changes

    def _catch_up(self) -> None:
        with self.engine.connect() as c:
            changes = self._read_new(c)
        if changes:
            self._loop.call_soon_threadsafe(self._publish, changes)

    def _write_turn(self) -> None:
        with self.engine.begin() as c:
            c.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            changes = self._read_new(c)
            done: concurrent.futures.Future = concurrent.futures.Future()
            self._loop.call_soon_threadsafe(self._open, changes, self.known, done)
            batch = done.result()
            if not batch:
                return
            self._insert(c, batch)
            self.known = max((ch.rev for changes_, _, _, _ in batch for ch in changes_[-1:]), default=self.known)
            c.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{self.instance}:{self.known}')")
        self._loop.call_soon_threadsafe(self._committed, batch)
        if len(self._backlog) > BACKLOG:
            self._compact(BUSY_COMPACT)

    def _compaction_mark(self, conn) -> int:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({COMPACT_LOCK})")
        return int(self.get_meta("compacted", conn) or 0)

    def _fatal(self, why: str, exc: bool = False) -> None:
        (log.exception if exc else log.error)("%s; stopping so that memory and disk cannot disagree", why)
        logging.shutdown()
        os._exit(70)
