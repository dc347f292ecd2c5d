"""What ExaBGP 5 writes to its API process (encoder json), read into events the speaker acts on.

One line per message. The ones that matter here:
- `{"type": "state", "neighbor": {"address": {"peer": P}, "state": "connected|up|down", ...}}`;
- `{"type": "update", "neighbor": {..., "direction": "receive", "message": {"update": {
  "attribute": {...}, "announce": {"l2vpn evpn": {NEXT_HOP: [NLRI...]}, "ipv4 unicast": ...},
  "withdraw": {"l2vpn evpn": [NLRI...]}}}}}` (or `"message": {"eor": ...}`);
- the plain-text acknowledgements `done` and `error` of our commands.

Each EVPN NLRI comes with `"raw"`, its wire bytes; they are decoded here with this package's own
decoder rather than from ExaBGP's text fields, so both ends read routes through one codec.
The IPv4 unicast routes of an UPDATE are our carriers (or a peer's plain routes): not EVPN, ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from vsc.bgp.community import sort_communities, unpack_encapsulation, unpack_route_target
from vsc.bgp.evpn import ROUTE_TYPE_MAC_IP, MacIpAdvertisement
from vsc.bgp.route import MacIpRoute

log = logging.getLogger(__name__)

EVPN_FAMILY = "l2vpn evpn"


@dataclass(frozen=True, slots=True)
class Ack:
    ok: bool


@dataclass(frozen=True, slots=True)
class SessionState:
    peer: str
    state: str
    reason: str = ""


@dataclass(slots=True)
class EvpnUpdate:
    peer: str
    announced: list[MacIpRoute] = field(default_factory=list)
    withdrawn: list[tuple] = field(default_factory=list)
    as_path: tuple[int, ...] = ()
    tunnel_types: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Shutdown:
    pass


Event = Ack | SessionState | EvpnUpdate | Shutdown


def parse_line(line: bytes | str) -> Event | None:
    """The event a line is, or None for what the speaker does not act on (EOR, other families)."""
    text = line.strip()
    if text in (b"done", "done"):
        return Ack(True)
    if text in (b"error", "error"):
        return Ack(False)
    if not text:
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        log.warning("ExaBGP said something that is not JSON: %.200r", text)
        return None
    kind = message.get("type")
    if kind == "state":
        neighbor = message["neighbor"]
        return SessionState(neighbor["address"]["peer"], neighbor["state"], neighbor.get("reason", ""))
    if kind == "update":
        neighbor = message["neighbor"]
        update = neighbor.get("message", {}).get("update")
        if update is None or neighbor.get("direction", "receive") != "receive":
            return None
        return _evpn_update(neighbor["address"]["peer"], update)
    if kind == "notification" and message.get("notification") == "shutdown":
        return Shutdown()
    return None


def _evpn_update(peer: str, update: dict) -> EvpnUpdate | None:
    announce = update.get("announce", {}).get(EVPN_FAMILY, {})
    withdraw = update.get("withdraw", {}).get(EVPN_FAMILY, [])
    if not announce and not withdraw:
        return None
    attributes = update.get("attribute", {})
    route_targets, tunnel_types = _extended_communities(attributes.get("extended-community", []))
    communities = sort_communities(f"{high}:{low}" for high, low in attributes.get("community", []))
    event = EvpnUpdate(peer, as_path=_as_path(attributes.get("as-path", {})), tunnel_types=tunnel_types)
    for next_hop, nlris in announce.items():
        for nlri in _mac_ip(nlris):
            event.announced.append(nlri.to_route(next_hop, route_targets, communities))
    for nlri in _mac_ip(withdraw):
        event.withdrawn.append(nlri.key)
    return event


def _mac_ip(nlris: list[dict]) -> list[MacIpAdvertisement]:
    routes = []
    for nlri in nlris:
        if nlri.get("code") != ROUTE_TYPE_MAC_IP or "raw" not in nlri:
            continue
        try:
            routes.append(MacIpAdvertisement.unpack(bytes.fromhex(nlri["raw"])))
        except ValueError as exc:
            log.warning("ignoring a MAC/IP route ExaBGP passed on: %s (%s)", exc, nlri.get("raw"))
    return routes


def _extended_communities(values: list[dict]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    targets, tunnels = set(), []
    for community in values:
        data = int(community["value"]).to_bytes(8, "big")
        if (target := unpack_route_target(data)) is not None:
            targets.add((data, target))
        elif (tunnel := unpack_encapsulation(data)) is not None:
            tunnels.append(tunnel)
    return tuple(text for _, text in sorted(targets)), tuple(tunnels)


def _as_path(path: dict | list) -> tuple[int, ...]:
    """Every AS number on the path, sequences and sets alike (enough to spot a loop)."""
    segments = path.values() if isinstance(path, dict) else [{"value": path}]
    numbers: list[int] = []
    for segment in segments:
        value = segment.get("value", []) if isinstance(segment, dict) else segment
        numbers.extend(int(n) for n in (value if isinstance(value, list) else [value]))
    return tuple(numbers)
