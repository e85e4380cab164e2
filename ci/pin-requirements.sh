#!/usr/bin/env bash
#/ Compile every requirements.in into a pinned requirements.txt with pip-tools.
#/ Run it after editing a requirements.in; tests/ check that each .in is pinned in its .txt.
#/
#/   ci/pin-requirements.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, usage
cd "$ROOT"
case "${1:-}" in
  "") ;;
  -h | --help) usage 0 ;;
  *) usage ;;
esac
tools=.tools/pip-tools
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q "pip-tools==7.6.2"; }
# This machine sets PIP_FIND_LINKS; a pinned file must not point at a local folder.
unset PIP_FIND_LINKS
for spec in images/*/requirements.in ci/requirements.in; do
  "$tools/bin/pip-compile" --quiet --strip-extras --no-emit-index-url --no-emit-find-links --upgrade \
    --output-file "${spec%.in}.txt" "$spec"
done
