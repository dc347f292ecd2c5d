"""The systemd units of packaging/systemd and the example configs of packaging/etc/vsplab: verified by
`systemd-analyze verify` with their ExecStart pointing at this checkout's virtualenv (verify insists
the command exists and is executable, so a unit naming a console script we do not install fails),
the properties the deployment relies on, and the examples are what the provisioning's template
renders and what each daemon accepts."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemonconf import parse_with_config

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "packaging" / "systemd"
EXAMPLES = ROOT / "packaging" / "etc" / "vsplab"
RENDER = ROOT / "vagrant" / "provision" / "render-config.sh"
INSTALLED_BIN = "/opt/vsplab/venv/bin/"  # where vagrant/provision/install.sh puts the console scripts
DAEMONS = {"vsd": ("serve", "vsplab-vsd.service"), "vsc": ("run", "vsplab-vsc.service"),
           "vrs": ("run", "vsplab-vrs.service")}
# the environment the examples were rendered with: vsd1, vsc1 and host1 of vagrant/Vagrantfile
EXAMPLE_ENV = {
    "VSD_ROOT_PASSWORD": "vsplab-lab", "VSD_DB": "postgresql://vsplab:vsplab-pg@192.168.56.10/vsplab",
    "VSC_VSD": "http://192.168.56.10:8443", "VSC_BGP_ASN": "65000", "VSC_ROUTER_ID": "192.168.56.21",
    "VSC_BGP_PEERS": "192.168.56.5:65000", "VRS_VSC": "192.168.56.21", "VRS_VTEP_IP": "192.168.56.31",
    "VRS_DATAPATH_ID": "1", "VRS_NAME": "host1",
}


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values, in order (a unit may repeat a key)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def exec_start(unit: str, bindir: Path, etc: Path | None = None) -> list[str]:
    """A unit's ExecStart as an argv with the installed paths moved: the console scripts to `bindir`,
    /etc/vsplab to `etc`; what a test starts is the unit's own command line."""
    (line,) = unit_settings(UNITS / unit)["Service"]["ExecStart"]
    argv = shlex.split(line)
    argv[0] = str(bindir / argv[0].removeprefix(INSTALLED_BIN))
    return [str(etc / Path(a).name) if etc and a.startswith("/etc/vsplab/") else a for a in argv]


def render(etc: Path, env: dict[str, str], *roles: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "VSPLAB_ETC": str(etc), **env}
    return subprocess.run(["bash", str(RENDER), *roles], env=full, capture_output=True, text=True, timeout=30)


def verify(directory: Path) -> tuple[int, list[str]]:
    """`systemd-analyze verify` on every unit of `directory`: its exit status and what it said about
    those units (warnings about the machine's own units are not ours)."""
    units = sorted(str(p) for p in directory.glob("*.service"))
    r = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    ours = [line for line in (r.stdout + r.stderr).splitlines()
            if any(Path(u).name in line for u in units)]
    return r.returncode, ours


def _installed_copies(tmp_path: Path, edit=lambda name, text: text) -> Path:
    bindir = Path(sys.executable).parent
    out = tmp_path / "units"
    out.mkdir()
    for unit in UNITS.glob("*.service"):
        (out / unit.name).write_text(edit(unit.name, unit.read_text().replace(INSTALLED_BIN, f"{bindir}/")))
    return out


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is missing (scripts/system-deps installs systemd)")


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path):
    code, said = verify(_installed_copies(tmp_path))
    assert (code, said) == (0, [])


@needs_analyze
def test_verify_catches_a_wrong_unit(tmp_path):
    """The check above would fail on a misspelt setting or a command that is not installed."""
    def spoil(name: str, text: str) -> str:
        if name == "vsplab-vsc.service":
            return text.replace("Restart=on-failure", "Restartt=on-failure")
        if name == "vsplab-vrs.service":
            return text.replace("/bin/vrs run", "/bin/vrs-agent run")
        return text

    code, said = verify(_installed_copies(tmp_path, spoil))
    assert code != 0
    assert any("Restartt" in line for line in said) and any("vrs-agent" in line for line in said), said


def test_units_restart_order_and_privilege():
    for daemon, (_, unit) in DAEMONS.items():
        s = unit_settings(UNITS / unit)
        assert s["Service"]["Restart"] == ["on-failure"], unit
        # a refused config (exit 2) is not retried; anything else is, however long its engine takes
        assert s["Service"]["RestartPreventExitStatus"] == ["2"] and s["Unit"]["StartLimitIntervalSec"] == ["0"]
        assert s["Install"]["WantedBy"] == ["multi-user.target"], unit
        assert s["Service"]["ExecStart"] == [f"{INSTALLED_BIN}{daemon} {DAEMONS[daemon][0]} "
                                             f"--config /etc/vsplab/{daemon}.yaml"]
        assert s["Service"]["NoNewPrivileges"] == ["yes"]
    vsd, vsc, vrs = (unit_settings(UNITS / u) for _, u in DAEMONS.values())
    # the VSD and the VSC need no root; the VSC keeps only the right to bind BGP's port 179
    assert vsd["Service"]["User"] == vsc["Service"]["User"] == ["vsplab"]
    assert vsd["Service"]["CapabilityBoundingSet"] == [""]
    assert vsc["Service"]["CapabilityBoundingSet"] == vsc["Service"]["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert "User" not in vrs["Service"] and vrs["Service"]["CapabilityBoundingSet"] == [""]
    assert "postgresql.service" in vsd["Unit"]["After"][0] and "postgresql.service" in vsd["Unit"]["Wants"][0]
    assert "openvswitch-switch.service" in vrs["Unit"]["After"][0]
    assert "openvswitch-switch.service" in vrs["Unit"]["Wants"][0]


def test_examples_are_what_the_provisioning_renders(tmp_path):
    r = render(tmp_path, EXAMPLE_ENV, "vsd", "vsc", "vrs")
    assert r.returncode == 0, r.stderr
    for daemon in DAEMONS:
        assert (tmp_path / f"{daemon}.yaml").read_text() == (EXAMPLES / f"{daemon}.yaml").read_text(), daemon


def test_each_daemon_accepts_its_example():
    from vrs.cli import parser as vrs_parser
    from vsc.cli import _parser as vsc_parser
    from vsd.cli import parser as vsd_parser

    vsd = parse_with_config(vsd_parser(), ["serve", "--config", str(EXAMPLES / "vsd.yaml")])
    assert (vsd.host, vsd.port, vsd.db, vsd.root_password) == (
        "0.0.0.0", 8443, "postgresql://vsplab:vsplab-pg@192.168.56.10/vsplab", "vsplab-lab")
    vsc = parse_with_config(vsc_parser(), ["run", "--config", str(EXAMPLES / "vsc.yaml")])
    assert (vsc.vsd, vsc.bgp_asn, vsc.bgp_peer, vsc.listen) == ("http://192.168.56.10:8443", 65000,
                                                                ["192.168.56.5:65000"], "0.0.0.0")
    vrs = parse_with_config(vrs_parser(), ["run", "--config", str(EXAMPLES / "vrs.yaml")])
    assert (vrs.vsc, vrs.vtep_ip, vrs.datapath_id, vrs.datapath_type) == ("192.168.56.21", "192.168.56.31", 1,
                                                                          "system")


def test_render_refuses_a_missing_value(tmp_path):
    r = render(tmp_path, {"VRS_VSC": "10.0.0.1"}, "vrs")
    assert r.returncode != 0 and "VRS_VTEP_IP is required" in r.stderr
    r = render(tmp_path, {}, "vsx")
    assert r.returncode == 2 and "unknown role 'vsx'" in r.stderr
    assert not list(tmp_path.glob("*.yaml"))


def test_a_password_survives_the_template(tmp_path):
    from vsc.cli import _parser as vsc_parser

    password = 'a"b\\c: #d\'e $HOME `x`'
    r = render(tmp_path, {"VSD_ROOT_PASSWORD": password, "VSC_VSD": "http://127.0.0.1:8443"}, "vsc")
    assert r.returncode == 0, r.stderr
    assert parse_with_config(vsc_parser(), ["run", "--config", str(tmp_path / "vsc.yaml")]).password == password
