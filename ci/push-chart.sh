#!/usr/bin/env bash
#/ Package the chart for this commit and push it to the project's OCI registry. The pipeline's
#/ chart job runs it on the default branch; a person can too.
#/
#/   ci/push-chart.sh            package into out/chart/ and push
#/   ci/push-chart.sh --no-push  package only
#/
#/ The package is the chart's version with the commit's short SHA as build metadata, and the SHA
#/ as appVersion, so the packaged chart deploys this commit's images without any --set:
#/   version 0.2.0+1a2b3c4d, appVersion "1a2b3c4d"  ->  oci://<CI_REGISTRY_IMAGE>/charts/dockercoins:0.2.0_1a2b3c4d
#/ (OCI tags cannot hold '+', so helm pushes it as '_'; `helm pull --version 0.2.0+1a2b3c4d` finds it.)
#/
#/ Needs helm on PATH (ci/tools.sh helm), and:
#/   SHA                  default $CI_COMMIT_SHORT_SHA
#/   CI_REGISTRY_IMAGE    where to push (the chart goes to <it>/charts)
#/   CI_REGISTRY, CI_REGISTRY_USER, CI_REGISTRY_PASSWORD   the login (GitLab sets all three). A
#/                        registry on loopback (127.0.0.1:PORT, localhost:PORT) is spoken to over
#/                        plain HTTP, as docker does; every other one over HTTPS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, die, usage
cd "$ROOT"
case "${1:-}" in -h | --help) usage 0 ;; esac
SHA=${SHA:-${CI_COMMIT_SHORT_SHA:-}}
[ -n "$SHA" ] || die "SHA is not set (the pipeline uses CI_COMMIT_SHORT_SHA)"
[[ "$SHA" =~ ^[0-9a-f]+$ ]] || die "SHA must be a commit SHA (hex digits), got '$SHA'"

version=$(helm show chart charts/dockercoins | sed -n 's/^version: *//p')
[ -n "$version" ] || die "no version in charts/dockercoins/Chart.yaml"
out=out/chart
rm -rf "$out" && mkdir -p "$out"
helm package charts/dockercoins --destination "$out" --version "$version+$SHA" --app-version "$SHA"
archive=$out/dockercoins-$version+$SHA.tgz
[ -f "$archive" ] || die "helm package did not write $archive"
[ "${1:-}" = "--no-push" ] && exit 0

: "${CI_REGISTRY_IMAGE:?CI_REGISTRY_IMAGE is not set (GitLab sets it when the container registry is on)}"
: "${CI_REGISTRY:?CI_REGISTRY is not set}"
http=()
case "$CI_REGISTRY" in 127.0.0.1:* | localhost:*) http=(--plain-http) ;; esac
# --password-stdin: the password never appears in a process list or the job log.
printf '%s' "${CI_REGISTRY_PASSWORD:?CI_REGISTRY_PASSWORD is not set}" |
  helm registry login "$CI_REGISTRY" --username "${CI_REGISTRY_USER:?CI_REGISTRY_USER is not set}" \
    --password-stdin "${http[@]}"
helm push "$archive" "oci://$CI_REGISTRY_IMAGE/charts" "${http[@]}"
