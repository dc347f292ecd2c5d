"""Where the teaching page's facts come from, each through its owner's own interface: the lab runner's
control socket (vsplab/lab/control.py: where containers sit, check results, flow tables, traces), the
VSD's REST API with the user's credentials (policy) and each VSC's read-only status API (BGP, which
VSD object a cookie names). Nothing here reaches into another process's objects.

Answers are kept briefly (the lab for a second, the policy until the VSD commits a new revision), so a
projector's polling costs the lab next to nothing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from vsd.client import VsdClient
from vsplab.lab.control import LabControl

LAB_TTL = 1.0  # s a lab description is reused; placements change only as fast as a rollout plugs


@dataclass
class Policy:
    """The VSD objects the policy matrix and the trace's ACL names need, by ID."""

    revision: int
    domains: dict[str, dict] = field(default_factory=dict)
    ends: dict[str, tuple[str, str]] = field(default_factory=dict)  # ID -> (kind, name): groups, subnets...
    group_domain: dict[str, str] = field(default_factory=dict)  # policy group ID -> its domain's ID
    templates: dict[str, dict] = field(default_factory=dict)  # ACL templates, "direction" added
    entries: dict[str, dict] = field(default_factory=dict)  # ACL entries, "direction" added


_END_LISTS = (("policygroups", "group"), ("subnets", "subnet"), ("zones", "zone"))
_ENTERPRISE_LISTS = (("enterprisenetworks", "macro"), ("networkmacrogroups", "macrogroup"))


class LabSource:
    def __init__(self, control: LabControl, vsd: VsdClient | None) -> None:
        self.control = control
        self.vsd = vsd
        self.http = httpx.Client(timeout=10.0)
        self._lock = threading.Lock()
        self._lab: tuple[float, dict] | None = None
        self._policy: Policy | None = None
        self._status: dict[str, tuple[float, dict | None]] = {}

    def close(self) -> None:
        self.http.close()
        if self.vsd is not None:
            self.vsd.http.close()

    # --- the lab runner -----------------------------------------------------------------------------

    def lab(self) -> dict:
        with self._lock:
            if self._lab is None or time.monotonic() - self._lab[0] > LAB_TTL:
                self._lab = (time.monotonic(), self.control.request(op="lab"))
            return self._lab[1]

    def flows(self, host: str, table: int | None = None) -> tuple[str, dict | None]:
        """A host's flows (one table's, or all) in dump-flows form, and its count of flows per table."""
        a = self.control.request(op="flows", host=host, table=table, counts=True)
        return a["text"], a.get("per_table")  # None: a lab that sends the whole table, counted here

    def walk(self, source: str, destination: str, proto: str, port: int | None) -> dict:
        return self.control.request(op="walk", **{"from": source, "to": destination, "proto": proto, "port": port})

    def rollout(self) -> dict | None:
        """The rollout's samples while `vsplab bench nfd8 --ui` runs; None for a lab that is no rollout."""
        try:
            return self.control.request(op="rollout")
        except Exception:  # a scenario lab has no rollout: the page says so instead of charting
            return None

    # --- the VSCs -----------------------------------------------------------------------------------

    def vsc_for_host(self, host: str) -> dict:
        return next(v for v in self.lab()["vscs"] if host in v["hosts"])

    def vsc_status(self, vsc: dict) -> dict | None:
        """A VSC's /status, reused for LAB_TTL (a VSC with 40 VRSs takes ~0.1 s to compose it)."""
        with self._lock:
            kept = self._status.get(vsc["status_url"])
        if kept is not None and time.monotonic() - kept[0] <= LAB_TTL:
            return kept[1]
        try:
            st = self.http.get(f"{vsc['status_url']}/status").json()
        except httpx.HTTPError:
            st = None
        with self._lock:
            self._status[vsc["status_url"]] = (time.monotonic(), st)
        return st

    def owners(self, host: str, cookies: set[str]) -> dict[str, dict]:
        """Cookie (hex) -> the VSD object it names, asked of the VSC that programs `host`."""
        if not cookies:
            return {}
        vsc = self.vsc_for_host(host)
        r = self.http.get(f"{vsc['status_url']}/cookies", params={"cookie": ",".join(sorted(cookies))})
        r.raise_for_status()
        return r.json()

    # --- the VSD ------------------------------------------------------------------------------------

    def policy(self) -> Policy:
        """The policy objects, fetched again only when the VSD has committed something new."""
        if self.vsd is None:
            return Policy(revision=-1)
        revision = self.vsd.request("GET", "vsplab/health").json()["committed"]
        with self._lock:
            if self._policy is not None and self._policy.revision == revision:
                return self._policy
        p = Policy(revision=revision)
        p.domains = {d["ID"]: d for d in self.vsd.list("domains")}
        for rest, kind in _END_LISTS:
            found = self.vsd.list(rest)
            p.ends.update({o["ID"]: (kind, o["name"]) for o in found})
            if kind == "group":
                p.group_domain.update({o["ID"]: o["parentID"] for o in found})
        for e in self.vsd.list("enterprises"):
            for rest, kind in _ENTERPRISE_LISTS:
                p.ends.update({o["ID"]: (kind, o["name"]) for o in self.vsd.list(f"enterprises/{e['ID']}/{rest}")})
        for direction in ("ingress", "egress"):
            p.templates.update({t["ID"]: {**t, "direction": direction}
                                for t in self.vsd.list(f"{direction}acltemplates")})
            p.entries.update({a["ID"]: {**a, "direction": direction}
                              for a in self.vsd.list(f"{direction}aclentrytemplates")})
        with self._lock:
            self._policy = p
        return p
