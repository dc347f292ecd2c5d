"""MP-BGP EVPN federation between VSCs: each VSC advertises its local endpoints as EVPN MAC/IP routes
(RFC 7432 type 2, RFC 8365 VXLAN) tagged with their policy groups' communities, through an ExaBGP
child process, and turns the routes it receives into remote endpoints."""
