"""The speaker's settings, and what they become for ExaBGP 5: a configuration file and the
environment variables that ExaBGP reads its daemon, TCP and API settings from.

Measured facts behind the choices (../shared/notes/exabgp-evpn.md and ExaBGP's source):
- nothing listens unless `exabgp_tcp_bind`/`exabgp_tcp_port` say where;
- as root ExaBGP drops to `nobody` unless `exabgp_daemon_user=root`; not as root, it stays who it is;
- `adj-rib-out false`: ExaBGP forgets an UPDATE once sent. The EVPN routes ride raw attributes on
  throw-away carrier prefixes, which ExaBGP would otherwise resend (stale) after a session reset;
  the speaker re-advertises its own table instead;
- both families must be negotiated: the carriers are IPv4 unicast, and ExaBGP drops an UPDATE whose
  only NLRI is of a family the session lacks.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RELAY_PROCESS = "vl-relay"


@dataclass(frozen=True, slots=True)
class Peer:
    address: str
    asn: int
    port: int = 179  # the port this peer listens on, which we connect to
    md5: str | None = None
    hold_time: int = 9
    passive: bool = False  # only wait for the peer to connect

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.address)
        if not 1 <= self.asn <= 0xFFFFFFFF:
            raise ValueError(f"peer {self.address}: AS number {self.asn} out of range")
        if not 1 <= self.port <= 0xFFFF:
            raise ValueError(f"peer {self.address}: port {self.port} out of range")
        if self.hold_time != 0 and self.hold_time < 3:  # RFC 4271 4.2
            raise ValueError(f"peer {self.address}: hold time must be 0 or at least 3 s")
        if self.md5 is not None and ('"' in self.md5 or not 0 < len(self.md5) <= 80):
            raise ValueError(f"peer {self.address}: md5 password must be 1-80 characters, no quotes")


@dataclass(frozen=True, slots=True)
class SpeakerConfig:
    router_id: str
    local_as: int
    listen_address: str
    listen_port: int = 179
    peers: Sequence[Peer] = ()
    # Received routes under our own RDs are our own, come back (eBGP, a route reflector): ignored.
    own_rds: frozenset[str] = frozenset()
    is_own_rd: Callable[[str], bool] | None = None
    # Where the throw-away carrier /32s come from; each announcement takes the next one.
    carrier_prefix: str = "100.64.0.0/16"
    name: str = "vl-bgp"  # prefix of the speaker's temporary directory, so of ExaBGP's command line

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.router_id)
        ipaddress.ip_address(self.listen_address)
        if not 1 <= self.local_as <= 0xFFFFFFFF:
            raise ValueError(f"local AS {self.local_as} out of range")
        if not 1 <= self.listen_port <= 0xFFFF:
            raise ValueError(f"listen port {self.listen_port} out of range")
        ipaddress.IPv4Network(self.carrier_prefix)
        peers = tuple(self.peers)
        addresses = [p.address for p in peers]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"peers: an address appears twice in {addresses}")
        object.__setattr__(self, "peers", peers)

    def rd_is_own(self, rd: str) -> bool:
        return rd in self.own_rds or (self.is_own_rd is not None and self.is_own_rd(rd))


def render_config(config: SpeakerConfig, relay_argv: Sequence[str]) -> str:
    """ExaBGP's configuration: one API process (the relay), one neighbor block per peer."""
    lines = [
        f"process {RELAY_PROCESS} {{",
        f"    run {' '.join(relay_argv)};",
        "    encoder json;",
        "}",
    ]
    for peer in config.peers:
        lines += [
            f"neighbor {peer.address} {{",
            f"    router-id {config.router_id};",
            f"    local-address {config.listen_address};",
            f"    local-as {config.local_as};",
            f"    peer-as {peer.asn};",
            f"    hold-time {peer.hold_time};",
            f"    passive {'true' if peer.passive else 'false'};",
            "    adj-rib-out false;",
            "    adj-rib-in false;",
            "    group-updates true;",
        ]
        if peer.port != 179:
            lines.append(f"    connect {peer.port};")
        if peer.md5:
            lines.append(f'    md5-password "{peer.md5}";')
        lines += [
            "    family {",
            "        ipv4 unicast;",
            "        l2vpn evpn;",
            "    }",
            "    api {",
            f"        processes [ {RELAY_PROCESS} ];",
            "        receive {",
            "            parsed;",
            "            update;",
            "        }",
            "        neighbor-changes;",
            "    }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def exabgp_env(config: SpeakerConfig, base: dict[str, str] | None = None,
               python_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # Settings a user's own exabgp.env or environment must not change under the speaker.
    for key in [k for k in env if k.lower().startswith(("exabgp_", "exabgp."))]:
        del env[key]
    env.update({
        "exabgp_tcp_bind": config.listen_address,
        "exabgp_tcp_port": str(config.listen_port),
        "exabgp_api_cli": "false",
        "exabgp_api_ack": "true",
        "exabgp_api_encoder": "json",
        "exabgp_daemon_daemonize": "false",
        "exabgp_log_destination": "stderr",
        "exabgp_log_level": "INFO",
        "exabgp_log_short": "true",
        "exabgp_log_packets": "false",
        "exabgp_log_routes": "false",
        "exabgp_log_rib": "false",
        # a dead relay means a dead speaker link: let ExaBGP exit so the speaker restarts both
        "exabgp_api_respawn": "false",
        "exabgp_api_terminate": "true",
    })
    if os.geteuid() == 0:
        env["exabgp_daemon_user"] = "root"
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (python_path, env.get("PYTHONPATH")) if p)
    return env
