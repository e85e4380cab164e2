#!/usr/bin/env bash
# Deploy the chart with this pipeline's images, wait for the rollout, and run `helm test`.
# The pipeline's deploy job runs it; a person can too, with the same variables.
#
#   ci/deploy.sh               install or upgrade
#   ci/deploy.sh --uninstall   remove the release (the environment's Stop button)
#
# Needs helm and kubectl on PATH (ci/tools.sh), and:
#   KUBECONFIG    a path to a kubeconfig (GitLab: a File-type variable, which is a path)
#   REGISTRY TAG  the images, as <REGISTRY>/<service>:<TAG>
#   RELEASE NAMESPACE                      default: dockercoins, dockercoins
#   REGISTRY_PULL_USER REGISTRY_PULL_TOKEN optional: a deploy token for a private registry
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "ci/deploy.sh: $*" >&2; exit 1; }
RELEASE=${RELEASE:-dockercoins}
NAMESPACE=${NAMESPACE:-dockercoins}

[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: add the cluster's kubeconfig as a File-type CI/CD variable"
[ -f "$KUBECONFIG" ] || die "KUBECONFIG must be a path to a file (make the CI/CD variable File-type), got something else"

if [ "${1:-}" = "--uninstall" ]; then
  helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --ignore-not-found
  exit 0
fi
: "${REGISTRY:?REGISTRY is not set (the pipeline sets it to CI_REGISTRY_IMAGE)}"
: "${TAG:?TAG is not set (the pipeline sets it to CI_COMMIT_SHORT_SHA)}"

kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
pull=()
if [ -n "${REGISTRY_PULL_TOKEN:-}" ]; then
  # A deploy token, not CI_JOB_TOKEN: pods pull again on every restart, long after this job.
  kubectl create secret docker-registry dockercoins-pull --namespace "$NAMESPACE" \
    --docker-server="${REGISTRY%%/*}" --docker-username="${REGISTRY_PULL_USER:?REGISTRY_PULL_USER is not set}" \
    --docker-password="$REGISTRY_PULL_TOKEN" --dry-run=client -o yaml | kubectl apply -f -
  pull=(--set "global.imagePullSecrets[0].name=dockercoins-pull")
fi

# Helm 3 is pinned by ci/tools.sh; Helm 4 renames --atomic to --rollback-on-failure.
helm upgrade --install "$RELEASE" charts/dockercoins --namespace "$NAMESPACE" \
  --set global.image.registry="$REGISTRY" --set global.image.tag="$TAG" "${pull[@]}" \
  --atomic --wait --timeout 10m
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 5m
