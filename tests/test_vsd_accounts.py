"""Accounts as Nuage has them (finding 8 of the trust-boundaries issue): disabled users are refused,
the password logs in only on `GET /me`, API keys expire (`APIKeyExpiry`, 419 once expired) and a login
renews them, keys and passwords are stored only as hashes (a current scrypt), the CSP root's password is
set by `--root-password` on any start and changed with `PUT /me`, and a VSD listening beyond loopback
refuses to start with the lab default password."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from bambou.exceptions import BambouHTTPError
from vspk import v6 as vspk

from tests.vsd_fixtures import HTTP, make_user
from vsd.client import VsdApiError, VsdClient
from vsd.server import EmbeddedVsd
from vsplab.lab.ports import free_port

LIFETIME = 3.0  # seconds an API key lives on the test VSD


@pytest.fixture(scope="module")
def vsd(tmp_path_factory):
    db = tmp_path_factory.mktemp("accounts") / "vsd.db"
    with EmbeddedVsd(db_url=f"sqlite:///{db}", apikey_lifetime=LIFETIME) as server:
        yield server


@pytest.fixture(scope="module")
def root(vsd):
    with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        yield c


@pytest.fixture(scope="module")
def ent(root):
    return root.create("", "enterprises", {"name": "vl-accounts"})["ID"]


def _auth(user: str, secret: str, org: str) -> dict:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"XREST {token}", "X-Nuage-Organization": org}


def _me(vsd, user: str, secret: str, org: str) -> httpx.Response:
    return HTTP.get(f"{vsd.api}/me", headers=_auth(user, secret, org))


def test_a_disabled_user_is_refused_with_password_and_with_an_old_key(vsd, root, ent):
    u = make_user(root, ent, "vl-dis", "ORGADMIN")
    key = _me(vsd, "vl-dis", "vl-dis-pw", "vl-accounts").json()[0]["APIKey"]
    root.update(f"users/{u['ID']}", {"disabled": True})
    r = HTTP.post(f"{vsd.api}/enterprises/{ent}/domaintemplates", headers=_auth("vl-dis", key, "vl-accounts"),
                  json={"name": "by-a-disabled-user"})
    assert r.status_code == 401, r.text
    assert _me(vsd, "vl-dis", "vl-dis-pw", "vl-accounts").status_code == 401
    root.update(f"users/{u['ID']}", {"disabled": False})
    assert _me(vsd, "vl-dis", "vl-dis-pw", "vl-accounts").status_code == 200


def test_the_password_logs_in_only_on_me(vsd, root, ent):
    make_user(root, ent, "vl-pw", "ORGUSER")
    assert _me(vsd, "vl-pw", "vl-pw-pw", "vl-accounts").status_code == 200
    r = HTTP.get(f"{vsd.api}/enterprises", headers=_auth("vl-pw", "vl-pw-pw", "vl-accounts"))
    assert r.status_code == 401, r.text
    r = HTTP.get(f"{vsd.api}/enterprises", headers=_auth(vsd.user, vsd.password, vsd.enterprise))
    assert r.status_code == 401, r.text


def test_api_keys_expire_and_a_login_renews_them(vsd, root):
    t0 = time.time()
    me = _me(vsd, vsd.user, vsd.password, vsd.enterprise).json()[0]
    key, expiry = me["APIKey"], me["APIKeyExpiry"]
    assert t0 * 1000 < expiry <= (time.time() + LIFETIME + 1) * 1000
    assert _me(vsd, vsd.user, key, vsd.enterprise).json()[0]["APIKeyExpiry"] == expiry  # a key reads its own
    assert HTTP.get(f"{vsd.api}/enterprises", headers=_auth(vsd.user, key, vsd.enterprise)).status_code == 200
    session = vspk.NUVSDSession(username=vsd.user, password=vsd.password, enterprise=vsd.enterprise,
                                api_url=vsd.url)
    session.start()
    time.sleep(max(0.0, expiry / 1000 - time.time()) + 0.3)
    r = HTTP.get(f"{vsd.api}/enterprises", headers=_auth(vsd.user, key, vsd.enterprise))
    assert r.status_code == 419, r.text  # what bambou reads as "log in again"
    again = _me(vsd, vsd.user, vsd.password, vsd.enterprise).json()[0]
    assert again["APIKey"] != key and again["APIKeyExpiry"] > expiry
    # bambou takes the 419 as "log in again": it does, but resends the call that met it with the old key,
    # so that one call fails; the session's next call carries the new key
    with pytest.raises(BambouHTTPError) as e:
        session.user.enterprises.get()
    assert e.value.connection.response.status_code == 419
    assert [e.name for e in session.user.enterprises.get() if e.name == "vl-accounts"] == ["vl-accounts"]
    assert root.get(f"enterprises/{root.list('enterprises')[0]['ID']}")  # VsdClient renews by itself


def test_keys_and_passwords_are_stored_only_as_hashes(vsd, root, ent):
    make_user(root, ent, "vl-hash", "ORGADMIN", password="vl-Very-Secret-pw")
    key = _me(vsd, "vl-hash", "vl-Very-Secret-pw", "vl-accounts").json()[0]["APIKey"]
    root_key = _me(vsd, vsd.user, vsd.password, vsd.enterprise).json()[0]["APIKey"]
    time.sleep(0.5)  # committed before the answer; compaction follows while the writer is idle
    db = sqlite3.connect(vsd.db_url.split("///", 1)[1])
    try:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from sqlite_master
                text = " ".join(str(v) for v in row)
                for secret in (key, root_key, "vl-Very-Secret-pw"):
                    assert secret not in text, f"{secret!r} stored in clear in table {table}"
    finally:
        db.close()


def test_passwords_use_a_current_scrypt():
    from vsd.passwords import new_secret, password_ok

    secret = new_secret("pw")
    assert secret["scheme"] == "scrypt" and secret["r"] >= 8
    assert secret["n"] * secret["p"] >= 5 * 2 ** 14  # OWASP's scrypt settings: N=2^17,p=1 ... N=2^14,p=5
    assert password_ok(secret, "pw") and not password_ok(secret, "pW")


def test_root_password_flag_applies_to_an_existing_database(tmp_path):
    db = f"sqlite:///{tmp_path}/vsd.db"
    with EmbeddedVsd(db_url=db):
        pass  # first start: the lab default
    with EmbeddedVsd(db_url=db, password="vl-New-root-pw") as vsd:
        assert _me(vsd, "csproot", "csproot", "csp").status_code == 401
        assert _me(vsd, "csproot", "vl-New-root-pw", "csp").status_code == 200


def test_root_password_can_be_changed_and_stays_changed(tmp_path):
    db = f"sqlite:///{tmp_path}/vsd.db"
    vsd = EmbeddedVsd(db_url=db, password="vl-Old-root-pw")
    with vsd:
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
            r = c.request("PUT", "me", {"password": "vl-Changed-pw"})
            assert r.status_code in (200, 204), r.text
        assert _me(vsd, "csproot", "vl-Old-root-pw", "csp").status_code == 401
        assert _me(vsd, "csproot", "vl-Changed-pw", "csp").status_code == 200
        for bad in ("", "x" * 5000, 12):
            with VsdClient(vsd.api, vsd.user, "vl-Changed-pw", vsd.enterprise) as c:
                assert c.request("PUT", "me", {"password": bad}).status_code == 400
        vsd.stop()
        vsd.password = None  # restarted without --root-password: the changed one stays
        vsd.start()
        assert _me(vsd, "csproot", "vl-Changed-pw", "csp").status_code == 200


def _serve(host: str, db: str, password: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "VSD_ROOT_PASSWORD"}
    if password:
        env["VSD_ROOT_PASSWORD"] = password
    return subprocess.Popen([sys.executable, "-m", "vsd", "serve", "--host", host, "--port", str(free_port()),
                             "--db", db], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.mark.parametrize("existing", [False, True], ids=["first-start", "default-kept"])
def test_a_public_address_refuses_the_default_password(tmp_path, existing):
    db = f"sqlite:///{tmp_path}/vsd.db"
    if existing:
        EmbeddedVsd(db_url=db).start().close()  # a database whose root still has the lab default
    proc = _serve("0.0.0.0", db, None)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("a VSD on 0.0.0.0 started with the lab default root password") from None
    assert proc.returncode != 0 and b"password" in out.lower(), out


def test_a_public_address_starts_with_a_password_of_its_own(tmp_path):
    proc = _serve("0.0.0.0", f"sqlite:///{tmp_path}/vsd.db", "vl-Strong-root-pw")
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # the first-start announcement, then this
        assert any(b"listening on" in line for line in lines), lines
    finally:
        proc.terminate()
        proc.wait(10)


def test_vsd_client_changes_its_own_password(vsd, root, ent):
    make_user(root, ent, "vl-self", "ORGUSER")
    with VsdClient(vsd.api, "vl-self", "vl-self-pw", "vl-accounts") as c:
        c.change_password("vl-self-new-pw")
        assert c.list("enterprises")  # logged in again with the new password
    with pytest.raises(VsdApiError) as e:
        VsdClient(vsd.api, "vl-self", "vl-self-pw", "vl-accounts")
    assert e.value.status == 401


def test_a_database_from_before_keeps_its_passwords_and_loses_its_clear_keys(tmp_path):
    """Secrets as earlier versions stored them (PBKDF2 with 20,000 iterations, the API key in clear
    beside the hash, in meta, objects and events): the passwords still log in, the keys are gone."""
    import hashlib

    def legacy(password: str) -> str:
        salt = os.urandom(16)
        return json.dumps({"salt": salt.hex(), "apikey": "c1ea7e" * 5 + "ab",
                           "hash": hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 20_000).hex()})

    path = tmp_path / "vsd.db"
    vsd = EmbeddedVsd(db_url=f"sqlite:///{path}", password=None)
    with vsd:
        with VsdClient(vsd.api, vsd.user, vsd.password or "csproot", vsd.enterprise) as root:
            ent = root.create("", "enterprises", {"name": "vl-old"})["ID"]
            user = make_user(root, ent, "vl-old-user", "ORGUSER")
        vsd.stop()
        db = sqlite3.connect(path)
        with db:
            meta = json.loads(db.execute("SELECT value FROM meta WHERE key = 'root'").fetchone()[0])
            db.execute("UPDATE meta SET value = ? WHERE key = 'root'",
                       (json.dumps({"user": meta["user"], "id": meta["id"], **json.loads(legacy("csproot"))}),))
            db.execute("UPDATE objects SET secret = ? WHERE id = ?", (legacy("old-pw"), user["ID"]))
            db.execute("UPDATE events SET secret = ? WHERE object_id = ?", (legacy("old-pw"), user["ID"]))
            db.execute("DELETE FROM meta WHERE key = 'clear_keys_removed'")  # the mark a database from before lacks
        db.close()
        vsd.start()
        assert _me(vsd, "csproot", "csproot", "csp").status_code == 200
        assert _me(vsd, "vl-old-user", "old-pw", "vl-old").status_code == 200
        assert _me(vsd, "vl-old-user", "c1ea7e" * 5 + "ab", "vl-old").status_code == 401
    db = sqlite3.connect(path)
    try:
        for table in ("meta", "objects", "events"):
            assert not [r for r in db.execute(f"SELECT * FROM {table}") if "c1ea7e" in " ".join(map(str, r))]  # noqa: S608
    finally:
        db.close()
