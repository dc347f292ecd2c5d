"""Publishing committed changes: the controllers' resumable change stream (docs/interfaces.md section 1)
and the Nuage push-center long poll (`GET /events[?uuid=...]`) that bambou's NURESTPushCenter uses.

Changes reach the hub only after their transaction committed, in revision order. The newest ones are
kept in memory; a subscriber further behind reads them from the `events` table; one behind the oldest
kept event (or starting from 0) gets a snapshot first. A snapshot is taken from memory at the newest
applied revision and held back until that revision is committed, so it never shows an object a crash
could still take back. In a cluster (vsd/cluster.py) the hub publishes every VSD's commits, in revision
order, so a subscriber may move from one VSD to another with its `since`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque

import orjson

from vsd.change import Change, event_line
from vsd.directory import Directory, Principal, assoc_of, represent

HEARTBEAT_S = 5.0
PUSH_WAIT_S = 25.0
CATCH_UP_S = 5.0


class Hub:
    def __init__(self, directory: Directory, store, ring: int = 50_000) -> None:
        self.dir, self.store = directory, store
        self.recent: deque[Change] = deque(maxlen=ring)
        self.committed = directory.revision
        self._wake = asyncio.Event()
        self.push_cursors: dict[str, list] = {}  # push-center uuid -> [revision, last seen]
        self.closing = False  # set on shutdown: long polls and streams end so connections can close

    def close(self) -> None:
        self.closing = True
        self._wake.set()

    def on_commit(self, changes: list[Change]) -> None:
        self.recent.extend(changes)
        if changes:
            self.committed = changes[-1].rev
        self._wake.set()
        self._wake = asyncio.Event()

    async def wait_committed(self, rev: int) -> None:
        while self.committed < rev and not self.closing:
            await self._wake.wait()

    async def wait_new(self, after: int, timeout: float) -> bool:
        if self.committed > after:
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return self.committed > after

    async def caught_up(self, revision: int) -> None:
        """A controller failing over from another VSD of a cluster may have seen revisions this one has
        not read yet (a notification in flight): wait for them rather than answer with an older
        snapshot. A revision the database never reaches (a subscriber of another database) gets the
        snapshot after CATCH_UP_S."""
        self.store.poke()
        try:
            await asyncio.wait_for(self.wait_committed(revision), CATCH_UP_S)
        except TimeoutError:
            pass

    def _from_ring(self, since: int) -> list[Change] | None:
        """Changes after `since` from memory, or None when memory does not reach back that far."""
        if not self.recent or self.recent[0].rev > since + 1:
            return None if since < self.committed else []
        first = self.recent[0].rev
        start = since + 1 - first
        return [self.recent[i] for i in range(max(start, 0), len(self.recent))]

    def snapshot(self, who: Principal) -> tuple[int, bytes]:
        rev = self.dir.revision
        tree = self.dir.tree
        objs = sorted((o for o in tree.objs.values() if who.root or o.enterprise == who.enterprise_id),
                      key=lambda o: o.rev)
        body = orjson.dumps({"kind": "snapshot", "revision": rev, "objects": [
            {"entityType": o.kind, "entity": represent(tree, o), "assoc": assoc_of(o.kind, o.members)}
            for o in objs]})
        return rev, body + b"\n"

    async def changes(self, who: Principal, since: int):
        """The NDJSON lines of a change-stream subscription, forever."""
        if since > self.committed and self.store.clustered:
            await self.caught_up(since)
        if since <= 0 or since > self.dir.revision or since + 1 < self.store.oldest:
            rev, line = self.snapshot(who)
            await self.wait_committed(rev)
            yield line
            since = rev
        while not self.closing:
            batch = self._from_ring(since)
            if batch is None:
                rows = await asyncio.to_thread(self.store.events_after, since)
                if not rows or rows[0][0] != since + 1:  # pruned meanwhile: start over from a snapshot
                    rev, line = self.snapshot(who)
                    await self.wait_committed(rev)
                    yield line
                    since = rev
                    continue
                lines = []
                for rev, op, kind, entity, assoc, ent in rows:
                    if who.root or ent == who.enterprise_id:
                        lines.append(event_line(rev, op, kind, entity, assoc))
                    since = rev
                if lines:
                    yield b"".join(lines)
                continue
            if batch:
                out = [ch.line for ch in batch if who.root or ch.enterprise == who.enterprise_id]
                since = batch[-1].rev
                if out:
                    yield b"".join(out)
                continue
            if not await self.wait_new(since, HEARTBEAT_S):
                yield b'{"kind":"heartbeat","revision":%d}\n' % self.committed

    # --- bambou push center

    def push_open(self) -> str:
        token = str(uuid.uuid4())
        self.push_cursors[token] = [self.committed, time.monotonic()]
        now = time.monotonic()
        for k, (_, seen) in list(self.push_cursors.items()):
            if now - seen > 600:
                del self.push_cursors[k]
        return token

    async def push_poll(self, who: Principal, token: str) -> bytes:
        cursor = self.push_cursors.get(token)
        if cursor is None:  # unknown or expired: the client just starts over from now
            token = self.push_open()
            cursor = self.push_cursors[token]
        deadline = time.monotonic() + PUSH_WAIT_S
        while True:
            cursor[1] = time.monotonic()
            batch = self._from_ring(cursor[0])
            if batch is None:  # fell behind memory: the push center is best effort, skip to now
                cursor[0], batch = self.committed, []
            items = [ch for ch in batch if who.root or ch.enterprise == who.enterprise_id][:1000]
            if batch:
                cursor[0] = items[-1].rev if len(items) == 1000 else batch[-1].rev
            if items or time.monotonic() >= deadline or self.closing:
                break
            await self.wait_new(cursor[0], max(0.0, deadline - time.monotonic()))
        now_ms = int(time.time() * 1000)
        events = b",".join(
            b'{"type":"%s","entityType":"%s","updateMechanism":"DEFAULT","eventReceivedTime":%d,'
            b'"requestID":null,"sourceEnterpriseID":%s,"entities":[%s]}'
            % (ch.op.encode(), ch.kind.encode(), now_ms, orjson.dumps(ch.enterprise), ch.entity) for ch in items)
        return b'{"uuid":"%s","events":[%s]}' % (token.encode(), events)
