"""Helpers for the policy-draft tests (and for the tests that compare a draft's predicted impact with
what a lab does after apply): a vspk session on a VSD, a job run to its end as Nuage's clients do it,
the DRAFT templates of a domain, and every verdict of a running sim lab."""

from __future__ import annotations

import itertools
import time

from vspk import v6 as vspk

# (protocol, port) classes the verdict matrix probes between every pair of containers
PORT_CLASSES = (("tcp", 8080), ("tcp", 5432), ("tcp", 22), ("udp", 5432), ("icmp", None))


def vspk_session(url: str, user: str, password: str, enterprise: str) -> vspk.NUVSDSession:
    s = vspk.NUVSDSession(username=user, password=password, enterprise=enterprise, api_url=url)
    s.start()
    return s


def run_job(domain: vspk.NUDomain, command: str, timeout: float = 30.0) -> vspk.NUJob:
    """POST the job under the domain and poll it until it is no longer RUNNING (as Nuage's clients do)."""
    job = vspk.NUJob(command=command)
    domain.create_child(job)
    deadline = time.monotonic() + timeout
    while job.status == "RUNNING":
        if time.monotonic() > deadline:
            raise AssertionError(f"job {command} still RUNNING after {timeout} s")
        time.sleep(0.05)
        job.fetch()
    return job


def draft_templates(domain: vspk.NUDomain, direction: str) -> list:
    fetcher = domain.ingress_acl_templates if direction == "ingress" else domain.egress_acl_templates
    return fetcher.get(filter='policyState == "DRAFT"')


def lab_vspk_session(lab) -> vspk.NUVSDSession:
    """A vspk session on a running lab's own VSD (the one `SimLab.start` started)."""
    return vspk_session(lab.vsd.url, lab.vsd.user, lab.vsd.password, lab.vsd.enterprise)


def verdicts(lab) -> dict[tuple[str, str, str, int | None], str]:
    """(source, destination, protocol, port) -> the lab's verdict, traced through the simulated VRSs'
    flow tables for every ordered pair of containers and every class in PORT_CLASSES."""
    from vsplab.lab.probe import probe

    gateways = lab.scenario.gateways()
    out = {}
    for (a, src), (b, dst) in itertools.permutations(sorted(lab.placed.items()), 2):
        for proto, port in PORT_CLASSES:
            verdict, _ = lab.runtime.call(probe, lab.runtime.fabric, src, dst, proto, port, gateways)
            out[(a, b, proto, port)] = verdict
    return out



def find(domain: vspk.NUDomain, kind: str, name: str):
    """The domain's zone / policy group named so (vspk)."""
    fetcher = {"policygroup": domain.policy_groups, "zone": domain.zones}[kind]
    return fetcher.get_first(filter=f'name == "{name}"')


def draft_web_to_db(domain: vspk.NUDomain) -> set[tuple[str, str, str, int]]:
    """The first draft of the three-tier lab, made in the DRAFT templates with vspk: web -> db tcp/5432
    is allowed (a new ingress and a new egress entry), and web -> app moves from tcp/8080 to tcp/22 (the
    entries edited). Returns (source tier, destination tier, protocol, port) of what it changes."""
    web, db = find(domain, "policygroup", "web").id, find(domain, "policygroup", "db").id
    for direction, entry_class in (("ingress", vspk.NUIngressACLEntryTemplate),
                                   ("egress", vspk.NUEgressACLEntryTemplate)):
        template = draft_templates(domain, direction)[0]
        entries = (template.ingress_acl_entry_templates if direction == "ingress"
                   else template.egress_acl_entry_templates).get()
        for e in entries:
            if e.destination_port == "8080":
                e.destination_port = "22"
                e.save()
        # Nuage's direction: an ingress entry's location is the source, an egress entry's the destination
        location, network = (web, db) if direction == "ingress" else (db, web)
        template.create_child(entry_class(
            action="FORWARD", location_type="POLICYGROUP", location_id=location, network_type="POLICYGROUP",
            network_id=network, ether_type="0x0800", protocol="6", source_port="*", destination_port="5432",
            stateful=True, policy_state="DRAFT", description="vl-draft web -> db"))
    return {("web", "db", "tcp", 5432), ("web", "app", "tcp", 8080), ("web", "app", "tcp", 22)}
