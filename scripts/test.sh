#!/usr/bin/env bash
# Builds everything and runs the whole test suite (unit, integration against
# the real server binary, and a short benchmark smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 600
