"""Faults on purpose in a running lab and the measured recovery (`faults:` in a scenario; vsplab/faults/run.py)."""
