#!/usr/bin/env bash
# Builds the credential-parsing fuzz target with clang's libFuzzer and runs it.
#   tests/fuzz/run_fuzz.sh [SECONDS] [BUILD_DIR]
# The test suite runs it for a few seconds; run it longer on demand, e.g.
#   tests/fuzz/run_fuzz.sh 600
# Findings are written to BUILD_DIR/fuzz/ (crash-*, leak-*).
set -euo pipefail
seconds=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${2:-$root/build}/fuzz
mkdir -p "$out/corpus"
cp -n "$here"/corpus/* "$out/corpus/" 2>/dev/null || true

bin=$out/credential_parsing_fuzz
sources=(
  "$here/credential_parsing_fuzz.cc"
  "$root/server/auth/token_format.cc"
  "$root/server/common/names.cc"
  "$root/server/common/status.cc"
  "$root/server/crypto/aead.cc"
  "$root/server/crypto/keyring.cc"
  "$root/server/crypto/secret.cc"
)
newest_source=$(ls -t "${sources[@]}" "$0" | head -1)
if [ ! -x "$bin" ] || [ "$newest_source" -nt "$bin" ]; then
  # shellcheck disable=SC2046
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root" "${sources[@]}" -o "$bin" \
    $(pkg-config --libs absl_statusor absl_strings absl_str_format) -lcrypto
fi
cd "$out"
exec "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 corpus
