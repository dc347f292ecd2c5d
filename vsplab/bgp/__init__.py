"""The lab's side of EVPN federation: where each BGP speaker of a scenario listens (plan), FRR route
reflectors (frr), the sessions as the speakers report them (federation), each VSC's routes for
`vsplab bgp --routes` (routes), and what a killed lab's reflectors leave behind (leftovers)."""
