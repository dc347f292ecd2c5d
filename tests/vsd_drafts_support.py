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

