"""Running a VSD: `build_app` (store + directory + API), `serve` (uvicorn with uvloop and httptools,
plain HTTP or HTTPS) and `EmbeddedVsd`, which runs `python -m vsd serve` as a child process on a free
loopback port so that the caller's interpreter (and GIL) stays free. EmbeddedVsd binds that port
itself (port 0: the kernel picks) and hands the listening socket to the child, so the port is known
before the child starts and no other process can take it in between."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import orjson

from vsd.api import PREFIX, VsdApp
from vsd.auth import DEFAULT_LIFETIME, ROOT_ORG, Auth
from vsd.cluster import ClusterStore
from vsd.directory import Directory
from vsd.passwords import is_current, new_secret, password_ok
from vsd.replica import Replica
from vsd.store import Store

DEFAULT_ROOT = "csproot"


def default_db_url(path: str) -> str:
    return f"sqlite:///{os.path.abspath(path)}"


def build_app(db_url: str, root_user: str = DEFAULT_ROOT, root_password: str | None = None,
              retention: int = 1_000_000, announce=print, apikey_lifetime: float = DEFAULT_LIFETIME,
              public: bool = False) -> VsdApp:
    """The VSD on `db_url`. `root_password` (else $VSD_ROOT_PASSWORD) becomes the CSP root's password, on
    a new database or an existing one; without it a new database gets the lab default `csproot`. A
    `public` VSD (listening beyond loopback) refuses to start while the root has that default."""
    store = open_store(db_url, retention)
    directory = Directory()
    gc.disable()  # loading only allocates, and collecting mid-way would rescan the growing tree again and again
    try:
        revision = store.load(directory.load)
        directory.loaded(revision)
    finally:
        gc.enable()
    if store.scrub_clear_keys():
        announce("VSD: removed API keys an earlier version stored in clear; clients log in again")
    password = root_password or os.environ.get("VSD_ROOT_PASSWORD")
    with store.exclusive() as conn:  # the VSDs of a cluster starting at once: one of them makes the root
        root = _root_account(store, conn, root_user, password, public, announce)
    auth = Auth(directory, store, root, lifetime=apikey_lifetime)
    auth.load_keys()
    if store.clustered:
        store.replica = Replica(directory, auth)
    return VsdApp(store, directory, auth)


def open_store(db_url: str, retention: int) -> Store:
    """PostgreSQL: a cluster member (any number of VSDs may share the database, vsd/cluster.py).
    SQLite: this VSD's alone, refused if another VSD serves the file."""
    if db_url.startswith(("postgresql:", "postgresql+")):
        return ClusterStore(db_url, retention=retention)
    store = Store(db_url, retention=retention)
    try:
        store.claim()
    except SystemExit:
        store.engine.dispose()
        raise
    return store


def _root_account(store: Store, conn, root_user: str, password: str | None, public: bool, announce) -> dict:
    stored = store.get_meta("root", conn)
    if public and (password == DEFAULT_ROOT or (not password and stored is None)):
        _refuse_default(store, "a first start" if stored is None else "to start")
    if stored is None:
        if not password:
            # a lab default, announced so nobody mistakes it for a secret; production sets its own
            announce(f"VSD: first start, created CSP root {root_user!r} in organization {ROOT_ORG!r} with the "
                     f"lab default password {DEFAULT_ROOT!r} (set --root-password or VSD_ROOT_PASSWORD instead)")
        else:
            announce(f"VSD: first start, created CSP root {root_user!r} in organization {ROOT_ORG!r}")
        root = {"user": root_user, "id": str(uuid.uuid4()), **new_secret(password or DEFAULT_ROOT)}
        store.set_meta("root", orjson.dumps(root).decode(), conn)
        return root
    root = {k: v for k, v in orjson.loads(stored).items() if k != "apikey"}  # once kept in clear
    same = bool(password) and password_ok(root, password)
    if password and not same:
        announce(f"VSD: CSP root {root['user']!r} now has the password given by --root-password "
                 "or VSD_ROOT_PASSWORD")
    if password and not (same and is_current(root)):  # a new password, or the same under an older hash
        root = {"user": root["user"], "id": root["id"], **new_secret(password)}
    if orjson.dumps(root).decode() != stored:
        store.set_meta("root", orjson.dumps(root).decode(), conn)
    if public and not password and password_ok(root, DEFAULT_ROOT):
        _refuse_default(store, "to start")
    return root


def _refuse_default(store: Store, what: str) -> None:
    store.engine.dispose()
    raise SystemExit(f"VSD: refusing {what} on a non-loopback address with the lab default CSP root password "
                     f"{DEFAULT_ROOT!r}; set another with --root-password or VSD_ROOT_PASSWORD")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def serve(host: str, port: int, db_url: str, tls_cert: str | None = None, tls_key: str | None = None,
          root_password: str | None = None, retention: int = 1_000_000, root_user: str = DEFAULT_ROOT,
          fd: int | None = None, apikey_lifetime: float = DEFAULT_LIFETIME) -> None:
    """Serve on host:port, or with `fd` on that inherited listening socket (host and port then unused)."""
    import uvicorn

    sockets = None
    if fd is not None:
        sock = socket.socket(fileno=fd)
        host, port = sock.getsockname()[:2]
        sockets = [sock]

    app = build_app(db_url, root_user=root_user, root_password=root_password, retention=retention,
                    apikey_lifetime=apikey_lifetime, public=not is_loopback(host))
    # The tree is large and long-lived: keep the cyclic collector from rescanning it on every burst of
    # allocations (a 20,000-object bulk create would otherwise pay several full collections).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    scheme = "https" if tls_cert else "http"
    print(f"VSD listening on {scheme}://{host}:{port}{PREFIX} (db {db_url}, revision {app.dir.revision}, "
          f"{len(app.dir.tree.objs)} objects)", flush=True)
    config = uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", log_level="warning",
                            access_log=False, ssl_certfile=tls_cert, ssl_keyfile=tls_key, lifespan="on",
                            timeout_keep_alive=120, timeout_graceful_shutdown=2)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            # streams and push long polls never end by themselves; end them so shutdown is graceful
            if app.hub is not None and self.started:
                asyncio.get_event_loop().call_soon_threadsafe(app.hub.close)
            super().handle_exit(sig, frame)

    Server(config).run(sockets=sockets)


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket()
    # a restarted VSD binds its port again while the last one's connections linger in TIME_WAIT
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class EmbeddedVsd:
    """A VSD child process on 127.0.0.1 (a free port the kernel picks unless given) and a database (by default a SQLite
    file in a temporary directory that lives as long as this object). `stop()`, `kill()` (SIGKILL) and
    `start()` again reuse the same database."""

    def __init__(self, db_url: str | None = None, port: int | None = None, user: str = DEFAULT_ROOT,
                 password: str | None = DEFAULT_ROOT, retention: int | None = None, log_path: str | None = None,
                 apikey_lifetime: float | None = None):
        self._tmp = None
        if db_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vl-vsd-")
            db_url = default_db_url(os.path.join(self._tmp.name, "vsd.db"))
        # bound now, listening once started: the port is this VSD's from here on (connections are
        # refused until the child serves)
        self._socket: socket.socket | None = _listening_socket(port or 0)
        self.db_url, self.port = db_url, self._socket.getsockname()[1]
        self.user, self.password, self.enterprise = user, password, ROOT_ORG
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}{PREFIX}"
        self.retention = retention
        self.apikey_lifetime = apikey_lifetime
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> EmbeddedVsd:
        sock, self._socket = self._socket or _listening_socket(self.port), None
        sock.listen(2048)
        cmd = [sys.executable, "-m", "vsd", "serve", "--fd", str(sock.fileno()), "--db", self.db_url,
               "--root-user", self.user]
        if self.retention:
            cmd += ["--retention", str(self.retention)]
        if self.apikey_lifetime:
            cmd += ["--apikey-lifetime", str(self.apikey_lifetime)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        # the password travels in the environment, not on the command line other users can read; without
        # one the root keeps the password it has
        env = {k: v for k, v in os.environ.items() if k != "VSD_ROOT_PASSWORD"}
        if self.password:
            env["VSD_ROOT_PASSWORD"] = self.password
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if self.log_path else None,
                                         start_new_session=True, env=env, pass_fds=(sock.fileno(),))
        finally:
            sock.close()  # the child has its own copy; ours would keep the port open after the child dies
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the VSD exited with status {self.proc.returncode} before answering "
                                   f"(command: {' '.join(cmd)})")
            try:
                if httpx.get(f"{self.api}/vsplab/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"the VSD did not answer on {self.url} within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._socket is not None:  # never started
            self._socket.close()
            self._socket = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedVsd:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
