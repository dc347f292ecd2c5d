#!/usr/bin/env bash
# A hypervisor: Debian's Open vSwitch on the kernel datapath and vsplab-vrs.service on
# /etc/vsplab/vrs.yaml (VRS_VSC, VRS_VTEP_IP, VRS_DATAPATH_ID; see render-config.sh). Containers are
# plugged later with `vrs plug` (`vsplab run --mode real` does it over SSH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install.sh" openvswitch-switch ethtool
modprobe openvswitch
systemctl enable --now openvswitch-switch.service
bash "$here/render-config.sh" vrs
systemctl enable vsplab-vrs.service
systemctl restart vsplab-vrs.service
