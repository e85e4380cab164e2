#!/usr/bin/env bash
#/ The physics gate of one environment, the pipeline's gate-review and gate-staging jobs:
#/ `dockercoins-lab gate` measures 1 worker and 10 workers on one rng in the release's namespace,
#/ puts the replicas back, and fails unless they mine 3.33 and 10 hashes/s (within 15%): rng has
#/ lost its cap when 10 workers go past the plateau. The table and a JUnit report go to out/gate/.
#/
#/   ci/gate.sh          NAMESPACE, RELEASE (default dockercoins), KUBECONFIG, KUBE_CONTEXT
#/                       (optional), GATE_SECONDS (the window per cell, default 20)
#/
#/ Needs kubectl on PATH (for KUBE_CONTEXT); ensure_venv installs the lab (dockercoins-lab) and its
#/ pinned dependencies (ci/requirements.txt).
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, die, usage, ensure_venv, use_kube_context
cd "$ROOT"
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
[ -f "${KUBECONFIG:-}" ] || die "KUBECONFIG must be a path to a file (make the CI/CD variable File-type)"
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"
use_kube_context
ensure_venv
mkdir -p out/gate
dockercoins-lab --namespace "$NAMESPACE" --release "$RELEASE" gate \
  --seconds "${GATE_SECONDS:-20}" --junit out/gate/junit.xml --table out/gate/table.md
