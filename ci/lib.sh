# Shared by the ci/*.sh scripts: the repo root and cache, logging, the usage text, apt and npm
# installs, the Python venv, redis-server, and Go module builds.
# Source it; it defines functions and variables, and changes nothing until a function is called.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
# Built binaries and image root filesystems, shared by every checkout on the machine.
# shellcheck disable=SC2034  # read by the scripts that source this file
CACHE=${DOCKERCOINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dockercoins}
# The name in front of say/die messages (a script may set its own after sourcing this file).
LOG_NAME=ci/$(basename -- "$0")

# ---- logging and usage ---------------------------------------------------------------------------
log() { printf '%s\n' "$*" >&2; }
say() { log "$LOG_NAME: $*"; }
die() { say "$*"; exit 1; }

# usage [STATUS]: prints the script's usage block, its `#/` comment lines (so it can never print
# code), then exits: STATUS 0 (--help) on stdout, else (a bad argument; default 2) on stderr.
usage() {
  local status=${1:-2}
  if [ "$status" -eq 0 ]; then
    sed -n 's/^#\/ \{0,1\}//p' "$0"
  else
    sed -n 's/^#\/ \{0,1\}//p' "$0" >&2
  fi
  exit "$status"
}

# ---- packages ------------------------------------------------------------------------------------
# apt-get install, once per package, as root (or through sudo when there is one).
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  log "installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# The venv with every service's pinned requirements plus the local tools and the lab
# (ci/requirements.txt: pyproject.toml's lab and bench extras), and any more requirement files
# named (ci/test.sh: tests/requirements.txt); then the project itself, editable, so that
# `dockercoins-lab` is on PATH and `dockercoins_lab` imports from lab/. A file is installed again
# only when it changed, so ci/up.sh and ci/test.sh (which names more files) do not undo each other.
ensure_venv() {
  local files=("$ROOT"/images/*/requirements.txt "$ROOT/ci/requirements.txt" "$@")
  local stamps="$VENV/.installed" changed=() f
  for f in "${files[@]}" "$ROOT/pyproject.toml"; do
    [ -e "$stamps/$(sha256sum < "$f" | cut -c1-16)" ] || changed+=("$f")
  done
  if [ ${#changed[@]} -gt 0 ]; then
    log "installing Python requirements into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local args=()
    for f in "${files[@]}"; do args+=(-r "$f"); done
    "$VENV/bin/pip" install -q --disable-pip-version-check "${args[@]}"
    # Its dependencies are the pins above; pip fetches only the build backend pyproject pins.
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --editable "$ROOT"
    mkdir -p "$stamps"
    for f in "${changed[@]}"; do touch "$stamps/$(sha256sum < "$f" | cut -c1-16)"; done
  fi
  export PATH="$VENV/bin:$PATH"
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

# An npm tool pinned by ci/<name>/package-lock.json, installed with `npm ci` into
# .tools/<name> (not the source tree) and linked into .tools/bin.
ensure_npm_tool() {
  local name=$1 bin=${2:-$1}
  local src="$ROOT/ci/$name" dir="$ROOT/.tools/$name"
  mkdir -p "$ROOT/.tools/bin"
  if ! [ -x "$dir/node_modules/.bin/$bin" ] || ! cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
    log "installing $name (npm ci, ci/$name/package-lock.json)"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  fi
  ln -sf "$dir/node_modules/.bin/$bin" "$ROOT/.tools/bin/$bin"
}

# ---- Go module builds ----------------------------------------------------------------------------
GO_MIN=1.26          # kwok v0.8.0 (ci/cluster.sh) needs go 1.26
GO_PINNED=go1.26.8   # fetched from the Go proxy (a few seconds) only when the local go is older

# The Go toolchain and the flags every build here uses: static binaries, no local paths in them,
# and -buildvcs=false (ci/cluster is inside our repo; modules are built from copies).
go_setup() {
  command -v go >/dev/null || die "go is needed (>= $GO_MIN) to build the Go tools"
  local have
  have=$(go env GOVERSION | sed 's/^go//')
  if [ "$(printf '%s\n' "$GO_MIN" "$have" | sort -V | head -1)" = "$GO_MIN" ]; then
    export GOTOOLCHAIN=local
  else
    export GOTOOLCHAIN=$GO_PINNED
  fi
  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
}

# go_module_dir MODULE VERSION: prints the module's directory in the Go module cache, downloading
# it if needed.
go_module_dir() {
  go mod download -json "$1@$2" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

# go_build_module MODULE VERSION PACKAGE OUT [LDFLAGS]: builds a main package of a module as the
# main module, with the module's own go.mod and go.sum, from a writable copy. (`go install
# pkg@version` refuses a module with replace directives, like helm-unittest, and reads the
# module's version list, which the proxy refuses for chart-testing.)
go_build_module() {
  go_in_module "$1" "$2" build -ldflags "-s -w ${5:-}" -o "$4" "$3"
}

# go_in_module MODULE VERSION GO_ARGS...: `go GO_ARGS` in a writable copy of the module, as its
# main module (GOWORK=off: a module's go.work names folders its zip leaves out).
go_in_module() {
  local src work status=0
  src=$(go_module_dir "$1" "$2")
  shift 2
  work=$(mktemp -d)
  cp -r "$src/." "$work/" && chmod -R u+w "$work"
  GOWORK=off go -C "$work" "$@" || status=$?
  rm -rf "$work"
  return "$status"
}

# ---- the cluster a deploy job talks to -------------------------------------------------------------
# use_kube_context: with KUBE_CONTEXT set (the GitLab agent path), KUBECONFIG becomes a copy of
# that one context. GitLab gives a job that the agent's ci_access admits a KUBECONFIG with one
# context per agent, named <agent's project path>:<agent name>, and no current context. A copy,
# not `kubectl config use-context`: a person's own kubeconfig is never rewritten. Without
# KUBE_CONTEXT, KUBECONFIG is used as it is (the File-type variable, the fallback).
use_kube_context() {
  [ -n "${KUBE_CONTEXT:-}" ] || return 0
  if ! kubectl config get-contexts "$KUBE_CONTEXT" >/dev/null 2>&1; then
    die "KUBE_CONTEXT '$KUBE_CONTEXT' is not a context of KUBECONFIG (it has:" \
      "$(kubectl config get-contexts -o name | paste -sd ' ' -)): check the agent's name, and that" \
      ".gitlab/agents/dockercoins/config.yaml's ci_access lists this project"
  fi
  local copy
  copy=$(mktemp "${TMPDIR:-/tmp}/kubeconfig.XXXXXX")
  # shellcheck disable=SC2064  # the path is fixed now, on purpose
  trap "rm -f '$copy'" EXIT
  kubectl config view --raw --flatten --minify --context "$KUBE_CONTEXT" >"$copy"
  export KUBECONFIG=$copy
  say "using context $KUBE_CONTEXT of the agent"
}
