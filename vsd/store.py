"""Durable storage through SQLAlchemy Core: SQLite by default, PostgreSQL (psycopg 3) when given a
`postgresql+psycopg://` (or `postgresql://`) URL - the same statements for both.

Tables: `events` (the log: one row per revision, the object as GET returns it), `objects` (the state
up to revision `meta.compacted`: one row per live object), `audit` (one row per mutating call: who,
when, which objects), `apikeys` (the SHA-256 of each live API key, its user and expiry; outside the
change log, since a login changes no object) and `meta` (the CSP root's password hash, the compaction
mark). No secret is stored in clear: users' and the root's secrets are password hashes.

Writes go through one writer thread. It commits the waiting calls' events as one transaction (group
commit), in the order revisions were handed out, and only then are the calls answered and the changes
published. Folding events into `objects` (compaction) happens afterwards, when the writer is idle or
the backlog grows, so a bulk create pays for one row per object on its way. On start the state is
`objects` plus the events after the compaction mark, replayed in order (and kept for the next fold).
This is one VSD's store: a SQLite file is claimed by the VSD serving it; on PostgreSQL several VSDs
share the database through `vsd.cluster.ClusterStore`, which takes over the writer.

Guarantee: an acknowledged write survives `kill -9` of the server. On SQLite (WAL, synchronous=NORMAL)
a commit is in the OS before the answer, which survives a process crash but not a power cut (pass
`sqlite_synchronous="FULL"` for that). If a commit fails, memory and disk disagree, so the server
stops rather than serve a state it cannot keep; a restart reloads from disk. Nothing a client sends
may make a commit fail: values are checked on the way in (`vsd.formats`), and the audit row's own
columns (user, organization, request) are cut to their widths here, since PostgreSQL refuses longer
text or NUL characters where SQLite would take them."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import orjson
from sqlalchemy import bindparam, func, insert, select

from vsd.change import Change, event_line
from vsd.tables import apikeys, audit, events, make_engine, meta, metadata, objects

log = logging.getLogger("vsd.store")

_COLUMNS = {
    "ins_obj": ("id", "kind", "parent", "rev", "data", "members", "secret"),
    "upd_obj": ("data", "members", "secret", "b_id"),
    "del_obj": ("b_id",),
    "ins_event": ("revision", "type", "kind", "object_id", "entity", "assoc", "enterprise", "secret", "created",
                  "ts"),
    "ins_audit": ("ts", "user_name", "organization", "request", "actions", "first_revision", "last_revision"),
}
IDLE_COMPACT = 5_000  # changes folded per idle moment (then the queue is looked at again)
BUSY_COMPACT = 5_000  # ...and between batches once the backlog passes BACKLOG
BACKLOG = 20_000

Loader = Callable[[str, str, dict, dict, str | None, int], None]  # op, kind, data, assoc, secret, created
# the `events` columns a replayed change is rebuilt from (`change_of`)
EVENT_COLUMNS = (events.c.revision, events.c.type, events.c.kind, events.c.object_id, events.c.entity, events.c.assoc,
                 events.c.enterprise, events.c.secret, events.c.created)
SCHEMA_LOCK = 0x76736400  # PostgreSQL advisory lock keys ("vsd" and a number), one per serialised section


class Store:
    clustered = False  # one VSD on this database (vsd.cluster.ClusterStore: several on one PostgreSQL)

    def __init__(self, url: str, retention: int = 1_000_000, sqlite_synchronous: str = "NORMAL") -> None:
        self.url, self.retention = url, max(retention, 1)
        self.engine = make_engine(url, sqlite_synchronous)
        with self.exclusive() as c:  # two VSDs of a cluster starting at once
            metadata.create_all(c)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._compiled: dict[str, tuple] = {}
        self._backlog: list[Change] = []  # committed to `events`, not yet folded into `objects`
        self.oldest = 1  # oldest revision still in `events`
        self.compacted = 0
        self._claim: int | None = None

    def claim(self) -> None:
        """Make this the only VSD serving a SQLite file: a second one would hand out the same revisions
        from its own memory (several VSDs share a database only on PostgreSQL, `vsd.cluster`)."""
        path = self.url.split("///", 1)[-1]
        if self.engine.dialect.name != "sqlite" or not path or path == ":memory:":
            return
        fd = os.open(f"{path}.vsd-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SystemExit(f"VSD: another VSD is serving {path}; a SQLite database has one VSD "
                             "(several VSDs share one PostgreSQL database, see vsd/README.md)") from None
        self._claim = fd

    # --- start-up and reads

    def get_meta(self, key: str, conn=None) -> str | None:
        if conn is None:
            with self.engine.connect() as c:
                return self.get_meta(key, c)
        return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str, conn=None) -> None:
        if conn is None:
            with self.engine.begin() as c:
                return self.set_meta(key, value, c)
        if conn.execute(select(meta.c.key).where(meta.c.key == key)).first():
            conn.execute(meta.update().where(meta.c.key == key).values(value=value))
        else:
            conn.execute(insert(meta).values(key=key, value=value))

    def load(self, put: Loader) -> int:
        """Feed the stored state to `put` in order (objects by creation, then the log after the compaction
        mark); returns the last committed revision. The replayed log stays in the backlog, so the next
        compaction folds it too rather than moving the mark past it. One snapshot of the database
        (REPEATABLE READ on PostgreSQL, where other VSDs of a cluster write and compact meanwhile)."""
        conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn as c, c.begin():
            self.compacted = int(self.get_meta("compacted", c) or 0)
            rows = c.execute(select(objects.c.kind, objects.c.data, objects.c.members, objects.c.secret,
                                    objects.c.rev).order_by(objects.c.rev))
            for kind, data, members, secret, rev in rows:
                put("CREATE", kind, orjson.loads(data), orjson.loads(members) if members else None,
                    secret, rev)
            rows = c.execute(select(*EVENT_COLUMNS).where(events.c.revision > self.compacted)
                             .order_by(events.c.revision))
            last = self.compacted
            for row in rows:
                ch = change_of(row)
                put(ch.op, ch.kind, orjson.loads(ch.entity), ch.members, row.secret, ch.created)
                self._backlog.append(ch)
                last = ch.rev
            newest = c.execute(select(func.max(events.c.revision))).scalar() or 0
            self.oldest = c.execute(select(func.min(events.c.revision))).scalar() or newest + 1
        return max(last, newest, self.compacted)

    def events_after(self, since: int, limit: int = 5000) -> list[tuple]:
        with self.engine.connect() as c:
            return list(c.execute(
                select(events.c.revision, events.c.type, events.c.kind, events.c.entity, events.c.assoc,
                       events.c.enterprise)
                .where(events.c.revision > since).order_by(events.c.revision).limit(limit)))

    def audit_rows(self, limit: int = 1000) -> list[dict]:
        """Newest first: one row per mutating call, `actions` listing (action, kind, object ID) per object."""
        with self.engine.connect() as c:
            rows = c.execute(select(audit).order_by(audit.c.id.desc()).limit(limit))
            return [{**{str(k): v for k, v in zip(r._fields, r, strict=True)}, "actions": orjson.loads(r.actions)}
                    for r in rows]

    # --- API keys (written beside the writer thread: a login is not a change of the tree)

    def api_keys(self, expired_before: float) -> list[tuple[str, str, float]]:
        """The keys as (digest, user ID, expiry), after deleting those that expired before `expired_before`."""
        with self.engine.begin() as c:
            c.execute(apikeys.delete().where(apikeys.c.expires <= expired_before))
            return [tuple(r) for r in c.execute(select(apikeys.c.digest, apikeys.c.user_id, apikeys.c.expires))]

    def save_api_key(self, digest: str, user_id: str, expires: float, drop: list[str]) -> None:
        with self.engine.begin() as c:
            if drop:
                c.execute(apikeys.delete().where(apikeys.c.digest.in_(drop)))
            c.execute(insert(apikeys).values(digest=digest, user_id=user_id, expires=expires))

    def drop_api_keys(self, user_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(apikeys.delete().where(apikeys.c.user_id == user_id))

    @contextlib.contextmanager
    def exclusive(self):
        """A transaction no other VSD on this database runs at the same time (start-up's own writes)."""
        with self.engine.begin() as c:
            if self.engine.dialect.name == "postgresql":
                c.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
            yield c

    def scrub_clear_keys(self) -> int:
        """Remove the API keys earlier versions kept in clear inside stored secrets (once per database:
        a mark in meta says it was done); returns how many rows."""
        n = 0
        with self.exclusive() as c:
            if self.get_meta("clear_keys_removed", c):
                return 0
            for table, key in ((objects, objects.c.id), (events, events.c.revision)):
                rows = c.execute(select(key, table.c.secret).where(table.c.secret.like('%"apikey"%'))).all()
                for k, secret in rows:
                    clean = {f: v for f, v in orjson.loads(secret).items() if f != "apikey"}
                    c.execute(table.update().where(key == k).values(secret=orjson.dumps(clean).decode()))
                n += len(rows)
            self.set_meta("clear_keys_removed", "1", c)
        return n

    # --- the writer

    def start(self, loop: asyncio.AbstractEventLoop, on_commit: Callable[[list[Change]], None]) -> None:
        self._loop, self._on_commit = loop, on_commit
        self._thread = threading.Thread(target=self._run, name="vsd-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self.engine.dispose()
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    def submit(self, changes: list[Change], who: tuple[str, str], request: str) -> asyncio.Future:
        fut = self._loop.create_future()
        self._queue.put((changes, who, request, fut))
        return fut

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.05 if self._backlog else None)
                except queue.Empty:
                    self._compact(IDLE_COMPACT)
                    continue
                if item is None:
                    while self._backlog:
                        self._compact(IDLE_COMPACT)
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
                self._write(batch)
                self._loop.call_soon_threadsafe(self._committed, batch)
                if len(self._backlog) > BACKLOG:
                    self._compact(BUSY_COMPACT)
        except Exception:
            log.exception("commit failed; stopping so that memory and disk cannot disagree")
            logging.shutdown()
            os._exit(70)

    def _committed(self, batch: list) -> None:
        self._on_commit([c for changes, _, _, _ in batch for c in changes])
        for _, _, _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def _write(self, batch: list) -> None:
        with self.engine.begin() as c:
            self._insert(c, batch)

    def _insert(self, c, batch: list) -> None:
        """The batch's events and audit rows, inside the caller's transaction."""
        now = time.time()
        event_rows, audit_rows = [], []
        for changes, (user, org), request, _ in batch:
            for ch in changes:
                secret = orjson.dumps(ch.secret).decode() if ch.secret else None
                event_rows.append((ch.rev, ch.op, ch.kind, ch.oid, ch.entity.decode(), ch.assoc.decode(),
                                   ch.enterprise, secret, ch.created, now))
            if changes:
                actions = orjson.dumps([(ch.op, ch.kind, ch.oid) for ch in changes]).decode()
                audit_rows.append((now, _column(user, 200), _column(org, 200), _column(request, 400), actions,
                                   changes[0].rev, changes[-1].rev))
            self._backlog.extend(changes)
        self._many(c, "ins_event", event_rows)
        self._many(c, "ins_audit", audit_rows)

    def _compact(self, limit: int) -> None:
        """Fold the oldest backlog into `objects` and move the compaction mark past it."""
        if not self._backlog:
            return
        with self.engine.begin() as c:
            self._fold(c, limit)
        if not self._backlog and self.engine.dialect.name == "sqlite":
            with self.engine.connect() as c:
                c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _compaction_mark(self, conn) -> int:
        """The revision `objects` holds, under whatever lock folding needs (one VSD: its own mark)."""
        return self.compacted

    def _fold(self, c, limit: int) -> None:
        mark = self._compaction_mark(c)
        skip = 0
        while skip < len(self._backlog) and self._backlog[skip].rev <= mark:
            skip += 1  # folded by another VSD of the cluster
        todo, self._backlog = self._backlog[skip:skip + limit], self._backlog[skip + limit:]
        self.compacted = mark
        if not todo:
            return
        rows: dict[str, tuple[str, tuple]] = {}  # object ID -> (insert|update|delete, row)
        for ch in todo:
            row = (ch.oid, ch.kind, ch.parent, ch.created, ch.entity.decode(),
                   orjson.dumps(ch.members).decode() if ch.members is not None else None,
                   orjson.dumps(ch.secret).decode() if ch.secret else None)
            prior = rows.get(ch.oid)
            if ch.op == "CREATE":
                rows[ch.oid] = ("ins", row)
            elif ch.op == "UPDATE":
                rows[ch.oid] = ("ins" if prior and prior[0] == "ins" else "upd", row)
            elif prior and prior[0] == "ins":
                del rows[ch.oid]
            else:
                rows[ch.oid] = ("del", row)
        last = todo[-1].rev
        self._many(c, "ins_obj", [r for op, r in rows.values() if op == "ins"])
        self._many(c, "upd_obj", [(*r[4:], r[0]) for op, r in rows.values() if op == "upd"])
        self._many(c, "del_obj", [(r[0],) for op, r in rows.values() if op == "del"])
        self.set_meta("compacted", str(last), c)
        if last - self.retention >= self.oldest + max(100, self.retention // 10):
            c.execute(events.delete().where(events.c.revision <= last - self.retention))
            self.oldest = last - self.retention + 1
        self.compacted = last

    def _many(self, conn, name: str, rows: list[tuple]) -> None:
        """executemany of a statement compiled once for this database's dialect, rows in `_COLUMNS[name]`
        order: SQLAlchemy's per-row parameter processing costs more than SQLite's insert on bulk writes."""
        if not rows:
            return
        compiled = self._compiled.get(name)
        if compiled is None:
            cols = _COLUMNS[name]
            binds = {k: bindparam(k) for k in cols if k != "b_id"}
            stmt = {"ins_obj": lambda: insert(objects).values(binds),
                    "ins_event": lambda: insert(events).values(binds),
                    "ins_audit": lambda: insert(audit).values(binds),
                    "upd_obj": lambda: objects.update().where(objects.c.id == bindparam("b_id")).values(binds),
                    "del_obj": lambda: objects.delete().where(objects.c.id == bindparam("b_id"))}[name]()
            c = stmt.compile(dialect=self.engine.dialect)
            order = [cols.index(k) for k in c.positiontup] if c.positional else None
            compiled = self._compiled[name] = (str(c), order, cols)
        sql, order, cols = compiled
        if order is None:
            params = [dict(zip(cols, r, strict=True)) for r in rows]
        elif order == list(range(len(cols))):
            params = rows
        else:
            params = [tuple(r[i] for i in order) for r in rows]
        conn.exec_driver_sql(sql, params)


def _members(assoc: dict) -> list | None:
    return next(iter(assoc.values())) if assoc else None


def change_of(row) -> Change:
    """A logged change as the directory made it, from its `events` row (`EVENT_COLUMNS`)."""
    rev, op, kind, oid, entity, assoc, enterprise, secret, created = row
    ent, asc = entity.encode(), assoc.encode()
    members = _members(orjson.loads(asc))
    parent = orjson.loads(ent).get("parentID")
    return Change(rev, op, kind, oid, parent, ent, asc, members, orjson.loads(secret) if secret else None,
                  created, enterprise, event_line(rev, op, kind, ent, asc))


def _column(text: str, width: int) -> str:
    return text[:width].replace("\x00", "\ufffd")
