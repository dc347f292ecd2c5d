"""The request as the API reads it. Every header, query parameter and body reaches a handler through
here, checked, or the request is answered with a 4xx naming what was wrong: headers must be UTF-8 text
of bounded size, numbers must be integers within their range, a body at most `MAX_BODY` bytes of JSON,
and each fixed path answers only its own methods (405 otherwise).

Bodies are checked against the entity schema further on (`vsd.schema.clean_input`, `vsd.formats`);
this module covers what comes before a body is even parsed."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

import orjson

from vsd.errors import VsdError, bad

MAX_BODY = 64 << 20  # a 5,000-object bulk POST is a few MB
MAX_HEADER = 16 << 10
MAX_QUERY_FIELDS = 20
# Headers that authenticate: a malformed one is an authentication failure (401), not a bad request.
_AUTH_HEADERS = {"authorization", "x-nuage-organization"}
# The fixed paths (below the API root) and the methods each answers.
FIXED = {("me",): ("GET", "PUT"), ("events",): ("GET",), ("vsplab", "health"): ("GET", "HEAD"),
         ("vsplab", "audit"): ("GET",), ("vsplab", "changes"): ("GET",)}


def method_not_allowed(method: str, path: str, allowed: tuple[str, ...] | None = None) -> VsdError:
    more = f" (only {', '.join(allowed)})" if allowed else ""
    return VsdError(405, "", "Method not allowed", f"{method[:20]} is not allowed on {path[:200]}{more}")


@dataclass
class Request:
    method: str
    path: str
    parts: list[str]
    raw_headers: dict[bytes, bytes]
    query: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def from_scope(cls, scope, prefix: str) -> Request:
        path = scope["path"]
        parts = [p for p in path[len(prefix):].split("/") if p] if path.startswith(prefix) else []
        try:
            query = parse_qs(scope["query_string"].decode("latin-1"), max_num_fields=MAX_QUERY_FIELDS,
                             errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise bad("", f"the query string is not valid (at most {MAX_QUERY_FIELDS} UTF-8 fields)") from None
        return cls(scope["method"], path, parts, dict(scope["headers"]), query)

    def allow(self) -> None:
        """405 unless the method is one the fixed path answers (other paths are checked by the REST router)."""
        allowed = FIXED.get(tuple(self.parts))
        if allowed is not None and self.method not in allowed:
            raise method_not_allowed(self.method, self.path, allowed)

    def header(self, name: str) -> str | None:
        raw = self.raw_headers.get(name.lower().encode())
        if not raw:
            return None
        status = 401 if name.lower() in _AUTH_HEADERS else 400
        if len(raw) > MAX_HEADER:
            raise VsdError(status, name, "Invalid header", f"{name} is longer than {MAX_HEADER} bytes")
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise VsdError(status, name, "Invalid header", f"{name} is not valid UTF-8") from None

    def header_int(self, name: str, default: int, low: int, high: int) -> int:
        return _integer(name, self.header(name), default, low, high)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def param_int(self, name: str, default: int, low: int, high: int) -> int:
        return _integer(name, self.param(name), default, low, high)

    def json(self):
        try:
            return orjson.loads(self.body or b"null")
        except orjson.JSONDecodeError as e:
            raise bad("", f"the body is not valid JSON: {e}") from None

    async def read_body(self, receive) -> None:
        chunks, size = [], 0
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise VsdError(413, "", "Body too large", f"the body is larger than {MAX_BODY >> 20} MiB")
            chunks.append(chunk)
            if not msg.get("more_body"):
                self.body = b"".join(chunks)
                return


def _integer(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    text = text.strip()
    if not (text.isascii() and (text[1:] if text[:1] == "-" else text).isdigit() and len(text) <= 20):
        raise bad(name, f"{name} must be an integer, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise bad(name, f"{name} must be between {low} and {high}, got {value}")
    return value
