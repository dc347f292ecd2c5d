"""The local Open vSwitch database through the `ovs` Python IDL: one replica kept up to date by
`run()`, small transactions that converge the integration bridge to what the agent wants.

Every write is idempotent (compare, then set only what differs) so the agent can call
`ensure_bridge()` after every reconnect or database change and an OVS restart heals itself."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

# ovs.poller probes for eventlet (installed with os-ken) only to cooperate with it; the agent never uses
# eventlet, whose import costs 0.3 s per `vrs plug` and prints a deprecation warning. Hide it for the
# probe unless this process already runs it.
_hide_eventlet = "eventlet" not in sys.modules
if _hide_eventlet:
    sys.modules["eventlet"] = None
try:
    import ovs.db.idl
    import ovs.jsonrpc
    import ovs.poller
    import ovs.stream
finally:
    if _hide_eventlet:
        del sys.modules["eventlet"]

# external_ids keys the VSC's contract names (docs/interfaces.md section 2)
VPORT_KEY, MAC_KEY, IP_KEY = "vsplab-vport-id", "attached-mac", "vsplab-ip"
VM_KEY = "vm-uuid"  # the VSD VM the vport belongs to (OVS's usual key; the VSC does not need it)
OWNER_KEY = "vsplab-owner"  # marks ports the agent made, so it never reports or removes others'
TUNNEL_PORT = "vxlan0"
_TUNNEL_OPTIONS = {"remote_ip": "flow", "key": "flow"}  # the VSC sets tun_id / tun_ipv4_dst per flow

_TABLES = {
    "Open_vSwitch": ["bridges", "ovs_version"],
    "Bridge": ["name", "ports", "controller", "fail_mode", "protocols", "datapath_type", "datapath_id",
               "other_config", "external_ids"],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": ["name", "type", "options", "ofport", "ofport_request", "external_ids", "error", "mac_in_use"],
    "Controller": ["target", "connection_mode", "is_connected"],
}


class OvsdbError(RuntimeError):
    pass


@dataclass(frozen=True)
class BridgeSpec:
    name: str
    datapath_id: int
    controllers: tuple[str, ...]  # "tcp:IP:PORT"
    datapath_type: str = "netdev"
    description: str = ""  # other_config:dp-desc, what the switch answers OFPMP_DESC with (the agent's token)


@dataclass(frozen=True)
class PortState:
    name: str
    ofport: int
    vport_id: str | None
    mac: str | None
    ip: str | None


def _fetch_schema(remote: str, timeout: float = 10.0) -> dict:
    """The server's own schema, so the IDL matches whatever OVS version is installed."""
    end = time.monotonic() + timeout
    while True:
        err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote))
        if not err:
            break
        if time.monotonic() > end:
            raise OvsdbError(f"cannot connect to OVSDB at {remote}: {err}")
        time.sleep(0.1)
    rpc = ovs.jsonrpc.Connection(stream)
    err, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"]))
    rpc.close()
    if err or reply.error:
        raise OvsdbError(f"get_schema from {remote}: {err or reply.error}")
    return reply.result


class Ovsdb:
    def __init__(self, remote: str, timeout: float = 10.0) -> None:
        self.remote = remote
        helper = ovs.db.idl.SchemaHelper(schema_json=_fetch_schema(remote, timeout))
        for table, columns in _TABLES.items():
            helper.register_columns(table, columns)
        self.idl = ovs.db.idl.Idl(remote, helper)
        self.wait_until(lambda: self.idl.has_ever_connected() and self._root() is not None, timeout,
                        "the first OVSDB snapshot")

    # --- replica --------------------------------------------------------------------------------

    def run(self) -> bool:
        """Process what the server sent; True when the replica changed."""
        seq = self.idl.change_seqno
        self.idl.run()
        return self.idl.change_seqno != seq

    def block(self, timeout_ms: int = 1000, wake_fd: int | None = None) -> None:
        """Until the server sends something, `wake_fd` is readable, or `timeout_ms` passed."""
        poller = ovs.poller.Poller()
        self.idl.wait(poller)
        if wake_fd is not None:
            poller.fd_wait(wake_fd, ovs.poller.POLLIN)
        poller.timer_wait(timeout_ms)
        poller.block()

    def wait_until(self, cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while True:
            self.run()
            if cond():
                return
            if time.monotonic() > end:
                raise OvsdbError(f"timed out after {timeout}s waiting for {what} ({self.remote})")
            self.block(100)

    def close(self) -> None:
        self.idl.close()

    def _root(self):
        return next(iter(self.idl.tables["Open_vSwitch"].rows.values()), None)

    def _rows(self, table: str):
        return self.idl.tables[table].rows.values()

    def bridge(self, name: str):
        return next((b for b in self._rows("Bridge") if b.name == name), None)

    def _commit(self, build, what: str) -> None:
        """Run `build(txn)` in a transaction; retry on TRY_AGAIN (a concurrent writer won the race)."""
        for _ in range(20):
            txn = ovs.db.idl.Transaction(self.idl)
            try:
                build(txn)
            except BaseException:
                txn.abort()  # the IDL holds one open transaction at a time
                raise
            status = txn.commit_block()
            if status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
                return
            if status != ovs.db.idl.Transaction.TRY_AGAIN:
                raise OvsdbError(f"{what}: transaction {status}: {txn.get_error()}")
            self.wait_until(lambda: True, 1.0, what)
        raise OvsdbError(f"{what}: gave up after repeated TRY_AGAIN")

    # --- the integration bridge -----------------------------------------------------------------

    def ensure_bridge(self, spec: BridgeSpec) -> None:
        """Bridge, its local port, controllers (secure, OpenFlow 1.3, no in-band) and the flow-based
        VXLAN port, created or corrected; rows already right are not touched."""

        def build(txn):
            br = self.bridge(spec.name)
            want_cfg = {"datapath-id": f"{spec.datapath_id:016x}", "disable-in-band": "true",
                        **({"dp-desc": spec.description} if spec.description else {})}
            if br is None:
                # a row inserted in this transaction has no readable columns yet: write them all
                iface = txn.insert(self.idl.tables["Interface"])
                iface.name, iface.type = spec.name, "internal"
                port = txn.insert(self.idl.tables["Port"])
                port.name, port.interfaces = spec.name, [iface]
                br = txn.insert(self.idl.tables["Bridge"])
                br.name, br.ports, br.other_config = spec.name, [port], want_cfg
                br.fail_mode, br.protocols, br.datapath_type = "secure", ["OpenFlow13"], spec.datapath_type
                br.controller = self._controllers(txn, spec)
                self._root().addvalue("bridges", br.uuid)
                self._add_tunnel(txn, br)
                return
            if any(br.other_config.get(k) != v for k, v in want_cfg.items()):
                br.other_config = {**br.other_config, **want_cfg}
            if br.fail_mode != ["secure"]:
                br.fail_mode = "secure"
            if list(br.protocols) != ["OpenFlow13"]:
                br.protocols = ["OpenFlow13"]
            if br.datapath_type != spec.datapath_type:
                br.datapath_type = spec.datapath_type
            if sorted(c.target for c in br.controller) != sorted(spec.controllers):
                br.controller = self._controllers(txn, spec)
            self._ensure_tunnel(txn, br)

        self._commit(build, f"bridge {spec.name}")

    def _controllers(self, txn, spec: BridgeSpec) -> list:
        ctls = []
        for target in spec.controllers:
            c = txn.insert(self.idl.tables["Controller"])
            c.target, c.connection_mode = target, "out-of-band"
            ctls.append(c)
        return ctls

    def _ensure_tunnel(self, txn, br) -> None:
        for port in br.ports:
            for iface in port.interfaces:
                if iface.name == TUNNEL_PORT:
                    if iface.type != "vxlan":
                        iface.type = "vxlan"
                    if dict(iface.options) != _TUNNEL_OPTIONS:
                        iface.options = _TUNNEL_OPTIONS
                    return
        self._add_tunnel(txn, br)

    def _add_tunnel(self, txn, br) -> None:
        iface = txn.insert(self.idl.tables["Interface"])
        iface.name, iface.type, iface.options = TUNNEL_PORT, "vxlan", _TUNNEL_OPTIONS
        port = txn.insert(self.idl.tables["Port"])
        port.name, port.interfaces = TUNNEL_PORT, [iface]
        br.addvalue("ports", port.uuid)

    def description(self, bridge: str) -> str | None:
        br = self.bridge(bridge)
        return br.other_config.get("dp-desc") if br is not None else None

    def ensure_description(self, bridge: str, text: str) -> None:
        """Set only the bridge's dp-desc (a bridge another tool owns keeps everything else)."""

        def build(txn):
            br = self.bridge(bridge)
            if br is None:
                raise OvsdbError(f"no bridge {bridge!r}")
            if br.other_config.get("dp-desc") != text:
                br.setkey("other_config", "dp-desc", text)

        self._commit(build, f"dp-desc of {bridge}")

    def datapath_id(self, bridge: str) -> int | None:
        br = self.bridge(bridge)
        return int(br.datapath_id[0], 16) if br is not None and br.datapath_id else None

    def controller_connected(self, bridge: str) -> bool:
        br = self.bridge(bridge)
        return br is not None and any(c.is_connected for c in br.controller)

    # --- container ports ------------------------------------------------------------------------

    def interfaces(self, bridge: str):
        br = self.bridge(bridge)
        if br is None:
            return []
        return [i for p in br.ports for i in p.interfaces]

    def ofport(self, bridge: str, name: str) -> int | None:
        for iface in self.interfaces(bridge):
            if iface.name == name and iface.ofport and iface.ofport[0] > 0:
                return iface.ofport[0]
        return None

    def container_ports(self, bridge: str) -> list[PortState]:
        """The agent's container ports that OVS has given an OpenFlow port number."""
        out = []
        for iface in self.interfaces(bridge):
            ext = iface.external_ids
            if ext.get(OWNER_KEY) != "vrs" or not iface.ofport or iface.ofport[0] <= 0:
                continue
            out.append(PortState(iface.name, iface.ofport[0], ext.get(VPORT_KEY), ext.get(MAC_KEY), ext.get(IP_KEY)))
        return sorted(out, key=lambda p: p.ofport)

    def add_port(self, bridge: str, name: str, vport_id: str | None, mac: str, ip: str | None,
                 vm_id: str | None = None) -> None:
        ext = {OWNER_KEY: "vrs", MAC_KEY: mac, **({VPORT_KEY: vport_id} if vport_id else {}),
               **({IP_KEY: ip} if ip else {}), **({VM_KEY: vm_id} if vm_id else {})}

        def build(txn):
            br = self.bridge(bridge)
            if br is None:
                raise OvsdbError(f"no bridge {bridge!r}: is `vrs run` up?")
            for iface in self.interfaces(bridge):
                if iface.name == name:
                    if dict(iface.external_ids) != ext:
                        iface.external_ids = ext
                    return
            iface = txn.insert(self.idl.tables["Interface"])
            iface.name, iface.external_ids = name, ext
            port = txn.insert(self.idl.tables["Port"])
            port.name, port.interfaces = name, [iface]
            br.addvalue("ports", port.uuid)

        self._commit(build, f"add port {name}")

    def del_port(self, bridge: str, name: str) -> bool:
        found = []

        def build(txn):
            br = self.bridge(bridge)
            found.clear()
            for port in (br.ports if br is not None else []):
                if port.name == name:
                    br.delvalue("ports", port.uuid)
                    found.append(port)

        self._commit(build, f"delete port {name}")
        return bool(found)

    def wait_ofport(self, bridge: str, name: str, timeout: float = 10.0) -> int:
        try:
            self.wait_until(lambda: self.ofport(bridge, name) is not None, timeout, f"an ofport for {name}")
        except OvsdbError as e:
            errors = [i.error[0] for i in self.interfaces(bridge) if i.name == name and i.error]
            raise OvsdbError(f"{e}{': ' + errors[0] if errors else ''}") from None
        return self.ofport(bridge, name)
