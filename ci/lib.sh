# Shared by the ci/*.sh scripts: the repo root, the Python venv and redis-server.
# Source it; it defines functions and ROOT, and changes nothing until they are called.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}

log() { printf '%s\n' "$*" >&2; }

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

# The venv with every service's pinned requirements plus the local tools (honcho, pytest,
# matplotlib), and any more requirement files named. A file is installed again only when it
# changed, so ci/up.sh and ci/test.sh (which names more files) do not undo each other.
ensure_venv() {
  local files=("$ROOT"/images/*/requirements.txt "$ROOT/ci/requirements.txt" "$@")
  local stamps="$VENV/.installed" changed=() f
  for f in "${files[@]}"; do
    [ -e "$stamps/$(sha256sum < "$f" | cut -c1-16)" ] || changed+=("$f")
  done
  if [ ${#changed[@]} -gt 0 ]; then
    log "installing Python requirements into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local args=()
    for f in "${files[@]}"; do args+=(-r "$f"); done
    "$VENV/bin/pip" install -q --disable-pip-version-check "${args[@]}"
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
