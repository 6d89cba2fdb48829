#!/usr/bin/env bash
# Builds the server and runs it on its embedded SQLite store.
#   scripts/run-server.sh [--data_dir=DIR] [--listen=HOST:PORT] [other server flags]
# Default data directory: /var/lib/switchyard; default gRPC address 0.0.0.0:50051.
#
# Given no key and no configuration (no SWITCHYARD_MASTER_KEY and none of
# --master_key_file, --flagfile, --database_url, --bootstrap_operator_key_file)
# the server runs in dev mode: it generates a master key and an operator key
# into the data directory and says so loudly. Never use dev mode in production;
# with any of those the server gets exactly the flags given.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --target switchyard-server switchyardctl
args=("$@")
configured=false
for arg in "$@"; do
  case "$arg" in
    --master_key_file*|--flagfile*|--database_url*|--bootstrap_operator_key_file*|--dev_mode*|--nodev_mode*)
      configured=true ;;
  esac
done
if [ -z "${SWITCHYARD_MASTER_KEY:-}" ] && [ "$configured" = false ]; then
  echo "run-server: no master key given; starting in --dev_mode (local use only)" >&2
  args+=(--dev_mode)
fi
exec build/server/switchyard-server "${args[@]}"
