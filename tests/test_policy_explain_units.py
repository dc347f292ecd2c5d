"""`vsplab explain`'s pure parts, without a lab."""

from vsplab.policy.explain import case_for, evpn_route


def test_explain_finds_the_evpn_route_a_federated_packet_rides():
    bgp = {"received": {"127.0.0.11": [
        {"rd": "10.255.2.1:4096", "mac": "02:00:00:00:00:04", "ip": "10.2.0.12", "vni": 4096, "next_hop": "172.30.0.9",
         "imported": False, "reason": "older"},
        {"rd": "10.255.2.1:4096", "mac": "02:00:00:00:00:04", "ip": "10.2.0.12", "vni": 4096, "next_hop": "172.30.0.4",
         "imported": True, "reason": None}]}}
    r = evpn_route(bgp, "10.2.0.12", "172.30.0.4")
    assert r["peer"] == "127.0.0.11" and r["imported"] and r["next_hop"] == "172.30.0.4"
    assert evpn_route(bgp, "10.2.0.13", "172.30.0.4") is None and evpn_route(None, "10.2.0.12", "172.30.0.4") is None


def test_explain_refuses_a_port_where_there_is_none_and_wants_one_where_there_is():
    import pytest

    with pytest.raises(ValueError, match="--port: icmp has no port"):
        case_for("a", "b", "icmp", 80)
    with pytest.raises(ValueError, match="--port: tcp needs a port"):
        case_for("a", "b", "tcp", None)
    assert case_for("a", "b", "udp", 53).dport == (53, 53)


def test_commands_refuse_bad_input_with_one_line_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "VSPLAB_LABS_DIR": str(tmp_path), "COLUMNS": "200"}

    def vsplab(*args):
        return subprocess.run([sys.executable, "-m", "vsplab.cli", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=60)

    one = vsplab("diff", "scenarios/three-tier.yaml")
    assert one.returncode == 2 and "give two scenario files" in one.stderr
    nolab = vsplab("explain", "web1", "app1", "--proto", "tcp", "--port", "8080")
    assert nolab.returncode == 2 and "no running lab found" in nolab.stderr and "Traceback" not in nolab.stderr
