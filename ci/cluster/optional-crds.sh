#!/usr/bin/env bash
#/ Refreshes tests/cluster/crds/optional/: the CRDs of the chart's optional objects that come from
#/ other projects, copied as those projects publish them (no build): KEDA's ScaledObject
#/ (rng.autoscaling.provider=keda) and the Gateway API's standard-channel HTTPRoute
#/ (webui.httpRoute). `go mod download` fetches each pinned module from the Go module proxy, with
#/ its checksum checked against go.sum's database. tests/cluster installs them only in the tests
#/ that need them, so other tests also see a cluster without them.
#/
#/   ci/cluster/optional-crds.sh
set -euo pipefail
. "$(dirname "$0")/../lib.sh"   # ROOT, usage, go_module_dir
case "${1:-}" in
  "") ;;
  -h | --help) usage 0 ;;
  *) usage ;;
esac
KEDA=v2.21.0        # github.com/kedacore/keda/v2
GATEWAY_API=v1.4.1  # sigs.k8s.io/gateway-api
out=$ROOT/tests/cluster/crds/optional
mkdir -p "$out"
copy() { # SOURCE FROM
  { echo "# Copied by ci/cluster/optional-crds.sh from $2. Do not edit."; cat "$1"; } >"$out/$(basename "$1")"
}
keda=$(go_module_dir github.com/kedacore/keda/v2 "$KEDA")
copy "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
  "github.com/kedacore/keda/v2@$KEDA config/crd/bases/keda.sh_scaledobjects.yaml"
gateway=$(go_module_dir sigs.k8s.io/gateway-api "$GATEWAY_API")
copy "$gateway/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" \
  "sigs.k8s.io/gateway-api@$GATEWAY_API config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
