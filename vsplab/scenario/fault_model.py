"""The `faults:` and `probes:` sections of a scenario: steps that break a process, a link, a flow or a
policy entry on purpose (vsplab/faults/ runs them; vsplab/scenario/fault_check.py refuses at load time
what the lab's mode cannot perform), and the pairs probed continuously meanwhile."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from .strict import Strict

FAULT_ACTIONS = ("kill", "start", "restart", "link-down", "link-up", "netem", "clear-netem", "tamper-flow",
                 "delete-acl", "stop-bgp", "cut-bgp", "move")
# what `kill`/`start`/`restart` name: "vsd", or "KIND NAME" (NAME a controller for vsc and bgp, else a host)
PROCESS_KINDS = ("vsd", "vsc", "vrs", "ovs-vswitchd", "ovsdb-server")


class AclEntryRef(Strict):
    """One rule of the scenario's ACL templates: the domain (ENTERPRISE/DOMAIN or DOMAIN), the
    direction and the rule's index in that template's `rules`."""

    domain: str
    direction: Literal["ingress", "egress"] = "ingress"
    rule: int = Field(ge=0)


class Move(Strict):
    container: str
    to: str  # a host


class Probe(Strict):
    """A pair probed continuously while the faults run (real packets in emu, traces in sim)."""

    from_: str = Field(alias="from")
    to: str
    protocol: Literal["tcp", "udp", "icmp"] = "tcp"
    port: int | None = Field(default=None, ge=1, le=65535)


class FaultStep(Strict):
    """One step of `faults:`: exactly one action, injected `at` seconds after the faults began, or
    (without `at`) once the previous step has recovered. `expect`: the indexes of the scenario's
    expectations to re-check after it (default all; `none`: do not wait for recovery, e.g. a link
    left down until a later `link-up`). `timeout`: seconds to recover before the step fails."""

    kill: str | None = None
    start: str | None = None
    restart: str | None = None
    link_down: str | None = Field(default=None, alias="link-down")  # a host: its underlay link
    link_up: str | None = Field(default=None, alias="link-up")
    netem: str | None = None  # a host: loss and/or delay on its underlay link
    loss: float | None = Field(default=None, ge=0, le=100)  # percent, with netem
    delay_ms: float | None = Field(default=None, ge=0, le=10_000)  # with netem
    clear_netem: str | None = Field(default=None, alias="clear-netem")
    tamper_flow: str | None = Field(default=None, alias="tamper-flow")  # a host: one of its flows changed
    delete_acl: AclEntryRef | None = Field(default=None, alias="delete-acl")
    stop_bgp: str | None = Field(default=None, alias="stop-bgp")  # a controller: its speaker killed
    cut_bgp: tuple[str, str] | None = Field(default=None, alias="cut-bgp")  # two controllers' session
    move: Move | None = None
    at: float | None = Field(default=None, ge=0)
    expect: list[int] | Literal["all", "none"] = "all"
    # expectations the step turns from allow to deny (an ACL entry deleted): checked as deny after it
    now_denied: list[int] = Field(default=[], alias="now-denied")
    timeout: float = Field(default=60.0, gt=0, le=3600)
    _line: int | None = PrivateAttr(default=None)  # in the scenario file, for the timeline

    @property
    def line(self) -> int | None:
        return self._line

    @model_validator(mode="after")
    def _one_action(self) -> FaultStep:
        given = [a for a in FAULT_ACTIONS if getattr(self, a.replace("-", "_")) is not None]
        if len(given) != 1:
            raise ValueError(f"a fault step takes exactly one action of {', '.join(FAULT_ACTIONS)}"
                             + (f" (this one has {', '.join(given)})" if given else ""))
        if given[0] == "netem" and self.loss is None and self.delay_ms is None:
            raise ValueError("netem needs loss (percent) and/or delay_ms")
        if given[0] != "netem" and (self.loss is not None or self.delay_ms is not None):
            raise ValueError("loss and delay_ms go with netem only")
        return self

    @property
    def action(self) -> str:
        return next(a for a in FAULT_ACTIONS if getattr(self, a.replace("-", "_")) is not None)

    @property
    def target(self):
        return getattr(self, self.action.replace("-", "_"))

    def process(self) -> tuple[str, str | None]:
        """(kind, name) of a kill/start/restart: ("vsd", None), ("vsc", "vsc1"), ("vrs", "host1"), ..."""
        kind, _, name = str(self.target).strip().partition(" ")
        return kind, (name.strip() or None)

    @property
    def label(self) -> str:
        t = self.target
        if isinstance(t, AclEntryRef):
            t = f"{t.domain} {t.direction} rule {t.rule}"
        elif isinstance(t, Move):
            t = f"{t.container} to {t.to}"
        elif isinstance(t, tuple):
            t = " - ".join(t)
        extra = (f" loss {self.loss:g}%" if self.loss is not None else "") + \
            (f" delay {self.delay_ms:g} ms" if self.delay_ms is not None else "")
        return f"{self.action} {t}{extra}"
