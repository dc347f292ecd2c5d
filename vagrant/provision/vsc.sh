#!/usr/bin/env bash
# A VSC machine: vsplab-vsc.service on /etc/vsplab/vsc.yaml (its VSDs, and BGP through the route
# reflector: VSC_BGP_ASN, VSC_ROUTER_ID, VSC_BGP_PEERS; see render-config.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install.sh"
bash "$here/render-config.sh" vsc
systemctl enable vsplab-vsc.service
systemctl restart vsplab-vsc.service
