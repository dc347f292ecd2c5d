"""Fidelity of the simulator against real Open vSwitch: the same flows, the same packets, three
verdicts (simulated trace, ofproto/trace, real packets). Entry point: `vsplab fidelity SCENARIO`."""
