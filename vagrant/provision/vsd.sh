#!/usr/bin/env bash
# A VSD machine: vsplab-vsd.service on /etc/vsplab/vsd.yaml. With PG_SERVER=yes this machine also
# runs the PostgreSQL every VSD of the lab shares (listening on the private network, password auth).
# Environment: VSD_ROOT_PASSWORD, PG_PASSWORD, VSD_DB (postgresql://vsplab:PW@ADDR/vsplab),
# PG_SERVER (yes|no), PG_NETWORK (the private network allowed in, e.g. 192.168.56.0/24).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "${PG_SERVER:-no}" = yes ]; then
  bash "$here/install.sh" postgresql
  : "${PG_PASSWORD:?PG_PASSWORD is required on the PostgreSQL server}"
  : "${PG_NETWORK:?PG_NETWORK is required on the PostgreSQL server}"
  conf_dir="$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -type d | head -n 1)"
  cat > "$conf_dir/conf.d/vsplab.conf" <<CONF
listen_addresses = '*'
CONF
  if ! grep -q "vsplab vsplab $PG_NETWORK" "$conf_dir/pg_hba.conf"; then
    echo "host vsplab vsplab $PG_NETWORK scram-sha-256" >> "$conf_dir/pg_hba.conf"
  fi
  systemctl restart postgresql
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -v pw="$PG_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE vsplab LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vsplab') \gexec
ALTER ROLE vsplab PASSWORD :'pw';
SELECT 'CREATE DATABASE vsplab OWNER vsplab' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'vsplab') \gexec
SQL
else
  bash "$here/install.sh"
fi

bash "$here/render-config.sh" vsd
systemctl enable vsplab-vsd.service
systemctl restart vsplab-vsd.service
