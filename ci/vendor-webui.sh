#!/usr/bin/env bash
#/ Vendor the dashboard's chart library (uPlot, pinned in ci/webui-vendor/package-lock.json) into
#/ images/webui/static/vendor/uplot/, so the page loads nothing from any other host (clusters are
#/ often offline, and the talk's projector may be too).
#/
#/   ci/vendor-webui.sh          install the pinned package and copy its files into the repo
#/   ci/vendor-webui.sh --check  install it and fail if the committed copy differs by one byte
#/
#/ `npm ci` checks the tarball against the lock file's sha512 integrity, so --check proves the
#/ committed files are exactly the pinned npm package's. It installs into a temporary folder:
#/ no node_modules ever lands in the image build context (images/).
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, die, usage
PINS="$ROOT/ci/webui-vendor"
DEST="$ROOT/images/webui/static/vendor/uplot"
# package path -> vendored name
FILES=("dist/uPlot.iife.min.js:uPlot.iife.min.js" "dist/uPlot.min.css:uPlot.min.css" "LICENSE:LICENSE")

mode=copy
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h | --help) usage 0 ;;
  *) usage ;;
esac

command -v npm >/dev/null || die "npm is needed (apt-get install npm)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$PINS/package.json" "$PINS/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
pkg="$work/node_modules/uplot"
version=$(node -p "require('$pkg/package.json').version")
pinned=$(node -p "require('$PINS/package.json').dependencies.uplot")
[ "$version" = "$pinned" ] || { echo "installed uplot $version, pinned $pinned" >&2; exit 1; }

status=0
mkdir -p "$DEST"
for pair in "${FILES[@]}"; do
  src="$pkg/${pair%%:*}" dst="$DEST/${pair##*:}"
  if [ "$mode" = copy ]; then
    cp "$src" "$dst"
  elif ! cmp -s "$src" "$dst"; then
    echo "DIFFERS from uplot@$version: ${dst#"$ROOT"/} (run ci/vendor-webui.sh)" >&2
    status=1
  fi
done
if [ "$mode" = copy ]; then
  echo "uplot $version" > "$DEST/VERSION"
  echo "vendored uplot $version into ${DEST#"$ROOT"/}" >&2
elif [ "$(cat "$DEST/VERSION" 2>/dev/null)" != "uplot $version" ]; then
  echo "DIFFERS: ${DEST#"$ROOT"/}/VERSION does not say 'uplot $version'" >&2
  status=1
else
  echo "vendored files match uplot@$version" >&2
fi
exit $status
