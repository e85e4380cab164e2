#!/usr/bin/env bash
#/ Deploy the chart to one environment with this commit's images, wait for the rollout, and run
#/ `helm test`. The pipeline's staging, review and production jobs run it; a person can too.
#/
#/   ci/deploy.sh ENVIRONMENT     ENVIRONMENT is review, staging or production: the values come
#/                                from deploy/ENVIRONMENT.yaml (git is the source of truth)
#/   ci/deploy.sh --uninstall     uninstall the release and delete its namespace
#/
#/ Needs helm and kubectl on PATH (ci/tools.sh helm kubectl), and:
#/   KUBECONFIG   a path to a kubeconfig (GitLab: a File-type variable, which is a path; with
#/                the agent for Kubernetes, the one GitLab gives the job)
#/   KUBE_CONTEXT optional: the agent's context, <agent's project path>:dockercoins (the agent
#/                path); without it, KUBECONFIG's current context (the File-type fallback)
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
#/   BASE_DOMAIN  optional: the environment's address is https://<ENVIRONMENT_SLUG>.<BASE_DOMAIN>,
#/                through the chart's HTTPRoute (webui.httpRoute) on the Gateway GATEWAY_NAME
#/                (needed with BASE_DOMAIN) in GATEWAY_NAMESPACE (optional: the release's own)
#/   ENVIRONMENT_SLUG  default: $CI_ENVIRONMENT_SLUG, else ENVIRONMENT
#/   WEBUI_SERVICE_TYPE  optional: webui's Service type (NodePort, LoadBalancer); without
#/                BASE_DOMAIN, the address it got is the environment's (a ClusterIP has none)
#/   DOTENV       default out/deploy.env: where ENVIRONMENT_URL=<that address> is written, the
#/                dotenv report GitLab reads for environment:url (empty: no address outside the
#/                cluster; `kubectl port-forward service/webui` then, as the log says)
#/
#/ A release left pending-upgrade or pending-rollback (helm was killed: a lost runner, a cancelled
#/ job) is first rolled back to its last deployed revision; one left pending-install, never
#/ deployed, is uninstalled. The resource_group of each environment makes sure no other deploy is
#/ running then.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, die, usage, use_kube_context
cd "$ROOT"
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
HELM_TIMEOUT=${HELM_TIMEOUT:-10m}
PULL_SECRET=gitlab-deploy-token

[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: add the cluster's kubeconfig as a File-type CI/CD variable"
[ -f "$KUBECONFIG" ] || die "KUBECONFIG must be a path to a file (make the CI/CD variable File-type), got something else"
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"
use_kube_context

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

# recover_pending: helm refuses every operation on a release whose last revision is pending
# ("another operation (install/upgrade/rollback) is in progress"), and a helm killed mid-way
# never finishes it.
recover_pending() {
  local status fix="helm -n $NAMESPACE rollback $RELEASE <last deployed revision> (helm -n $NAMESPACE history $RELEASE)"
  status=$(helm status "$RELEASE" --namespace "$NAMESPACE" --output json 2>/dev/null) || return 0
  status=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["info"]["status"])' <<<"$status")
  case "$status" in pending-install | pending-upgrade | pending-rollback) ;; *) return 0 ;; esac
  local deployed
  deployed=$(helm history "$RELEASE" --namespace "$NAMESPACE" --max 256 --output json | python3 -c '
import json, sys
ran = [r["revision"] for r in json.load(sys.stdin) if r["status"] in ("deployed", "superseded")]
print(max(ran) if ran else "")
') || die "release $RELEASE is $status and its history cannot be read; fix it by hand: $fix"
  if [ -n "$deployed" ]; then
    say "release $RELEASE is $status (an earlier helm was stopped mid-way): rolling back to its last deployed revision $deployed first"
    helm rollback "$RELEASE" "$deployed" --namespace "$NAMESPACE" --wait --timeout "$HELM_TIMEOUT" ||
      die "could not roll $RELEASE back to revision $deployed; fix it by hand: $fix"
  elif [ "$status" = pending-install ]; then
    say "release $RELEASE is pending-install and was never deployed (an earlier helm was stopped mid-way): uninstalling it first"
    helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait ||
      die "could not uninstall $RELEASE; fix it by hand: helm -n $NAMESPACE uninstall $RELEASE"
  else
    die "release $RELEASE is $status with no deployed revision to go back to; fix it by hand: helm -n $NAMESPACE uninstall $RELEASE"
  fi
}
recover_pending

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

# The environment's address: a host name on the project's Gateway, or webui's own Service.
slug=${ENVIRONMENT_SLUG:-${CI_ENVIRONMENT_SLUG:-$environment}}
if [ -n "${BASE_DOMAIN:-}" ]; then
  [ -n "${GATEWAY_NAME:-}" ] ||
    die "BASE_DOMAIN is set, GATEWAY_NAME is not: name the Gateway the environments' HTTPRoutes attach to (a CI/CD variable)"
  host=$slug.$BASE_DOMAIN
  sets+=(--set-json webui.httpRoute.enabled=true --set-string "webui.httpRoute.hostnames[0]=$host"
    --set-string "webui.httpRoute.parentRefs[0].name=$GATEWAY_NAME")
  [ -z "${GATEWAY_NAMESPACE:-}" ] ||
    sets+=(--set-string "webui.httpRoute.parentRefs[0].namespace=$GATEWAY_NAMESPACE")
fi
[ -z "${WEBUI_SERVICE_TYPE:-}" ] || sets+=(--set-string "webui.service.type=$WEBUI_SERVICE_TYPE")

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
NAMESPACE=$NAMESPACE RELEASE=$RELEASE ci/helm-test.sh

# webui_address: the address webui really got, as a URL, or nothing: a LoadBalancer's IP or host
# name (waited for: a cloud takes a minute to make one), else a node's address and the NodePort.
webui_address() {
  local service type port address
  service=$(kubectl get service --namespace "$NAMESPACE" \
    -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=webui" -o name | head -n 1)
  [ -n "$service" ] || return 0
  type=$(kubectl get "$service" --namespace "$NAMESPACE" -o jsonpath='{.spec.type}')
  case "$type" in
    LoadBalancer)
      port=$(kubectl get "$service" --namespace "$NAMESPACE" -o jsonpath='{.spec.ports[0].port}')
      for _ in $(seq 60); do
        address=$(kubectl get "$service" --namespace "$NAMESPACE" \
          -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}')
        [ -z "$address" ] || { echo "http://$address:$port/"; return 0; }
        sleep 5
      done
      say "the LoadBalancer of $service got no address in 5 minutes"
      ;;
    NodePort)
      port=$(kubectl get "$service" --namespace "$NAMESPACE" -o jsonpath='{.spec.ports[0].nodePort}')
      address=$(kubectl get nodes -o jsonpath='{range .items[*]}{range .status.addresses[?(@.type=="ExternalIP")]}{.address}{"\n"}{end}{end}' | head -n 1)
      [ -n "$address" ] || address=$(kubectl get nodes -o jsonpath='{range .items[*]}{range .status.addresses[?(@.type=="InternalIP")]}{.address}{"\n"}{end}{end}' | head -n 1)
      [ -z "$address" ] || echo "http://$address:$port/"
      ;;
  esac
}
if [ -n "${BASE_DOMAIN:-}" ]; then
  url=https://$host/
else
  url=$(webui_address)
fi
DOTENV=${DOTENV:-out/deploy.env}
mkdir -p "$(dirname "$DOTENV")"
echo "ENVIRONMENT_URL=$url" >"$DOTENV"
if [ -n "$url" ]; then
  say "the environment's address: $url"
else
  say "webui has no address outside the cluster (a ClusterIP Service): open it with" \
    "kubectl -n $NAMESPACE port-forward service/webui 8000:80, or set BASE_DOMAIN or WEBUI_SERVICE_TYPE"
fi
