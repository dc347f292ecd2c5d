"""The VSD's tables (see `vsd.store` for what each holds) and the engine that opens them: SQLite
with the pragmas the store's writer relies on, or PostgreSQL with the session limits a cluster needs."""

from __future__ import annotations

import os

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()
objects = Table("objects", metadata,
                Column("id", String(36), primary_key=True), Column("kind", String(40), nullable=False),
                Column("parent", String(36)), Column("rev", BigInteger, nullable=False),
                Column("data", Text, nullable=False), Column("members", Text), Column("secret", Text))
events = Table("events", metadata,
               Column("revision", BigInteger, primary_key=True, autoincrement=False),
               Column("type", String(8), nullable=False), Column("kind", String(40), nullable=False),
               Column("object_id", String(36), nullable=False), Column("entity", Text, nullable=False),
               Column("assoc", Text, nullable=False), Column("enterprise", String(36)),
               Column("secret", Text), Column("created", BigInteger), Column("ts", Float, nullable=False))
audit = Table("audit", metadata,
              Column("id", Integer, primary_key=True, autoincrement=True), Column("ts", Float, nullable=False),
              Column("user_name", String(200), nullable=False), Column("organization", String(200)),
              Column("request", String(400)), Column("actions", Text, nullable=False),
              Column("first_revision", BigInteger), Column("last_revision", BigInteger))
meta = Table("meta", metadata, Column("key", String(100), primary_key=True), Column("value", Text))
apikeys = Table("apikeys", metadata,
                Column("digest", String(64), primary_key=True), Column("user_id", String(36), nullable=False),
                Column("expires", Float, nullable=False))

PG_SESSION = ("-c idle_in_transaction_session_timeout=30000 -c tcp_keepalives_idle=10 "
              "-c tcp_keepalives_interval=5 -c tcp_keepalives_count=3")


def make_engine(url: str, sqlite_synchronous: str = "NORMAL"):
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgresql"):
        # A VSD of a cluster that freezes while it holds the write lock (idle in its transaction) or
        # whose host vanishes would hold every other VSD's writes: PostgreSQL ends such a session.
        return create_engine(url, pool_pre_ping=True, connect_args={"options": PG_SESSION})
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
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
        # checkpoints run when the writer is idle (after compaction), not inside the commit that
        # happens to cross the WAL size limit: that would add ~0.2 s to a bulk call's answer
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    return engine
