"""`--mode real` without root: the inventory and its errors, how a host is reached, the command line's
refusals, and the VSD side against a real (embedded) VSD - a push is taken back exactly, and a
scenario whose enterprise exists already is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsd.client import VsdClient
from vsd.server import EmbeddedVsd
from vsplab.cli import main as vsplab_main
from vsplab.real.access import HostAccess
from vsplab.real.inventory import check_covers, load_inventory
from vsplab.real.lab import CreationLog, RealError, RealLab
from vsplab.scenario.check import load_scenario
from vsplab.scenario.loader import ScenarioError
from vsplab.scenario.to_vsd import push_scenario

ROOT = Path(__file__).resolve().parent.parent
THREE_TIER = ROOT / "scenarios" / "three-tier.yaml"


def test_the_vagrant_inventory_covers_three_tier():
    inv = load_inventory(ROOT / "vagrant" / "inventory.yaml")
    check_covers(inv, load_scenario(THREE_TIER), "vagrant/inventory.yaml")
    assert inv.vsd.api == "http://192.168.56.10:8443/nuage/api/v6"
    assert inv.access("host1").argv(["/opt/vsplab/venv/bin/vrs", "plug", "web1"]) == [
        "ssh", "-o", "BatchMode=yes", "-F", "ssh_config", "-o", "ControlMaster=auto", "-o", "ControlPath=~/.ssh/vsplab-%C",
        "vagrant@host1", "sudo -n /opt/vsplab/venv/bin/vrs plug web1"]


def test_access_by_ssh_as_root_and_by_netns():
    assert HostAccess("h", ssh="root@10.0.0.1").argv(["vrs", "unplug", "a b"]) == [
        "ssh", "-o", "BatchMode=yes", "root@10.0.0.1", "vrs unplug 'a b'"]
    assert HostAccess("h", netns="vl-real-h1").argv(["vrs", "plug"]) == [
        "nsenter", "--net=/var/run/netns/vl-real-h1", "vrs", "plug"]


def test_inventory_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "inv.yaml"
    bad.write_text("vsd: {url: http://a:8443}\nvscs: [{name: v, status: 'a:1'}]\nhosts:\n"
                   "  - {name: host1, vtep: 10.0.0.1}\n  - {name: host2, ssh: h2, vtep: 10.0.0}\n  - {name: h3, "
                   "ssh: x, vtep: 10.0.0.3, colour: red}\n")
    with pytest.raises(ScenarioError) as e:
        load_inventory(bad)
    text = str(e.value)
    for line, what in ((1, "vsd.password: Field required"), (2, "vscs[0].status: Value error, expected http://"),
                       (4, "hosts[0]: Value error, give exactly one of ssh"), (5, "hosts[1].vtep"),
                       (6, "hosts[2].colour: unknown field")):
        assert f"{bad}:{line}: {what}" in text, text
    good = tmp_path / "good.yaml"
    good.write_text("vsd: {url: http://a:8443, password: p}\nvscs: [{name: v, status: 'http://a:6635'}]\n"
                    "hosts: [{name: host1, netns: vl-real-h1, vtep: 10.0.0.1}]\n")
    with pytest.raises(ScenarioError, match="no host named host2, host3"):
        check_covers(load_inventory(good), load_scenario(THREE_TIER), str(good))


@pytest.mark.parametrize("argv, message", [
    (["--mode", "real"], "--mode real and --inventory FILE go together"),
    (["--inventory", "x.yaml"], "--mode real and --inventory FILE go together"),
    (["--mode", "real", "--inventory", "x.yaml", "--keep"], "drop --keep and --vsd"),
])
def test_command_line_refusals(capsys, argv, message):
    assert vsplab_main(["run", str(THREE_TIER), *argv]) == 2
    assert message in " ".join(capsys.readouterr().out.split())


def test_a_push_is_taken_back_and_an_existing_enterprise_refused(tmp_path):
    scenario = load_scenario(THREE_TIER)
    with EmbeddedVsd(db_url=f"sqlite:///{tmp_path / 'vsd.db'}") as vsd:
        client = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
        before = {e["name"] for e in client.list("enterprises")}
        log = CreationLog(client)
        result = push_scenario(log, scenario)
        assert log.created and result.objects >= len(log.created)  # a VM brings its interfaces along
        assert {e["name"] for e in client.list("enterprises")} == before | {"acme"}
        lab = RealLab(scenario, workdir=tmp_path / "lab")
        lab.client = client
        with pytest.raises(RealError, match="already has enterprise acme"):
            lab.push()
        log.undo()
        assert {e["name"] for e in client.list("enterprises")} == before
        assert client.list("vms") == []
        client.close()


def test_an_unreachable_vsd_is_one_clear_line(tmp_path, capsys):
    from vsplab.lab.ports import free_port

    inv = tmp_path / "inv.yaml"
    inv.write_text(f"vsd: {{url: 'http://127.0.0.1:{free_port()}', password: p}}\n"
                   "vscs: [{name: v, status: 'http://127.0.0.1:1'}]\n"
                   "hosts: [{name: host1, netns: a, vtep: 10.0.0.1}, {name: host2, netns: b, vtep: 10.0.0.2},\n"
                   "        {name: host3, netns: c, vtep: 10.0.0.3}]\n")
    assert vsplab_main(["run", str(THREE_TIER), "--mode", "real", "--inventory", str(inv)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "error the inventory's VSD at http://127.0.0.1:" in out and "Traceback" not in out, out
