"""The `vsd` command: serve over HTTPS, show, export to YAML and import into another VSD, audit."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time

import httpx
import orjson
import pytest
import yaml

from vsd.client import VsdClient
from vsd.example import build_three_tier
from vsd.server import EmbeddedVsd
from vsplab.lab.ports import free_port


def vsd_cmd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "vsd", *args], capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"vsd {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


@pytest.fixture(scope="module")
def source():
    with EmbeddedVsd() as vsd:
        with VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
            summary = build_three_tier(c)
        yield vsd, summary


def test_show_lists_and_gets_objects(source):
    vsd, summary = source
    out = orjson.loads(vsd_cmd("show", "enterprises", "--api", vsd.api).stdout)
    assert [e["name"] for e in out] == ["acme"]
    one = orjson.loads(vsd_cmd("show", "domain", summary["domain_id"], "--api", vsd.api).stdout)
    assert one["name"] == "prod" and one["serviceID"] == summary["vni"]
    web = orjson.loads(vsd_cmd("show", "vports", "--filter", 'name == "web1"', "--api", vsd.api).stdout)
    assert [v["name"] for v in web] == ["web1"]
    bad = vsd_cmd("show", "domain", "0000", "--api", vsd.api, check=False)
    assert bad.returncode == 1 and "404" in bad.stderr


@pytest.mark.slow
def test_export_import_round_trip(source, tmp_path):
    vsd, _ = source
    exported = vsd_cmd("export", "acme", "--api", vsd.api).stdout
    doc = yaml.safe_load(exported)
    assert doc["vsd_export"] == 1 and doc["domains"][0]["name"] == "prod"
    path = tmp_path / "acme.yaml"
    path.write_text(exported)
    # into a second VSD, given by its database: the command starts a private VSD on it
    db = f"sqlite:///{tmp_path}/other.db"
    out = vsd_cmd("import", str(path), "--db", db).stdout
    assert "6 vports" in out and "6 vms" in out
    again = vsd_cmd("export", "acme", "--db", db).stdout
    assert yaml.safe_load(again) == doc
    # and into the first one again as a copy under another name: new numbers, same addresses
    vsd_cmd("import", str(path), "--as", "acme-copy", "--api", vsd.api)
    copy = yaml.safe_load(vsd_cmd("export", "acme-copy", "--api", vsd.api).stdout)
    assert copy["enterprise"]["name"] == "acme-copy" and copy["domains"] == doc["domains"]
    audit = vsd_cmd("audit", "--db", db, "--limit", "5").stdout
    assert "csp/csproot" in audit and "CREATE" in audit


def test_serve_https(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    ca = ssl.create_default_context(cafile=str(cert))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vsd", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--db", f"sqlite:///{tmp_path}/tls.db", "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        api = f"https://127.0.0.1:{port}/nuage/api/v6"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{api}/vsplab/health", verify=ca).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with VsdClient(api, verify=ca) as c:
            assert c.create("", "enterprises", {"name": "vl-tls"})["ID"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/nuage/api/v6/vsplab/health", timeout=2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert "first start" in out and "https://127.0.0.1" in out
