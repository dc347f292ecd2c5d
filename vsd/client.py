"""A small VSD API client for vsplab's own tooling and the VSC's stream follower (vspk remains the
reference SDK; this one adds the bulk form and the change stream). Paths are relative to the API root:
`enterprises`, `enterprises/{id}/domains`, `policygroups/{id}/vports`...

Authentication is Nuage's: `GET /me` with the password (basic-style `XREST` token, the organization in
`X-Nuage-Organization`) returns an API key that every later request carries in place of the password.
The key expires (`APIKeyExpiry`); the client logs in again shortly before that, or when the VSD answers
419 (expired), as bambou does, so a long-lived client (the VSC's stream follower) keeps working."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpx
import orjson

BULK_CHUNK = 5000  # objects per bulk POST: big enough to amortise a request, small enough to stream
API_PATH = "/nuage/api/v6"


def api_root(url: str) -> str:
    """The API root for a VSD given either as its base URL (`http://host:8443`) or as the root itself."""
    url = url.rstrip("/")
    return url if url.endswith(API_PATH) else url + API_PATH


class VsdApiError(Exception):
    """A non-2xx answer; `.status` and `.body` hold the VSD's error JSON."""

    def __init__(self, method: str, path: str, status: int, body) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        self.errors = body.get("errors", []) if isinstance(body, dict) else []
        detail = "; ".join(
            f"{e.get('property') or '-'}: " + " ".join(d.get("description", "") for d in e.get("descriptions", []))
            for e in self.errors) or str(body)[:300]
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")

    @property
    def property(self) -> str | None:
        return self.errors[0].get("property") if self.errors else None


class VsdClient:
    def __init__(self, api_url: str, user: str = "csproot", password: str = "csproot",
                 organization: str = "csp", timeout: float = 60.0, verify: bool | str = True) -> None:
        self.api = api_url.rstrip("/")
        self.user, self.organization = user, organization
        self._password = password
        self.api_key, self.key_expiry, self._renew_at = "", None, None
        self.http = httpx.Client(timeout=timeout, verify=verify)
        try:
            self._login()
        except BaseException:
            self.http.close()
            raise

    def _headers(self, secret: str) -> dict:
        token = base64.b64encode(f"{self.user}:{secret}".encode()).decode()
        return {"Authorization": f"XREST {token}", "X-Nuage-Organization": self.organization,
                "Content-Type": "application/json"}

    def _login(self) -> None:
        r = self.http.get(f"{self.api}/me", headers=self._headers(self._password))
        self._took_key(self._check("GET", "me", r)[0])

    def _took_key(self, me: dict) -> None:
        now = time.time()
        self.api_key, self.key_expiry = me["APIKey"], me.get("APIKeyExpiry")
        # renew when a tenth of the key's life is left (at most a minute before it expires)
        life = self.key_expiry / 1000 - now if self.key_expiry else None
        self._renew_at = now + life - min(60.0, life / 10) if life else None

    def _key(self) -> str:
        if self._renew_at is not None and time.time() >= self._renew_at:
            self._login()
        return self.api_key

    def change_password(self, new_password: str) -> None:
        """A new password for this client's own user (`PUT /me`); its other API keys stop working."""
        me = self._check("PUT", "me", self.request("PUT", "me", {"password": new_password}))
        self._password = new_password
        self._took_key(me[0])

    def _check(self, method: str, path: str, r: httpx.Response):
        body = orjson.loads(r.content) if r.content else None
        if r.status_code >= 300:
            raise VsdApiError(method, path, r.status_code, body)
        return body

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> httpx.Response:
        content = orjson.dumps(body) if body is not None else None
        for attempt in (0, 1):
            r = self.http.request(method, f"{self.api}/{path.strip('/')}",
                                  headers={**self._headers(self._key()), **(headers or {})}, content=content)
            if r.status_code != 419 or attempt:
                return r
            self._login()  # the key expired: a new one, and the same request again
        return r

    def create(self, parent_path: str, rest_name: str, obj_or_list: dict | list) -> dict | list:
        """POST one object (returns it) or a list (returns the list, created in bulk per chunk)."""
        path = f"{parent_path.strip('/')}/{rest_name}" if parent_path.strip("/") else rest_name
        if isinstance(obj_or_list, dict):
            return self._check("POST", path, self.request("POST", path, obj_or_list))[0]
        out: list = []
        for i in range(0, len(obj_or_list), BULK_CHUNK):
            body = self._check("POST", path, self.request("POST", path, obj_or_list[i:i + BULK_CHUNK]))
            out.extend(item["data"] for item in body["response"])
        return out

    def get(self, path: str) -> dict:
        return self._check("GET", path, self.request("GET", path))[0]

    def list(self, path: str, filter: str | None = None, page_size: int = 500) -> list[dict]:
        out: list[dict] = []
        page = 0
        while True:
            headers = {"X-Nuage-Page": str(page), "X-Nuage-PageSize": str(page_size)}
            if filter:
                headers["X-Nuage-Filter"] = filter
            r = self.request("GET", path, headers=headers)
            items = self._check("GET", path, r) or []
            out.extend(items)
            if len(out) >= int(r.headers.get("X-Nuage-Count", len(out))) or not items:
                return out
            page += 1

    def count(self, path: str, filter: str | None = None) -> int:
        r = self.request("HEAD", path, headers={"X-Nuage-Filter": filter} if filter else None)
        self._check("HEAD", path, r)
        return int(r.headers["X-Nuage-Count"])

    def update(self, path: str, attrs: dict) -> dict:
        body = self._check("PUT", path, self.request("PUT", path, attrs))
        return body[0] if body else attrs

    def delete(self, path: str) -> None:
        self._check("DELETE", path, self.request("DELETE", path))

    def assign(self, path: str, ids: list[str]) -> None:
        self._check("PUT", path, self.request("PUT", path, list(ids)))

    def audit(self, limit: int = 100) -> list[dict]:
        return self._check("GET", "vsplab/audit", self.request("GET", f"vsplab/audit?limit={limit}"))

    @contextmanager
    def change_stream(self, since: int = 0, read_timeout: float = 15.0) -> Iterator[Iterator[dict]]:
        """Opens the change stream from `since` (a VsdApiError if the VSD refuses it) and gives its
        snapshot, event and heartbeat lines; the VSD sends a heartbeat every 5 s of silence, so a read
        that waits `read_timeout` for one means the connection is dead (httpx.ReadTimeout)."""
        timeout = httpx.Timeout(10.0, read=read_timeout)
        for attempt in (0, 1):
            with self.http.stream("GET", f"{self.api}/vsplab/changes", params={"since": since},
                                  headers=self._headers(self._key()), timeout=timeout) as r:
                if r.status_code == 419 and not attempt:
                    r.read()
                    self._login()
                    continue
                if r.status_code != 200:
                    r.read()
                    self._check("GET", "vsplab/changes", r)
                yield ndjson(r.iter_bytes())
                return

    def changes(self, since: int = 0, read_timeout: float = 15.0) -> Iterator[dict]:
        """The change stream's lines from `since`, until the caller stops or the VSD closes it."""
        with self.change_stream(since, read_timeout) as lines:
            yield from lines

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VsdClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ndjson(chunks: Iterable[bytes]) -> Iterator[dict]:
    """JSON documents, one per `\\n`-terminated line. Split as bytes, not with httpx's `iter_lines`: that
    decodes to text and splits on every Unicode line break too, and orjson leaves U+2028 or U+0085 inside a
    string unescaped. A snapshot is one line of megabytes, so its pieces are joined once, not re-copied
    per chunk. A last line without its newline was cut off with the connection and is dropped."""
    pending: list[bytes] = []
    for chunk in chunks:
        *complete, rest = chunk.split(b"\n")
        if complete:
            pending.append(complete[0])
            complete[0] = b"".join(pending)
            pending = []
            for line in complete:
                if line.strip():
                    yield orjson.loads(line)
        if rest:
            pending.append(rest)
