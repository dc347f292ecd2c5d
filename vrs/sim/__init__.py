"""The simulated VRS: OpenFlow 1.3 switches whose flow tables live in memory, many per process.

In-process API: `SimRuntime` (hosts on one event loop, `run_in_thread()`), `SimVrs` (one host),
`SimSwitch` (the OpenFlow side without I/O), `SimFabric` (all switches by VTEP; `trace`), `Packet`,
`Container`, `TraceResult`. Out of process: `vrs sim` and the JSON-lines protocol of
`vrs.sim.control`.
"""

from vrs.sim.fabric import Delivery, SimFabric, TraceResult
from vrs.sim.host import Container, SimVrs
from vrs.sim.packet import Packet
from vrs.sim.runtime import SimRuntime
from vrs.sim.switch import Port, SimSwitch

__all__ = ["Container", "Delivery", "Packet", "Port", "SimFabric", "SimRuntime", "SimSwitch", "SimVrs",
           "TraceResult"]
