"""The VRSs a VSC knows: its enrolment table (docs/interfaces.md section 2).

A VRS is enrolled by its datapath ID. `vsc enrol DPID --state-dir DIR --secret-file PATH` draws a
secret, keeps it in DIR/enrolment.json and writes it to PATH, where the VRS reads it (`vrs run
--secret-file PATH`). The agent proves it holds the secret in its hello: an HMAC over the VSC's
challenge and the hello's fields (`hello_proof`). The first VTEP an enrolled VRS reports is pinned, so
a leaked secret cannot point the datapath's traffic at another address.

The table is read again whenever its file changes, so enrolling a VRS needs no VSC restart; a lock
file keeps `vsc enrol` and a running VSC (pinning a VTEP) from losing each other's writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import orjson

log = logging.getLogger("vsc.enrolment")

SECRET_BYTES = 32
MIN_SECRET_BYTES = 16
# What the HMAC covers starts with this, so a proof can never be mistaken for one of another protocol.
PROOF_CONTEXT = "vsplab-agent-hello-1"


class EnrolmentError(ValueError):
    pass


def hello_proof(secret: bytes, nonce: str, datapath_id: int, vtep_ip: str) -> str:
    """The `proof` of an enrolled VRS's hello: hex HMAC-SHA256 over the VSC's challenge nonce, the
    datapath ID (decimal) and the VTEP exactly as the hello carries it, one per line."""
    text = "\n".join((PROOF_CONTEXT, nonce, str(datapath_id), vtep_ip)).encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()


def read_secret(path: str | Path) -> bytes:
    """A secret file as `vsc enrol` writes it: hex digits on one line."""
    try:
        secret = bytes.fromhex(Path(path).read_text().strip())
    except ValueError:
        raise EnrolmentError(f"{path}: not a secret (expected hex digits)") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise EnrolmentError(f"{path}: a secret of {len(secret)} bytes is too short (at least {MIN_SECRET_BYTES})")
    return secret


def write_secret(path: str | Path, secret: bytes) -> Path:
    """Write `secret` readable by its owner only (created so: never world-readable, not even briefly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    tmp.replace(path)
    return path


@dataclass
class Enrolled:
    secret: bytes
    vtep_ip: str | None = None  # pinned at the first hello unless given at enrolment


class Enrolment:
    """Datapath ID -> Enrolled, kept in `state_dir`/enrolment.json (in memory only without a state dir).
    `required`: datapaths that are not enrolled are refused, rather than served as a lab's would be."""

    def __init__(self, state_dir: str | Path | None = None, required: bool = False) -> None:
        self.path = Path(state_dir) / "enrolment.json" if state_dir else None
        self.required = required
        self._table: dict[int, Enrolled] = {}
        self._stamp: tuple | None = None
        self._refresh(strict=True)

    # --- the file ---------------------------------------------------------------------------------

    def _refresh(self, strict: bool = False) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._table, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            self._table = self._parse(self.path.read_bytes())
        except EnrolmentError as e:
            if strict:
                raise
            log.error("%s; keeping the table read before", e)
        self._stamp = stamp

    def _parse(self, data: bytes) -> dict[int, Enrolled]:
        try:
            doc = orjson.loads(data)
            rows = doc["datapaths"]
            return {int(k): Enrolled(bytes.fromhex(v["secret"]), v.get("vtep_ip")) for k, v in rows.items()}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise EnrolmentError(f"{self.path}: not an enrolment table ({e})") from None

    def _save(self) -> None:
        rows = {str(d): {"secret": e.secret.hex(), **({"vtep_ip": e.vtep_ip} if e.vtep_ip else {})}
                for d, e in sorted(self._table.items())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"datapaths": rows}, option=orjson.OPT_INDENT_2))
        tmp.replace(self.path)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    @contextmanager
    def _changing(self):
        """Read, change and write the table under the lock file (in memory: just change it)."""
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name("enrolment.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            self._refresh(strict=True)
            yield
            self._save()

    # --- questions and changes ---------------------------------------------------------------------

    def get(self, datapath_id: int) -> Enrolled | None:
        self._refresh()
        return self._table.get(datapath_id)

    def datapaths(self) -> list[int]:
        self._refresh()
        return sorted(self._table)

    def issue(self, datapath_id: int, vtep_ip: str | None = None) -> bytes:
        """Enrol `datapath_id` with a new secret (a VRS already enrolled gets a new one: its old secret
        stops working), its VTEP pinned to `vtep_ip` if given. Returns the secret."""
        if not 0 <= datapath_id < 1 << 64:
            raise EnrolmentError(f"datapath ID {datapath_id} is not a 64-bit number")
        if vtep_ip is not None:
            vtep_ip = str(IPv4Address(vtep_ip))
        secret = secrets.token_bytes(SECRET_BYTES)
        with self._changing():
            self._table[datapath_id] = Enrolled(secret, vtep_ip)
        return secret

    def remove(self, datapath_id: int) -> bool:
        with self._changing():
            return self._table.pop(datapath_id, None) is not None

    def pin_vtep(self, datapath_id: int, vtep_ip: str) -> None:
        with self._changing():
            entry = self._table.get(datapath_id)
            if entry is not None and entry.vtep_ip is None:
                entry.vtep_ip = vtep_ip
