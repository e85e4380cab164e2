#!/usr/bin/env bash
#/ Compile every requirements.in, and the extras of pyproject.toml, into pinned requirements files
#/ with pip-tools. Run it after editing a requirements.in or pyproject.toml; tests/ check that each
#/ .in is pinned in its .txt.
#/
#/   images/<service>/requirements.txt   each image's own, from its requirements.in
#/   ci/requirements.txt                 pyproject's lab and bench extras (ci/lib.sh's venv)
#/   tests/requirements.txt              lab, bench and test (ci/test.sh adds it to the venv)
#/   ci/lint-requirements.txt            lint (ci/lint.sh's own venv)
#/
#/ Each is constrained by the ones before it, so a package two of them share has one version.
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
compile() {
  "$tools/bin/pip-compile" --quiet --strip-extras --no-emit-index-url --no-emit-find-links --upgrade "$@"
}
for spec in images/*/requirements.in; do
  compile --output-file "${spec%.in}.txt" "$spec"
done
images=()
for pins in images/*/requirements.txt; do images+=(--constraint "$pins"); done
compile "${images[@]}" --extra lab --extra bench --output-file ci/requirements.txt pyproject.toml
compile "${images[@]}" --constraint ci/requirements.txt --extra lab --extra bench --extra test \
  --output-file tests/requirements.txt pyproject.toml
compile --constraint tests/requirements.txt --extra lint --output-file ci/lint-requirements.txt \
  pyproject.toml
