"""`vsplab run SCENARIO --mode mininet`: the scenario on Mininet 2.3 (vsplab/mininet/lab.py)."""
