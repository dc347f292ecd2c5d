"""The emulated data plane's settings (`dataplane:` in a scenario, `vsplab run --datapath`): a jumbo
underlay by default with containers at the largest MTU that fits (8950), and AF_XDP ports where the kernel and OVS have them.

The three-tier runs need root and Open vSwitch (scripts/system-deps); the AF_XDP one skips, naming
the reason, where this machine cannot make AF_XDP ports."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from tests.test_emu_lab import lab_traces
from vsplab.cli import main as vsplab_main
from vsplab.emu.check import container_netns
from vsplab.emu.datapath import (
    DatapathUnsupported,
    kernel_lacks_afxdp,
    ovs_lacks_afxdp,
    port_type,
    with_datapath,
)
from vsplab.emu.lab import EmuLab
from vsplab.emu.netns import run
from vsplab.emu.sockbuf import RCVBUF
from vsplab.scenario.check import load_scenario
from vsplab.scenario.loader import ScenarioError
from vsplab.scenario.model import AFXDP_MAX_MTU, Dataplane

ROOT = Path(__file__).resolve().parents[1]
THREE_TIER = ROOT / "scenarios" / "three-tier.yaml"


def on_ovs(test):
    """Marks of a test that runs an emulated lab."""
    for mark in (pytest.mark.slow, pytest.mark.root,
                 pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None
                                    or shutil.which("iperf3") is None,
                                    reason="needs root, Open vSwitch and iperf3 (scripts/system-deps)")):
        test = mark(test)
    return test


def test_defaults_jumbo_underlay_and_containers_at_the_largest_that_fits():
    assert (Dataplane().datapath, Dataplane().underlay, Dataplane().container) == ("netdev", 9000, 8950)
    assert Dataplane(container_mtu="max").container == 8950
    assert Dataplane(container_mtu=1500).container == 1500
    # a small underlay: containers get what is left after VXLAN's 50 bytes
    assert Dataplane(underlay_mtu=1500).container == 1450
    assert (Dataplane(datapath="afxdp").underlay, Dataplane(datapath="afxdp").container) == \
        (AFXDP_MAX_MTU, AFXDP_MAX_MTU - 50)
    assert Dataplane(datapath="afxdp", container_mtu="max").container == AFXDP_MAX_MTU - 50
    assert (port_type("netdev"), port_type("afxdp"), port_type("afxdp-nonpmd")) == ("", "afxdp", "afxdp-nonpmd")


def test_afxdp_support_is_read_from_the_ovs_build():
    class Build:  # what `ovs-vsctl get Open_vSwitch . iface_types` answers
        def __init__(self, types: str) -> None:
            self.types = types

        def vsctl(self, *args: str) -> str:
            assert args == ("get", "Open_vSwitch", ".", "iface_types")
            return self.types + "\n"

    assert ovs_lacks_afxdp(Build("[afxdp, afxdp-nonpmd, geneve, internal, vxlan]")) is None
    why = ovs_lacks_afxdp(Build("[geneve, internal, vxlan]"))
    assert why == "this Open vSwitch build has no AF_XDP ports (iface_types: [geneve, internal, vxlan])"
    assert ovs_lacks_afxdp(Build("[afxdp-nonpmd, vxlan]")) is not None


def scenario_with(tmp_path: Path, dataplane: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(THREE_TIER.read_text() + f"\ndataplane:\n{dataplane}")
    return path


def test_scenario_errors_name_the_line_and_the_field(tmp_path):
    s = load_scenario(scenario_with(tmp_path, "  underlay_mtu: 4000\n  container_mtu: max\n"))
    assert (s.dataplane.underlay, s.dataplane.container) == (4000, 3950)
    lines = THREE_TIER.read_text().count("\n")
    for text, field, words in [("  container_mtu: 8960\n", "dataplane", "does not fit in underlay_mtu 9000"),
                               ("  datapath: afxdp\n  underlay_mtu: 9000\n", "dataplane", "AF_XDP ports carry at most"),
                               ("  underlay_mtu: 100\n", "dataplane.underlay_mtu", "greater than or equal to 1280"),
                               ("  datapath: dpdk\n", "dataplane.datapath", "'netdev', 'afxdp' or 'afxdp-nonpmd'")]:
        with pytest.raises(ScenarioError) as e:
            load_scenario(scenario_with(tmp_path, text))
        (file, line, where, msg), = e.value.problems
        assert where == field and words in msg, e.value
        assert line is not None and line > lines, e.value  # the dataplane section, not the file's top


def test_datapath_flag_overrides_the_scenario_and_is_checked_again():
    assert with_datapath(Dataplane(), "afxdp").underlay == AFXDP_MAX_MTU  # the default follows the datapath
    assert with_datapath(Dataplane(container_mtu=1400), "afxdp").container == 1400
    with pytest.raises(ValueError, match="--datapath afxdp: underlay_mtu 9000 with datapath afxdp"):
        with_datapath(Dataplane(underlay_mtu=9000), "afxdp")
    assert vsplab_main(["run", str(THREE_TIER), "--datapath", "afxdp"]) == 2  # sim mode has no data plane


def bulk_transfer(lab: EmuLab, src: str, dst: str, port: int) -> dict:
    """4 MB over iperf3 TCP between two containers (an allowed port): full-size segments cross VXLAN."""
    d = lab.placed[dst]
    lab.listeners.close()  # the checks' echo servers hold the ports the policy allows
    server = subprocess.Popen(["ip", "netns", "exec", container_netns(dst), "iperf3", "-s", "-1", "-B", d.ip,
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            assert server.poll() is None, "iperf3 -s exited"
            if f"{d.ip}:{port}" in run("ss", "-ltnH", ns=container_netns(dst), check=False):
                break
            time.sleep(0.05)
        out = json.loads(run("iperf3", "-c", d.ip, "-p", str(port), "-n", "4M", "-J", ns=container_netns(src),
                             check=False, timeout=60))
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(10)
    assert "error" not in out, out["error"]
    return out


def run_three_tier(lab: EmuLab, dataplane: Dataplane) -> None:
    """Every expectation holds, the MTUs are what the data plane says, and bulk TCP passes whole."""
    lab.push()
    lab.plug()
    lab.wait_converged(timeout=60)
    report = lab.check()
    assert report.ok and len(report.results) == 11, "\n".join(
        f"{r.label}: expected {r.expected}, observed {r.observed} {r.detail}" for r in report.failures)
    assert lab.figures["data plane"].startswith(f"{dataplane.datapath} ports, underlay MTU {dataplane.underlay}, "
                                                f"container MTU {dataplane.container}")
    host = lab.hosts["host1"]
    assert f"mtu {dataplane.underlay} " in run("ip", "link", "show", "vl-ul0", ns=host.ns)
    assert f"mtu {dataplane.container} " in run("ip", "link", "show", "eth0", ns=container_netns("web1"))
    out = bulk_transfer(lab, "web1", "app1", 8080)
    # the sender's 4 MB went out; the server's count stops at the client's end message, mid-flight
    assert out["end"]["sum_sent"]["bytes"] >= 4 * 2**20 and out["end"]["sum_received"]["bytes"] > 2**20
    # segments sized for the container's MTU, not for a 1500-byte underlay's 1450
    assert out["start"]["tcp_mss_default"] >= min(dataplane.container, 1500) - 40 - 12
    for h in lab.hosts.values():
        assert "Message too long" not in (h.dir / "ovs-vswitchd.log").read_text()


def receive_buffers(ns: str) -> dict[str, int]:
    """Interface -> receive buffer of each packet socket bound to one, in namespace `ns`."""
    out = run("ss", "-0", "-a", "-m", ns=ns)
    found = re.findall(r"\*:(\S+)\s+\*.*?skmem:\(r\d+,rb(\d+)", out, flags=re.S)
    return {iface: int(rb) for iface, rb in found}


@on_ovs
def test_three_tier_on_the_default_jumbo_underlay():
    assert lab_traces() == []
    scenario = load_scenario(str(THREE_TIER))
    with EmuLab(scenario, console=Console(file=io.StringIO())) as lab:
        assert lab.dataplane == Dataplane()
        lab.start()
        run_three_tier(lab, lab.dataplane)
        host = lab.hosts["host1"]
        assert host.ovs.vsctl("get", "interface", "vl-web1", "type").strip() == '""'
        # every veth OVS reads has the large receive buffer (the kernel reports twice what was set),
        # also once a restarted ovs-vswitchd has opened its sockets again
        assert "4 MiB receive buffers" in lab.figures["data plane"], lab.figures
        for restart in (False, True):
            if restart:
                lab.restart_vswitchd("host1")
            buffers = receive_buffers(host.ns)
            assert set(buffers) == {"vl-ul0", "vl-web1", "vl-db2"}, buffers
            assert min(buffers.values()) >= RCVBUF, buffers
    assert lab_traces() == []


@on_ovs
@pytest.mark.parametrize("datapath", ["afxdp", "afxdp-nonpmd"])
def test_three_tier_on_afxdp_ports(datapath):
    assert lab_traces() == []
    if why := kernel_lacks_afxdp():
        pytest.skip(f"AF_XDP: {why}")
    dataplane = Dataplane(datapath=datapath)
    with EmuLab(load_scenario(str(THREE_TIER)), console=Console(file=io.StringIO()), dataplane=dataplane) as lab:
        try:
            lab.start()
        except DatapathUnsupported as e:  # the OVS build, or XDP on a veth (the reason names which)
            pytest.skip(f"AF_XDP: {e}")
        run_three_tier(lab, dataplane)
        for h in lab.hosts.values():
            ovs = h.ovs
            ports = ["vl-ul0"] + [ifname for ifname in ovs.vsctl("list-ports", "br-int").split() if ifname != "vxlan0"]
            for port in ports:  # every veth is an AF_XDP port: the XDP program on it, its socket's counters
                assert ovs.vsctl("get", "interface", port, "type").strip() == datapath
                assert "prog/xdp" in run("ip", "-d", "link", "show", port, ns=h.ns), port
                assert "xsk_queue_0_rx_dropped" in ovs.vsctl("get", "interface", port, "statistics")
            if datapath == "afxdp":  # polled by the host's PMD thread
                rxq = ovs.appctl("dpif-netdev/pmd-rxq-show")
                assert all(f"port: {p} " in rxq for p in ports), rxq
            assert "port-down" not in h.agent_output()  # the type change kept each port's OpenFlow number
    assert lab_traces() == []
