# The real node of `ci/cluster.sh up --node`: containerd + runc (Debian), the CNI bridge (Debian's
# plugins), kubelet and kube-proxy (the control plane's k8s.io/kubernetes module), CoreDNS (its Go
# module, pinned by ci/node/coredns/go.mod), a pause image and a loopback image registry.
# Sourced by ci/cluster.sh, which defines CLUSTER, KUBE_VERSION, MODDIR, timed, build_kube_cmds,
# start, wait_for, free_ports, kc, cert and kubeconfig, and sources ci/lib.sh (ROOT, CACHE, say,
# die, apt_install). Not a command of its own.
#
# Everything this node makes exists only on this machine: a bridge with the node address, pod
# and Service ranges that no real network uses, and a firewall chain that drops every packet a pod
# sends anywhere else. `node_down` removes every process, mount, interface and rule `node_up` made.

NODE_NAME=dockercoins-node
NODE_BRIDGE=dcnode0
NODE_IP=10.244.0.1           # the bridge's address: the node's InternalIP, the pods' gateway
POD_SUBNET=10.244.0.0/24     # this node's pods
CLUSTER_CIDR=10.244.0.0/16
DNS_SERVICE_IP=10.96.0.10    # in ci/cluster.sh's SERVICE_CIDR
NODE_CHAIN=DOCKERCOINS-NODE  # the containment rules, in the mangle table
PAUSE_TAG=1.0
PV_COUNT=6                   # local PersistentVolumes made at `up` (redis persistence, tests)

NODE_DIR=$CLUSTER/node
# containerd's sockets and the kubelet's root (which holds sockets too), in a short path of their
# own: a unix socket path is limited to 104 bytes, which a deep CLUSTER_DIR (a pytest temp folder)
# passes.
RUN_DIR=/run/dockercoins-node-$(printf '%s' "$NODE_DIR" | sha256sum | cut -c1-8)
CONTAINERD_SOCKET=$RUN_DIR/containerd.sock
# The node's binaries, cached per version and per recipe (our CoreDNS and pause sources).
NODE_BIN=$CACHE/node-$KUBE_VERSION-$(cat "$ROOT"/ci/node/coredns/go.* "$ROOT"/ci/node/*/main.go |
  sha256sum | cut -c1-8)
COREDNS_VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' \
  "$ROOT/ci/node/coredns/go.mod")
CNI_BIN=/usr/lib/cni

# ---- build ----------------------------------------------------------------------------------------
node_build() {
  # containernetworking-plugins puts bridge, host-local, portmap and loopback in /usr/lib/cni.
  apt_install containerd runc containernetworking-plugins iptables iproute2 docker-registry
  if [ ! -f "$NODE_BIN/.complete" ]; then
    build_kube_cmds "$NODE_BIN" kubelet kube-proxy
    timed "coredns $COREDNS_VERSION" \
      go -C "$ROOT/ci/node/coredns" build -ldflags "-s -w" -o "$NODE_BIN/coredns" .
    timed "pause" go -C "$ROOT/ci/node/pause" build -ldflags "-s -w" -o "$NODE_BIN/pause" .
    touch "$NODE_BIN/.complete"
  fi
  # The images: the local Python base and redis stand-in (no registry can be pulled from here),
  # then the four app images from this checkout.
  "$ROOT/ci/podman-setup.sh"
}

# ---- network --------------------------------------------------------------------------------------
# sysctl NAME VALUE: sets it, remembering the old value for node_down.
set_sysctl() {
  local file=/proc/sys/${1//.//}
  [ -f "$NODE_DIR/sysctl.$1" ] || cat "$file" >"$NODE_DIR/sysctl.$1"
  echo "$2" >"$file"
}

# The firewall chains of every table the node's parts write to, one "family table chain" a line.
FIREWALL_TABLES=(filter nat mangle)
chains() {
  local family table
  for family in iptables ip6tables; do
    for table in "${FIREWALL_TABLES[@]}"; do
      "$family-save" -t "$table" 2>/dev/null | sed -n "s/^:\([^ ]*\) .*/$family $table \1/p"
    done
  done
}

# Removes the chains the node made (the kubelet's, kube-proxy's, the portmap plugin's and ours:
# every chain not there before `up`), and every rule that jumps to them.
remove_new_chains() {
  [ -f "$NODE_DIR/chains.before" ] || return 0
  local new family table chain rule
  new=$(chains | grep -vxF -f "$NODE_DIR/chains.before" || true)
  [ -n "$new" ] || return 0
  while read -r family table chain; do
    "$family" -w -t "$table" -S 2>/dev/null | { grep -E -- "-j $chain( |\$)" || true; } |
      while read -r rule; do
        eval "$family -w -t $table -D ${rule#-A }" 2>/dev/null || true
      done
  done <<<"$new"
  while read -r family table chain; do "$family" -w -t "$table" -F "$chain" 2>/dev/null || true; done <<<"$new"
  while read -r family table chain; do "$family" -w -t "$table" -X "$chain" 2>/dev/null || true; done <<<"$new"
}

node_network_up() {
  ip link show "$NODE_BRIDGE" >/dev/null 2>&1 &&
    die "$NODE_BRIDGE exists: another node cluster is up (ci/cluster.sh down with its CLUSTER_DIR)"
  # From here on the machine-wide parts (bridge, firewall, sysctls, cgroups) are this cluster's,
  # and only its `down` removes them: the `down` of an `up` that stopped above must not.
  touch "$NODE_DIR/owns-network"
  chains >"$NODE_DIR/chains.before"
  # The bridge the CNI plugin attaches pods to, made first so the node address exists before the
  # API server binds to it.
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Routing between pods and Services (kube-proxy's DNAT) needs forwarding, and bridged traffic
  # must pass iptables so a Service reply from a pod on the same bridge is un-NATed.
  set_sysctl net.ipv4.ip_forward 1
  set_sysctl net.bridge.bridge-nf-call-iptables 1
  # Containment: forwarded traffic must start and end inside the pod range (Service addresses are
  # already DNATed to pods, or to the node, by then). Pods reach the node itself through INPUT.
  # The mangle table's FORWARD runs before the filter table's, where kube-proxy puts its own
  # ACCEPT rules first, so nothing it adds can let a pod's packet out.
  iptables -w -t mangle -N "$NODE_CHAIN"
  iptables -w -t mangle -A "$NODE_CHAIN" -s "$CLUSTER_CIDR" ! -d "$CLUSTER_CIDR" -j DROP
  iptables -w -t mangle -A "$NODE_CHAIN" -d "$CLUSTER_CIDR" ! -s "$CLUSTER_CIDR" -j DROP
  iptables -w -t mangle -I FORWARD 1 -j "$NODE_CHAIN"
}

node_network_down() {
  remove_new_chains
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    # The pods' veths (a namespace outlives its unmount while the kernel still holds it).
    local veth
    for veth in $(ip -o link show master "$NODE_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link delete "$veth" 2>/dev/null || true
    done
    ip link delete "$NODE_BRIDGE"
  fi
  local saved name
  for saved in "$NODE_DIR"/sysctl.*; do
    [ -f "$saved" ] || continue
    name=${saved##*/sysctl.}
    cat "$saved" >"/proc/sys/${name//.//}"
    rm -f "$saved"
  done
}

# ---- certificates ---------------------------------------------------------------------------------
node_pki() {
  local client="extendedKeyUsage=clientAuth"
  # The kubelet's identity for the Node authorizer, and its serving certificate, which the API
  # server checks (--kubelet-certificate-authority) before it asks for logs, exec or port-forward.
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
  cert kubelet-serving "/CN=$NODE_NAME" "extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
  cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "$client"
  cert kube-proxy "/CN=system:kube-proxy" "$client"   # bound to system:node-proxier by default
  cert coredns "/CN=system:coredns" "$client"         # bound below to CoreDNS's own ClusterRole
  cert kube-router "/CN=system:kube-router" "$client" # bound by ci/node/kube-router.sh
}

# ---- images ---------------------------------------------------------------------------------------
# A loopback registry (Debian's distribution registry), pulled from by containerd as any cluster
# pulls from its registry. It holds the pause image, redis and the four app images.
node_registry_up() {
  REGISTRY_PORT=$(free_ports 1)
  mkdir -p "$NODE_DIR/registry"
  cat >"$NODE_DIR/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $NODE_DIR/registry}
http: {addr: 127.0.0.1:$REGISTRY_PORT}
EOF
  start registry /usr/bin/docker-registry serve "$NODE_DIR/registry.yml"
  REGISTRY=127.0.0.1:$REGISTRY_PORT
  echo "$REGISTRY" >"$NODE_DIR/registry-address"
  wait_for "the image registry" 30 curl -sf "http://$REGISTRY/v2/"
}

push() { buildah push --quiet --tls-verify=false "$1" "docker://$REGISTRY/$2" >/dev/null; }

node_images() {
  local tag pause=localhost/dockercoins/pause:$PAUSE_TAG ctr
  # pause: the static binary alone, as the only file of the image.
  if ! buildah inspect --type image "$pause" >/dev/null 2>&1 ||
    [ "$NODE_BIN/pause" -nt "$CACHE/pause-image.stamp" ]; then
    ctr=$(buildah from scratch)
    buildah copy --quiet "$ctr" "$NODE_BIN/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
    buildah commit --quiet "$ctr" "$pause" >/dev/null
    buildah rm "$ctr" >/dev/null
    touch "$CACHE/pause-image.stamp"
  fi
  push "$pause" "dockercoins/pause:$PAUSE_TAG"
  push localhost/redis-test:bookworm dockercoins/redis-test:bookworm
  # httping, which the workshop runs from a pod against the rng and hasher ClusterIPs: Debian's
  # package on the local base, as an unprivileged user.
  local httping=localhost/dockercoins/httping:bookworm
  if ! buildah inspect --type image "$httping" >/dev/null 2>&1; then
    ctr=$(buildah from --quiet localhost/python-base:bookworm)
    buildah run --isolation chroot --volume /etc/ssl/certs:/etc/ssl/certs:ro "$ctr" -- sh -c \
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends httping >/dev/null && rm -rf /var/lib/apt/lists/*'
    buildah config --user 65534:65534 --cmd '["httping", "--version"]' "$ctr"
    buildah commit --quiet "$ctr" "$httping" >/dev/null
    buildah rm "$ctr" >/dev/null
  fi
  push "$httping" dockercoins/httping:bookworm
  # The app images of this checkout, tagged with its content so a changed tree is rebuilt. pip
  # inside the build gets the host's CA bundle and pip config (this machine's egress re-signs TLS).
  tag=$(node_image_tag)
  local refs ref volumes=() path
  for path in /etc/ssl/certs /etc/pip.conf; do
    [ -e "$path" ] && volumes+=(--volume "$path:$path:ro")
  done
  refs=$(BASE_IMAGE=localhost/python-base:bookworm TAG=$tag \
    "$ROOT/ci/build-images.sh" --builder buildah --registry localhost/dockercoins -- \
    ${volumes[@]+"${volumes[@]}"} 2>"$CLUSTER/logs/build-images.log") ||
    { tail -n 30 "$CLUSTER/logs/build-images.log" >&2; die "the image build failed"; }
  for ref in $refs; do
    push "$ref" "dockercoins/${ref##*/}"
  done
  echo "$tag" >"$NODE_DIR/image-tag"
}

# The images' tag: the commit, plus a hash of uncommitted changes under images/ if any.
node_image_tag() {
  local tag dirty
  tag=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo dev)
  dirty=$(git -C "$ROOT" status --porcelain -- images 2>/dev/null)
  if [ -n "$dirty" ]; then
    tag+=-$( (git -C "$ROOT" diff HEAD -- images; git -C "$ROOT" ls-files --others --exclude-standard -z -- images |
      xargs -0 -r cat) | sha256sum | cut -c1-8)
  fi
  echo "$tag"
}

# ---- processes ------------------------------------------------------------------------------------
node_configs() {
  local d=$NODE_DIR
  mkdir -p "$d/containerd" "$d/cni/net.d" "$d/cni/ipam" "$d/kubelet" "$d/certs.d/$REGISTRY" "$d/volumes"
  read -r KUBELET_PORT KUBELET_HEALTHZ_PORT PROXY_HEALTHZ_PORT PROXY_METRICS_PORT DNS_HEALTH_PORT \
    DNS_READY_PORT DNS_METRICS_PORT <<<"$(free_ports 7)"
  # containerd, as Debian ships it, with everything under our directory, runc (not the unusable
  # crun), and the pause image from the loopback registry.
  mkdir -p "$RUN_DIR"
  sed -e "s|@DIR@|$d|g" -e "s|@SOCKET@|$CONTAINERD_SOCKET|g" -e "s|@REGISTRY@|$REGISTRY|g" -e "s|@PAUSE_TAG@|$PAUSE_TAG|g" \
    -e "s|@CNI_BIN@|$CNI_BIN|g" "$ROOT/ci/node/containerd.toml" >"$d/containerd/config.toml"
  cat >"$d/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
  sed -e "s|@DIR@|$d|g" -e "s|@BRIDGE@|$NODE_BRIDGE|g" -e "s|@POD_SUBNET@|$POD_SUBNET|g" \
    -e "s|@NODE_IP@|$NODE_IP|g" "$ROOT/ci/node/cni.conflist" >"$d/cni/net.d/10-dockercoins.conflist"
  sed -e "s|@DIR@|$d|g" -e "s|@PKI@|$CLUSTER/pki|g" -e "s|@NODE_IP@|$NODE_IP|g" \
    -e "s|@PORT@|$KUBELET_PORT|g" -e "s|@HEALTHZ_PORT@|$KUBELET_HEALTHZ_PORT|g" \
    -e "s|@DNS@|$DNS_SERVICE_IP|g" -e "s|@SOCKET@|$CONTAINERD_SOCKET|g" "$ROOT/ci/node/kubelet.yaml" >"$d/kubelet/config.yaml"
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE_NAME@|$NODE_NAME|g" -e "s|@NODE_IP@|$NODE_IP|g" \
    -e "s|@CLUSTER_CIDR@|$CLUSTER_CIDR|g" -e "s|@HEALTHZ_PORT@|$PROXY_HEALTHZ_PORT|g" \
    -e "s|@METRICS_PORT@|$PROXY_METRICS_PORT|g" "$ROOT/ci/node/kube-proxy.yaml" >"$d/kube-proxy.yaml"
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@HEALTH_PORT@|$DNS_HEALTH_PORT|g" \
    -e "s|@READY_PORT@|$DNS_READY_PORT|g" -e "s|@METRICS_PORT@|$DNS_METRICS_PORT|g" \
    "$ROOT/ci/node/Corefile" >"$d/Corefile"
  kubeconfig kubelet "$CLUSTER/kubelet.kubeconfig"
  kubeconfig kube-proxy "$CLUSTER/kube-proxy.kubeconfig"
  kubeconfig coredns "$CLUSTER/coredns.kubeconfig"
}

node_ready() {
  [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# What the cluster needs besides the node: CoreDNS's read access and the kube-dns Service in front
# of it, a default StorageClass with local volumes on the node, and the values a chart install here
# needs (the loopback registry's images).
node_objects() {
  local i
  sed -e "s|@DNS@|$DNS_SERVICE_IP|g" -e "s|@NODE_IP@|$NODE_IP|g" "$ROOT/ci/node/objects.yaml" | kc apply -f - >/dev/null
  for i in $(seq 0 $((PV_COUNT - 1))); do
    mkdir -p "$NODE_DIR/volumes/pv-$i"
    cat <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $NODE_NAME-pv-$i
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: $NODE_DIR/volumes/pv-$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
---
EOF
  done | kc apply -f - >/dev/null
  cat >"$CLUSTER/node-values.yaml" <<EOF
# Written by ci/cluster.sh up --node: the chart's images from the node's loopback registry.
# helm install dockercoins charts/dockercoins -f $CLUSTER/node-values.yaml --wait
global:
  image:
    registry: $REGISTRY/dockercoins
    tag: "$(cat "$NODE_DIR/image-tag")"
redis:
  image:
    # Debian's redis-server (ci/podman-setup.sh): the official image cannot be pulled here.
    registry: $REGISTRY
    repository: dockercoins/redis-test
    tag: bookworm
EOF
}

node_up() {
  mkdir -p "$NODE_DIR"
  node_configs
  start containerd containerd --config "$NODE_DIR/containerd/config.toml"
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCKET" version
  start kubelet "$NODE_BIN/kubelet" --config "$NODE_DIR/kubelet/config.yaml" \
    --kubeconfig "$CLUSTER/kubelet.kubeconfig" --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" --root-dir "$RUN_DIR/kubelet" \
    --cert-dir "$NODE_DIR/kubelet/pki" --v 1
  start kube-proxy "$NODE_BIN/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml"
  start coredns "$NODE_BIN/coredns" -conf "$NODE_DIR/Corefile"
  node_objects
  wait_for "node $NODE_NAME Ready" 90 node_ready
  wait_for "CoreDNS ready" 60 curl -sf "http://127.0.0.1:$DNS_READY_PORT/ready"
}

# Every container of the node, its mounts and network namespaces, then the network.
node_down() {
  local sock=$CONTAINERD_SOCKET pids=() name
  for name in coredns kube-proxy kubelet; do
    [ -f "$CLUSTER/pids/$name" ] && pids+=("$(cat "$CLUSTER/pids/$name")")
  done
  [ ${#pids[@]} -gt 0 ] && { kill "${pids[@]}" 2>/dev/null || true; }
  # The policy controller, its chains and ipsets (before the network's own chains go).
  kube_router_down "$NODE_NAME" ""
  # The pods' processes: each runs under a containerd shim of our containerd.
  if [ -S "$sock" ]; then
    local task
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  pkill -9 -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  if [ -f "$CLUSTER/pids/containerd" ]; then
    kill "$(cat "$CLUSTER/pids/containerd")" 2>/dev/null || true
  fi
  for name in coredns kube-proxy kubelet containerd registry; do
    [ -f "$CLUSTER/pids/$name" ] || continue
    local pid
    pid=$(cat "$CLUSTER/pids/$name")
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # Mounts: volumes, container roots, sandbox /dev/shm; deepest first.
  local mnt
  for mnt in $(findmnt -rn -o TARGET | grep -F -e "$NODE_DIR/" -e "$RUN_DIR/" | sort -r); do
    umount -l "$mnt" 2>/dev/null || true
  done
  # (The pods' network namespaces are mounts under containerd's state directory too, so their
  # veths went with them.)
  if [ -f "$NODE_DIR/owns-network" ]; then
    # kube-proxy's own rules (KUBE-* chains), removed the way kube-proxy documents.
    "$NODE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    # The pods' cgroups, in each v1 hierarchy (kubelet's cgroupfs driver: /kubepods/...).
    local top
    for top in /sys/fs/cgroup/*/kubepods; do
      [ -d "$top" ] && { find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null || true; }
    done
    node_network_down
  fi
  rm -rf "$NODE_DIR" "$RUN_DIR"
}
