"""`vsplab bench`: scale benchmarks of the whole control plane on one machine (`vsplab bench nfd8`)."""
