#!/usr/bin/env bash
#/ `helm test` of a release, and when a test fails, the log of each failed test pod: the chart's
#/ test pods are deleted when they pass (hook-delete-policy hook-succeeded) and kept when they
#/ fail, so `helm test --logs`, which reads every test pod, fails on the deleted ones and prints
#/ nothing useful. ci/deploy.sh and ci/rollback.sh run it last.
#/
#/   ci/helm-test.sh     RELEASE (default dockercoins), NAMESPACE, HELM_TIMEOUT (default 10m)
#/
#/ Needs helm, kubectl and python3 on PATH, and KUBECONFIG. Exits with helm test's status.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # die, usage
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
HELM_TIMEOUT=${HELM_TIMEOUT:-10m}
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"

status=0
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout "$HELM_TIMEOUT" || status=$?
[ "$status" -eq 0 ] && exit 0

# The test hooks whose last run failed, from the release record helm test just wrote.
failed=$(helm status "$RELEASE" --namespace "$NAMESPACE" --output json | python3 -c '
import json, sys
for hook in json.load(sys.stdin).get("hooks") or []:
    if "test" in hook.get("events", []) and hook.get("last_run", {}).get("phase") == "Failed":
        print(hook["name"])
')
for pod in $failed; do
  log "--- the log of failed test pod $pod (kubectl -n $NAMESPACE logs pod/$pod):"
  kubectl logs "pod/$pod" --namespace "$NAMESPACE" --all-containers >&2 ||
    log "(no log: the pod never started; kubectl -n $NAMESPACE describe pod/$pod says why)"
done
die "helm test failed${failed:+: $(echo "$failed" | paste -sd ' ' -)}"
