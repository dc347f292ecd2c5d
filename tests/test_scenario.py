"""Scenario files: the shipped ones load; every kind of mistake is reported with its line and field."""

from pathlib import Path

import pytest

from tests.scenario_support import assert_edit_is_refused
from vsplab.scenario.check import load_scenario

SCENARIOS = sorted(Path(__file__).parent.parent.joinpath("scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load(path):
    s = load_scenario(path)
    assert s.containers and s.expect


BASE = """\
name: t
hosts:
  - {name: h1}
  - {name: h2}
enterprises:
  - name: e
    network_macros: [{name: m1, address: 10.9.0.0/24}]
    domains:
      - name: d
        zones:
          - name: z
            subnets: [{name: s1, address: 10.1.0.0/24}, {name: s2, address: 10.2.0.0/24}]
        policy_groups: [g1, g2]
        ingress:
          rules:
            - {from: g1, to: g2, protocol: tcp, port: 80}
containers:
  - {name: c1, host: h1, subnet: s1, groups: [g1], ip: 10.1.0.10}
  - {name: c2, host: h2, subnet: s2, groups: [g2]}
expect:
  - {from: c1, to: c2, protocol: tcp, port: 80, expect: allow}
"""

# (what is changed, replacement, expected line, expected words in the message)
BAD = [
    ("{name: h2}", "{name: h1}", 4, "duplicate host name"),
    ("{name: h2}", "{name: h2, colour: red}", 4, "unknown field"),
    ("10.2.0.0/24}]", "10.1.0.128/25}]", 12, "overlaps"),
    ("10.2.0.0/24}]", "10.2.0.1/24}]", 12, "host bits"),
    ("to: g2, protocol: tcp", "to: g3, protocol: tcp", 16, "g3"),
    ("to: g2, protocol: tcp", "to: macro:nope, protocol: tcp", 16, "unknown macro"),
    ("port: 80}\n", "port: 90-80}\n", 16, "LOW <= HIGH"),
    ("protocol: tcp, port: 80}\n", "protocol: icmp, port: 80}\n", 16, "ports need protocol"),
    ("host: h1, subnet: s1", "host: h9, subnet: s1", 18, "unknown host"),
    ("subnet: s1, groups", "subnet: s9, groups", 18, "unknown subnet"),
    ("groups: [g1], ip", "groups: [gx], ip", 18, "unknown policy group"),
    ("ip: 10.1.0.10}", "ip: 10.2.0.10}", 18, "not a host address"),
    ("ip: 10.1.0.10}", "ip: 10.1.0.1}", 18, "gateway"),
    ("groups: [g2]}", "groups: [g2], mac: 'zz:00'}", 19, "not a MAC"),
    ("from: c1, to: c2, protocol: tcp, port: 80,", "from: c1, to: c9, protocol: tcp, port: 80,", 21, "unknown container"),
    ("protocol: tcp, port: 80, expect", "protocol: tcp, expect", 21, "needs a port"),
    ("expect: allow}", "expect: maybe}", 21, "expect"),
    ("name: t\n", "name: t\n  bad: [\n", 2, "YAML syntax"),
]


@pytest.mark.parametrize("old,new,line,words", BAD, ids=[b[3] for b in BAD])
def test_bad_scenarios_name_line_and_field(tmp_path, old, new, line, words):
    assert_edit_is_refused(tmp_path, BASE, old, new, line, words)


def test_base_is_valid(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text(BASE)
    assert len(load_scenario(f).containers) == 2
