"""`vsplab run --mode real`: a scenario on hosts where the daemons already run (vagrant/)."""
