#!/usr/bin/env bash
# Writes the daemons' config files, /etc/vsplab/ROLE.yaml for each ROLE given (vsd, vsc, vrs), from
# environment variables: the one template of the Vagrant lab's provisioning and of the test that runs
# the same files in emulated hosts (tests/test_real_mode.py), which sets VSPLAB_ETC to a directory of
# its own. Each key is one of the daemon's long options (`vsd serve --help`, `vsc run --help`,
# `vrs run --help`); the daemon refuses a key it does not know, naming the file and the line.
#
#   vsd: VSD_LISTEN (0.0.0.0) VSD_PORT (8443) VSD_DB (postgresql://vsplab@/vsplab, the local server's
#        socket) VSD_ROOT_PASSWORD (required: a VSD beyond loopback refuses the lab default)
#   vsc: VSC_VSD (required: the VSD's base URL, or several comma-separated) VSD_ROOT_PASSWORD
#        VSC_LISTEN (0.0.0.0) VSC_OF_PORT (6653) VSC_AGENT_PORT (6634) VSC_STATUS_PORT (6635)
#        VSC_STATE_DIR (/var/lib/vsplab/vsc); for EVPN federation VSC_BGP_ASN, VSC_ROUTER_ID and
#        VSC_BGP_PEERS (comma-separated ADDR[:PORT]:ASN, e.g. the route reflector)
#   vrs: VRS_VSC (required: the VSC's address) VRS_VTEP_IP (required) VRS_DATAPATH_ID (required)
#        VRS_NAME (the host name) VRS_OF_PORT (6653) VRS_AGENT_PORT (6634) VRS_DATAPATH_TYPE (system:
#        the kernel datapath) VRS_OVSDB (unix:/var/run/openvswitch/db.sock)
set -euo pipefail

etc="${VSPLAB_ETC:-/etc/vsplab}"

yaml_list() {  # "a,b" -> [a, b]
  local IFS=,
  local -a items
  read -r -a items <<< "$1"
  local out="" item
  for item in "${items[@]}"; do
    out+="${out:+, }${item}"
  done
  printf '[%s]' "$out"
}

yaml_string() {  # a YAML double-quoted scalar: any password survives, quotes and backslashes included
  local s="${1//\\/\\\\}"
  printf '"%s"' "${s//\"/\\\"}"
}

write() {  # write ROLE: stdin to $etc/ROLE.yaml, readable by the vsplab group only (it holds a password)
  local file="$etc/$1.yaml"
  mkdir -p "$etc"
  umask 027
  cat > "$file.tmp"
  if getent group vsplab > /dev/null; then
    chgrp vsplab "$file.tmp"
  fi
  mv "$file.tmp" "$file"
  echo "wrote $file"
}

vsd() {
  : "${VSD_ROOT_PASSWORD:?VSD_ROOT_PASSWORD is required for vsd.yaml (the password of the CSP root)}"
  write vsd <<YAML
# the options of vsd serve --config FILE, written by vagrant/provision/render-config.sh
host: ${VSD_LISTEN:-0.0.0.0}
port: ${VSD_PORT:-8443}
db: ${VSD_DB:-postgresql://vsplab@/vsplab}
root_password: $(yaml_string "$VSD_ROOT_PASSWORD")
YAML
}

vsc() {
  : "${VSC_VSD:?VSC_VSD is required for vsc.yaml (the VSD base URL, e.g. http://10.0.0.10:8443)}"
  : "${VSD_ROOT_PASSWORD:?VSD_ROOT_PASSWORD is required for vsc.yaml (the VSC logs in to the VSD)}"
  local bgp=""
  if [ -n "${VSC_BGP_ASN:-}" ]; then
    : "${VSC_ROUTER_ID:?VSC_ROUTER_ID is required with VSC_BGP_ASN}"
    bgp="bgp_asn: ${VSC_BGP_ASN}
router_id: ${VSC_ROUTER_ID}
bgp_peer: $(yaml_list "${VSC_BGP_PEERS:-}")"
  fi
  write vsc <<YAML
# the options of vsc run --config FILE, written by vagrant/provision/render-config.sh
vsd: $(yaml_list "$VSC_VSD")
user: csproot
password: $(yaml_string "$VSD_ROOT_PASSWORD")
listen: ${VSC_LISTEN:-0.0.0.0}
of_port: ${VSC_OF_PORT:-6653}
agent_port: ${VSC_AGENT_PORT:-6634}
status_port: ${VSC_STATUS_PORT:-6635}
state_dir: ${VSC_STATE_DIR:-/var/lib/vsplab/vsc}
${bgp}
YAML
}

vrs() {
  : "${VRS_VSC:?VRS_VSC is required for vrs.yaml (the address of its VSC)}"
  : "${VRS_VTEP_IP:?VRS_VTEP_IP is required for vrs.yaml (the underlay address of this host)}"
  : "${VRS_DATAPATH_ID:?VRS_DATAPATH_ID is required for vrs.yaml (unique per host)}"
  write vrs <<YAML
# the options of vrs run --config FILE, written by vagrant/provision/render-config.sh
vsc: ${VRS_VSC}
of_port: ${VRS_OF_PORT:-6653}
agent_port: ${VRS_AGENT_PORT:-6634}
vtep_ip: ${VRS_VTEP_IP}
datapath_id: ${VRS_DATAPATH_ID}
datapath_type: ${VRS_DATAPATH_TYPE:-system}
name: ${VRS_NAME:-$(hostname)}
db: ${VRS_OVSDB:-unix:/var/run/openvswitch/db.sock}
YAML
}

[ $# -gt 0 ] || { echo "usage: $0 vsd|vsc|vrs ..." >&2; exit 2; }
for role in "$@"; do
  case "$role" in
    vsd|vsc|vrs) "$role" ;;
    *) echo "$0: unknown role '$role' (vsd, vsc or vrs)" >&2; exit 2 ;;
  esac
done
