"""Who is calling: `Authorization: XREST base64(user:secret)` plus `X-Nuage-Organization`, where the secret
is the password (on `GET /me`, which answers the API key) or the API key (on every later call).

The CSP root lives in organization `csp` and is configured when the store is created (its password
hash is kept in the store, never in code); enterprise users are `user` objects, and their role comes
from the groups they are members of (ORGADMIN in any group makes an enterprise admin, otherwise a
read-only ORGUSER)."""

from __future__ import annotations

import base64
import binascii
import hmac

from vsd.directory import Directory, Principal
from vsd.errors import VsdError
from vsd.passwords import password_ok

ROOT_ORG = "csp"


def unauthorized(description: str) -> VsdError:
    return VsdError(401, "", "Authentication failed", description)


class Auth:
    def __init__(self, directory: Directory, root_user: str, root_secret: dict) -> None:
        self.dir = directory
        self.root_user, self.root_secret = root_user, root_secret
        self._verified: dict[tuple[str, str], tuple[str, str]] = {}  # (org, header) -> (user ID, hash)

    def _decode(self, header: str | None) -> tuple[str, str]:
        if not header or not header.startswith("XREST "):
            raise unauthorized("missing 'Authorization: XREST base64(user:password or APIKey)' header")
        try:
            user, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized("the Authorization header is not valid base64") from None
        return user, secret

    def _find(self, org: str, user: str) -> tuple[str, dict] | None:
        if org == ROOT_ORG:
            return (self.root_secret["id"], self.root_secret) if user == self.root_user else None
        ent_id = self.dir.tree.names.get(("", "enterprise", org))
        uid = self.dir.idx.users.get((ent_id, user)) if ent_id else None
        obj = self.dir.tree.get(uid or "")
        return (uid, obj.secret) if obj is not None and obj.secret else None

    def principal(self, org: str | None, header: str | None, *, password_allowed: bool = False) -> Principal:
        """The caller, checking the API key (or, for GET /me, the password too)."""
        if not org:
            raise unauthorized("missing X-Nuage-Organization header")
        known = self._verified.get((org, header or ""))
        user, secret = self._decode(header)
        found = self._find(org, user)
        if found is None:
            raise unauthorized(f"unknown user {user!r} in organization {org!r}")
        uid, stored = found
        if known is None or known != (uid, stored["hash"]):
            if hmac.compare_digest(secret, stored["apikey"]):
                pass
            elif password_allowed and password_ok(stored, secret):
                pass
            else:
                raise unauthorized(f"wrong password or API key for {user!r} in organization {org!r}")
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[(org, header or "")] = (uid, stored["hash"])
        return self._principal(org, user, uid)

    def _principal(self, org: str, user: str, uid: str) -> Principal:
        if org == ROOT_ORG:
            return Principal(uid, user, None, org, "CSPROOT")
        obj = self.dir.tree.objs[uid]
        groups = (self.dir.tree.objs[g] for g in self.dir.tree.member_of.get(uid, ()))
        role = "ORGADMIN" if any(g.data.get("role") == "ORGADMIN" for g in groups) else "ORGUSER"
        return Principal(uid, user, obj.enterprise, org, role)

    def me(self, who: Principal) -> dict:
        if who.root:
            apikey, first, last, email = self.root_secret["apikey"], "csproot", "csproot", None
        else:
            u = self.dir.tree.objs[who.user_id]
            apikey = u.secret["apikey"]
            first, last, email = u.data.get("firstName"), u.data.get("lastName"), u.data.get("email")
        return {"ID": who.user_id, "userName": who.user_name, "APIKey": apikey, "APIKeyExpiry": None,
                "enterpriseID": who.enterprise_id, "enterpriseName": who.organization, "role": who.role,
                "firstName": first, "lastName": last, "email": email, "password": None,
                "parentID": None, "parentType": None, "entityScope": "ENTERPRISE"}
