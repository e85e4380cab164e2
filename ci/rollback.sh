#!/usr/bin/env bash
#/ Roll a release back to its previous good revision, wait for the rollout, and run `helm test`.
#/ The pipeline's manual rollback job runs it for production; a person can too.
#/
#/   ci/rollback.sh              to the newest revision before the current one that was deployed
#/                               (status superseded): a failed upgrade that --atomic undid is
#/                               skipped, since its manifests never ran
#/   ci/rollback.sh REVISION     to that revision (`helm history` lists them)
#/
#/ Needs helm and python3 on PATH, and KUBECONFIG (a path), NAMESPACE, RELEASE (default
#/ dockercoins), HELM_TIMEOUT (default 10m).
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # die, usage
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
HELM_TIMEOUT=${HELM_TIMEOUT:-10m}
[ -f "${KUBECONFIG:-}" ] || die "KUBECONFIG must be a path to a file (make the CI/CD variable File-type)"
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"

history=$(helm history "$RELEASE" --namespace "$NAMESPACE" --max 256 --output json) ||
  die "no release $RELEASE in namespace $NAMESPACE to roll back"
revision=${1:-$(python3 -c '
import json, sys
history = sorted(json.load(sys.stdin), key=lambda r: r["revision"])
current = history[-1]["revision"]
good = [r["revision"] for r in history if r["revision"] < current and r["status"] == "superseded"]
print(good[-1] if good else "")
' <<<"$history")}
[ -n "$revision" ] || die "release $RELEASE in namespace $NAMESPACE has no earlier deployed revision to go back to"

helm history "$RELEASE" --namespace "$NAMESPACE" --max 10
echo "rolling $RELEASE in $NAMESPACE back to revision $revision"
helm rollback "$RELEASE" "$revision" --namespace "$NAMESPACE" --wait --timeout "$HELM_TIMEOUT"
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout "$HELM_TIMEOUT"
