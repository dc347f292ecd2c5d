"""The `vrs` agent on real Open vSwitch: two emulated hosts (namespaces with their own OVS), the agent
in each, containers plugged with `vrs plug`, a VSC serving a saved VSD view. Checks what OVSDB holds,
that the VSC learns the ports and programs the bridges (ping over VXLAN, the ACL's deny), that the
agent repairs a tampered bridge, and that `vrs unplug` removes the container and tells the VSC.

Needs root and Open vSwitch (scripts/system-deps)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from vsc.process import VscProcess
from vsplab.emu.host import EmuFabric, EmuHost
from vsplab.emu.netns import netns_delete, netns_exists
from vsplab.emu.probes import ping
from vsplab.lab.ports import free_port
from vsplab.workload.tree import Tree

pytestmark = [
    pytest.mark.slow, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None,
                       reason="needs root and Open vSwitch (scripts/system-deps)"),
]


def view() -> tuple[Tree, dict]:
    t = Tree()
    dom = t.domain(t.enterprise(), "d", 5002)
    web_s = t.subnet(t.zone(dom, "zw"), "web", "10.1.0.0/24")
    db_s = t.subnet(t.zone(dom, "zd"), "db", "10.2.0.0/24")
    web = t.vport(web_s, dom, "web1", "02:00:00:00:0a:01", "10.1.0.10")
    db = t.vport(db_s, dom, "db1", "02:00:00:00:0a:02", "10.2.0.10")
    pw, pd = t.policy_group(dom, "web", 1, [web]), t.policy_group(dom, "db", 2, [db])
    tin, teg = t.template(dom, "ingress"), t.template(dom, "egress")
    # ICMP web -> db only, stateful so the echo reply returns
    t.entry(tin, "ingress", 10, location=("POLICYGROUP", pw), network=("POLICYGROUP", pd), protocol="1",
            stateful=True)
    t.entry(teg, "egress", 10, location=("POLICYGROUP", pd), network=("POLICYGROUP", pw), protocol="1",
            stateful=True)
    return t, {"web": web, "db": db}


def wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ovsdb_get(host: EmuHost, *args: str) -> str:
    return host.ovs.vsctl("--if-exists", "get", *args).strip().strip('"')  # ovs-vsctl quotes some strings


class TwoHosts:
    """Fabric, two emulated hosts with `vrs run`, web1 on the first, db1 on the second, one VSC."""

    def __init__(self, tmp_path) -> None:
        self.tree, self.ids = view()
        (tmp_path / "view.json").write_text(json.dumps({"revision": 1, "objects": self.tree.objects}))
        self.fabric = EmuFabric()
        self.hosts = [EmuHost(f"vl-t-h{i}", 200 + i, tmp_path) for i in (1, 2)]  # high indexes: clear of labs
        self.of, self.agent = free_port(), free_port()
        self.vsc = VscProcess(view_file=tmp_path / "view.json", listen=self.fabric.mgmt_ip, of_port=self.of,
                              agent_port=self.agent, status_port=free_port(), state_dir=tmp_path / "state",
                              log_file=tmp_path / "vsc.log")

    def __enter__(self) -> TwoHosts:
        try:
            self.fabric.start()
            for h in self.hosts:
                h.start()
            for h in self.hosts:
                h.learn_peers(self.hosts)
            self.vsc.start()
            for h in self.hosts:
                h.start_agent(self.fabric.mgmt_ip, self.of, self.agent)
            self.plug_result = json.loads(self.hosts[0].vrs(
                "plug", "web1", "--netns", "vl-c-t-web1", "--port", "vl-t-web1", "--mac", "02:00:00:00:0a:01",
                "--ip", "10.1.0.10/24", "--gateway", "10.1.0.1", "--vport-id", self.ids["web"]))
            self.hosts[1].vrs("plug", "db1", "--netns", "vl-c-t-db1", "--port", "vl-t-db1", "--mac",
                              "02:00:00:00:0a:02", "--ip", "10.2.0.10/24", "--gateway", "10.2.0.1",
                              "--vport-id", self.ids["db"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.vsc.stop()
        for ns in ("vl-c-t-web1", "vl-c-t-db1", "vl-c-t-web2"):
            netns_delete(ns)
        for h in self.hosts:
            h.stop()
        self.fabric.stop()


def test_vrs_agent_plugs_reports_repairs_and_unplugs(tmp_path):
    with TwoHosts(tmp_path) as lab:
        vsc, hosts, ids = lab.vsc, lab.hosts, lab.ids
        h1, h2 = hosts
        st = vsc.wait_converged(30, datapaths=2, endpoints=2)

        # what the agent wrote and OVS reports
        assert ovsdb_get(h1, "bridge", "br-int", "fail_mode") == "secure"
        assert ovsdb_get(h1, "bridge", "br-int", "protocols") == "[OpenFlow13]"
        assert ovsdb_get(h1, "bridge", "br-int", "datapath_id") == f"{h1.datapath_id:016x}"
        assert ovsdb_get(h1, "interface", "vxlan0", "options") == "{key=flow, remote_ip=flow}"
        for key, value in (("vsplab-vport-id", ids["web"]), ("attached-mac", "02:00:00:00:0a:01"),
                           ("vsplab-ip", "10.1.0.10")):
            assert ovsdb_get(h1, "interface", "vl-t-web1", f"external_ids:{key}") == value
        assert int(ovsdb_get(h1, "interface", "vl-t-web1", "ofport")) == lab.plug_result["ofport"]
        assert st["datapaths"][str(h1.datapath_id)]["ports"] == 1 and not st["input_errors"]
        assert h1.flow_count() == st["datapaths"][str(h1.datapath_id)]["flows_desired"]

        # real packets over VXLAN between the two hosts, as the ACL says
        rtts = ping("vl-c-t-web1", "10.2.0.10", count=5, timeout=1.0)
        assert len(rtts) == 5, rtts  # the tunnel neighbours were seeded: not even the first is lost
        assert not ping("vl-c-t-db1", "10.1.0.10", count=1, timeout=0.5)

        # someone breaks the bridge: the agent puts it back, the VSC reprograms it, traffic flows again
        h1.ovs.vsctl("del-controller", "br-int", "--", "set", "bridge", "br-int", "fail_mode=standalone",
                     "--", "del-port", "br-int", "vxlan0")
        wait_for(lambda: ovsdb_get(h1, "interface", "vxlan0", "ofport") not in ("", "[]", "-1")
                 and ovsdb_get(h1, "bridge", "br-int", "fail_mode") == "secure"
                 and ovsdb_get(h1, "bridge", "br-int", "controller") != "[]", 10, "the agent's repair")
        vsc.wait_converged(30, datapaths=2, endpoints=2)
        wait_for(lambda: ping("vl-c-t-web1", "10.2.0.10", count=1, timeout=0.5), 10, "ping after the repair")

        # unplug: port and namespace gone, the VSC forgets the endpoint
        h2.vrs("unplug", "db1", "--netns", "vl-c-t-db1", "--port", "vl-t-db1")
        assert not netns_exists("vl-c-t-db1")
        assert ovsdb_get(h2, "interface", "vl-t-db1", "ofport") == ""
        wait_for(lambda: vsc.status()["endpoints"] == 1, 10, "the VSC to drop db1")
        assert not ping("vl-c-t-web1", "10.2.0.10", count=1, timeout=0.5)
        assert all(h.agent_alive() for h in hosts), [h.agent_output() for h in hosts]
    for h in hosts:  # torn down: no namespace, no OVS process
        assert not netns_exists(h.ns)
        assert not any(os.path.exists(f"/proc/{p}") for p in h.ovs.pids())


def flow_durations(host: EmuHost) -> dict[str, float]:
    out = {}
    for line in host.ovs.ofctl("dump-flows", "br-int").splitlines()[1:]:
        parts = [p.strip() for p in line.split(",")]
        dur = next(float(p.split("=")[1].rstrip("s")) for p in parts if p.startswith("duration="))
        ident = ",".join(p for p in parts if not p.startswith(("duration=", "n_packets", "n_bytes")))
        out[ident.split(" actions=")[0]] = dur
    return out


def test_vrs_agent_survives_agent_vsc_and_ovs_restarts(tmp_path):
    with TwoHosts(tmp_path) as lab:
        vsc, (h1, h2) = lab.vsc, lab.hosts
        vsc.wait_converged(30, datapaths=2, endpoints=2)
        assert ping("vl-c-t-web1", "10.2.0.10", count=1, timeout=1.0)
        before = flow_durations(h1)

        # the agent restarts: it replays its state, the VSC relearns it and touches no flow
        time.sleep(1.1)  # so a re-added flow would show a smaller duration
        h1.stop_agent()
        h1.start_agent(lab.fabric.mgmt_ip, lab.of, lab.agent)
        wait_for(lambda: "port-up vl-t-web1" in h1.agent_output().split("agent channel connected")[-1], 10,
                 "the restarted agent's replay")
        st = vsc.wait_converged(30, datapaths=2, endpoints=2)
        after = flow_durations(h1)
        assert after.keys() == before.keys()
        assert all(after[k] >= before[k] + 1.0 for k in before), "a flow was re-added"
        assert st["datapaths"][str(h1.datapath_id)]["ports"] == 1

        # the VSC restarts: both agents reconnect and replay, traffic flows again
        vsc.restart()
        wait_for(lambda: vsc.status()["endpoints"] == 2, 20, "the agents' replay to the new VSC")
        vsc.wait_converged(30, datapaths=2, endpoints=2)
        assert ping("vl-c-t-web1", "10.2.0.10", count=3, timeout=1.0)

        # ovs-vswitchd restarts (flows gone, database kept): the VSC reprograms it on reconnect
        old_pid, t_restart = h2.ovs.pid("ovs-vswitchd"), time.monotonic()
        h2.restart_vswitchd(lab.hosts)
        assert h2.ovs.pid("ovs-vswitchd") != old_pid
        wait_for(lambda: h2.flow_count() == vsc.status()["datapaths"][str(h2.datapath_id)]["flows_desired"],
                 20, "the VSC to reprogram the restarted OVS")
        vsc.wait_converged(30, datapaths=2, endpoints=2)
        assert max(flow_durations(h2).values()) <= time.monotonic() - t_restart + 0.5  # all reinstalled
        wait_for(lambda: ping("vl-c-t-web1", "10.2.0.10", count=1, timeout=0.5), 10, "ping after the OVS restart")

        # ovsdb-server restarts: the agent's IDL reconnects, and a container plugged afterwards is reported
        h1.ovs.restart_ovsdb()
        h1.vrs("plug", "web2", "--netns", "vl-c-t-web2", "--port", "vl-t-web2", "--mac", "02:00:00:00:0a:03",
               "--ip", "10.1.0.11/24", "--gateway", "10.1.0.1")
        wait_for(lambda: vsc.status()["datapaths"][str(h1.datapath_id)]["ports"] == 2, 20,
                 "the agent to report a port plugged after the database restart")
        h1.vrs("unplug", "web2", "--netns", "vl-c-t-web2", "--port", "vl-t-web2")
        wait_for(lambda: vsc.status()["datapaths"][str(h1.datapath_id)]["ports"] == 1, 20, "its port-down")
        assert all(h.agent_alive() for h in (h1, h2)), [h.agent_output() for h in (h1, h2)]
