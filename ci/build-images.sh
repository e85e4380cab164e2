#!/usr/bin/env bash
#/ Build the four DockerCoins images as $REGISTRY/<svc>:$TAG, and optionally push them.
#/ The pipeline and the tests call this same script; it assumes nothing about the machine.
#/
#/   ci/build-images.sh [--push] [--registry R] [--tag T] [--only SVC]... [--build-arg K=V]...
#/                      [--builder docker|buildah|podman] [-- EXTRA BUILDER ARGS...]
#/
#/   REGISTRY    image repository prefix   (default localhost/dockercoins)
#/   TAG         image tag                 (default: git describe --tags --always --dirty)
#/   BASE_IMAGE  if set, passed as --build-arg PYTHON_IMAGE=$BASE_IMAGE (the Dockerfiles
#/               default to a pinned official python slim image)
#/   BUILDER     docker, buildah or podman (default: docker when an engine answers, else
#/               buildah, else podman)
#/
#/ Each image is built from the images/ context with -f images/<svc>/Dockerfile, labelled with
#/ the version (TAG), the git revision and the source URL: as build ARGs, and as --label too,
#/ because buildah's layer cache reuses a LABEL step whose ARG values changed. Arguments after `--` go to the
#/ builder as they are (for example `--volume /etc/ssl/certs:/etc/ssl/certs:ro` for buildah).
#/ Prints the built references on stdout, one a line; progress goes to stderr.
set -euo pipefail

. "$(dirname "$0")/lib.sh"   # ROOT, usage
SERVICES=(rng hasher worker webui)

push=0 only=() build_args=() extra=()
registry=${REGISTRY:-localhost/dockercoins}
tag=${TAG:-}
builder=${BUILDER:-}
while [ $# -gt 0 ]; do
  case $1 in
    --push) push=1; shift ;;
    --registry) registry=${2:?--registry needs a value}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --only) only+=("${2:?--only needs a service}"); shift 2 ;;
    --builder) builder=${2:?--builder needs a value}; shift 2 ;;
    --build-arg) build_args+=(--build-arg "${2:?--build-arg needs K=V}"); shift 2 ;;
    --build-arg=*) build_args+=(--build-arg "${1#--build-arg=}"); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage 0 ;;
    *) echo "build-images.sh: unknown argument: $1" >&2; usage ;;
  esac
done
if [ ${#only[@]} -gt 0 ]; then
  for svc in "${only[@]}"; do
    [ -f "$ROOT/images/$svc/Dockerfile" ] || { echo "no such service: $svc" >&2; exit 2; }
  done
  SERVICES=("${only[@]}")
fi

# --- what to call the images ---------------------------------------------------------------
git_() { git -C "$ROOT" "$@" 2>/dev/null; }
if [ -z "$tag" ]; then
  tag=$(git_ describe --tags --always --dirty || true)
  tag=${tag:-dev}
fi
# A Docker tag is [A-Za-z0-9_.-]{1,128} and does not start with '.' or '-'.
tag=$(printf '%s' "$tag" | tr -c 'A-Za-z0-9_.-' '-' | sed 's/^[.-]*//' | cut -c1-128)
[ -n "$tag" ] || { echo "empty image tag" >&2; exit 2; }
registry=${registry%/}
revision=$(git_ rev-parse HEAD || echo unknown)
# The project URL, never with credentials (CI clone URLs carry a job token).
source_url=${CI_PROJECT_URL:-$(git_ config --get remote.origin.url || echo unknown)}
source_url=$(printf '%s' "$source_url" | sed -E 's#^([a-z+]+://)[^/@]*@#\1#')
[ -n "${BASE_IMAGE:-}" ] && build_args+=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE")

# --- which builder -------------------------------------------------------------------------
if [ -z "$builder" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    builder=docker
  elif command -v buildah >/dev/null 2>&1; then
    builder=buildah
  elif command -v podman >/dev/null 2>&1; then
    builder=podman
  else
    echo "build-images.sh: no docker engine, buildah or podman found" >&2
    exit 1
  fi
fi
case $builder in
  docker) build=(docker build) ;;
  buildah) build=(buildah bud --layers) ;;
  podman) build=(podman build --layers) ;;
  *) echo "build-images.sh: unknown builder $builder" >&2; exit 2 ;;
esac

echo "building ${SERVICES[*]} as $registry/<svc>:$tag with $builder" >&2
refs=()
for svc in "${SERVICES[@]}"; do
  ref="$registry/$svc:$tag"
  started=$SECONDS
  "${build[@]}" \
    -f "$ROOT/images/$svc/Dockerfile" -t "$ref" \
    --build-arg "VERSION=$tag" --build-arg "REVISION=$revision" \
    --build-arg "SOURCE=$source_url" \
    --label "org.opencontainers.image.version=$tag" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.source=$source_url" \
    ${build_args[@]+"${build_args[@]}"} ${extra[@]+"${extra[@]}"} \
    "$ROOT/images" >&2
  echo "built $ref in $((SECONDS - started)) s" >&2
  refs+=("$ref")
done

if [ "$push" = 1 ]; then
  for ref in "${refs[@]}"; do
    echo "pushing $ref" >&2
    "$builder" push "$ref" >&2
  done
fi
printf '%s\n' "${refs[@]}"
