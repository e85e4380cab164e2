#!/usr/bin/env bash
#/ The pipeline's lint job; a person can run it too. Every linter is pinned, and each one runs even
#/ when an earlier one failed, so one run shows every finding. Exits 1 if any failed.
#/
#/   helm lint --strict      the chart with its defaults and with each deploy/<environment>.yaml
#/   kubernetes-validate     what those render, against Kubernetes' strict schemas (unknown fields
#/                           are errors), for KUBE_VERSION (default 1.34.0, what LKE runs)
#/   ruff                    the Python code (pyflakes and pycodestyle's error rules)
#/   hadolint                images/*/Dockerfile
#/   yamllint                the YAML files, with ci/yamllint.yaml
#/   ShellCheck              ci/*.sh and .ci/run (warnings and errors)
#/
#/ helm comes from ci/tools.sh; the others from ci/lint-requirements.txt (PyPI, every dependency
#/ pinned), in their own venv, .tools/lint-venv.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
case "${1:-}" in
  "") ;;
  -h | --help) usage 0 ;;
  *) usage ;;
esac

KUBE_VERSION=${KUBE_VERSION:-1.34.0}
venv=$ROOT/.tools/lint-venv
stamp=$venv/.requirements-$(sha256sum <ci/lint-requirements.txt | cut -c1-16)
if [ ! -e "$stamp" ]; then
  log "installing the linters into $venv (ci/lint-requirements.txt)"
  rm -rf "$venv" && python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r ci/lint-requirements.txt
  touch "$stamp"
fi
ci/tools.sh helm
export PATH="$ROOT/.tools/bin:$venv/bin:$PATH"

failed=()
check() {
  local name=$1
  shift
  log "--- $name"
  "$@" || failed+=("$name")
}

chart=charts/dockercoins
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
check "helm lint --strict (defaults)" helm lint --strict --quiet "$chart"
for values in deploy/*.yaml; do
  name=$(basename "$values" .yaml)
  # The pipeline's own --set-string lines, with an all-digit tag: the case --set would break.
  sets=(--values "$values" --set-string global.image.registry=registry.example.com/group/project
    --set-string global.image.tag=12345678 --set-string "global.imagePullSecrets[0].name=gitlab-deploy-token")
  check "helm lint --strict ($values)" helm lint --strict --quiet "$chart" "${sets[@]}"
  if helm template dockercoins "$chart" --namespace "dockercoins-$name" "${sets[@]}" >"$rendered/$name.yaml"; then
    check "kubernetes-validate --strict $KUBE_VERSION ($values)" \
      kubernetes-validate --strict --kubernetes-version "$KUBE_VERSION" --quiet "$rendered/$name.yaml"
  else
    failed+=("helm template ($values)")
  fi
done
check "ruff" ruff check --no-cache --isolated --select E4,E7,E9,F --exclude .tools,.venv .
check "hadolint" hadolint images/*/Dockerfile
check "yamllint" yamllint -c ci/yamllint.yaml .
check "shellcheck" shellcheck --shell=bash --severity=warning ci/*.sh ci/*/*.sh .ci/run

if [ ${#failed[@]} -gt 0 ]; then
  log "lint failed: $(printf '%s; ' "${failed[@]}")"
  exit 1
fi
log "lint: all passed"
