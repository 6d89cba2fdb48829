#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need, when missing.
# Safe to run repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libssl-dev libsqlite3-dev libgtest-dev libgmock-dev libboost-dev
  prometheus-cpp-dev libcurl4-openssl-dev libpq-dev postgresql
  golang-github-gogo-googleapis-dev
  python3 python3-grpcio python3-protobuf
  openssl clang libclang-rt-14-dev chromium
  unzip python3-yaml libgoogle-perftools-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The Helm test fetches Helm with npm: Debian's, unless an npm is already
# installed some other way (its package would conflict).
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Waits for another apt (unattended upgrades) instead of failing at once.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
