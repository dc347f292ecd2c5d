"""Workloads built in memory (`tree`) and pushed into a VSD (`vsd_push`), for the tests and benchmarks."""
