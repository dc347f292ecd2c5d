"""Stored credentials: only hashes, never what a client sends.

Passwords: scrypt with N=2^14, r=8, p=5 (one of OWASP's equivalent scrypt settings: 16 MiB and about
0.2 s a hash here) and a random salt, the parameters kept beside the hash so they can be raised later.
A secret from before (PBKDF2-SHA256, 20,000 iterations, no `scheme`) still verifies; it is replaced when
the password is next set.

API keys: 128 random bits handed out once on login; only their SHA-256 is kept. A fast hash suffices for
a random key (nothing to guess from a dictionary), and it lets every request check its key without
the cost of a password hash.

Apart from `vsd.auth` because the directory stores users' secrets and auth checks them."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

SCRYPT = {"n": 2 ** 14, "r": 8, "p": 5}
_LEGACY_ITERATIONS = 20_000


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> str:
    # maxmem: 128 * r * n bytes are needed; OpenSSL's default ceiling (32 MiB) would refuse raised settings
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20)).hex()


def new_secret(password: str) -> dict:
    salt = os.urandom(16)
    return {"scheme": "scrypt", **SCRYPT, "salt": salt.hex(), "hash": _scrypt(password, salt, **SCRYPT)}


def password_ok(secret: dict | None, password: str) -> bool:
    if not secret or "hash" not in secret:
        return False
    salt = bytes.fromhex(secret["salt"])
    if secret.get("scheme") == "scrypt":
        digest = _scrypt(password, salt, secret["n"], secret["r"], secret["p"])
    elif "scheme" not in secret:
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _LEGACY_ITERATIONS).hex()
    else:
        return False
    return hmac.compare_digest(digest, secret["hash"])


def is_current(secret: dict) -> bool:
    return secret.get("scheme") == "scrypt" and all(secret.get(k) == v for k, v in SCRYPT.items())


def new_api_key() -> str:
    return secrets.token_hex(16)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
