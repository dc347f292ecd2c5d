"""Federated labs: VSCs exchanging endpoints and policy-group tags over MP-BGP EVPN (ExaBGP), directly
or through an FRR route reflector the lab runs. The scenario's `bgp:` section is checked with lines;
two-dc passes in sim mode without root and in emu mode with real packets; breaking one ACL entry
flips exactly the cross-VSC pairs it governs; every session in the JSON is up."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scenario_support import assert_edit_is_refused
from vsplab.bgp import frr, leftovers
from vsplab.bgp.plan import BgpPlan
from vsplab.bgp.routes import routes_text
from vsplab.scenario.check import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def vsplab(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "vsplab.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


# --- the scenario's bgp: section ----------------------------------------------------------------------

BASE = """\
name: fed
controllers:
  - {name: a, asn: 65001, router_id: 10.0.0.1}
  - {name: b, asn: 65002, router_id: 10.0.0.2}
  - {name: c, asn: 65000, router_id: 10.0.0.3}
  - {name: d, asn: 65000, router_id: 10.0.0.4}
bgp:
  route_reflectors:
    - {name: rr1, asn: 65000, router_id: 10.0.0.100}
    - {name: rr2, asn: 65000, router_id: 10.0.0.101}
  peerings:
    - [a, b]
    - [c, rr1]
    - [d, rr1]
  hold_time: 9
hosts:
  - {name: h1, vsc: a}
  - {name: h2, vsc: b}
enterprises:
  - name: e
    domains:
      - name: d
        zones: [{name: z, subnets: [{name: s, address: 10.1.0.0/24}]}]
        policy_groups: [g]
containers:
  - {name: c1, host: h1, subnet: s, groups: [g]}
  - {name: c2, host: h2, subnet: s, groups: [g]}
expect:
  - {from: c1, to: c2, expect: deny}
"""

# (what is changed, replacement, expected line, expected words)
BAD = [
    ("[a, b]", "[a, x]", 12, "unknown peer 'x'"),
    ("[a, b]", "[rr1, rr2]", 12, "both route reflectors"),
    ("[a, b]", "[a, a]", 12, "cannot peer with itself"),
    ("[a, b]", "[a, b, c]", 12, "at most 2"),
    ("[d, rr1]", "[rr1, c]", 14, "already peer"),
    ("router_id: 10.0.0.2}", "router_id: 10.0.0.1}", 4, "router id 10.0.0.1 is already a's (line 3)"),
    ("router_id: 10.0.0.101}", "router_id: 10.0.0.3}", 10, "router id 10.0.0.3 is already c's"),
    ("{name: b, asn: 65002, router_id", "{name: b, router_id", 4, "asn is required"),
    ("asn: 65002, router_id: 10.0.0.2}", "asn: 65002}", 4, "router_id is required"),
    ("router_id: 10.0.0.2}", "router_id: ten}", 4, "not an IPv4 address"),
    ("asn: 65002,", "asn: 0,", 4, "greater than or equal to 1"),
    ("hold_time: 9", "hold_time: 2", 15, "hold time must be 0 or 3..65535"),
    ("hold_time: 9", "hold_time: 9\n  md5: '\"'", 16, "MD5"),
    ("hold_time: 9", "hold_time: 9\n  colour: red", 16, "unknown field"),
    ("{name: rr1, asn: 65000,", "{name: a, asn: 65000,", 9, "already a controller's name"),
]


@pytest.mark.parametrize("old,new,line,words", BAD, ids=[b[3] for b in BAD])
def test_bad_bgp_sections_name_line_and_field(tmp_path, old, new, line, words):
    assert_edit_is_refused(tmp_path, BASE, old, new, line, words)


def test_ibgp_without_full_mesh_or_shared_reflector_warns(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text(BASE)
    assert load_scenario(f).warnings == []  # c and d share rr1
    f.write_text(BASE.replace("[d, rr1]", "[d, rr2]"))
    (warning,) = load_scenario(f).warnings
    assert warning.startswith(f"{f}:7: bgp: c and d are both in AS 65000") and "route reflector" in warning
    out = vsplab("check", str(f))
    assert out.returncode == 0 and "warning" in out.stdout and "c and d" in out.stdout


def test_no_bgp_section_means_no_bgp(tmp_path):
    f = tmp_path / "plain.yaml"
    f.write_text(re.sub(r"bgp:\n(  .*\n)+", "", BASE))
    s = load_scenario(f)
    assert s.bgp is None and BgpPlan.of(s) is None
    assert "ignored without a bgp: section" in s.warnings[0]


def test_plan_addresses_options_and_expected_routes():
    s = load_scenario(SCENARIOS / "route-reflector.yaml")
    plan = BgpPlan.of(s, port=17900)
    assert plan.addresses() == ["127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"]
    opts = plan.vsc_options("vsc-b")
    assert opts.argv() == ["--bgp-asn", "65000", "--router-id", "10.255.0.2", "--bgp-listen", "127.0.0.11:17900",
                           "--bgp-peer", "127.0.0.13:17900:65000", "--bgp-hold-time", "9"]
    local = {"vsc-a": 1, "vsc-b": 1, "vsc-c": 2}
    # through the reflector each VSC hears everyone else's endpoints, never its own
    assert [plan.routes_expected(n, local) for n in ("vsc-a", "vsc-b", "vsc-c")] == [3, 3, 2]
    two = BgpPlan.of(load_scenario(SCENARIOS / "two-dc.yaml"))
    assert two.routes_expected("vsc-east", {"vsc-east": 4, "vsc-west": 4}) == 4
    assert two.vsc_options("vsc-east").peers == [f"127.0.0.11:{two.port}:65002"]


def test_reflector_config_makes_clients_of_its_own_as_only():
    s = load_scenario(SCENARIOS / "route-reflector.yaml")
    plan = BgpPlan.of(s, port=17900)
    rr = plan.speakers["rr1"]
    ebgp = plan.speakers["vsc-a"].__class__("far", 65099, "10.9.9.9", "127.0.0.99")
    conf = frr.bgpd_config(rr, plan.peers_of("rr1") + [ebgp], 17900, 9, None)
    assert "router bgp 65000" in conf and "no bgp ebgp-requires-policy" in conf
    assert conf.count("route-reflector-client") == 3 and "127.0.0.99 route-reflector-client" not in conf
    assert " neighbor 127.0.0.10 update-source 127.0.0.13" in conf and " neighbor 127.0.0.10 timers 3 9" in conf
    assert " neighbor 127.0.0.10 port 17900" in conf


def test_reflectors_without_root_are_refused_before_anything_starts(monkeypatch):
    from vsplab.lab.run import SimLab

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(frr.FrrError, match="needs root"):
        SimLab(load_scenario(SCENARIOS / "route-reflector.yaml"))


# --- labs -------------------------------------------------------------------------------------------


def _sessions_up(result: dict, expected: set[tuple[str, str]]) -> None:
    sessions = result["bgp"]["sessions"]
    assert {(s["vsc"], s["peer"]) for s in sessions} == expected, sessions
    assert all(s["state"] == "up" for s in sessions), sessions
    assert set(sessions[0]) == {"vsc", "peer", "state", "routes_received", "routes_advertised"}


@pytest.mark.slow
def test_two_dc_passes_in_sim_mode(tmp_path):
    out = vsplab("run", str(SCENARIOS / "two-dc.yaml"), "--json", str(tmp_path / "r.json"),
                 env={"VSPLAB_LABS_DIR": str(tmp_path / "labs")})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BGP sessions" in out.stdout and "all expectations hold" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["ok"] and len(result["expectations"]) == 16
    _sessions_up(result, {("vsc-east", "vsc-west"), ("vsc-west", "vsc-east")})
    # each side advertised its four containers and holds the other side's four
    assert all(s["routes_received"] == 4 and s["routes_advertised"] == 4 for s in result["bgp"]["sessions"])


@pytest.mark.slow
def test_two_dc_without_bgp_fails_across_the_sides(tmp_path):
    """The control: the same lab unfederated cannot reach across, so the passing run owes it to BGP."""
    text = (SCENARIOS / "two-dc.yaml").read_text()
    plain = re.sub(r"bgp:\n(  .*\n)+", "", re.sub(r", asn: \d+, router_id: [\d.]+", "", text))
    f = tmp_path / "plain.yaml"
    f.write_text(plain)
    out = vsplab("run", str(f), env={"VSPLAB_LABS_DIR": str(tmp_path / "labs")})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED web-e -> app-w tcp/8080" in out.stdout and "FAILED g-web-w -> g-app-e icmp" in out.stdout
    assert "FAILED web-e -> app-e" not in out.stdout  # one side alone still works


@pytest.mark.slow
def test_changed_acl_entry_flips_the_cross_vsc_pairs(tmp_path):
    text = (SCENARIOS / "two-dc.yaml").read_text()
    # acme's egress app -> db rule (the second one, before globex) opens the wrong port: the receiving
    # VSC must read the sender's group from the route's community to drop it
    old = "- {from: app, to: db, protocol: tcp, port: 5432, stateful: true}\n  # the same"
    assert old in text
    f = tmp_path / "broken.yaml"
    f.write_text(text.replace(old, old.replace("5432", "5433")))
    out = vsplab("run", str(f), "--json", str(tmp_path / "r.json"), env={"VSPLAB_LABS_DIR": str(tmp_path / "labs")})
    assert out.returncode == 1, out.stdout + out.stderr
    failed = sorted(x["source"] + " -> " + x["destination"]
                    for x in json.loads((tmp_path / "r.json").read_text())["expectations"] if not x["passed"])
    assert failed == ["app-e -> db-w", "app-w -> db-e"]
    assert "FAILED app-w -> db-e tcp/5432: expected allow, observed deny" in out.stdout
    assert "EGRESS_ACL" in out.stdout


def _kept_lab(scenario: Path, env: dict) -> tuple[subprocess.Popen, Path, str]:
    """A `vsplab run --keep` serving its lab: the process, the lab's directory, what it printed so far."""
    proc = subprocess.Popen([sys.executable, "-m", "vsplab.cli", "run", str(scenario), "--keep"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200", **env})
    deadline, said = time.monotonic() + 180, ""
    for line in proc.stdout:
        said += line
        match = re.search(r"control socket (\S+)/control\.sock", line)
        if match:
            return proc, Path(match.group(1)), said
        assert time.monotonic() < deadline
    raise AssertionError(f"the lab ended without serving (exit {proc.wait()}):\n{said}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            kids = [int(k) for k in (task / "children").read_text().split()]
            out += kids
            todo += kids
    return out


def test_route_lines_say_what_became_of_each_route():
    plan = BgpPlan.of(load_scenario(SCENARIOS / "two-dc.yaml"))
    route = {"rd": "10.255.2.1:4096", "mac": "02:00:0a:01:00:0c", "ip": "10.1.0.12", "vni": 4096,
             "next_hop": "192.168.77.3", "route_targets": ["65534:4096"], "communities": ["4096:1"], "ethernet_tag": 0}
    answer = {"advertised": [{**route, "rd": "10.255.1.1:4096", "vport": "v1", "domain": "acme/prod"}],
              "received": {"127.0.0.11": [
                  {**route, "imported": True, "reason": None,
                   "domains": [{"id": "d1", "name": "acme/prod", "state": "programmed"}]},
                  {**route, "ip": None, "imported": False, "domains": [], "reason": "MAC-only route: nothing to route to"},
              ]}, "own_routes_ignored": 2}
    text = routes_text(plan, {"vsc-east": answer, "vsc-west": "VSC not answering (refused)"})
    assert "vsc-east advertises 1 route(s):\n  10.255.1.1:4096" in text and "(acme/prod)" in text
    assert "vsc-east received 2 route(s) from vsc-west:" in text  # the peer by its scenario name
    assert re.search(r"10\.255\.2\.1:4096 +02:00:0a:01:00:0c +10\.1\.0\.12 +vni 4096 +nh 192\.168\.77\.3 +"
                     r"rt 65534:4096 +comm 4096:1 +-> imported into acme/prod\n", text), text
    assert "-> not imported: MAC-only route: nothing to route to" in text
    assert "vsc-east: 2 of its own routes came back" in text and "vsc-west: routes unavailable: VSC not" in text


@pytest.mark.slow
def test_vsplab_bgp_shows_a_kept_labs_sessions_and_routes(tmp_path):
    env = {"VSPLAB_LABS_DIR": str(tmp_path / "labs")}
    proc, lab, said = _kept_lab(SCENARIOS / "two-dc.yaml", env)
    assert "16/16 passed" in said, said
    try:
        out = vsplab("bgp", "--lab", str(lab), env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert re.search(r"vsc-east\s+.\s+vsc-west\s+.\s+up\s+.\s+4\s+.\s+4", out.stdout), out.stdout
        assert "vsc-west (BGP AS 65002 on 127.0.0.11:" in out.stdout and "4 imported as endpoints" in out.stdout
        assert "route(s)" not in out.stdout  # routes only when asked
        out = vsplab("bgp", "--lab", str(lab), "--routes", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        text = out.stdout
        for me, rid, peer in (("vsc-east", "10.255.1.1", "vsc-west"), ("vsc-west", "10.255.2.1", "vsc-east")):
            assert f"{me} advertises 4 route(s):" in text and f"{me} received 4 route(s) from {peer}:" in text, text
            assert len(re.findall(rf"^  {re.escape(rid)}:\d+ .* \((acme|globex)/prod\)$", text, re.M)) == 4, text
        assert text.count("-> imported into ") == 8 and "not imported" not in text, text
        # web-w as vsc-east has it: RD of vsc-west, its VTEP, acme's route target and the web group's community
        assert re.search(r"^  10\.255\.2\.1:\d+ +\S+ +10\.1\.0\.12 +vni \d+ +nh [\d.]+ +rt 65534:\d+ +comm \d+:\d+ +"
                         r"-> imported into acme/prod$", text, re.M), text
        assert re.search(r"^  10\.255\.2\.1:\d+ +\S+ +10\.1\.0\.11 .* -> imported into globex/prod$", text, re.M), text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert not lab.exists()


@pytest.mark.slow
@pytest.mark.root
def test_route_reflector_passes_and_shows_its_routes(tmp_path):
    # the default labs directory: bgpd runs as frr, and pytest's own tmp_path is closed to other users
    proc, lab, said = _kept_lab(SCENARIOS / "route-reflector.yaml", {})
    assert "7/7 passed: all expectations hold" in said, said
    try:
        out = vsplab("bgp", "--lab", str(lab))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "rr1: show bgp l2vpn evpn route" in out.stdout
        assert out.stdout.count("[2]:[0]:[48]:") == 4, out.stdout  # every container's MAC/IP route
        assert re.search(r"rr1\s+.\s+vsc-c\s+.\s+up\s+.\s+2", out.stdout), out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert not lab.exists() and not [d for _, d in leftovers.orphans() if d.parent == lab]


@pytest.mark.slow
@pytest.mark.root
def test_route_reflector_json_sessions_all_up(tmp_path):
    out = vsplab("run", str(SCENARIOS / "route-reflector.yaml"), "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["ok"]
    vscs = ("vsc-a", "vsc-b", "vsc-c")
    _sessions_up(result, {(v, "rr1") for v in vscs} | {("rr1", v) for v in vscs})
    received = {s["vsc"]: s["routes_received"] for s in result["bgp"]["sessions"] if s["peer"] == "rr1"}
    assert received == {"vsc-a": 3, "vsc-b": 3, "vsc-c": 2}  # everyone else's containers, reflected


@pytest.mark.slow
@pytest.mark.root
def test_killed_labs_reflector_is_cleaned_by_vsplab_clean(tmp_path):
    proc, lab, _ = _kept_lab(SCENARIOS / "route-reflector.yaml", {})
    family = {pid: _cmdline(pid) for pid in _descendants(proc.pid)}
    bgpd = [pid for pid, argv in family.items() if argv.split(b"\0")[0].endswith(b"/bgpd")]
    assert len(bgpd) == 1
    assert leftovers.orphans() == []  # its lab is alive: not a leftover
    proc.kill()
    proc.wait()
    try:
        for pid, argv in family.items():  # the VSD and the VSCs (which stop their ExaBGP): bgpd is tested
            if pid not in bgpd and _cmdline(pid) == argv:
                os.kill(pid, signal.SIGTERM)
        assert leftovers.orphans() == [(bgpd[0], lab / "vl-rr-rr1")]
        listed = vsplab("clean", "--dry-run")
        assert f"route reflector bgpd {bgpd[0]}" in listed.stdout, listed.stdout
        assert leftovers.cleanup() == [f"route reflector bgpd {bgpd[0]}", f"directory {lab / 'vl-rr-rr1'}"]
        assert leftovers.orphans() == [] and not (lab / "vl-rr-rr1").exists()
    finally:
        time.sleep(1)
        for pid, argv in family.items():  # whatever is still there and still the same process
            if _cmdline(pid) == argv:
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(lab)], check=False)


@pytest.mark.slow
@pytest.mark.root
def test_two_dc_passes_in_emu_mode(tmp_path):
    out = vsplab("run", str(SCENARIOS / "two-dc.yaml"), "--mode", "emu", "--json", str(tmp_path / "r.json"),
                 timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["ok"] and result["mode"] == "emu" and len(result["expectations"]) == 16
    _sessions_up(result, {("vsc-east", "vsc-west"), ("vsc-west", "vsc-east")})
