#!/usr/bin/env bash
# Builds the server and runs it on its embedded SQLite store.
#   scripts/run-server.sh [--data_dir=DIR] [--listen=HOST:PORT] [other server flags]
# Default data directory: /var/lib/switchyard; default gRPC address 0.0.0.0:50051.
#
# Without a master key (SWITCHYARD_MASTER_KEY or --master_key_file) the server
# runs in dev mode: it generates a master key and an operator key into the data
# directory and says so loudly. Never use dev mode in production.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --target switchyard-server switchyardctl
args=("$@")
if [ -z "${SWITCHYARD_MASTER_KEY:-}" ] && ! printf '%s\n' "$@" | grep -q -- '--master_key_file'; then
  echo "run-server: no master key given; starting in --dev_mode (local use only)" >&2
  args+=(--dev_mode)
fi
exec build/server/switchyard-server "${args[@]}"
