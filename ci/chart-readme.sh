#!/usr/bin/env bash
#/ Regenerates the parameter table of charts/dockercoins/README.md from the `## @param` comments
#/ of charts/dockercoins/values.yaml, with the pinned readme-generator-for-helm (ci/tools.sh).
#/
#/   ci/chart-readme.sh [README]     default README: charts/dockercoins/README.md
#/
#/ tests/chart runs it on a copy of the README and fails when the result differs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, usage
case "${1:-}" in -h | --help) usage 0 ;; esac
readme="${1:-$ROOT/charts/dockercoins/README.md}"
"$ROOT/ci/tools.sh" readme-generator
"$ROOT/.tools/bin/readme-generator" --values "$ROOT/charts/dockercoins/values.yaml" --readme "$readme" >/dev/null
