"""vsplab's VSC: an OpenFlow 1.3 controller on os-ken that follows the VSD's change stream, learns
endpoint locations from the VRSs' agent channel and programs the multi-table pipeline of
`vsc/pipeline.md` incrementally.

Public API:
- `vsc run ...` (vsc.cli) - the controller process; `vsc.process.VscProcess` starts one and waits for
  `converged` on its status port (GET /status, /flows?dpid=N, /explain?cookie=C).
- `vsc.compiler.compile_host(view, locations, dpid)` - pure compilation, for tests and benchmarks;
  `vsc.view.View`, `vsc.locations.Locations` are its inputs, `vsplab.workload.tree` builds them in memory.
- `vsc.core.Vsc` - the controller's state machine without os-ken (inputs in, bundles out).
- `vsc enrol DPID ...` (vsc.cli, vsc.enrolment) - the VRSs a VSC knows; vsc.identity and vsc.links decide
  which agent session and which OpenFlow connection speak for a datapath.
"""
