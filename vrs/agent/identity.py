"""What a VRS shows the VSC to be taken for itself (docs/interfaces.md section 2): the proof of its
secret in the agent channel's hello, and the token its switch describes itself with over OpenFlow.

The VSC draws the secret when it enrols the VRS (`vsc enrol`) and keeps a copy; the agent reads it
from a file (`vrs run --secret-file`). The hello's `proof` is HMAC-SHA256, keyed with the secret, over
the VSC's challenge and the hello's datapath ID and VTEP; the VSC computes the same and compares. The
token is random: the agent writes it where its switch reports it (OFPMP_DESC dp_desc; OVS's
`other_config:dp-desc`) and names it on the agent channel, so the VSC knows which OpenFlow connection
is this VRS's switch."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

PROOF_CONTEXT = "vsplab-agent-hello-1"  # the VSC's vsc/enrolment.py says the same
TOKEN_PREFIX = "vsplab-of-"
MIN_SECRET_BYTES = 16


def hello_proof(secret: bytes, nonce: str, datapath_id: int, vtep_ip: str) -> str:
    text = "\n".join((PROOF_CONTEXT, nonce, str(datapath_id), vtep_ip)).encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()


def prove(hello: dict, secret: bytes, nonce: str) -> dict:
    """The hello with its proof for the VSC's challenge `nonce`."""
    return {**hello, "proof": hello_proof(secret, nonce, hello["datapath_id"], hello["vtep_ip"])}


def read_secret(path: str | Path) -> bytes:
    """A secret file as `vsc enrol --secret-file` writes it (hex digits on one line)."""
    try:
        secret = bytes.fromhex(Path(path).read_text().strip())
    except ValueError:
        raise ValueError(f"{path}: not a secret (expected hex digits)") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path}: a secret of {len(secret)} bytes is too short (at least {MIN_SECRET_BYTES})")
    return secret


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(16)


def is_token(text: str | None) -> bool:
    return bool(text) and text.startswith(TOKEN_PREFIX) and len(text) == len(TOKEN_PREFIX) + 32


# What the VSC says on the channel, read the same by the real agent (blocking) and the simulated one
# (asyncio): they differ only in how the line arrives.


def challenge_nonce(line: bytes | str) -> tuple[str | None, object]:
    """The nonce of the VSC's first line, its challenge; (None, what came instead) when it is not one."""
    try:
        msg = json.loads(line or b"null")
    except ValueError as e:
        return None, f"{type(e).__name__}: {e}"
    if isinstance(msg, dict) and msg.get("op") == "challenge" and isinstance(msg.get("nonce"), str):
        return msg["nonce"], msg
    return None, msg


def refusal(line: bytes) -> str | None:
    """The reason of an `error` answer from the VSC; None for any other line."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if isinstance(msg, dict) and msg.get("op") == "error":
        return str(msg.get("error"))
    return None
