#!/usr/bin/env bash
#/ A CycloneDX SBOM (JSON, spec 1.6) of each image's Python environment: the pinned
#/ requirements.txt that its Dockerfile installs, one file per image, out/sbom/<image>.cdx.json.
#/ The sbom job runs it; GitLab reads the files as artifacts:reports:cyclonedx.
#/
#/   ci/sbom.sh [OUTDIR]     default out/sbom
#/   ci/sbom.sh --install    only install the tool (the one step that needs the network)
#/
#/ Each SBOM's main component is the image, a container named <REGISTRY>/<image> (REGISTRY
#/ default: $CI_REGISTRY_IMAGE, else dockercoins) with version TAG (default: $CI_COMMIT_SHORT_SHA,
#/ else the commit's short SHA).
#/
#/ The tool is PyPI's cyclonedx-bom (cyclonedx-py), pinned in ci/sbom-requirements.txt, in a venv
#/ of its own (.tools/sbom-venv). It reads the requirements files and nothing else: no network.
#/ The images' Debian packages are not in it; the container-scanning job's Trivy reads those.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, say, usage
case "${1:-}" in -h | --help) usage 0 ;; esac
REGISTRY=${REGISTRY:-${CI_REGISTRY_IMAGE:-dockercoins}}
TAG=${TAG:-${CI_COMMIT_SHORT_SHA:-$(git -C "$ROOT" rev-parse --short=8 HEAD 2>/dev/null || echo unknown)}}
venv=$ROOT/.tools/sbom-venv
requirements=$ROOT/ci/sbom-requirements.txt
stamp=$venv/.installed-$(sha256sum <"$requirements" | cut -c1-16)
if [ ! -e "$stamp" ]; then
  say "installing cyclonedx-bom into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
[ "${1:-}" != --install ] || exit 0
out=${1:-$ROOT/out/sbom}
mkdir -p "$out"
for requirements_txt in "$ROOT"/images/*/requirements.txt; do
  image=$(basename "$(dirname "$requirements_txt")")
  "$venv/bin/cyclonedx-py" requirements "$requirements_txt" --spec-version 1.6 --output-format JSON \
    --output-reproducible --output-file "$out/$image.cdx.json"
  count=$("$venv/bin/python" - "$out/$image.cdx.json" "$REGISTRY/$image" "$TAG" <<'PY'
import json, sys
path, name, version = sys.argv[1:]
bom = json.load(open(path))
bom["metadata"]["component"] = {"type": "container", "bom-ref": name, "name": name,
                                "version": version}
json.dump(bom, open(path, "w"), indent=2)
print(len(bom["components"]))
PY
)
  say "$out/$image.cdx.json: $count Python packages of $REGISTRY/$image:$TAG"
done
