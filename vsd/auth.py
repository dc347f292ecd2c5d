"""Who is calling: `Authorization: XREST base64(user:secret)` plus `X-Nuage-Organization`, where the secret
is the password on `GET /me` (the login, which answers an API key) and the API key on every other call.

The CSP root lives in organization `csp`; its password hash is kept in the store's meta table.
Enterprise users are `user` objects, and their role comes from the groups they are members of
(ORGADMIN in any group makes an enterprise admin, otherwise a read-only ORGUSER). A user marked
`disabled` is refused with its password and with any key it holds; `disablePasswordAuth` refuses the
password only.

API keys are Nuage's: each login hands out a new key that lives `lifetime` seconds (`APIKeyExpiry`, in
ms); after that the key answers 419, which bambou (and `vsd.client`) take as "log in again". A user's
older keys stay valid until they expire (several clients may share one account), at most `PER_USER`
of them. Only each key's SHA-256 is kept, in memory and in the store's `apikeys` table. A password
change drops all of the user's keys.

Password hashes cost about 0.2 s of CPU, so they are computed on a small thread pool of their own at
a lower priority, never on the event loop. A refusal says the same whether the organization, the user or the secret was
wrong (and an unknown user costs a hash too), so a login cannot be used to learn who exists."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from vsd.directory import Directory, Principal
from vsd.errors import VsdError
from vsd.passwords import key_digest, new_api_key, new_secret, password_ok

ROOT_ORG = "csp"
DEFAULT_LIFETIME = 86_400.0  # a day, as a VSD hands out
PER_USER = 64


def unauthorized(description: str, prop: str = "") -> VsdError:
    return VsdError(401, prop, "Authentication failed", description)


def expired() -> VsdError:
    return VsdError(419, "", "Authentication expired",
                    "the API key has expired; log in again (GET /me with the password) for a new one")


def _lower_priority() -> None:
    try:  # Linux: a thread's own nice value, set by its thread ID
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


@dataclass(slots=True)
class ApiKey:
    digest: str
    user_id: str
    expires: float  # time.time() seconds


class Auth:
    def __init__(self, directory: Directory, store, root: dict, lifetime: float = DEFAULT_LIFETIME) -> None:
        self.dir, self.store, self.root = directory, store, root
        self.lifetime = lifetime
        self.keys: dict[str, ApiKey] = {}
        self.by_user: dict[str, list[str]] = {}  # user ID -> its key digests, oldest first
        # one hashing thread per core beyond the event loop's, at a lower priority: a burst of logins
        # (or a password-guessing client) then takes spare CPU, never the event loop's
        self._pool = ThreadPoolExecutor(max(1, min(2, (os.cpu_count() or 2) - 1)), thread_name_prefix="vsd-hash",
                                        initializer=_lower_priority)
        self._decoy: dict | None = None  # a hash to check unknown users against, so they cost the same

    def load_keys(self) -> None:
        for digest, user_id, expires in self.store.api_keys(time.time() - self.lifetime):
            self._add(ApiKey(digest, user_id, expires))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- checking a call

    @staticmethod
    def _decode(header: str | None) -> tuple[str, str]:
        if not header or not header.startswith("XREST "):
            raise unauthorized("missing 'Authorization: XREST base64(user:password or APIKey)' header",
                               "Authorization")
        try:
            user, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized("the Authorization header is not valid base64 of UTF-8", "Authorization") from None
        return user, secret

    @staticmethod
    def _refused(org: str) -> VsdError:
        return unauthorized(f"wrong user name, password or API key for organization {org[:100]!r}")

    def _find(self, org: str, user: str) -> tuple[str, dict | None] | None:
        """(user ID, password secret) of `user` in `org`, or None."""
        if org == ROOT_ORG:
            return (self.root["id"], self.root) if user == self.root["user"] else None
        ent_id = self.dir.tree.names.get(("", "enterprise", org))
        uid = self.dir.idx.users.get((ent_id, user)) if ent_id else None
        obj = self.dir.tree.get(uid or "")
        return (uid, obj.secret) if obj is not None and obj.kind == "user" else None

    def _key(self, org: str, user: str, secret: str) -> tuple[tuple | None, ApiKey | None]:
        found = self._find(org, user)
        key = self.keys.get(key_digest(secret))
        if key is not None and (found is None or key.user_id != found[0]):
            key = None
        return found, key

    def principal(self, org: str | None, header: str | None) -> Principal:
        """The caller of any call but the login: its API key must be live."""
        if not org:
            raise unauthorized("missing X-Nuage-Organization header", "X-Nuage-Organization")
        user, secret = self._decode(header)
        found, key = self._key(org, user, secret)
        if key is None:
            raise self._refused(org)
        if key.expires <= time.time():
            raise expired()
        return self._principal(org, user, found[0])

    async def login(self, org: str | None, header: str | None) -> tuple[Principal, str, float]:
        """`GET /me`: with the password, a new API key; with a live key, that key. Returns the caller,
        the key and its expiry."""
        if not org:
            raise unauthorized("missing X-Nuage-Organization header", "X-Nuage-Organization")
        user, secret = self._decode(header)
        found, key = self._key(org, user, secret)
        if key is not None:
            if key.expires <= time.time():
                raise expired()
            return self._principal(org, user, found[0]), secret, key.expires
        stored = found[1] if found else None
        if found is not None and found[0] != self.root["id"] and self._user(found[0]).get("disablePasswordAuth"):
            stored = None
        if stored is None:
            if self._decoy is None:
                self._decoy = await self._run(new_secret, secrets.token_hex(16))
            await self._run(password_ok, self._decoy, secret)
            raise self._refused(org)
        if not await self._run(password_ok, stored, secret):
            raise self._refused(org)
        who = self._principal(org, user, found[0])
        key_text, expires = await self.issue(who.user_id)
        return who, key_text, expires

    def _user(self, uid: str) -> dict:
        return self.dir.tree.objs[uid].data

    def _principal(self, org: str, user: str, uid: str) -> Principal:
        if org == ROOT_ORG:
            return Principal(uid, user, None, org, "CSPROOT")
        obj = self.dir.tree.objs[uid]
        if obj.data.get("disabled"):
            raise unauthorized(f"user {user[:100]!r} of organization {org[:100]!r} is disabled")
        groups = (self.dir.tree.objs[g] for g in self.dir.tree.member_of.get(uid, ()))
        role = "ORGADMIN" if any(g.data.get("role") == "ORGADMIN" for g in groups) else "ORGUSER"
        return Principal(uid, user, obj.enterprise, org, role)

    # --- keys and passwords

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def hash(self, password: str) -> dict:
        return await self._run(new_secret, password)

    def _add(self, key: ApiKey) -> None:
        self.keys[key.digest] = key
        self.by_user.setdefault(key.user_id, []).append(key.digest)

    async def issue(self, user_id: str) -> tuple[str, float]:
        text = new_api_key()
        key = ApiKey(key_digest(text), user_id, time.time() + self.lifetime)
        # expired keys are kept (up to the limit) so that they answer 419, "log in again", not 401
        held = self.by_user.get(user_id, [])
        drop = held[:max(0, len(held) - PER_USER + 1)]
        for d in drop:
            self.keys.pop(d, None)
        self.by_user[user_id] = held[len(drop):]
        self._add(key)
        await asyncio.to_thread(self.store.save_api_key, key.digest, user_id, key.expires, drop)
        return text, key.expires

    async def revoke(self, user_id: str) -> None:
        for d in self.by_user.pop(user_id, ()):
            self.keys.pop(d, None)
        await asyncio.to_thread(self.store.drop_api_keys, user_id)

    async def set_root_secret(self, secret: dict) -> None:
        self.root = {"user": self.root["user"], "id": self.root["id"], **secret}
        await asyncio.to_thread(self.store.set_meta, "root", orjson.dumps(self.root).decode())

    def me(self, who: Principal, api_key: str, expires: float) -> dict:
        if who.root:
            first, last, email = self.root["user"], self.root["user"], None
        else:
            u = self.dir.tree.objs[who.user_id].data
            first, last, email = u.get("firstName"), u.get("lastName"), u.get("email")
        return {"ID": who.user_id, "userName": who.user_name, "APIKey": api_key,
                "APIKeyExpiry": int(expires * 1000), "enterpriseID": who.enterprise_id,
                "enterpriseName": who.organization, "role": who.role, "firstName": first, "lastName": last,
                "email": email, "password": None, "parentID": None, "parentType": None, "entityScope": "ENTERPRISE"}
