#!/usr/bin/env bash
#/ The gate between staging and production: which commits passed staging.
#/
#/   ci/passed-staging.sh record [SHA]   the staging job, once the rollout and `helm test` passed
#/   ci/passed-staging.sh check [SHA]    the production job, first: exits 0 if SHA passed staging,
#/                                       else 1 with a message that says what to do
#/   ci/passed-staging.sh list           every recorded commit, by hand
#/
#/ SHA is a full commit SHA (default: $CI_COMMIT_SHA, else `git rev-parse HEAD`). The record is
#/ one key per commit in the ConfigMap `passed-staging` of the staging namespace: the key is the
#/ full SHA, the value says when, from which pipeline and job, and with which image tag. Why this
#/ and not the workshop's `qa=ok` namespace label: docs/pipeline.md ("The staging gate").
#/
#/ Needs kubectl on PATH and:
#/   KUBECONFIG          a path to a kubeconfig
#/   KUBE_CONTEXT        optional: the agent's context (see ci/deploy.sh)
#/   STAGING_KUBECONFIG  optional, for `check`: staging's kubeconfig, when production's cluster is
#/                       another one (read access to ConfigMaps in the staging namespace is enough)
#/   STAGING_NAMESPACE   the staging namespace (the pipeline: dockercoins-staging)
set -euo pipefail

. "$(dirname "$0")/lib.sh"   # die, usage, use_kube_context
case "${1:-}" in -h | --help) usage 0 ;; esac
CONFIGMAP=passed-staging

action=${1:-}
sha=${2:-${CI_COMMIT_SHA:-$(git -C "$(dirname "$0")" rev-parse HEAD 2>/dev/null || true)}}
: "${STAGING_NAMESPACE:?STAGING_NAMESPACE is not set (the pipeline sets it to the staging namespace)}"
if [ "$action" != list ] && ! [[ "$sha" =~ ^[0-9a-f]{40}$ ]]; then
  die "'$sha' is not a full commit SHA (40 hex digits)"
fi

case "$action" in
  record)
    [ -f "${KUBECONFIG:-}" ] || die "KUBECONFIG must be a path to a file (a File-type CI/CD variable)"
    use_kube_context
    value="passed=$(date -u +%Y-%m-%dT%H:%M:%SZ) tag=${TAG:-${CI_COMMIT_SHORT_SHA:-${sha:0:8}}}"
    value+=" ref=${CI_COMMIT_REF_NAME:-unknown} pipeline=${CI_PIPELINE_URL:-by-hand} job=${CI_JOB_URL:-by-hand}"
    if ! kubectl get configmap "$CONFIGMAP" --namespace "$STAGING_NAMESPACE" >/dev/null 2>&1; then
      kubectl create configmap "$CONFIGMAP" --namespace "$STAGING_NAMESPACE" >/dev/null
      kubectl label configmap "$CONFIGMAP" --namespace "$STAGING_NAMESPACE" \
        app.kubernetes.io/part-of=dockercoins app.kubernetes.io/managed-by=gitlab-ci >/dev/null
    fi
    # kubectl writes the JSON of the new key itself, so no value needs quoting by hand.
    data=$(kubectl create configmap "$CONFIGMAP" --from-literal="$sha=$value" --dry-run=client -o jsonpath='{.data}')
    kubectl patch configmap "$CONFIGMAP" --namespace "$STAGING_NAMESPACE" --type merge \
      --patch "{\"data\": $data}" >/dev/null
    echo "commit $sha passed staging: recorded in ConfigMap $CONFIGMAP, namespace $STAGING_NAMESPACE"
    ;;
  check)
    export KUBECONFIG=${STAGING_KUBECONFIG:-${KUBECONFIG:-}}
    [ -f "$KUBECONFIG" ] || die "KUBECONFIG must be a path to a file (a File-type CI/CD variable)"
    [ -n "${STAGING_KUBECONFIG:-}" ] || use_kube_context   # staging's own kubeconfig has its own
    # Empty when the ConfigMap or the key is missing; an error (no access, no cluster) fails here.
    record=$(kubectl get configmap "$CONFIGMAP" --namespace "$STAGING_NAMESPACE" --ignore-not-found \
      -o go-template="{{with .data}}{{with index . \"$sha\"}}{{.}}{{end}}{{end}}") ||
      die "could not read ConfigMap $CONFIGMAP in namespace $STAGING_NAMESPACE (see kubectl's error above)"
    if [ -z "$record" ]; then
      die "refusing to deploy: commit $sha has not passed staging (no record of it in ConfigMap" \
        "$CONFIGMAP, namespace $STAGING_NAMESPACE). Production takes only a commit that the default" \
        "branch's staging job deployed and tested: merge it, let staging pass, then tag it (or run this job again)."
    fi
    echo "commit $sha passed staging: $record"
    ;;
  list)
    kubectl get configmap "$CONFIGMAP" --namespace "$STAGING_NAMESPACE" \
      -o go-template='{{range $sha, $record := .data}}{{$sha}} {{$record}}{{"\n"}}{{end}}'
    ;;
  *) die "usage: ci/passed-staging.sh record|check [SHA] | list" ;;
esac
