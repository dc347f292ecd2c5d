"""Emulation mode: the scenario's hosts as network namespaces on this machine, each with its own
Open vSwitch (userspace datapath) and `vrs` agent, containers as namespaces with veths, and every
expectation checked with real packets."""
