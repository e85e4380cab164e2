# The metrics a real node's autoscaling runs on (`ci/cluster.sh up --node --metrics`): Prometheus,
# KEDA and metrics-server, each as pods from the node's loopback registry, as a user installs
# them on LKE from their Helm charts. None of those charts can be downloaded here, so:
# - Prometheus 3 is built from its Go module, with only the Kubernetes service discovery (Debian's
#   2.42 is prebuilt, but Debian builds it without Kubernetes discovery); ci/node/metrics/prometheus.yaml;
# - KEDA (operator and metrics API server) is built from its Go module and deployed from the
#   module's own kustomize manifests (config/minimal: no admission webhooks), only the images
#   replaced;
# - metrics-server is built from its Go module and deployed from the module's release manifests.
# The API server serves KEDA's external metrics and metrics-server's resource metrics through
# the aggregation layer (ci/cluster.sh's front-proxy certificate and --requestheader-* flags).
# Sourced by ci/cluster.sh after ci/node/node.sh (CACHE, CLUSTER, REGISTRY, timed, go_module_dir,
# push, kc, wait_for, apt_install). Not a command of its own.
#
#   metrics_build   once, cached under $CACHE/metrics-<versions>
#   metrics_up      the images into the registry, then the three deployed and Available

PROMETHEUS_MODULE=v0.316.0          # github.com/prometheus/prometheus: Prometheus 3.16.0
PROMETHEUS_VERSION=3.16.0
KEDA_VERSION=v2.21.0                 # github.com/kedacore/keda/v2
METRICS_SERVER_VERSION=v0.8.0        # sigs.k8s.io/metrics-server
METRICS_BIN=$CACHE/metrics-prometheus-$PROMETHEUS_VERSION-keda-$KEDA_VERSION-ms-$METRICS_SERVER_VERSION

metrics_build() {
  [ -f "$METRICS_BIN/.complete" ] && return 0
  mkdir -p "$METRICS_BIN"
  # Prometheus with only the service discoveries it uses here (its build tags): kubernetes, plus
  # file and http, which it always has. No web UI assets: the API is what the tests and KEDA read.
  timed "prometheus $PROMETHEUS_VERSION" go_in_module github.com/prometheus/prometheus \
    "$PROMETHEUS_MODULE" build -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    -o "$METRICS_BIN/prometheus" ./cmd/prometheus
  # KEDA's operator and metrics API server share almost every package: one `go build`.
  timed "keda $KEDA_VERSION (operator and metrics API server)" go_in_module \
    github.com/kedacore/keda/v2 "$KEDA_VERSION" build \
    -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
    -o "$METRICS_BIN/" ./cmd/operator ./cmd/adapter
  mv "$METRICS_BIN/operator" "$METRICS_BIN/keda"
  mv "$METRICS_BIN/adapter" "$METRICS_BIN/keda-adapter"
  # Their manifests, from the same modules.
  local src
  src=$(go_module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")
  mkdir -p "$METRICS_BIN/keda-config"
  cp -r "$src/config/." "$METRICS_BIN/keda-config/" && chmod -R u+w "$METRICS_BIN/keda-config"
  timed "metrics-server $METRICS_SERVER_VERSION" go_build_module sigs.k8s.io/metrics-server \
    "$METRICS_SERVER_VERSION" ./cmd/metrics-server "$METRICS_BIN/metrics-server" \
    "-X sigs.k8s.io/metrics-server/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
  src=$(go_module_dir sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION")
  mkdir -p "$METRICS_BIN/metrics-server-config"
  cp -r "$src/manifests/." "$METRICS_BIN/metrics-server-config/"
  chmod -R u+w "$METRICS_BIN/metrics-server-config"
  touch "$METRICS_BIN/.complete"
}

# metrics_image NAME BINARY FROM USER: an image with the static BINARY as /NAME, pushed to the
# registry; prints its reference there.
metrics_image() {
  local name=$1 bin=$2 from=$3 user=$4 ref ctr
  ref=localhost/dockercoins/$name:$(sha256sum "$bin" | cut -c1-12)
  if ! buildah inspect --type image "$ref" >/dev/null 2>&1; then
    ctr=$(buildah from --quiet "$from")
    buildah copy --quiet "$ctr" "$bin" "/$name" >/dev/null
    buildah config --entrypoint "[\"/$name\"]" --user "$user" "$ctr"
    buildah commit --quiet "$ctr" "$ref" >/dev/null
    buildah rm "$ctr" >/dev/null
  fi
  push "$ref" "dockercoins/${ref##*/}"
  echo "$REGISTRY/dockercoins/${ref##*/}"
}

metrics_up() {
  local prometheus keda adapter server
  prometheus=$(metrics_image prometheus "$METRICS_BIN/prometheus" scratch 65534:65534)
  keda=$(metrics_image keda "$METRICS_BIN/keda" scratch 65532:65532)
  adapter=$(metrics_image keda-adapter "$METRICS_BIN/keda-adapter" scratch 65532:65532)
  server=$(metrics_image metrics-server "$METRICS_BIN/metrics-server" scratch 65534:65534)
  # Prometheus: its image's entrypoint is /prometheus; the manifest gives the flags.
  sed -e "s|@REGISTRY@/dockercoins/prometheus:@PROMETHEUS_VERSION@|$prometheus|" \
    "$ROOT/ci/node/metrics/prometheus.yaml" | kc apply -f - >/dev/null
  # KEDA from its own manifests; their commands (/keda, /keda-adapter) are our images' binaries.
  kc kustomize "$METRICS_BIN/keda-config/minimal" |
    sed -e "s|ghcr.io/kedacore/keda:[^ ]*|$keda|" \
      -e "s|ghcr.io/kedacore/keda-metrics-apiserver:[^ ]*|$adapter|" \
      -e "s|imagePullPolicy: Always|imagePullPolicy: IfNotPresent|" |
    kc apply --server-side -f - >/dev/null
  # metrics-server from its release manifests; the kubelets' serving certificates are checked
  # against the cluster's CA (the ServiceAccount's ca.crt, which signed them), not skipped.
  kc kustomize "$METRICS_BIN/metrics-server-config/overlays/release" 2>/dev/null |
    sed -e "s|image: registry.k8s.io/metrics-server/metrics-server:.*|image: $server|" \
      -e 's|^\( *\)- --metric-resolution=15s|&\n\1- --kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt|' |
    kc apply -f - >/dev/null
  wait_for "Prometheus, KEDA and metrics-server Available" 180 metrics_available
}

metrics_available() {
  kc -n monitoring wait --for=condition=Available deployment/prometheus-server --timeout=5s &&
    kc -n keda wait --for=condition=Available deployment/keda-operator deployment/keda-metrics-apiserver --timeout=5s &&
    kc -n kube-system wait --for=condition=Available deployment/metrics-server --timeout=5s &&
    kc wait --for=condition=Available apiservice/v1beta1.external.metrics.k8s.io \
      apiservice/v1beta1.metrics.k8s.io --timeout=5s
} >/dev/null 2>&1
