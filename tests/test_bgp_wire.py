"""The EVPN wire codec (vsc/bgp): byte for byte against encodings derived by hand from the RFCs'
field layouts, round trips, and what ExaBGP's own decoder reads from our bytes."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from vsc.bgp.announce import MESSAGE_SIZE, UPDATE_OVERHEAD, CarrierPool, announce_batches, withdraw_batches
from vsc.bgp.community import (
    pack_community,
    pack_encapsulation,
    pack_route_target,
    sort_communities,
    sort_route_targets,
    unpack_community,
    unpack_encapsulation,
    unpack_route_target,
)
from vsc.bgp.evpn import MacIpAdvertisement, canonical_key, canonical_route, unpack_mac_ip_routes
from vsc.bgp.exabgp_json import EvpnUpdate, SessionState, parse_line
from vsc.bgp.mpnlri import MpReachNlri, MpUnreachNlri, pack_attribute, unpack_attribute
from vsc.bgp.rd import RouteDistinguisher, pack_rd, unpack_rd
from vsc.bgp.route import MacIpRoute

ROUTE = MacIpRoute(rd="192.0.2.1:5001", mac="02:00:0a:01:00:01", ip="10.1.0.1", vni=5001,
                   next_hop="192.0.2.1", route_targets=("65000:5001",), communities=("5001:3",))

# RFC 7432 7.2 MAC/IP advertisement of ROUTE, field by field.
ROUTE_NLRI = "".join([
    "02",                    # route type 2: MAC/IP advertisement
    "25",                    # length 37 = 8 + 10 + 4 + 1 + 6 + 1 + 4 + 3
    "0001", "c0000201", "1389",  # RD type 1: 192.0.2.1 : 5001
    "00" * 10,               # ESI: single-homed
    "00000000",              # Ethernet Tag ID 0 (VLAN-based service)
    "30",                    # MAC address length 48 bits
    "02000a010001",          # MAC 02:00:0a:01:00:01
    "20",                    # IP address length 32 bits
    "0a010001",              # IP 10.1.0.1
    "001389",                # MPLS label 1: VNI 5001 in the whole 24-bit field (RFC 8365 5.1.3)
])


# ---------------------------------------------------------------- RD, RFC 4364 4.2


@pytest.mark.parametrize("text, wire", [
    ("65000:5001", "0000" "fde8" "00001389"),          # type 0: ASN2 65000, 32-bit number 5001
    ("65000:4294967295", "0000" "fde8" "ffffffff"),    # type 0: the number takes all 32 bits
    ("192.0.2.1:7", "0001" "c0000201" "0007"),         # type 1: IPv4 192.0.2.1, 16-bit number 7
    ("4200000000:7", "0002" "fa56ea00" "0007"),        # type 2: ASN4 4200000000, 16-bit number 7
])
def test_rd_encodes_per_rfc4364(text, wire):
    assert pack_rd(text).hex() == wire
    assert unpack_rd(bytes.fromhex(wire)) == text


@pytest.mark.parametrize("bad", ["", "65000", "x:1", "1.2.3:4", "192.0.2.1:70000", "4200000000:70000",
                                 "65000:-1"])
def test_rd_refuses_what_no_type_holds(bad):
    with pytest.raises(ValueError):
        pack_rd(bad)


def test_rd_unknown_type_is_an_error():
    with pytest.raises(ValueError, match="type 3"):
        RouteDistinguisher.unpack(bytes.fromhex("0003" "000000000000"))


# ---------------------------------------------------------------- communities, RFC 1997 / 4360 / 9012


@pytest.mark.parametrize("text, wire", [
    ("65000:5001", "00" "02" "fde8" "00001389"),       # two-octet AS specific, route target
    ("192.0.2.1:7", "01" "02" "c0000201" "0007"),      # IPv4 address specific, route target
    ("4200000000:7", "02" "02" "fa56ea00" "0007"),     # four-octet AS specific (RFC 5668)
])
def test_route_target_encodes_per_rfc4360(text, wire):
    assert pack_route_target(text).hex() == wire
    assert unpack_route_target(bytes.fromhex(wire)) == text


def test_encapsulation_is_rfc9012_vxlan():
    wire = "03" "0c" "00000000" "0008"  # opaque, sub-type encapsulation, reserved, tunnel type 8 VXLAN
    assert pack_encapsulation().hex() == wire
    assert unpack_encapsulation(bytes.fromhex(wire)) == 8
    assert unpack_route_target(bytes.fromhex(wire)) is None
    assert unpack_encapsulation(bytes.fromhex("0002fde800001389")) is None


def test_standard_community_rfc1997():
    assert pack_community("5001:3").hex() == "1389" "0003"
    assert unpack_community(bytes.fromhex("ffff0001")) == "65535:1"
    with pytest.raises(ValueError):
        pack_community("65536:1")
    assert sort_communities(["5001:3", "10:20", "5001:3"]) == ("10:20", "5001:3")
    assert sort_route_targets(["65000:2", "65000:1"]) == ("65000:1", "65000:2")


# ---------------------------------------------------------------- MAC/IP NLRI, RFC 7432 7.2


def test_mac_ip_nlri_byte_for_byte():
    assert MacIpAdvertisement.from_route(ROUTE).pack().hex() == ROUTE_NLRI


def test_mac_only_and_ipv6_and_ethernet_tag():
    mac_only = dataclasses.replace(ROUTE, ip=None, vni=0xFFFFFF, ethernet_tag=100)
    assert MacIpAdvertisement.from_route(mac_only).pack().hex() == "".join([
        "02", "21",                       # type 2, length 33: no IP
        "0001c00002011389", "00" * 10,    # RD, ESI
        "00000064",                       # Ethernet Tag 100
        "30", "02000a010001",             # MAC
        "00",                             # IP length 0: no IP address field
        "ffffff",                         # the largest VNI
    ])
    v6 = dataclasses.replace(ROUTE, ip="2001:db8::1")
    assert MacIpAdvertisement.from_route(v6).pack().hex() == "".join([
        "02", "31",                       # type 2, length 49
        "0001c00002011389", "00" * 10, "00000000", "30", "02000a010001",
        "80", "20010db8000000000000000000000001",  # IP length 128, 2001:db8::1
        "001389",
    ])


@pytest.mark.parametrize("route", [
    ROUTE,
    dataclasses.replace(ROUTE, ip=None),
    dataclasses.replace(ROUTE, ip="2001:db8::1", rd="65000:7", ethernet_tag=7),
    dataclasses.replace(ROUTE, rd="4200000000:9", vni=16777215),
])
def test_mac_ip_round_trip(route):
    nlri = MacIpAdvertisement.from_route(route)
    back = MacIpAdvertisement.unpack(nlri.pack())
    assert back == nlri
    assert back.to_route(route.next_hop, route.route_targets, route.communities) == route
    assert back.key == route.key


def test_bad_routes_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="VNI"):
        MacIpAdvertisement.from_route(dataclasses.replace(ROUTE, vni=1 << 24))
    for mac in ("02:00:0a", "02:00:0a:01:00:zz", "02:00:0a:01:00:1:2"):
        with pytest.raises(ValueError, match="MAC"):
            MacIpAdvertisement.from_route(dataclasses.replace(ROUTE, mac=mac))
    with pytest.raises(ValueError, match="not an IPv4 or IPv6"):
        MacIpAdvertisement.from_route(dataclasses.replace(ROUTE, ip="10.1.0"))
    with pytest.raises(ValueError, match="next hop"):
        canonical_route(dataclasses.replace(ROUTE, next_hop="2001:db8::1"))
    with pytest.raises(ValueError, match="MAC address length"):
        MacIpAdvertisement.unpack(bytes.fromhex(ROUTE_NLRI[:48] + "18" + ROUTE_NLRI[50:]))


def test_canonical_forms():
    loose = dataclasses.replace(ROUTE, mac="02:00:0A:1:0:1", rd="065000:7", communities=("5001:3", "1:1"),
                                route_targets=("65000:9", "65000:1", "65000:9"))
    canon = canonical_route(loose)
    assert (canon.mac, canon.rd, canon.communities, canon.route_targets) == (
        "02:00:0a:01:00:01", "65000:7", ("1:1", "5001:3"), ("65000:1", "65000:9"))
    assert canonical_key(loose.key) == canon.key


# ---------------------------------------------------------------- MP_REACH / MP_UNREACH, RFC 4760


def test_mp_reach_byte_for_byte():
    nlri = MacIpAdvertisement.from_route(ROUTE)
    assert MpReachNlri("192.0.2.1", [nlri]).pack().hex() == "".join([
        "80",         # flags: optional, non-transitive, one-octet length
        "0e",         # type 14 MP_REACH_NLRI
        "30",         # length 48 = 9 + 39
        "0019",       # AFI 25 L2VPN
        "46",         # SAFI 70 EVPN
        "04",         # next hop length 4
        "c0000201",   # next hop 192.0.2.1 (the VTEP)
        "00",         # reserved
        ROUTE_NLRI,
    ])


def test_mp_unreach_byte_for_byte():
    nlri = MacIpAdvertisement.from_route(ROUTE)
    assert MpUnreachNlri([nlri]).pack().hex() == "".join([
        "80", "0f",   # optional, type 15 MP_UNREACH_NLRI
        "2a",         # length 42 = 3 + 39
        "0019", "46",  # AFI 25, SAFI 70
        ROUTE_NLRI,
    ])


def test_several_nlris_and_the_extended_length_flag():
    routes = [dataclasses.replace(ROUTE, mac=f"02:00:00:00:00:{n:02x}", ip=f"10.0.0.{n}") for n in range(10)]
    nlris = [MacIpAdvertisement.from_route(r) for r in routes]
    attribute = MpReachNlri("192.0.2.1", nlris).pack()
    body_length = 9 + 10 * 39
    assert attribute[:4].hex() == "900e" + f"{body_length:04x}"  # 0x90: optional + extended length
    flags, code, body = unpack_attribute(attribute)
    assert (flags, code) == (0x90, 14)
    back = MpReachNlri.unpack_body(body)
    assert back.next_hop == "192.0.2.1" and list(back.nlris) == nlris
    withdrawn = MpUnreachNlri.unpack_body(unpack_attribute(MpUnreachNlri(nlris).pack())[2])
    assert list(withdrawn.nlris) == nlris
    assert unpack_attribute(pack_attribute(14, b"\x00" * 255))[0] == 0x80


def test_other_route_types_are_skipped():
    type3 = "03" "11" + "00" * 17  # an inclusive multicast route we do not read
    assert unpack_mac_ip_routes(bytes.fromhex(type3 + ROUTE_NLRI)) == [
        MacIpAdvertisement.from_route(ROUTE)]


# ---------------------------------------------------------------- ExaBGP's decoder reads our bytes


def test_exabgp_decodes_our_nlri():
    from exabgp.bgp.message import Action
    from exabgp.bgp.message.update.nlri.evpn.nlri import EVPN
    from exabgp.protocol.family import AFI, SAFI

    for route in (ROUTE, dataclasses.replace(ROUTE, rd="65000:70000", vni=16000000, ip="2001:db8::5"),
                  dataclasses.replace(ROUTE, rd="4200000000:9", ip=None, ethernet_tag=3)):
        wire = MacIpAdvertisement.from_route(route).pack()
        nlri, left = EVPN.unpack_nlri(AFI.l2vpn, SAFI.evpn, wire, Action.ANNOUNCE, None)
        assert left == b""
        seen = nlri.as_dict()
        assert seen["code"] == 2
        assert seen["rd"] == route.rd
        assert seen["mac"].lower() == route.mac
        assert seen["ip"] == route.ip
        assert seen["ethernet-tag"] == route.ethernet_tag
        assert seen["label"][0][1] == route.vni  # the 24-bit field read whole: the VNI
        assert nlri.pack_nlri() == wire


@pytest.fixture
def exabgp_logger():
    """ExaBGP's decoders log through a logger its daemon sets up; set it up as the daemon does."""
    from exabgp.environment import getenv
    from exabgp.logger import log

    log.init(getenv())


def test_exabgp_decodes_our_mp_attributes(exabgp_logger):
    from exabgp.bgp.message.direction import Direction
    from exabgp.bgp.message.update.attribute.mprnlri import MPRNLRI
    from exabgp.bgp.message.update.attribute.mpurnlri import MPURNLRI
    from exabgp.protocol.family import AFI, SAFI

    negotiated = SimpleNamespace(families=[(AFI.l2vpn, SAFI.evpn)], nexthop=[],
                                 addpath=SimpleNamespace(receive=lambda afi, safi: False))
    routes = [dataclasses.replace(ROUTE, mac=f"02:00:00:00:01:{n:02x}", ip=f"10.0.1.{n}") for n in range(3)]
    nlris = [MacIpAdvertisement.from_route(r) for r in routes]
    reach = MPRNLRI.unpack(MpReachNlri("192.0.2.1", nlris).body(), Direction.IN, negotiated)
    assert [(str(n.nexthop), n.as_dict()["mac"].lower(), n.as_dict()["ip"]) for n in reach.nlris] == [
        ("192.0.2.1", r.mac, r.ip) for r in routes]
    unreach = MPURNLRI.unpack(MpUnreachNlri(nlris).body(), Direction.IN, negotiated)
    assert [n.as_dict()["mac"].lower() for n in unreach.nlris] == [r.mac for r in routes]


def test_exabgp_reads_our_communities():
    from exabgp.bgp.message.update.attribute.community.extended.community import ExtendedCommunity
    from exabgp.bgp.message.update.attribute.community.initial.community import Community

    assert str(ExtendedCommunity.unpack(pack_route_target("65000:5001"))) == "target:65000:5001"
    assert str(ExtendedCommunity.unpack(pack_route_target("192.0.2.1:7"))) == "target:192.0.2.1:7"
    assert str(ExtendedCommunity.unpack(pack_encapsulation())) == "encap:VXLAN"
    assert str(Community.unpack(pack_community("5001:3"), None, None)) == "5001:3"


# ---------------------------------------------------------------- commands and ExaBGP's JSON


def test_batches_group_by_shared_attributes_and_fit_an_update():
    routes = [dataclasses.replace(ROUTE, mac=f"02:00:00:00:{n >> 8:02x}:{n & 255:02x}", ip=f"10.0.{n >> 8}.{n & 255}")
              for n in range(250)]
    other = dataclasses.replace(ROUTE, next_hop="192.0.2.9")
    batches = announce_batches(routes + [other])
    assert sum(len(b.nlris) for b in batches) == 251
    assert {b.next_hop for b in batches} == {"192.0.2.1", "192.0.2.9"}
    for batch in batches:
        code, body = batch.attribute()
        assert code == 14
        room = MESSAGE_SIZE - UPDATE_OVERHEAD - 4 - (4 + 4 * len(batch.communities)) - (4 + 16)
        assert len(body) <= room
    assert max(len(b.nlris) for b in batches) >= 90  # about a hundred per UPDATE
    command = batches[0].command("100.64.0.7", "neighbor 127.0.0.3")
    # the carrier's NEXT_HOP is the batch's VTEP (FRR's fdb reads it); the MED keeps batches apart in ExaBGP
    med = (100 << 24) | (64 << 16) | 7
    assert command.startswith(f"neighbor 127.0.0.3 announce route 100.64.0.7/32 next-hop {batches[0].next_hop} "
                              f"med {med} origin igp "
                              "community [ 5001:3 ] extended-community [ 0x0002fde800001389 0x030c000000000008 ] "
                              "attribute [ 0x0e 0x80 0x001946")
    (withdraw,) = withdraw_batches([ROUTE])
    assert withdraw.command("100.64.0.8").endswith("attribute [ 0x0f 0x80 0x001946" + ROUTE_NLRI + " ]")


def test_carrier_pool_rotates():
    pool = CarrierPool("100.64.0.0/31")
    assert [pool.take() for _ in range(3)] == ["100.64.0.0", "100.64.0.1", "100.64.0.0"]


def test_exabgp_json_update_is_decoded_with_our_codec():
    line = ('{ "exabgp": "5.0.0", "type": "update", "neighbor": { "address": { "local": "127.0.0.3", '
            '"peer": "127.0.0.2" }, "asn": { "local": 65002, "peer": 65001 }, "direction": "receive", '
            '"message": { "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": '
            '"as-sequence", "value": [65001]}}, "community": [ [ 5001, 3 ] ], "extended-community": [ '
            '{ "value": 842122827666313, "string": "target:65000:5001" }, { "value": 219550481834311688, '
            '"string": "encap:VXLAN" } ] }, "announce": { "ipv4 unicast": { "100.64.0.1": [ { "nlri": '
            '"100.64.0.1/32" } ] }, "l2vpn evpn": { "192.0.2.1": [ { "code": 2, "raw": "' + ROUTE_NLRI.upper()
            + '", "rd": "192.0.2.1:5001" } ] } }, "withdraw": { "l2vpn evpn": [ { "code": 2, "raw": "'
            + ROUTE_NLRI + '" } ] } } } } }')
    event = parse_line(line)
    assert isinstance(event, EvpnUpdate)
    assert event.peer == "127.0.0.2" and event.as_path == (65001,) and event.tunnel_types == (8,)
    assert event.announced == [ROUTE]
    assert event.withdrawn == [ROUTE.key]
    state = parse_line('{"type": "state", "neighbor": {"address": {"peer": "127.0.0.3"}, "state": "up"}}')
    assert state == SessionState("127.0.0.3", "up")
    assert parse_line(b"done\n").ok and not parse_line("error").ok
