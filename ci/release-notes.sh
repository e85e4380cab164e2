#!/usr/bin/env bash
#/ The description of a production tag's GitLab release, in Markdown on stdout: the chart version
#/ that the default branch's chart job pushed for this commit, and the digest of each image that
#/ production's pods run (the imageID their node reports: what really runs, not what a tag
#/ points at today). The production job writes it to out/release.md for the release job.
#/
#/   ci/release-notes.sh     NAMESPACE, RELEASE (default dockercoins), KUBECONFIG, KUBE_CONTEXT
#/                           (optional), REGISTRY, TAG (as for ci/deploy.sh), CI_COMMIT_TAG
#/
#/ Needs kubectl and python3 on PATH. An image whose node reports no digest (kwok's fake nodes
#/ run nothing) is listed as such, with a warning on stderr; no pod at all is an error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # ROOT, die, usage, use_kube_context
case "${1:-}" in -h | --help) usage 0 ;; esac
RELEASE=${RELEASE:-dockercoins}
: "${NAMESPACE:?NAMESPACE is not set (the pipeline sets it per environment)}"
REGISTRY=${REGISTRY:-${CI_REGISTRY_IMAGE:-}}
TAG=${TAG:-${CI_COMMIT_SHORT_SHA:-}}
use_kube_context
version=$(sed -n 's/^version: *//p' "$ROOT/charts/dockercoins/Chart.yaml")
pods=$(kubectl get pods --namespace "$NAMESPACE" -l "app.kubernetes.io/instance=$RELEASE" -o json)
cat <<NOTES
DockerCoins ${CI_COMMIT_TAG:-$TAG}, commit ${CI_COMMIT_SHA:-$TAG}, deployed to namespace $NAMESPACE.

Chart: \`oci://$REGISTRY/charts/dockercoins\`, version \`$version+$TAG\` (appVersion \`$TAG\`).

| image | digest |
|---|---|
NOTES
python3 -c '
import json, sys
images = {}
for pod in json.load(sys.stdin)["items"]:
    # The image as the pod asks for it: a status may name another tag of the same image.
    asked = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
    for status in pod.get("status", {}).get("containerStatuses") or []:
        digest = status.get("imageID", "").rpartition("@")[2]
        images.setdefault(asked.get(status["name"], status["image"]), set()).add(digest)
if not images:
    sys.exit("ci/release-notes.sh: no pod of the release reports an image (is it deployed?)")
for image, digests in sorted(images.items()):
    known = sorted(d for d in digests if d.startswith("sha256:"))
    if not known:
        print(f"ci/release-notes.sh: the node reports no digest of {image}", file=sys.stderr)
    print(f"| `{image}` | " + (" ".join(f"`{d}`" for d in known) or "not reported by the node") + " |")
' <<<"$pods"
