#!/usr/bin/env bash
#/ Roll a release back to its previous good revision, wait for the rollout, and run `helm test`.
#/ The pipeline's manual rollback job runs it for production; a person can too.
#/
#/   ci/rollback.sh              to the newest revision that was deployed (status superseded) and
#/                               whose manifests differ from the ones running now. A failed
#/                               upgrade is skipped (its manifests never ran), and so is the good
#/                               revision that `--atomic` copied after it: going back to that one
#/                               would change nothing and still report success.
#/   ci/rollback.sh REVISION     to that revision (`helm history` lists them)
#/
#/ Needs helm and python3 on PATH, and KUBECONFIG (a path), NAMESPACE, RELEASE (default
#/ dockercoins), HELM_TIMEOUT (default 10m), KUBE_CONTEXT (optional: the agent's context).
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # die, usage, use_kube_context
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
HELM_TIMEOUT=${HELM_TIMEOUT:-10m}
[ -f "${KUBECONFIG:-}" ] || die "KUBECONFIG must be a path to a file (make the CI/CD variable File-type)"
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"
use_kube_context

history=$(helm history "$RELEASE" --namespace "$NAMESPACE" --max 256 --output json) ||
  die "no release $RELEASE in namespace $NAMESPACE to roll back"
manifest() { helm get manifest "$RELEASE" --namespace "$NAMESPACE" --revision "$1"; }

revision=${1:-}
if [ -z "$revision" ]; then
  # Newest first: the revisions before the current one that ran (superseded).
  read -r current candidates < <(python3 -c '
import json, sys
history = sorted(json.load(sys.stdin), key=lambda r: r["revision"])
current = history[-1]["revision"]
ran = [r["revision"] for r in history if r["revision"] < current and r["status"] == "superseded"]
print(current, *reversed(ran))
' <<<"$history")
  running=$(manifest "$current")
  for candidate in $candidates; do
    if [ "$(manifest "$candidate")" != "$running" ]; then
      revision=$candidate
      break
    fi
    echo "revision $candidate: the same manifests as the current revision $current, skipped"
  done
  [ -n "$revision" ] || die "release $RELEASE in namespace $NAMESPACE has no earlier deployed" \
    "revision with other manifests than revision $current: nothing to roll back to"
fi

helm history "$RELEASE" --namespace "$NAMESPACE" --max 10
echo "rolling $RELEASE in $NAMESPACE back to revision $revision"
helm rollback "$RELEASE" "$revision" --namespace "$NAMESPACE" --wait --timeout "$HELM_TIMEOUT"
"$(dirname "$0")/helm-test.sh"
