"""The Vagrant lab's daemon configuration, run in emulated hosts, and `vsplab run --mode real` on them.

The config files are rendered by the provisioning's own template (vagrant/provision/render-config.sh,
into a temp dir through VSPLAB_ETC); the VSD, the VSC and each host's `vrs run` are started with the
ExecStart lines of packaging/systemd's units (tests.test_units.exec_start: only the venv and /etc
paths moved), `vrs run` inside each emulated host's network namespace beside its own Open vSwitch
(vsplab/emu/host.py). Two hosts are reached over SSH (an sshd of the test's in each namespace, our key
as root), the third by its namespace. Then `vsplab run scenarios/three-tier.yaml --mode real --inventory FILE`, with
an inventory naming those namespaces, must pass with real packets, and leave no container and no VSD
object behind; then one agent is reloaded as its unit's ExecReload does. So a wrong unit command line, a key the template writes that a daemon does not know,
or a broken real mode fails here.

The VSD stores into a throwaway PostgreSQL (tests/vsd_fixtures.py) as the role and in the database
that vagrant/provision/vsd.sh's own SQL makes.
Root, Open vSwitch, PostgreSQL and nsenter are needed (CI has them: scripts/system-deps). Its objects are named
vl-real-* (hosts) beside the emulator's fixed vl-mgmt / vl-underlay, so it waits for another emu lab
on this machine to finish rather than share them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.test_units import exec_start, render
from tests.vsd_fixtures import PG_BIN, postgres_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "vl-real-root-pw"
SSHD = "/usr/sbin/sshd"

pytestmark = [
    pytest.mark.slow, pytest.mark.root, pytest.mark.postgres,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, Open vSwitch)"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("ovs-vswitchd", "ovsdb-server", "nsenter", "ip")),
                       reason="needs Open vSwitch and iproute2 (scripts/system-deps)"),
]


def _wait_for_the_fabric(timeout: float = 300.0) -> None:
    from vsplab.emu.host import MGMT_BRIDGE, UNDERLAY_NS

    end = time.monotonic() + timeout
    while Path(f"/sys/class/net/{MGMT_BRIDGE}").exists() or Path(f"/var/run/netns/{UNDERLAY_NS}").exists():
        if time.monotonic() > end:
            pytest.skip("another emu lab holds vl-mgmt / vl-underlay on this machine")
        time.sleep(2)


def _wait(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready after {timeout}s: {log.read_text()[-3000:]}")


class Daemons:
    """What the test starts, each stopped by its PID, even when the test fails."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _start_sshd(daemons: Daemons, host, keys: Path) -> list[str]:
    """An sshd in the emulated host's network namespace, on its management address, that lets in our
    key as root: the host is then reached as a Vagrant machine is. The ssh options that reach it."""
    conf = keys / f"sshd-{host.name}.conf"
    conf.write_text(f"ListenAddress {host.mgmt_ip}\nHostKey {keys / 'host'}\nAuthorizedKeysFile {keys / 'id.pub'}\n"
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    f"UsePAM no\nStrictModes no\nPidFile {keys / f'sshd-{host.name}.pid'}\n")
    proc, log = daemons.start(f"sshd-{host.name}", ["nsenter", f"--net=/var/run/netns/{host.ns}", SSHD, "-D", "-e",
                                                    "-f", str(conf)])
    # commands share the prober's connection (it lives the whole run, so no master outlives the test)
    options = ["-i", str(keys / "id"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "ControlMaster=auto",
               "-o", f"ControlPath={keys}/cm-%h"]
    _wait(f"sshd on {host.name}", lambda: subprocess.run(
        ["ssh", "-o", "BatchMode=yes", *options, f"root@{host.mgmt_ip}", "true"], capture_output=True,
        timeout=10).returncode == 0, proc, log, timeout=30)
    return options


def _provisioned_database(admin_url: str) -> str:
    """The role and database vagrant/provision/vsd.sh makes (its own SQL, run twice: provisioning again
    must work), on a throwaway server; the URL the VSD then uses, as the Vagrantfile writes it."""
    sql = (ROOT / "vagrant" / "provision" / "vsd.sh").read_text().split("<<'SQL'\n")[1].split("\nSQL\n")[0]
    port = urlsplit(admin_url).port
    for _ in range(2):
        r = subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-q",
                            "-v", "ON_ERROR_STOP=1", "-v", "pw=vl-real-pg"], input=sql + "\n", capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    return f"postgresql://vsplab:vl-real-pg@127.0.0.1:{port}/vsplab"


def _reload_an_agent(agent: tuple[subprocess.Popen, Path], conf: Path, status: str) -> None:
    """`systemctl reload vsplab-vrs` (the unit's ExecReload: SIGHUP): a config file with a mistake is
    refused and the agent goes on; a good one is taken up by the same process, and the VSC sees it."""
    proc, log = agent
    good = conf.read_text()
    conf.write_text(good + "colour: blue\n")
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert proc.poll() is None and "unknown key 'colour'" in log.read_text() and "reload refused" in log.read_text()
    name = yaml.safe_load(good)["name"]
    conf.write_text(good.replace(f"name: {name}", f"name: {name}-reloaded"))
    proc.send_signal(signal.SIGHUP)

    def renamed() -> bool:
        dps = httpx.get(f"{status}/status", timeout=2).json()["datapaths"].values()
        return any(d["name"] == f"{name}-reloaded" and d["synced"] for d in dps)

    _wait("the reloaded agent", renamed, proc, log, timeout=30)
    assert "reloaded: " + f"{name}-reloaded" in log.read_text()


def test_three_tier_on_the_provisioned_daemons(tmp_path):
    from vsd.client import VsdClient
    from vsplab.emu.check import container_netns
    from vsplab.emu.host import EmuFabric, EmuHost
    from vsplab.emu.netns import netns_delete, netns_exists
    from vsplab.lab.ports import free_port
    from vsplab.scenario.check import load_scenario

    scenario_path = ROOT / "scenarios" / "three-tier.yaml"
    scenario = load_scenario(scenario_path)
    _wait_for_the_fabric()
    fabric, hosts, daemons = EmuFabric(), [], Daemons(tmp_path)
    resources = contextlib.ExitStack()
    try:
        db_url = _provisioned_database(resources.enter_context(postgres_url()))  # the VSD on PostgreSQL
        fabric.start()
        for i in range(1, len(scenario.hosts) + 1):
            host = EmuHost(f"real-h{i}", i, tmp_path / "hosts")
            hosts.append(host)
            host.start()
        for host in hosts:  # the hosts' own network configuration: neighbours on the underlay
            host.learn_peers(hosts)

        vsd_port, mgmt = free_port(), fabric.mgmt_ip
        ports = {"of": free_port(mgmt), "agent": free_port(mgmt), "status": free_port(mgmt)}
        env = {"VSD_ROOT_PASSWORD": PASSWORD, "VSD_LISTEN": "127.0.0.1", "VSD_PORT": str(vsd_port),
               "VSD_DB": db_url, "VSC_VSD": f"http://127.0.0.1:{vsd_port}",
               "VSC_LISTEN": mgmt, "VSC_OF_PORT": str(ports["of"]), "VSC_AGENT_PORT": str(ports["agent"]),
               "VSC_STATUS_PORT": str(ports["status"]), "VSC_STATE_DIR": str(tmp_path / "vsc-state")}
        etc = tmp_path / "etc"
        r = render(etc, env, "vsd", "vsc")
        assert r.returncode == 0, r.stderr

        api = f"http://127.0.0.1:{vsd_port}/nuage/api/v6"
        vsd, log = daemons.start("vsd", exec_start("vsplab-vsd.service", BIN, etc))
        _wait("vsd", lambda: httpx.get(f"{api}/vsplab/health", timeout=2).status_code == 200, vsd, log)
        vsc, log = daemons.start("vsc", exec_start("vsplab-vsc.service", BIN, etc))
        status = f"http://{mgmt}:{ports['status']}"
        _wait("vsc", lambda: httpx.get(f"{status}/status", timeout=2).json()["converged"], vsc, log)

        agents: list[tuple[subprocess.Popen, Path]] = []
        ssh_options: list[str] = []
        if Path(SSHD).exists():  # hosts 1 and 2 over SSH, the last one by its namespace: both ways in
            keys = tmp_path / "ssh"
            keys.mkdir()
            for key in ("id", "host"):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / key)], check=True)
            if not Path("/run/sshd").is_dir():  # sshd's privilege separation directory, ours to remove
                Path("/run/sshd").mkdir(mode=0o755)
                resources.callback(Path("/run/sshd").rmdir)
            for host in hosts[:-1]:
                ssh_options = _start_sshd(daemons, host, keys)
        inventory = {"vsd": {"url": f"http://127.0.0.1:{vsd_port}", "password": PASSWORD},
                     "vscs": [{"name": "vsc1", "status": status}], "bin": str(BIN), "hosts": [],
                     "ssh_options": ssh_options}
        for h, host in zip(scenario.hosts, hosts, strict=True):
            host_etc = tmp_path / host.name / "etc"
            r = render(host_etc, {"VRS_VSC": mgmt, "VRS_OF_PORT": str(ports["of"]),
                                  "VRS_AGENT_PORT": str(ports["agent"]), "VRS_VTEP_IP": host.vtep_ip,
                                  "VRS_DATAPATH_ID": str(host.datapath_id), "VRS_NAME": h.name,
                                  "VRS_DATAPATH_TYPE": "netdev", "VRS_OVSDB": host.ovs.db_remote}, "vrs")
            assert r.returncode == 0, r.stderr
            argv = exec_start("vsplab-vrs.service", BIN, host_etc)
            agents.append(daemons.start(f"vrs-{h.name}", ["nsenter", f"--net=/var/run/netns/{host.ns}", *argv]))
            way_in = {"ssh": f"root@{host.mgmt_ip}"} if ssh_options and host is not hosts[-1] else {"netns": host.ns}
            inventory["hosts"].append({"name": h.name, **way_in, "vtep": host.vtep_ip, "ovsdb": host.ovs.db_remote})

        def all_connected() -> bool:
            dps = httpx.get(f"{status}/status", timeout=2).json()["datapaths"]
            return sum(d["synced"] for d in dps.values()) == len(hosts)

        _wait("the VRSs' connections to the VSC", all_connected, vsc, tmp_path / "vsc.log")
        inv = tmp_path / "inventory.yaml"
        inv.write_text(yaml.safe_dump(inventory))

        out = tmp_path / "result.json"
        run = subprocess.run([str(BIN / "vsplab"), "run", str(scenario_path), "--mode", "real", "--inventory",
                              str(inv), "--json", str(out)], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path)
        print(run.stdout)  # the table, shown with -s
        if ssh_options:
            assert f"(ssh root@{hosts[0].mgmt_ip}" in run.stdout and f"(netns {hosts[-1].ns}" in run.stdout
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        result = json.loads(out.read_text())
        assert result["mode"] == "real"
        checks = result["expectations"]
        assert len(checks) == len(scenario.expect) == 11
        assert all(c["observed"] == c["expected"] for c in checks), checks
        assert sum(c["expected"] == "allow" for c in checks) == 5
        # it took away what it added: the containers and the VSD objects
        assert not [c.name for c in scenario.containers if netns_exists(container_netns(c.name))]
        with VsdClient(api, "csproot", PASSWORD) as client:
            assert client.list("enterprises") == []
        for host in hosts:
            ports_left = host.ovs.vsctl("list-ports", "br-int").split()
            assert [p for p in ports_left if p.startswith("vl-")] == [], ports_left
        _reload_an_agent(agents[0], tmp_path / hosts[0].name / "etc" / "vrs.yaml", status)
    finally:
        daemons.stop()
        for c in scenario.containers:
            if netns_exists(container_netns(c.name)):
                netns_delete(container_netns(c.name))
        for host in reversed(hosts):
            host.stop()
        fabric.stop()
        resources.close()
