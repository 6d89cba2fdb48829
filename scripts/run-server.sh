#!/usr/bin/env bash
# Builds the server and runs it on its embedded SQLite store.
#   scripts/run-server.sh [--data_dir=DIR] [--listen=HOST:PORT] [other server flags]
# Default data directory: /var/lib/switchyard; default gRPC address 0.0.0.0:50051.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --target switchyard-server switchyardctl
exec build/server/switchyard-server "$@"
