#!/usr/bin/env bash
#/ Deploy the chart to one environment with this commit's images, wait for the rollout, and run
#/ `helm test`. The pipeline's staging, review and production jobs run it; a person can too.
#/
#/   ci/deploy.sh ENVIRONMENT     ENVIRONMENT is review, staging or production: the values come
#/                                from deploy/ENVIRONMENT.yaml (git is the source of truth)
#/   ci/deploy.sh --uninstall     uninstall the release and delete its namespace
#/
#/ Needs helm and kubectl on PATH (ci/tools.sh helm kubectl), and:
#/   KUBECONFIG   a path to a kubeconfig (GitLab: a File-type variable, which is a path)
#/   NAMESPACE    the environment's namespace (the pipeline: dockercoins-<environment slug>)
#/   REGISTRY     where the images are, <REGISTRY>/<service>:<TAG> (default: $CI_REGISTRY_IMAGE)
#/   TAG          the image tag (default: $CI_COMMIT_SHORT_SHA, which may be all digits)
#/   RELEASE      default dockercoins
#/   CI_DEPLOY_USER, CI_DEPLOY_PASSWORD   optional: the `gitlab-deploy-token` deploy token
#/                (read_registry); GitLab sets both when the project has one. The cluster pulls with
#/                it whenever a pod starts, long after the job: CI_JOB_TOKEN expires with the job.
#/   CI_REGISTRY  the registry host for that pull secret (default: REGISTRY's host)
#/   HELM_TIMEOUT default 10m, for the rollout and for `helm test`
#/   CLUSTER_VALUES  optional: a values file for what the cluster itself needs (for example a redis
#/                image from a mirror), layered after deploy/ENVIRONMENT.yaml; the registry and the
#/                tag above still win
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, die, usage
cd "$ROOT"
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
HELM_TIMEOUT=${HELM_TIMEOUT:-10m}
PULL_SECRET=gitlab-deploy-token

[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: add the cluster's kubeconfig as a File-type CI/CD variable"
[ -f "$KUBECONFIG" ] || die "KUBECONFIG must be a path to a file (make the CI/CD variable File-type), got something else"
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"

if [ "${1:-}" = "--uninstall" ]; then
  helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --ignore-not-found
  kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait
  exit 0
fi

environment=${1:-}
values=deploy/$environment.yaml
if [ -z "$environment" ] || [ ! -f "$values" ]; then
  die "usage: ci/deploy.sh review|staging|production (the values file deploy/<name>.yaml), or --uninstall"
fi
REGISTRY=${REGISTRY:-${CI_REGISTRY_IMAGE:-}}
TAG=${TAG:-${CI_COMMIT_SHORT_SHA:-}}
[ -n "$REGISTRY" ] || die "REGISTRY is not set (the pipeline uses CI_REGISTRY_IMAGE)"
[ -n "$TAG" ] || die "TAG is not set (the pipeline uses CI_COMMIT_SHORT_SHA)"

kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -

# Strings from the pipeline go in with --set-string: a short SHA can be all digits (12345678),
# which --set would turn into a number that the chart's schema rejects.
sets=(--set-string "global.image.registry=$REGISTRY" --set-string "global.image.tag=$TAG")
if [ -n "${CI_DEPLOY_PASSWORD:-}" ]; then
  server=${CI_REGISTRY:-${REGISTRY%%/*}}
  kubectl create secret docker-registry "$PULL_SECRET" --namespace "$NAMESPACE" \
    --docker-server="$server" --docker-username="${CI_DEPLOY_USER:?CI_DEPLOY_USER is not set}" \
    --docker-password="$CI_DEPLOY_PASSWORD" --dry-run=client -o yaml | kubectl apply -f -
  sets+=(--set-string "global.imagePullSecrets[0].name=$PULL_SECRET")
fi

# --reset-values: the release gets exactly the chart's defaults, deploy/<env>.yaml and the lines
# above, so a hand `helm upgrade --set ...` (or `kubectl scale`) does not survive a deploy.
# --atomic rolls back a failed upgrade (Helm 3 is pinned by ci/tools.sh: Helm 4 renamed the flag
# to --rollback-on-failure). The description shows in `helm history`, which the rollback reads.
files=(--values "$values")
if [ -n "${CLUSTER_VALUES:-}" ]; then
  [ -f "$CLUSTER_VALUES" ] || die "CLUSTER_VALUES must be a path to a values file (a File-type variable)"
  files+=(--values "$CLUSTER_VALUES")
fi
helm upgrade --install "$RELEASE" charts/dockercoins --namespace "$NAMESPACE" \
  "${files[@]}" --reset-values "${sets[@]}" \
  --description "$environment: image tag $TAG, commit ${CI_COMMIT_SHA:-$TAG}" \
  --atomic --wait --timeout "$HELM_TIMEOUT"
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout "$HELM_TIMEOUT"
