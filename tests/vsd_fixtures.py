"""Helpers the VSD tests share: a VSD child process per test module, raw API calls, stream readers, and
a throwaway PostgreSQL cluster."""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import orjson

from vsd.client import VsdApiError, VsdClient
from vsd.server import EmbeddedVsd
from vsplab.lab.ports import free_port

PG_BIN = "/usr/lib/postgresql/15/bin"
WRITERS = 4  # concurrent clients in the restart tests
HTTP = httpx.Client(timeout=30)  # one client: building an httpx.Client (its TLS context) costs ~50 ms


def headers(vsd: EmbeddedVsd, client: VsdClient, user: str | None = None, org: str | None = None) -> dict:
    token = base64.b64encode(f"{user or client.user}:{client.api_key}".encode()).decode()
    return {"Authorization": f"XREST {token}", "X-Nuage-Organization": org or client.organization,
            "Content-Type": "application/json"}


def revision(vsd: EmbeddedVsd) -> int:
    return HTTP.get(f"{vsd.api}/vsplab/health").json()["revision"]


class StreamReader:
    """Reads the change stream on a thread, recording every line (and the last revision applied)."""

    def __init__(self, client: VsdClient, since: int = 0) -> None:
        self.client, self.since = client, since
        self.lines: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for line in self.client.changes(self.since):
                self.lines.put(line)
        except BaseException as e:  # the server going away ends the reader; the test inspects why
            self.error = e
            self.lines.put(None)

    def take(self, until_revision: int, timeout: float = 20.0) -> list[dict]:
        """Lines up to (and including) the first one at `until_revision`."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"stream ended: {self.error!r}")
            out.append(line)
            if line.get("revision", 0) >= until_revision and line["kind"] != "heartbeat":
                return out

    def drain(self, settle: float = 0.5) -> list[dict]:
        out = []
        while True:
            try:
                line = self.lines.get(timeout=settle)
            except queue.Empty:
                return out
            if line is None:
                return out
            out.append(line)


@contextlib.contextmanager
def postgres_url():
    """A PostgreSQL URL: $VSPLAB_TEST_PG_URL, or a throwaway cluster (initdb in a temp dir, run as the
    `postgres` OS user when we are root, trust auth on 127.0.0.1) removed afterwards even on failure."""
    if os.environ.get("VSPLAB_TEST_PG_URL"):
        yield os.environ["VSPLAB_TEST_PG_URL"]
        return
    if not os.path.exists(f"{PG_BIN}/initdb"):
        raise AssertionError(f"PostgreSQL 15 server binaries are missing ({PG_BIN}); run `bash scripts/system-deps`"
                             " or set VSPLAB_TEST_PG_URL")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    tmp = tempfile.mkdtemp(prefix="vl-pg-")
    data = os.path.join(tmp, "data")
    if as_pg:
        shutil.chown(tmp, "postgres", "postgres")
    port = free_port()
    log = os.path.join(tmp, "log")
    started = False
    try:
        subprocess.run([*as_pg, f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run([*as_pg, f"{PG_BIN}/pg_ctl", "-D", data, "-l", log, "-w", "-t", "30", "-o",
                        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=on", "start"],
                       check=True, capture_output=True)
        started = True
        subprocess.run([*as_pg, f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "vsd"], check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/vsd"
    finally:
        if started:
            subprocess.run([*as_pg, f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def error_property(response: httpx.Response) -> str:
    body = orjson.loads(response.content)
    return body["errors"][0]["property"]


def error_text(response: httpx.Response) -> str:
    body = orjson.loads(response.content)
    return " ".join(d["description"] for e in body["errors"] for d in e["descriptions"])


def subnet_tree(c: VsdClient, name: str = "vl-restart") -> str:
    ent = c.create("", "enterprises", {"name": name})
    tmpl = c.create(f"enterprises/{ent['ID']}", "domaintemplates", {"name": "t"})
    dom = c.create(f"enterprises/{ent['ID']}", "domains", {"name": "d", "templateID": tmpl["ID"]})
    zone = c.create(f"domains/{dom['ID']}", "zones", {"name": "z"})
    sn = c.create(f"zones/{zone['ID']}", "subnets", {"name": "s", "address": "10.64.0.0", "netmask": "255.255.0.0"})
    return sn["ID"]


def vport_writer(vsd: EmbeddedVsd, subnet: str, w: int, acked: dict, stop: threading.Event,
                 errors: list | None = None, client: VsdClient | None = None) -> None:
    """Writes vports until the VSD goes away; `acked` gets what was answered 2xx, `errors` any refusal.
    `client`: one already logged in (a login's password hash can take seconds on a loaded machine)."""
    c = client or VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise, timeout=5)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            if i % 10 == 0:  # now and then a small bulk list, one transaction
                objs = c.create(f"subnets/{subnet}", "vports",
                                [{"name": f"w{w}-{i}-{k}", "type": "VM"} for k in range(20)])
                acked.update({o["ID"]: o["name"] for o in objs})
            elif i % 7 == 0 and acked:  # and an update of something already acknowledged
                oid = next(reversed(acked))
                c.update(f"vports/{oid}", {"description": f"touched {i}"})
            else:
                o = c.create(f"subnets/{subnet}", "vports", {"name": f"w{w}-{i}", "type": "VM"})
                acked[o["ID"]] = o["name"]
    except httpx.TransportError:  # the kill: whatever was not answered is not acknowledged
        return
    except VsdApiError as e:  # a refusal is a bug in the VSD or the test, not the kill
        if errors is not None:
            errors.append(e)
    finally:
        c.close()


def make_user(root: VsdClient, ent_id: str, name: str, role: str, password: str | None = None) -> dict:
    """A user of enterprise `ent_id` in a group of its own with `role` (ORGADMIN or ORGUSER)."""
    u = root.create(f"enterprises/{ent_id}", "users", {"userName": name, "password": password or f"{name}-pw",
                                                        "firstName": "f", "lastName": "l", "email": "e@x"})
    g = root.create(f"enterprises/{ent_id}", "groups", {"name": f"{name[:200]}-group", "role": role})
    root.assign(f"groups/{g['ID']}/users", [u["ID"]])
    return u


_PROBE = r"""
import http.client, json, select, sys, time
host, port = sys.argv[1], int(sys.argv[2])
conn = http.client.HTTPConnection(host, port, timeout=5)
worst, count, failures = 0.0, 0, []
while not select.select([sys.stdin], [], [], 0.02)[0]:
    t0 = time.monotonic()
    try:
        conn.request("GET", "/nuage/api/v6/vsplab/health")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            failures.append(r.status)
    except Exception as e:
        failures.append(repr(e))
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=5)
    worst = max(worst, time.monotonic() - t0)
    count += 1
print(json.dumps({"worst": worst, "count": count, "failures": failures[:5]}), flush=True)
"""


class HealthProbe:
    """Polls the VSD's health check every 20 ms from a process of its own (so the test's own work and
    its GIL do not count) and reports the slowest answer: `with HealthProbe(vsd) as probe: ...` then
    `probe.worst`, `probe.count`, `probe.failures`."""

    def __init__(self, vsd: EmbeddedVsd) -> None:
        self.vsd = vsd
        self.worst, self.count, self.failures = 0.0, 0, []

    def __enter__(self) -> HealthProbe:
        self.proc = subprocess.Popen([sys.executable, "-c", _PROBE, "127.0.0.1", str(self.vsd.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        try:
            out, _ = self.proc.communicate(b"stop\n", timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        result = orjson.loads(out)
        self.worst, self.count, self.failures = result["worst"], result["count"], result["failures"]
