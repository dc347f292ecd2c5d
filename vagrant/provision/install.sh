#!/usr/bin/env bash
# Every machine of the lab: Debian packages, the `vsplab` system user, vsplab itself from the
# checked-out tree (synced to $VSPLAB_SRC) into /opt/vsplab/venv, and the systemd units of
# packaging/systemd. Idempotent: provisioning again upgrades vsplab to the tree as it is now.
# Extra arguments are more Debian packages (the role's engine: postgresql, frr, openvswitch-switch).
set -euo pipefail

src="${VSPLAB_SRC:-/vsplab}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv python3-dev gcc iproute2 iputils-ping "$@"

if ! id vsplab > /dev/null 2>&1; then
  useradd --system --home-dir /var/lib/vsplab --no-create-home --shell /usr/sbin/nologin vsplab
fi

# a copy, so the installed tree does not change under the daemons when the checkout does
mkdir -p /opt/vsplab
rm -rf /opt/vsplab/src
cp -a "$src" /opt/vsplab/src
rm -rf /opt/vsplab/src/.venv /opt/vsplab/src/.vagrant
[ -x /opt/vsplab/venv/bin/python ] || python3 -m venv /opt/vsplab/venv
/opt/vsplab/venv/bin/pip install -q --upgrade pip
/opt/vsplab/venv/bin/pip install -q "/opt/vsplab/src[postgres]"

install -m 0644 /opt/vsplab/src/packaging/systemd/vsplab-*.service /etc/systemd/system/
systemctl daemon-reload
install -d -m 0750 -g vsplab /etc/vsplab
