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

import orjson

from vsd import jobs
from vsd.auth import Auth
from vsd.directory import Directory, Principal, represent
from vsd.errors import VsdError, bad, forbidden, not_found
from vsd.filters import parse_filter
from vsd.formats import PASSWORD_MAX, check_text
from vsd.inputs import Request, method_not_allowed
from vsd.schema import MEMBERS, RESOURCE_TO_ENTITY, SPEC
from vsd.store import Store
from vsd.stream import Hub

log = logging.getLogger("vsd.api")
PREFIX = "/nuage/api/v6"
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1_000_000
MAX_AUDIT_ROWS = 100_000
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
        self._jobs: set[asyncio.Task] = set()  # running jobs (a task only weakly held would be collected)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            finally:
                if self.store.clustered:  # a call that submitted nothing gives its write turn back
                    self.store.end_turn()

    async def _lifespan(self, receive, send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self.hub = Hub(self.dir, self.store)
                self.store.start(asyncio.get_running_loop(), self.hub.on_commit)
                self._resume_jobs()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.auth.close()
                await asyncio.to_thread(self.store.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send) -> None:
        try:
            req = Request.from_scope(scope, PREFIX)
            if not req.path.startswith(PREFIX):
                raise not_found("", f"no such path {req.path[:200]}")
            req.allow()
            if req.method in ("POST", "PUT"):
                await req.read_body(receive)
            if req.parts == ["vsplab", "health"]:
                raise _json(200, {"revision": self.dir.revision, "committed": self.hub.committed})
            org, authz = req.header("X-Nuage-Organization"), req.header("Authorization")
            if req.parts == ["me"]:
                await self._me(req, org, authz)
            who = self.auth.principal(org, authz)
            if self.store.clustered and req.method in ("POST", "PUT", "DELETE"):
                await self.store.take_turn()  # vsd/cluster.py: a write sees the whole cluster's newest state
            if req.parts[:1] == ["vsplab"]:
                await self._vsplab(who, req, receive, send)
                return
            if req.parts == ["events"]:
                token = req.param("uuid")
                if token is None:
                    raise _json(200, {"uuid": self.hub.push_open(), "events": []})
                raise Response(200, await self.hub.push_poll(who, token[:100]), _JSON)
            await self._rest(who, req)
        except Response as r:
            await _send(send, r.status, r.body, r.headers)
        except VsdError as e:
            await _send(send, e.status, orjson.dumps(e.body()), _JSON)
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            err = VsdError(500, "", "Internal error", "the VSD failed on this request; see its log")
            await _send(send, 500, orjson.dumps(err.body()), _JSON)

    async def _me(self, req: Request, org: str | None, authz: str | None) -> None:
        """GET: the login (a new API key for the password). PUT {"password": ...}: the caller's own new
        password; every key it held is dropped, and the answer carries a new one."""
        who, key, expires = await self.auth.login(org, authz)
        if req.method == "PUT":
            body = req.json()
            password = body.get("password") if isinstance(body, dict) else None
            if not isinstance(password, str) or not password:
                raise bad("password", "PUT /me needs {\"password\": the new password}")
            check_text("me", "password", password)
            secret = await self.auth.hash(password)
            if who.root:
                await self.auth.set_root_secret(secret)
            else:
                if self.store.clustered:
                    await self.store.take_turn()
                await self._commit(who, self.dir.set_secret(who, secret), f"PUT {req.path}")
            await self.auth.revoke(who.user_id)
            key, expires = await self.auth.issue(who.user_id)
        raise _json(200, [self.auth.me(who, key, expires)])

    # --- REST

    async def _rest(self, who: Principal, req: Request) -> None:
        method, parts = req.method, req.parts
        request = f"{method} {req.path}"
        if len(parts) == 1:
            kind = _entity(parts[0])
            if method in ("GET", "HEAD"):
                self._list(who, kind, self.dir.tree.under("", kind), req)
            if method == "POST":
                await self._create(who, None, kind, req.json(), request)
        elif len(parts) == 2:
            kind = _entity(parts[0])
            if method == "GET":
                obj = self.dir.visible(who, parts[1], kind)
                raise _json(200, [represent(self.dir.tree, obj)])
            if method == "PUT":
                self.dir.visible(who, parts[1], kind)
                body = req.json()
                if kind == "user":
                    self.dir.may_update(who, parts[1], body)
                secret = await self._secret(kind, body)
                txn, obj = self.dir.update(who, parts[1], body, secret)
                await self._commit(who, txn, request)
                if secret is not None:  # a new password: the keys the old one handed out go
                    await self.auth.revoke(obj.id)
                raise _json(200, [represent(self.dir.tree, obj)])
            if method == "DELETE":
                self.dir.visible(who, parts[1], kind)
                await self._commit(who, self.dir.delete(who, parts[1]), request)
                raise Response(204)
        elif len(parts) == 3:
            owner = self.dir.visible(who, parts[1], _entity(parts[0]), prop="parentID")
            rel = SPEC[owner.kind]["relations"].get(parts[2])
            if rel is None:
                raise not_found("", f"a {owner.kind} has no {parts[2][:100]}")
            kind = rel["entity"]
            if method in ("GET", "HEAD"):
                self._list(who, kind, self._related(owner, kind), req)
            if method == "POST":
                await self._create(who, owner.id, kind, req.json(), request)
            if method == "PUT":
                txn, _ = self.dir.assign(who, owner.id, kind, req.json())
                await self._commit(who, txn, request)
                raise Response(204)
        else:
            raise not_found("", f"no such path {req.path[:200]}")
        raise method_not_allowed(method, req.path)

    async def _secret(self, kind: str, item: object) -> dict | None:
        """A user's password hashed off the event loop (a malformed one is left for the schema to refuse)."""
        password = item.get("password") if kind == "user" and isinstance(item, dict) else None
        if not isinstance(password, str) or not password or len(password) > PASSWORD_MAX:
            return None
        return await self.auth.hash(password)

    def _related(self, owner, kind: str):
        tree = self.dir.tree
        if MEMBERS.get(owner.kind) == kind:
            return owner.members or ()
        if REVERSE_MEMBERS.get(owner.kind) == kind:
            return [i for i in tree.member_of.get(owner.id, ()) if tree.objs[i].kind == kind]
        return tree.under(owner.id, kind)

    def _list(self, who: Principal, kind: str, ids, req: Request) -> None:
        tree = self.dir.tree
        pred = parse_filter(req.header("X-Nuage-Filter"))
        objs = [tree.objs[i] for i in ids]
        if not who.root:
            objs = [o for o in objs if o.enterprise == who.enterprise_id]
        objs.sort(key=lambda o: o.rev)
        if pred is not None:
            objs = [o for o in objs if pred(o.data)]
        page = req.header_int("X-Nuage-Page", 0, 0, 1 << 31)
        size = req.header_int("X-Nuage-PageSize", 0, 0, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        meta = [(b"x-nuage-count", str(len(objs)).encode()), (b"x-nuage-page", str(page).encode()),
                (b"x-nuage-pagesize", str(size).encode())]
        if req.method == "HEAD":
            raise Response(200, b"", meta)
        chunk = objs[page * size:(page + 1) * size]
        raise _json(200, [represent(tree, o) for o in chunk], meta)

    async def _create(self, who: Principal, parent_id: str | None, kind: str, payload, request: str):
        if isinstance(payload, list) and not payload:
            raise bad("", "an empty list creates nothing")
        secrets = None
        if kind == "user":  # refuse what would be refused anyway before paying for the password hashes
            self.dir.may_create(who, parent_id, kind, payload)
            items = payload if isinstance(payload, list) else [payload]
            secrets = await asyncio.gather(*(self._secret(kind, item) for item in items))
        txn, objs = self.dir.create(who, parent_id, kind, payload, secrets)
        await self._commit(who, txn, request)
        if kind == "job":
            for job in objs:
                self._start_job(who, job.id)
        tree = self.dir.tree
        if isinstance(payload, list):
            raise _json(201, {"response": [{"status": 201, "data": represent(tree, o)} for o in objs],
                              "responseMetadata": {"success": len(objs), "failure": 0, "total": len(objs)}})
        raise _json(201, [represent(tree, objs[0])])

    async def _commit(self, who: Principal, txn, request: str) -> None:
        changes = self.dir.number(txn)
        if changes:
            await self.store.submit(changes, (who.user_name, who.organization), request)

    # --- jobs: answered RUNNING, run right after, polled by the client

    def _start_job(self, who: Principal, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run_job(who, job_id))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _run_job(self, who: Principal, job_id: str) -> None:
        try:
            if self.store.clustered:  # a job writes as a call does, on the cluster's newest state (and
                await self.store.take_turn()  # a job another VSD already ran is no longer RUNNING)
            txn = jobs.run(self.dir, who, job_id)
            if txn is not None:
                await self._commit(who, txn, f"JOB {self.dir.tree.objs[job_id].data['command']} {job_id}")
        except Exception:
            log.exception("job %s failed", job_id)
        finally:
            if self.store.clustered:
                self.store.end_turn()

    def _resume_jobs(self) -> None:
        """Jobs the VSD stopped before running (their creation was committed, their work was not)."""
        for job_id in list(self.dir.tree.under("", "job")):
            job = self.dir.tree.objs[job_id]
            if job.data.get("status") == "RUNNING":
                who = Principal(job.data.get("owner") or "", "vsd (restarted)", None, "csp", "CSPROOT")
                self._start_job(who, job_id)

    # --- vsplab extensions

    async def _vsplab(self, who: Principal, req: Request, receive, send) -> None:
        if req.parts == ["vsplab", "audit"]:
            if not who.root:
                raise forbidden("only the CSP root reads the audit log")
            limit = req.param_int("limit", 1000, 1, MAX_AUDIT_ROWS)
            raise _json(200, await asyncio.to_thread(self.store.audit_rows, limit))
        if req.parts != ["vsplab", "changes"]:
            raise not_found("", f"no such path {req.path[:200]}")
        since = req.param_int("since", 0, 0, (1 << 63) - 1)
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


def _entity(resource: str) -> str:
    kind = RESOURCE_TO_ENTITY.get(resource)
    if kind is None or kind == "me":
        raise not_found("", f"no such resource {resource[:100]!r}")
    return kind


async def _send(send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
