"""The simulated VRS: OpenFlow 1.3 switches whose flow tables live in memory, many per process.

In-process API (every SimRuntime method is thread-safe; the work runs on the runtime's loop):

    rt = SimRuntime(controller=("127.0.0.1", 6653), agent=("127.0.0.1", 6634), gc_freeze=False)
    rt.run_in_thread()                      # or rt.attach(loop) inside an asyncio program
    rt.add_host("vl-h1", datapath_id=1, vtep_ip="192.168.0.1",
                containers=[Container("vl-c1", "02:00:00:00:00:01", "10.0.0.1", vport_id="...")])
    rt.add_hosts([{"name", "datapath_id", "vtep_ip", "containers": [{...}]}, ...])
    rt.add_port("vl-h1", Container(...)); rt.remove_port("vl-h1", "vl-c1")
    rt.trace(Packet("tcp", "10.0.0.2", 80, source="vl-c1"), commit=True) -> TraceResult
    rt.dump_flows("vl-h1", table=None) -> str          # ovs-ofctl dump-flows text
    rt.load_dump("vl-h1", text) -> int                 # ... and back (e.g. from a real OVS)
    rt.stats() -> {"hosts": [...], "total_flows", "total_flow_mods", "rss_bytes"}
    rt.start_control("unix:/path/sock" | "127.0.0.1:0") -> bound address   # vrs.sim.control
    rt.stop()

`rt.fabric` (SimFabric) holds the switches by name and VTEP and traces across VXLAN; `rt.hosts[name]`
is a SimVrs (`.switch` is its SimSwitch: ports, tables, conntrack, `handle(msg) -> replies`).
TraceResult: `.verdict` ("delivered"/"dropped"), `.delivered` (Delivery: switch, port, container,
packet fields), `.drops`, `.tunnels`, `.steps`, `.delivered_to(name)`, `.text()`, `.to_dict()`.
Out of process: `vrs sim` (vrs/cli.py) and the JSON-lines protocol of `vrs.sim.control`.
"""

from vrs.sim.fabric import Delivery, SimFabric, TraceResult
from vrs.sim.host import Container, SimVrs
from vrs.sim.packet import Packet
from vrs.sim.runtime import SimRuntime
from vrs.sim.switch import Port, SimSwitch

__all__ = ["Container", "Delivery", "Packet", "Port", "SimFabric", "SimRuntime", "SimSwitch", "SimVrs",
           "TraceResult"]
