"""Stored credentials: a salted PBKDF2 hash of a user's password and the API key the VSD hands out on
`GET /me`. Apart from `vsd.auth` because the directory creates users' secrets and auth checks them."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

_ITERATIONS = 20_000


def _hash(password: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS).hex()


def new_secret(password: str) -> dict:
    salt = os.urandom(16)
    return {"salt": salt.hex(), "hash": _hash(password, salt), "apikey": str(secrets.token_hex(16))}


def password_ok(secret: dict, password: str) -> bool:
    return hmac.compare_digest(secret["hash"], _hash(password, bytes.fromhex(secret["salt"])))
