#!/usr/bin/env bash
# The route reflector: FRR's bgpd reflecting EVPN between the VSCs. Its bgpd.conf comes from the same
# function as the emulated labs' reflectors (vsplab.bgp.frr.bgpd_config), run from the installed tree.
# Environment: RR_ADDRESS, RR_ASN, RR_CLIENTS (comma-separated VSC addresses, all in RR_ASN).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${RR_ADDRESS:?RR_ADDRESS is required}"
: "${RR_ASN:?RR_ASN is required}"
: "${RR_CLIENTS:?RR_CLIENTS is required}"
bash "$here/install.sh" frr
sed -i 's/^bgpd=no/bgpd=yes/' /etc/frr/daemons
/opt/vsplab/venv/bin/python - "$RR_ADDRESS" "$RR_ASN" "$RR_CLIENTS" > /etc/frr/frr.conf <<'PY'
import sys

from vsplab.bgp.frr import bgpd_config
from vsplab.bgp.plan import BgpSpeaker

address, asn, clients = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
me = BgpSpeaker("rr", asn, address, address, reflector=True)
peers = [BgpSpeaker(f"vsc{i}", asn, c, c) for i, c in enumerate(clients, 1)]
print(bgpd_config(me, peers, port=179, hold_time=9, md5=None), end="")
PY
chown frr:frr /etc/frr/frr.conf
systemctl enable frr.service
systemctl restart frr.service
