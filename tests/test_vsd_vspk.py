"""The VSD driven by Nuage's own SDK, vspk.v6 (from PyPI), unchanged: login, the object tree down to
VMs with interfaces, policy groups with vports, ACLs between them, filtered fetches, update, delete, and
the push center."""

from __future__ import annotations

import threading
import time

import pytest
from bambou.exceptions import BambouHTTPError
from vspk import v6 as vspk

from vsd.server import EmbeddedVsd


@pytest.fixture(scope="module")
def vsd():
    with EmbeddedVsd() as server:
        yield server


@pytest.fixture(scope="module")
def session(vsd):
    s = vspk.NUVSDSession(username=vsd.user, password=vsd.password, enterprise=vsd.enterprise, api_url=vsd.url)
    s.start()
    yield s
    s.push_center.stop()


def test_login_answers_the_api_key(session):
    me = session.user
    assert me.api_key and me.user_name == "csproot" and me.role == "CSPROOT"


def test_full_tree_with_vspk(session):
    me = session.user
    ent = vspk.NUEnterprise(name="vl-vspk", description="made by vspk")
    me.create_child(ent)
    assert ent.id
    tmpl = vspk.NUDomainTemplate(name="vl-tmpl")
    ent.create_child(tmpl)
    dom = vspk.NUDomain(name="vl-dom")
    ent.instantiate_child(dom, tmpl)
    assert dom.template_id == tmpl.id and dom.service_id and dom.route_target and dom.route_distinguisher

    subnets, vports = {}, {}
    for i, tier in enumerate(("web", "app", "db")):
        zone = vspk.NUZone(name=tier)
        dom.create_child(zone)
        sn = vspk.NUSubnet(name=tier, address=f"10.{i + 1}.0.0", netmask="255.255.255.0")
        zone.create_child(sn)
        assert sn.vn_id and sn.gateway == f"10.{i + 1}.0.1"
        subnets[tier] = sn
        vports[tier] = []
        for k in range(2):
            vp = vspk.NUVPort(name=f"{tier}{k}", type="VM", address_spoofing="INHERITED")
            sn.create_child(vp)
            assert vp.domain_id == dom.id and vp.zone_id == zone.id
            vports[tier].append(vp)

    vms = []
    for n, vp in enumerate(v for tier in vports.values() for v in tier):
        iface = vspk.NUVMInterface(name="eth0", mac=f"02:00:00:00:00:{n + 1:02x}", vport_id=vp.id)
        vm = vspk.NUVM(name=f"vm-{vp.name}", uuid=vp.id, interfaces=[iface])
        me.create_child(vm)
        assert vm.id and vm.interfaces[0]["IPAddress"].startswith("10.")
        vms.append(vm)
    fetched = vms[0].vm_interfaces.get()
    assert len(fetched) == 1 and fetched[0].mac == "02:00:00:00:00:01" and fetched[0].ip_address == "10.1.0.2"
    assert fetched[0].attached_network_id == subnets["web"].id and fetched[0].domain_id == dom.id

    groups = {}
    for tier in vports:
        pg = vspk.NUPolicyGroup(name=tier, type="SOFTWARE")
        dom.create_child(pg)
        assert 1 <= pg.policy_group_id <= 4095 and pg.evpn_community_tag
        pg.assign(vports[tier], vspk.NUVPort)
        groups[tier] = pg
    assert {p.policy_group_id for p in groups.values()} == {1, 2, 3}
    assert sorted(v.id for v in groups["web"].vports.get()) == sorted(v.id for v in vports["web"])
    assert [p.name for p in vports["app"][0].policy_groups.get()] == ["app"]

    for direction, cls, entry_cls in (("ingress", vspk.NUIngressACLTemplate, vspk.NUIngressACLEntryTemplate),
                                      ("egress", vspk.NUEgressACLTemplate, vspk.NUEgressACLEntryTemplate)):
        acl = cls(name=f"vl-{direction}", active=True, default_allow_ip=False, default_allow_non_ip=False)
        dom.create_child(acl)
        for prio, (src, dst, port) in enumerate((("web", "app", "8080"), ("app", "db", "5432"))):
            loc, net = (src, dst) if direction == "ingress" else (dst, src)
            entry = entry_cls(action="FORWARD", location_type="POLICYGROUP", location_id=groups[loc].id,
                              network_type="POLICYGROUP", network_id=groups[net].id, protocol="6",
                              source_port="*", destination_port=port, ether_type="0x0800",
                              priority=100 + prio, stateful=True, dscp="*")
            acl.create_child(entry)
            assert entry.id and entry.parent_id == acl.id

    # fetch back with filters
    found = ent.domains.get(filter='name == "vl-dom"')
    assert [d.id for d in found] == [dom.id]
    assert ent.domains.get_first(filter=f'ID == "{dom.id}"').name == "vl-dom"
    assert dom.subnets.get(filter='name == "nope"') == []
    assert len(dom.vports.get()) == 6 and dom.vports.get_count() == 6
    ingress = dom.ingress_acl_templates.get_first()  # held: bambou's fetchers keep their parent weakly
    entries = ingress.ingress_acl_entry_templates.get()
    assert [e.destination_port for e in entries] == ["8080", "5432"]

    # update one
    sn = subnets["db"]
    sn.description = "database tier"
    sn.save()
    again = vspk.NUSubnet(id=sn.id)
    again.fetch()
    assert again.description == "database tier" and again.vn_id == sn.vn_id

    # delete one (a VM takes its interfaces with it), and a parent with children is refused
    vms[-1].delete()
    assert len(me.vms.get()) == len(vms) - 1
    with pytest.raises(BambouHTTPError) as e:
        subnets["web"].delete()
    assert e.value.connection.response.status_code == 409
    groups["db"].assign([], vspk.NUVPort)
    assert groups["db"].vports.get() == []


def test_bulk_create_and_macros_with_vspk(session):
    me = session.user
    ent = vspk.NUEnterprise(name="vl-vspk-bulk")
    me.create_child(ent)
    tmpl = vspk.NUDomainTemplate(name="t")
    ent.create_child(tmpl)
    dom = vspk.NUDomain(name="d")
    ent.instantiate_child(dom, tmpl)
    zone = vspk.NUZone(name="z")
    dom.create_child(zone)
    sn = vspk.NUSubnet(name="s", address="10.50.0.0", netmask="255.255.255.0")
    zone.create_child(sn)
    vports = [vspk.NUVPort(name=f"b{i}", type="CONTAINER", address_spoofing="INHERITED") for i in range(5)]
    _, _, meta, errors = sn.create_children(vports)
    assert errors is None and all(v.id for v in vports) and len(sn.vports.get()) == 5

    nets = [vspk.NUEnterpriseNetwork(name=f"net{i}", address=f"192.168.{i}.0", netmask="255.255.255.0")
            for i in range(2)]
    for n in nets:
        ent.create_child(n)
    group = vspk.NUNetworkMacroGroup(name="partners")
    ent.create_child(group)
    group.assign(nets, vspk.NUEnterpriseNetwork)
    assert sorted(n.name for n in group.enterprise_networks.get()) == ["net0", "net1"]
    pg = vspk.NUPolicyGroup(name="pg", type="SOFTWARE")
    dom.create_child(pg)
    acl = vspk.NUEgressACLTemplate(name="out", active=True)
    dom.create_child(acl)
    entry = vspk.NUEgressACLEntryTemplate(action="FORWARD", location_type="POLICYGROUP", location_id=pg.id,
                                          network_type="NETWORK_MACRO_GROUP", network_id=group.id, protocol="17",
                                          destination_port="53", ether_type="0x0800", dscp="*")
    acl.create_child(entry)
    assert entry.priority == 1 and entry.network_id == group.id
    with pytest.raises(BambouHTTPError):  # still referenced by the ACL entry
        group.delete()


def test_push_center_delivers_events(session):
    received: list[dict] = []
    got = threading.Event()

    def on_push(data):
        for e in data.get("events", []):
            received.append(e)
            if e["entityType"] == "enterprise" and e["entities"][0]["name"] == "vl-pushed":
                got.set()

    session.push_center.add_delegate(on_push)
    session.push_center.start()
    time.sleep(0.5)  # the push center's first call only opens the session
    ent = vspk.NUEnterprise(name="vl-pushed")
    session.user.create_child(ent)
    assert got.wait(10), received
    ev = next(e for e in received if e["entityType"] == "enterprise" and e["entities"][0]["name"] == "vl-pushed")
    assert ev["type"] == "CREATE" and ev["entities"][0]["ID"] == ent.id
    ent.delete()
    deadline = time.time() + 10
    while time.time() < deadline and not any(e["type"] == "DELETE" and e["entities"][0]["ID"] == ent.id
                                              for e in received):
        time.sleep(0.05)
    assert any(e["type"] == "DELETE" and e["entities"][0]["ID"] == ent.id for e in received)
    session.push_center.stop()
