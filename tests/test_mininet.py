"""Mininet mode end to end: scenarios/three-tier.yaml on Mininet 2.3 (one OVSSwitch with the userspace
datapath per scenario host, the VSC as remote controller, one Mininet Host per container), every
expectation checked with real packets from the Mininet hosts, across real VXLAN encapsulation; the
lab leaves nothing behind, also on Ctrl-C.

Needs root, Open vSwitch and Debian's `mininet` package (scripts/system-deps)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from vsplab.emu.netns import netns_list
from vsplab.mininet import leftovers
from vsplab.mininet.fabric import host_netns, vtep_ip
from vsplab.mininet.lab import MININET_PYTHON, MininetLab
from vsplab.scenario.check import load_scenario

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None or shutil.which("mnexec") is None
                       or not Path(MININET_PYTHON).exists(),
                       reason="needs root, Open vSwitch and Mininet (scripts/system-deps)"),
]

ROOT = Path(__file__).resolve().parents[1]
THREE_TIER = ROOT / "scenarios" / "three-tier.yaml"


def lab_traces(workdir: Path | None = None) -> list[str]:
    found = leftovers.find()
    if workdir is not None:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(workdir) in args:
                found.append(f"process {proc.name}: {args}")
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture
def clean_machine():
    assert lab_traces() == [], "a previous Mininet lab left things behind"
    yield
    assert lab_traces() == []


def test_three_tier_on_mininet_with_real_packets(clean_machine):
    scenario = load_scenario(str(THREE_TIER))
    out = io.StringIO()
    with MininetLab(scenario, console=Console(file=out, width=200)) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged(timeout=60)
        report = lab.check()
        report.print(Console(file=out, width=200))
        assert report.mode == "mininet"
        assert len(report.results) == len(scenario.expect) == 11
        assert report.ok, "\n".join(f"{r.label}: expected {r.expected}, observed {r.observed} {r.detail}"
                                    for r in report.failures)
        for r in report.results:  # denials are real drops (the SYN times out), not refusals
            if r.expected == "deny" and r.protocol == "tcp":
                assert "no answer" in r.detail, r
        st = next(iter(lab.vscs.values())).status()  # OVS holds exactly what the VSC wanted on every switch
        for dp in st["datapaths"].values():
            assert report.flows_per_host[dp["name"]] == dp["flows_desired"] > 0

        ovs, of_port = lab.fabric.ovs, lab.vscs["vsc1"].ports["of_port"]
        for i in (1, 2, 3):  # the bridges are Mininet's OVSSwitches, configured as asked
            get = lambda *a: ovs.vsctl("get", *a).strip().strip('"')  # noqa: E731
            assert get("bridge", f"vl-s{i}", "other_config:dp-desc") == f"vl-s{i}"  # Mininet's mark
            assert get("bridge", f"vl-s{i}", "datapath_type") == "netdev"
            assert get("bridge", f"vl-s{i}", "fail_mode") == "secure"
            assert get("bridge", f"vl-s{i}", "protocols") == "[OpenFlow13]"
            assert get("bridge", f"vl-s{i}", "other_config:datapath-id") == f"{i:016x}"
        assert f"tcp:169.254.101.1:{of_port}" in ovs.vsctl("list", "controller")
        web1 = lab.placed["web1"]
        assert ovs.vsctl("get", "interface", "vl-p-web1", "external_ids:vsplab-vport-id").strip().strip('"') == \
            web1.vport_id
        # each container is a Mininet host (its shell is Mininet's), addressed as the VSD said
        for name, pid in lab.host_pids.items():
            assert f"mininet:{name}" in cmdline(pid)
        link = subprocess.run(["ip", "netns", "exec", host_netns("web1"), "ip", "-o", "link", "show", "eth0"],
                              capture_output=True, text=True, check=True).stdout
        assert "mtu 1450" in link and web1.mac.lower() in link
        # web1 (host1) -> app1 (host2) crossed a real VXLAN encapsulation between the two VTEPs
        dp_flows = ovs.appctl("dpctl/dump-flows")
        assert f"src={vtep_ip(1)},dst={vtep_ip(2)},proto=17" in dp_flows and "tnl_pop" in dp_flows
        assert "(real packets from Mininet hosts)" in lab._control(
            {"op": "trace", "from": "web1", "to": "db1", "proto": "tcp", "port": 5432})["text"]
        assert "table=45" in lab._control({"op": "flows", "host": "host1"})["text"]
        workdir = lab.workdir
        print(out.getvalue(), lab.figures)
    assert not workdir.exists()
    assert lab_traces(workdir) == []


DRIVER = textwrap.dedent("""
    import sys, time
    from rich.console import Console
    from vsplab.mininet.lab import MininetLab
    from vsplab.scenario.check import load_scenario
    with MininetLab(load_scenario(sys.argv[1]), console=Console(stderr=True)) as lab:
        lab.start()
        lab.push()
        lab.plug()
        lab.wait_converged()
        print("ready", lab.workdir, flush=True)
        time.sleep(60)
""")


def start_held_lab() -> tuple[subprocess.Popen, Path]:
    p = subprocess.Popen([sys.executable, "-c", DRIVER, str(THREE_TIER)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=str(ROOT), start_new_session=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("ready"), p.stderr.read() if p.poll() is not None else line
        return p, Path(line.split()[1])
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise


def mininet_shells() -> list[str]:
    """Shells of Mininet hosts named like the scenario's containers."""
    names = {f"mininet:{c.name}" for c in load_scenario(str(THREE_TIER)).containers}
    out = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            args = cmdline(int(p.name))
        except OSError:
            continue
        if "bash" in args and names & set(args.split()):
            out.append(args)
    return out


def test_ctrl_c_removes_everything(clean_machine):
    """Ctrl-C reaches the whole foreground process group (the Mininet driver too), as from a terminal."""
    p, workdir = start_held_lab()
    try:
        assert host_netns("web1") in netns_list() and lab_traces(workdir)
        os.killpg(p.pid, signal.SIGINT)
        p.wait(60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode != 0 and "KeyboardInterrupt" in p.stderr.read()
    assert lab_traces(workdir) == []


def test_killed_lab_is_refused_then_cleaned_up(clean_machine):
    """SIGKILL gives the lab no teardown: the next lab refuses to start over what is left, and the
    cleanup command removes exactly that (VSD, VSC, OVS, namespaces, the Mininet hosts' shells)."""
    p, workdir = start_held_lab()
    try:
        p.kill()
        p.wait()
        found = leftovers.find()
        assert any("did not clean up" in f for f in found) and "network namespace vl-mn" in found, found
        with pytest.raises(leftovers.LeftoversError, match="vsplab.mininet cleanup"):
            MininetLab(load_scenario(str(THREE_TIER)), console=Console(file=io.StringIO()))._preflight()
    finally:
        r = subprocess.run([sys.executable, "-m", "vsplab.mininet", "cleanup"], capture_output=True, text=True,
                           cwd=str(ROOT))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert r.returncode == 0, r.stderr
    assert "network namespace vl-mn-c-web1" in r.stdout
    assert lab_traces(workdir) == [] and not workdir.exists() and mininet_shells() == []
