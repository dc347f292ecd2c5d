"""Durable storage through SQLAlchemy Core: SQLite by default, PostgreSQL (psycopg 3) when given a
`postgresql+psycopg://` URL - the same statements for both.

Tables: `objects` (one row per object: its JSON as GET returns it, member list, user secret), `events`
(one row per revision: the change-stream history, pruned to the newest `retention`), `audit` (who
changed what, when) and `meta` (the CSP root's credentials).

Writes go through one writer thread that commits whatever calls are waiting as one transaction (group
commit): revisions are committed in the order they were handed out and a call is answered only after
its transaction committed. Guarantee: an acknowledged write survives `kill -9` of the server. On SQLite
(WAL, synchronous=NORMAL) the commit is in the OS before the answer, which survives a process crash but
not a power cut; set `sqlite_synchronous="FULL"` for that. If a commit fails, memory and disk disagree,
so the server stops rather than serve a state it cannot keep (it reloads from disk on restart)."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)

from vsd.directory import Change

log = logging.getLogger("vsd.store")

metadata = MetaData()
objects = Table("objects", metadata,
                Column("id", String(36), primary_key=True), Column("kind", String(40), nullable=False),
                Column("parent", String(36)), Column("rev", BigInteger, nullable=False, index=True),
                Column("data", Text, nullable=False), Column("members", Text), Column("secret", Text))
events = Table("events", metadata,
               Column("revision", BigInteger, primary_key=True, autoincrement=False),
               Column("type", String(8), nullable=False), Column("kind", String(40), nullable=False),
               Column("object_id", String(36), nullable=False), Column("entity", Text, nullable=False),
               Column("assoc", Text, nullable=False), Column("enterprise", String(36)),
               Column("ts", Float, nullable=False))
audit = Table("audit", metadata,
              Column("id", Integer, primary_key=True, autoincrement=True), Column("ts", Float, nullable=False),
              Column("user_name", String(200), nullable=False), Column("organization", String(200)),
              Column("action", String(8), nullable=False), Column("kind", String(40), nullable=False),
              Column("object_id", String(36), nullable=False), Column("revision", BigInteger),
              Column("request", String(400)))
meta = Table("meta", metadata, Column("key", String(100), primary_key=True), Column("value", Text))


def make_engine(url: str, sqlite_synchronous: str = "NORMAL"):
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str, retention: int = 1_000_000, sqlite_synchronous: str = "NORMAL") -> None:
        self.url, self.retention = url, retention
        self.engine = make_engine(url, sqlite_synchronous)
        metadata.create_all(self.engine)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.oldest = 1  # oldest revision still in `events`
        self._pruned_at = 0

    # --- start-up

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as c:
            if c.execute(select(meta.c.key).where(meta.c.key == key)).first():
                c.execute(meta.update().where(meta.c.key == key).values(value=value))
            else:
                c.execute(insert(meta).values(key=key, value=value))

    def load(self, put: Callable[[str, dict, list | None, dict | None, int], None]) -> int:
        """Feed every stored object to `put` in creation order; returns the last committed revision."""
        with self.engine.connect() as c:
            rows = c.execute(select(objects.c.kind, objects.c.data, objects.c.members, objects.c.secret,
                                    objects.c.rev).order_by(objects.c.rev))
            for kind, data, members, secret, rev in rows:
                put(kind, orjson.loads(data), orjson.loads(members) if members else None,
                    orjson.loads(secret) if secret else None, rev)
            last = c.execute(select(func.max(events.c.revision))).scalar() or 0
            self.oldest = c.execute(select(func.min(events.c.revision))).scalar() or last + 1
            stored = self.get_meta("revision")
        # events may all have been pruned away; the last revision is kept in meta when pruning
        return max(last, int(stored or 0))

    def events_after(self, since: int, limit: int = 5000) -> list[tuple]:
        with self.engine.connect() as c:
            return list(c.execute(
                select(events.c.revision, events.c.type, events.c.kind, events.c.entity, events.c.assoc,
                       events.c.enterprise)
                .where(events.c.revision > since).order_by(events.c.revision).limit(limit)))

    def audit_rows(self, limit: int = 1000) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(audit).order_by(audit.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    # --- the writer

    def start(self, loop: asyncio.AbstractEventLoop, on_commit: Callable[[list[Change]], None]) -> None:
        self._loop, self._on_commit = loop, on_commit
        self._thread = threading.Thread(target=self._run, name="vsd-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        self.engine.dispose()

    def submit(self, changes: list[Change], who: tuple[str, str], request: str) -> asyncio.Future:
        fut = self._loop.create_future()
        self._queue.put((changes, who, request, fut))
        return fut

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._write(batch)
            except Exception:
                log.exception("commit failed; stopping so that memory and disk cannot disagree")
                logging.shutdown()
                os._exit(70)
            self._loop.call_soon_threadsafe(self._committed, batch)

    def _committed(self, batch: list) -> None:
        changes = [c for changes, _, _, _ in batch for c in changes]
        self._on_commit(changes)
        for _, _, _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def _write(self, batch: list) -> None:
        now = time.time()
        rows: dict[str, tuple[str, dict | None]] = {}  # object ID -> (insert|update|delete, row)
        event_rows, audit_rows = [], []
        for changes, (user, org), request, _ in batch:
            for ch in changes:
                row = {"id": ch.oid, "kind": ch.kind, "parent": ch.parent, "rev": ch.created,
                       "data": ch.entity.decode(), "members": orjson.dumps(ch.members).decode()
                       if ch.members is not None else None,
                       "secret": orjson.dumps(ch.secret).decode() if ch.secret else None}
                prior = rows.get(ch.oid)
                if ch.op == "CREATE":
                    rows[ch.oid] = ("ins", row)
                elif ch.op == "UPDATE":
                    rows[ch.oid] = ("ins" if prior and prior[0] == "ins" else "upd", row)
                elif prior and prior[0] == "ins":
                    del rows[ch.oid]
                else:
                    rows[ch.oid] = ("del", row)
                event_rows.append({"revision": ch.rev, "type": ch.op, "kind": ch.kind, "object_id": ch.oid,
                                   "entity": row["data"], "assoc": ch.assoc.decode(), "enterprise": ch.enterprise,
                                   "ts": now})
                audit_rows.append({"ts": now, "user_name": user, "organization": org, "action": ch.op,
                                   "kind": ch.kind, "object_id": ch.oid, "revision": ch.rev,
                                   "request": request[:400]})
        ins = [r for op, r in rows.values() if op == "ins"]
        upd = [{**r, "b_id": r["id"]} for op, r in rows.values() if op == "upd"]
        dels = [{"b_id": r["id"]} for op, r in rows.values() if op == "del"]
        with self.engine.begin() as c:
            if ins:
                c.execute(insert(objects), ins)
            if upd:
                c.execute(objects.update().where(objects.c.id == bindparam("b_id"))
                          .values(data=bindparam("data"), members=bindparam("members"),
                                  secret=bindparam("secret"), parent=bindparam("parent")), upd)
            if dels:
                c.execute(objects.delete().where(objects.c.id == bindparam("b_id")), dels)
            if event_rows:
                c.execute(insert(events), event_rows)
            if audit_rows:
                c.execute(insert(audit), audit_rows)
            last = event_rows[-1]["revision"] if event_rows else 0
            if last and last - self.retention > self._pruned_at + max(1000, self.retention // 10):
                self._prune(c, last)

    def _prune(self, c, last: int) -> None:
        cut = last - self.retention
        c.execute(events.delete().where(events.c.revision <= cut))
        key = meta.c.key == "revision"
        if c.execute(select(meta.c.key).where(key)).first():
            c.execute(meta.update().where(key).values(value=str(last)))
        else:
            c.execute(insert(meta).values(key="revision", value=str(last)))
        self._pruned_at = cut
        self.oldest = cut + 1
