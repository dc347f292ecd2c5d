"""The VSD v6 REST API as a bare ASGI application (no framework in the request path: this is the
server's hot loop, and every microsecond counts towards a thousand creates per second).

Paths under /nuage/api/v6: `/me`, `/{resource}`, `/{resource}/{id}`, `/{resource}/{id}/{children}`
(list, create, assign members), `/events` (push center), `/vsplab/changes` (the controllers' stream),
`/vsplab/audit` and `/vsplab/health`. Lists honour X-Nuage-Filter, X-Nuage-Page and X-Nuage-PageSize
and answer X-Nuage-Count. A POST whose body is a list creates all of it in one transaction and answers
in bambou's bulk shape `{"response": [{"status", "data"}...], "responseMetadata": {...}}`."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

import orjson

from vsd.auth import Auth
from vsd.directory import Directory, Principal, represent
from vsd.errors import VsdError, bad, forbidden, not_found
from vsd.filters import parse_filter
from vsd.schema import MEMBERS, RESOURCE_TO_ENTITY, SPEC
from vsd.store import Store
from vsd.stream import Hub

log = logging.getLogger("vsd.api")
PREFIX = "/nuage/api/v6"
DEFAULT_PAGE_SIZE = 500
_JSON = [(b"content-type", b"application/json")]
REVERSE_MEMBERS = {v: k for k, v in MEMBERS.items()}  # member kind -> owner kind


class Response(Exception):
    def __init__(self, status: int, body: bytes = b"", headers: list | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or []


def _json(status: int, payload, headers: list | None = None) -> Response:
    return Response(status, orjson.dumps(payload), [*_JSON, *(headers or [])])


class VsdApp:
    def __init__(self, store: Store, directory: Directory, auth: Auth) -> None:
        self.store, self.dir, self.auth = store, directory, auth
        self.hub: Hub | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self.hub = Hub(self.dir, self.store)
                self.store.start(asyncio.get_running_loop(), self.hub.on_commit)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.store.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send) -> None:
        headers = {k: v for k, v in scope["headers"]}
        try:
            path = scope["path"]
            if not path.startswith(PREFIX):
                raise not_found("", f"no such path {path}")
            parts = [p for p in path[len(PREFIX):].split("/") if p]
            method = scope["method"]
            body = await _read_body(receive) if method in ("POST", "PUT") else b""
            if parts == ["vsplab", "health"]:
                raise _json(200, {"revision": self.dir.revision, "committed": self.hub.committed})
            org = headers.get(b"x-nuage-organization", b"").decode() or None
            authz = headers.get(b"authorization", b"").decode() or None
            if parts == ["me"]:
                who = self.auth.principal(org, authz, password_allowed=True)
                raise _json(200, [self.auth.me(who)])
            who = self.auth.principal(org, authz)
            if parts and parts[0] == "vsplab":
                await self._vsplab(who, parts, scope, receive, send)
                return
            if parts == ["events"]:
                qs = parse_qs(scope["query_string"].decode())
                token = qs.get("uuid", [None])[0]
                if token is None:
                    raise _json(200, {"uuid": self.hub.push_open(), "events": []})
                raise Response(200, await self.hub.push_poll(who, token), _JSON)
            await self._rest(who, method, parts, headers, body, scope)
            raise not_found("", f"no such path {path}")
        except Response as r:
            await _send(send, r.status, r.body, r.headers)
        except VsdError as e:
            await _send(send, e.status, orjson.dumps(e.body()), _JSON)
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            err = VsdError(500, "", "Internal error", "the VSD failed on this request; see its log")
            await _send(send, 500, orjson.dumps(err.body()), _JSON)

    # --- REST

    async def _rest(self, who: Principal, method: str, parts: list[str], headers: dict, body: bytes,
                    scope) -> None:
        request = f"{method} {scope['path']}"
        if len(parts) == 1:
            kind = _entity(parts[0])
            if method in ("GET", "HEAD"):
                self._list(who, kind, self.dir.tree.under("", kind), headers, method)
            if method == "POST":
                await self._create(who, None, kind, body, request)
        elif len(parts) == 2:
            kind = _entity(parts[0])
            if method == "GET":
                obj = self.dir.visible(who, parts[1], kind)
                raise _json(200, [represent(self.dir.tree, obj)])
            if method == "PUT":
                self.dir.visible(who, parts[1], kind)
                txn, obj = self.dir.update(who, parts[1], _parse(body))
                await self._commit(who, txn, request)
                raise _json(200, [represent(self.dir.tree, obj)])
            if method == "DELETE":
                self.dir.visible(who, parts[1], kind)
                await self._commit(who, self.dir.delete(who, parts[1]), request)
                raise Response(204)
        elif len(parts) == 3:
            owner = self.dir.visible(who, parts[1], _entity(parts[0]), prop="parentID")
            rel = SPEC[owner.kind]["relations"].get(parts[2])
            if rel is None:
                raise not_found("", f"a {owner.kind} has no {parts[2]}")
            kind = rel["entity"]
            if method in ("GET", "HEAD"):
                self._list(who, kind, self._related(owner, kind), headers, method)
            if method == "POST":
                await self._create(who, owner.id, kind, body, request)
            if method == "PUT":
                txn, _ = self.dir.assign(who, owner.id, kind, _parse(body))
                await self._commit(who, txn, request)
                raise Response(204)
        raise VsdError(405, "", "Method not allowed", f"{method} is not allowed on {scope['path']}")

    def _related(self, owner, kind: str):
        tree = self.dir.tree
        if MEMBERS.get(owner.kind) == kind:
            return owner.members or ()
        if REVERSE_MEMBERS.get(owner.kind) == kind:
            return [i for i in tree.member_of.get(owner.id, ()) if tree.objs[i].kind == kind]
        return tree.under(owner.id, kind)

    def _list(self, who: Principal, kind: str, ids, headers: dict, method: str) -> None:
        tree = self.dir.tree
        pred = parse_filter(headers.get(b"x-nuage-filter", b"").decode() or None)
        objs = [tree.objs[i] for i in ids]
        if not who.root:
            objs = [o for o in objs if o.enterprise == who.enterprise_id]
        objs.sort(key=lambda o: o.rev)
        if pred is not None:
            objs = [o for o in objs if pred(o.data)]
        try:
            page = int(headers.get(b"x-nuage-page", b"0") or 0)
            size = int(headers.get(b"x-nuage-pagesize", b"0") or 0) or DEFAULT_PAGE_SIZE
        except ValueError:
            raise bad("X-Nuage-Page", "X-Nuage-Page and X-Nuage-PageSize must be integers") from None
        if page < 0 or size < 1:
            raise bad("X-Nuage-Page", "X-Nuage-Page must be >= 0 and X-Nuage-PageSize >= 1")
        meta = [(b"x-nuage-count", str(len(objs)).encode()), (b"x-nuage-page", str(page).encode()),
                (b"x-nuage-pagesize", str(size).encode())]
        if method == "HEAD":
            raise Response(200, b"", meta)
        chunk = objs[page * size:(page + 1) * size]
        raise _json(200, [represent(tree, o) for o in chunk], meta)

    async def _create(self, who: Principal, parent_id: str | None, kind: str, body: bytes, request: str):
        payload = _parse(body)
        if isinstance(payload, list) and not payload:
            raise bad("", "an empty list creates nothing")
        txn, objs = self.dir.create(who, parent_id, kind, payload)
        await self._commit(who, txn, request)
        tree = self.dir.tree
        if isinstance(payload, list):
            raise _json(201, {"response": [{"status": 201, "data": represent(tree, o)} for o in objs],
                              "responseMetadata": {"success": len(objs), "failure": 0, "total": len(objs)}})
        raise _json(201, [represent(tree, objs[0])])

    async def _commit(self, who: Principal, txn, request: str) -> None:
        changes = self.dir.number(txn)
        if changes:
            await self.store.submit(changes, (who.user_name, who.organization), request)

    # --- vsplab extensions

    async def _vsplab(self, who: Principal, parts: list[str], scope, receive, send) -> None:
        qs = parse_qs(scope["query_string"].decode())
        if parts == ["vsplab", "audit"]:
            if not who.root:
                raise forbidden("only the CSP root reads the audit log")
            limit = int(qs.get("limit", ["1000"])[0])
            raise _json(200, await asyncio.to_thread(self.store.audit_rows, limit))
        if parts != ["vsplab", "changes"]:
            raise not_found("", f"no such path {scope['path']}")
        try:
            since = int(qs.get("since", ["0"])[0])
        except ValueError:
            raise bad("since", "since must be an integer revision") from None
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson"), (b"cache-control", b"no-cache")]})
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        gen = self.hub.changes(who, since)
        try:
            async for chunk in gen:
                if gone.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:  # the VSD is shutting down: end the response so the connection can close
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, RuntimeError):
            pass
        finally:
            watcher.cancel()
            await gen.aclose()


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


def _parse(body: bytes):
    try:
        return orjson.loads(body or b"null")
    except orjson.JSONDecodeError as e:
        raise bad("", f"the body is not valid JSON: {e}") from None


def _entity(resource: str) -> str:
    kind = RESOURCE_TO_ENTITY.get(resource)
    if kind is None or kind == "me":
        raise not_found("", f"no such resource {resource!r}")
    return kind


async def _send(send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
