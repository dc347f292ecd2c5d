"""vagrant/: `vagrant validate` passes on the Vagrantfile with Debian's vagrant package alone (no
provider, no box, nothing downloaded: --ignore-provider, Vagrant's state and home in a temp dir,
its version check off), for the default lab and the three-VSD one, each machine there with its
provisioning script (validate checks the script exists); a bad variable is refused; the provisioning
scripts pass shellcheck."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VAGRANT = ROOT / "vagrant"


def validate(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"), "VAGRANT_HOME": str(tmp_path / "home"),
           "VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1", **variables}
    return subprocess.run(["vagrant", "validate", "--ignore-provider", "--no-tty"], cwd=VAGRANT, env=env,
                          capture_output=True, text=True, timeout=180)


needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None,
                                   reason="vagrant is missing (scripts/system-deps installs it)")


@needs_vagrant
@pytest.mark.slow
@pytest.mark.parametrize("variables", [{}, {"VSPLAB_VSDS": "3", "VSPLAB_HOSTS": "5"}])
def test_vagrant_validate(tmp_path, variables):
    r = validate(tmp_path, **variables)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout
    machines = {line.removeprefix("==> ").split(":")[0] for line in r.stdout.splitlines() if line.startswith("==>")}
    vsds, hosts = int(variables.get("VSPLAB_VSDS", 1)), int(variables.get("VSPLAB_HOSTS", 3))
    assert machines == {f"vsd{i}" for i in range(1, vsds + 1)} | {"rr", "vsc1", "vsc2"} | {
        f"host{i}" for i in range(1, hosts + 1)}


@needs_vagrant
@pytest.mark.slow
def test_vagrant_validate_refuses_what_is_wrong(tmp_path):
    r = validate(tmp_path, VSPLAB_VSDS="2", VSPLAB_HOSTS="0")
    assert r.returncode != 0 and "VSPLAB_VSDS must be 1 or 3, not 2" in r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is missing (scripts/system-deps)")
def test_provisioning_passes_shellcheck():
    scripts = sorted(str(p) for p in (VAGRANT / "provision").glob("*.sh"))
    assert len(scripts) >= 5
    r = subprocess.run(["shellcheck", "--severity=style", *scripts, str(ROOT / "scripts" / "system-deps")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_route_reflector_config_comes_from_the_labs_function(tmp_path):
    """vagrant/provision/rr.sh renders bgpd.conf with vsplab.bgp.frr.bgpd_config (its own Python, run here
    with this checkout's): every VSC a route-reflector client, EVPN activated."""
    script = (VAGRANT / "provision" / "rr.sh").read_text()
    code = script.split("<<'PY'\n")[1].split("\nPY\n")[0]
    r = subprocess.run([sys.executable, "-", "192.168.56.5", "65000", "192.168.56.21,192.168.56.22"], input=code,
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "router bgp 65000" in r.stdout and " bgp router-id 192.168.56.5" in r.stdout
    for vsc in ("192.168.56.21", "192.168.56.22"):
        assert f"  neighbor {vsc} route-reflector-client" in r.stdout and f" neighbor {vsc} remote-as 65000" in r.stdout
