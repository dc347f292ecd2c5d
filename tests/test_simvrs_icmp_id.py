"""Conntrack tells pings apart by their echo identifier, as the real one does: a second ping between
the same two hosts is a new connection, its reply belongs to it, another id's reply does not."""

import ipaddress

from openflow.flow import CT_EST, CT_NEW, CT_RPL, CT_TRK
from vrs.sim.conntrack import Conntrack
from vrs.sim.packet import Packet

A, B = "10.0.0.1", "10.0.0.2"


def icmp(src, dst, type_, ident):
    return Packet(proto="icmp", dst_ip=dst, icmp_type=type_, icmp_id=ident).fields(1, 1, 2, int(ipaddress.IPv4Address(src)))


def test_echo_identifier_separates_pings():
    ct = Conntrack()
    assert ct.process(icmp(A, B, 8, 7), zone=1, commit=True) == CT_TRK | CT_NEW
    assert ct.process(icmp(B, A, 0, 7), zone=1, commit=False) == CT_TRK | CT_EST | CT_RPL
    assert ct.process(icmp(A, B, 8, 7), zone=1, commit=False) == CT_TRK | CT_EST
    assert ct.process(icmp(A, B, 8, 8), zone=1, commit=False) == CT_TRK | CT_NEW  # another ping
    assert ct.process(icmp(B, A, 0, 9), zone=1, commit=False) & CT_EST == 0  # a reply nobody asked for
