# The real node of `ci/cluster.sh up --node`: containerd + runc (Debian), the CNI bridge (Debian's
# plugins), kubelet and kube-proxy (the control plane's k8s.io/kubernetes module), CoreDNS (its Go
# module, pinned by ci/node/coredns/go.mod), a pause image and a loopback image registry.
# Sourced by ci/cluster.sh, which defines CLUSTER, KUBE_VERSION, MODDIR, timed, build_from_graph,
# start, wait_for, free_ports, kc, cert and kubeconfig, and sources ci/lib.sh (ROOT, CACHE, say,
# die, apt_install). Not a command of its own.
#
# Everything this node makes exists only on this machine: a bridge with the node address, pod
# and Service ranges that no real network uses, and a firewall chain that drops every packet a pod
# sends anywhere else. `node_down` removes every process, mount, interface and rule `node_up` made.
#
# `up --nodes N` adds nodes 1..N-1 beside node 0 (the node of `up --node`, in this machine's own
# network namespace). Each one has a network namespace of its own (two kube-proxies or two CNI
# bridges cannot share one), joined to node 0's bridge by a veth, with its own containerd, kubelet,
# kube-proxy, cgroup root, state directory and pod range (allocated by the controller manager).
# Node 0 routes between the pod ranges. See docs/node.md.

NODE_NAME=dockercoins-node
NODE_BRIDGE=dcnode0
NODE_IP=10.244.0.1           # the bridge's address: the node's InternalIP, the pods' gateway
POD_SUBNET=10.244.0.0/24     # this node's pods
CLUSTER_CIDR=10.244.0.0/16
DNS_SERVICE_IP=10.96.0.10    # in ci/cluster.sh's SERVICE_CIDR
NODE_CHAIN=DOCKERCOINS-NODE  # the containment rules, in the mangle table
PAUSE_TAG=1.0
PV_COUNT=6                   # local PersistentVolumes made at `up` (redis persistence, tests)
MAX_NODES=3
NODE_POD_RANGE_END=199       # node 0's pods take .2-.199 of its /24; nodes 1.. are .201, .202
NODE_COUNT=1                 # set by `up --nodes N`

NODE_DIR=$CLUSTER/node
# containerd's sockets and the kubelet's root (which holds sockets too), in a short path of their
# own: a unix socket path is limited to 104 bytes, which a deep CLUSTER_DIR (a pytest temp folder)
# passes. Node K's is $RUN_DIR-K (node_run_dir).
RUN_DIR=/run/dockercoins-node-$(printf '%s' "$NODE_DIR" | sha256sum | cut -c1-8)
# The node's binaries, cached per version and per recipe (our CoreDNS and pause sources).
NODE_BIN=$CACHE/node-$KUBE_VERSION-$(cat "$ROOT"/ci/node/coredns/go.* "$ROOT"/ci/node/*/main.go |
  sha256sum | cut -c1-8)
COREDNS_VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' \
  "$ROOT/ci/node/coredns/go.mod")
CNI_BIN=/usr/lib/cni

# ---- per node -------------------------------------------------------------------------------------
# Node INDEX's name, address, directories and process names. Node 0 keeps the names of `up --node`.
node_name() { if [ "$1" -eq 0 ]; then echo "$NODE_NAME"; else echo "$NODE_NAME-$1"; fi; }
node_ip() { if [ "$1" -eq 0 ]; then echo "$NODE_IP"; else echo "${NODE_IP%.*}.$((200 + $1))"; fi; }
node_dir() { if [ "$1" -eq 0 ]; then echo "$NODE_DIR"; else echo "$NODE_DIR/node-$1"; fi; }
node_run_dir() { if [ "$1" -eq 0 ]; then echo "$RUN_DIR"; else echo "$RUN_DIR-$1"; fi; }
node_socket() { echo "$(node_run_dir "$1")/containerd.sock"; }
# node_proc NAME INDEX: the pid/log name of a node's process (kubelet, kubelet-1, ...).
node_proc() { if [ "$2" -eq 0 ]; then echo "$1"; else echo "$1-$2"; fi; }
# The network namespace of node INDEX ≥ 1, and the host's end of its veth on node 0's bridge.
node_netns() { echo "dcnode$1"; }
node_veth() { echo "dcnode$1-host"; }
# The kubelet's cgroup root: node 0 the machine's, the others one of their own (as kind does).
node_cgroup_root() { if [ "$1" -eq 0 ]; then echo /; else echo "/$(node_name "$1")"; fi; }
# node_exec INDEX COMMAND...: COMMAND in the node's network namespace (nsenter --net only: the
# mounts, /sys and the cgroups stay the machine's, unlike `ip netns exec`).
node_exec() {
  local i=$1
  shift
  if [ "$i" -eq 0 ]; then "$@"; else nsenter "--net=/run/netns/$(node_netns "$i")" "$@"; fi
}
node_exec_prefix() { [ "$1" -eq 0 ] || echo "nsenter --net=/run/netns/$(node_netns "$1")"; }

# ---- build ----------------------------------------------------------------------------------------
node_build() {
  # containernetworking-plugins puts bridge, host-local, portmap and loopback in /usr/lib/cni.
  apt_install containerd runc containernetworking-plugins iptables iproute2 docker-registry
  if [ ! -f "$NODE_BIN/.complete" ]; then
    # kubelet and kube-proxy come from build_graph, with the control plane (ci/cluster.sh build).
    [ -x "$NODE_BIN/kubelet" ] && [ -x "$NODE_BIN/kube-proxy" ] ||
      build_from_graph "$NODE_BIN/kubelet=k8s.io/kubernetes/cmd/kubelet" \
        "$NODE_BIN/kube-proxy=k8s.io/kubernetes/cmd/kube-proxy"
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
  echo "$NODE_COUNT" >"$NODE_DIR/count"
  chains >"$NODE_DIR/chains.before"
  # The bridge the CNI plugin attaches pods to, made first so the node address exists before the
  # API server binds to it.
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # The Service range onto the bridge too: a connection from this machine to a ClusterIP that
  # kube-proxy has no rule for yet must stay here. With only the default route it left the
  # machine, and its conntrack entry kept it un-NATed for good (seen: the API server's first
  # discovery call to KEDA's new Service, answered 404 from off the machine, on a kept-alive
  # connection). The route goes with the bridge at `down`.
  ip route add "$SERVICE_CIDR" dev "$NODE_BRIDGE"
  # Routing between pods and Services (kube-proxy's DNAT) needs forwarding, and bridged traffic
  # must pass iptables so a Service reply from a pod on the same bridge is un-NATed.
  set_sysctl net.ipv4.ip_forward 1
  set_sysctl net.bridge.bridge-nf-call-iptables 1
  node_containment 0
  local i
  for i in $(seq 1 $((NODE_COUNT - 1))); do node_netns_up "$i"; done
}

# Containment in node INDEX's network namespace: forwarded traffic must start and end inside the
# cluster range (Service addresses are already DNATed to pods, or to a node, by then). Pods reach
# their node itself through INPUT. The mangle table's FORWARD runs before the filter table's,
# where kube-proxy puts its own ACCEPT rules first, so nothing it adds can let a pod's packet out.
node_containment() {
  local i=$1
  node_exec "$i" iptables -w -t mangle -N "$NODE_CHAIN"
  node_exec "$i" iptables -w -t mangle -A "$NODE_CHAIN" -s "$CLUSTER_CIDR" ! -d "$CLUSTER_CIDR" -j DROP
  node_exec "$i" iptables -w -t mangle -A "$NODE_CHAIN" -d "$CLUSTER_CIDR" ! -s "$CLUSTER_CIDR" -j DROP
  node_exec "$i" iptables -w -t mangle -I FORWARD 1 -j "$NODE_CHAIN"
}

# Node INDEX ≥ 1's network namespace, joined to node 0's bridge by a veth. The node's address is a
# /32 in node 0's /24 (above its pods' range): node 0 is its only neighbour, and routes every
# other address of the cluster range (other nodes' pods, the API server, CoreDNS). No default
# route: an address outside the cluster range is unreachable from the namespace.
node_netns_up() {
  local i=$1 ns veth
  ns=$(node_netns "$i")
  veth=$(node_veth "$i")
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$NODE_BRIDGE" up
  node_exec "$i" ip link set lo up
  node_exec "$i" ip addr add "$(node_ip "$i")/32" dev eth0
  node_exec "$i" ip link set eth0 up
  node_exec "$i" ip route add "$NODE_IP/32" dev eth0
  node_exec "$i" ip route add "$CLUSTER_CIDR" via "$NODE_IP" dev eth0
  # A new namespace starts with forwarding off; its bridge's traffic must pass its iptables.
  node_exec "$i" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  node_containment "$i"
}

# Node INDEX ≥ 1's pods, once the controller manager gave it a range: the CNI config (containerd
# picks it up, and the node turns Ready), and node 0's route to that range.
node_pod_network() {
  local i=$1 cidr prefix
  cidr=$(node_pod_cidr "$i")
  prefix=${cidr%.*}
  node_cni_config "$i" "$cidr" "$prefix.1" "$prefix.254"
  ip route add "$cidr" via "$(node_ip "$i")" dev "$NODE_BRIDGE"
}

node_network_down() {
  remove_new_chains
  # The other nodes' namespaces: their veths, bridges, routes and rules go with them.
  local i
  for i in $(seq 1 $((MAX_NODES - 1))); do
    ip netns del "$(node_netns "$i")" 2>/dev/null || true
  done
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
  local client="extendedKeyUsage=clientAuth" i name
  # Each kubelet's identity for the Node authorizer, and its serving certificate, which the API
  # server checks (--kubelet-certificate-authority) before it asks for logs, exec or port-forward.
  for i in $(seq 0 $((NODE_COUNT - 1))); do
    name=$(node_name "$i")
    cert "$(node_proc kubelet "$i")" "/O=system:nodes/CN=system:node:$name" "$client"
    cert "$(node_proc kubelet-serving "$i")" "/CN=$name" "extendedKeyUsage=serverAuth
subjectAltName=IP:$(node_ip "$i"),DNS:$name"
  done
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
  [ "$NODE_COUNT" -gt 1 ] || return 0
  # The other nodes cannot reach this machine's loopback: a second registry serves the same
  # storage on node 0's address, and their containerd pulls the same names from it (hosts.toml).
  NODES_REGISTRY=$NODE_IP:$(free_ports 1)
  sed -e "s|127.0.0.1:$REGISTRY_PORT|$NODES_REGISTRY|" "$NODE_DIR/registry.yml" >"$NODE_DIR/registry-nodes.yml"
  start registry-nodes /usr/bin/docker-registry serve "$NODE_DIR/registry-nodes.yml"
  wait_for "the nodes' image registry" 30 curl -sf "http://$NODES_REGISTRY/v2/"
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
# The config files of node INDEX: containerd, hosts.toml, kubelet, kube-proxy (and, for node 0, the
# CNI config and CoreDNS's Corefile; the other nodes' CNI config waits for their pod range).
node_configs() {
  local i=$1 d name ip socket
  d=$(node_dir "$i")
  name=$(node_name "$i")
  ip=$(node_ip "$i")
  socket=$(node_socket "$i")
  mkdir -p "$d/containerd" "$d/cni/net.d" "$d/cni/ipam" "$d/kubelet" "$d/certs.d/$REGISTRY" "$d/volumes"
  local kubelet_port kubelet_healthz_port proxy_healthz_port proxy_metrics_port
  read -r kubelet_port kubelet_healthz_port proxy_healthz_port proxy_metrics_port <<<"$(free_ports 4)"
  # containerd, as Debian ships it, with everything under our directory, runc (not the unusable
  # crun), and the pause image from the loopback registry.
  mkdir -p "$(node_run_dir "$i")"
  sed -e "s|@DIR@|$d|g" -e "s|@SOCKET@|$socket|g" -e "s|@REGISTRY@|$REGISTRY|g" -e "s|@PAUSE_TAG@|$PAUSE_TAG|g" \
    -e "s|@CNI_BIN@|$CNI_BIN|g" "$ROOT/ci/node/containerd.toml" >"$d/containerd/config.toml"
  # The loopback registry, under its loopback name; the other nodes reach it on node 0's address.
  local server=$REGISTRY
  [ "$i" -eq 0 ] || server=$NODES_REGISTRY
  cat >"$d/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$server"
[host."http://$server"]
  capabilities = ["pull", "resolve"]
EOF
  # Any other registry (docker.io for a bare name among them): containerd 1.6 reads _default/
  # when no directory names the registry. Its server and its one host (the format needs one) may
  # only push, so no host may resolve or pull, and a pull fails at once ("no resolve hosts"), with
  # no DNS lookup and no connection attempt. (Without `server`, containerd adds the registry's
  # own address; an empty `capabilities` means all of them.)
  mkdir -p "$d/certs.d/_default"
  cat >"$d/certs.d/_default/hosts.toml" <<EOF
# Written by ci/node/node.sh: only the loopback registry ($REGISTRY) may be pulled from.
server = "http://127.0.0.1:9"
capabilities = ["push"]
[host."http://127.0.0.1:9"]
  capabilities = ["push"]
EOF
  sed -e "s|@DIR@|$d|g" -e "s|@PKI@|$CLUSTER/pki|g" -e "s|@NODE_IP@|$ip|g" \
    -e "s|@PORT@|$kubelet_port|g" -e "s|@HEALTHZ_PORT@|$kubelet_healthz_port|g" \
    -e "s|@SERVING@|$(node_proc kubelet-serving "$i")|g" -e "s|@CGROUP_ROOT@|$(node_cgroup_root "$i")|g" \
    -e "s|@DNS@|$DNS_SERVICE_IP|g" -e "s|@SOCKET@|$socket|g" "$ROOT/ci/node/kubelet.yaml" >"$d/kubelet/config.yaml"
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE_NAME@|$name|g" -e "s|@NODE_IP@|$ip|g" \
    -e "s|@CLUSTER_CIDR@|$CLUSTER_CIDR|g" -e "s|@HEALTHZ_PORT@|$proxy_healthz_port|g" \
    -e "s|@METRICS_PORT@|$proxy_metrics_port|g" "$ROOT/ci/node/kube-proxy.yaml" >"$d/kube-proxy.yaml"
  kubeconfig "$(node_proc kubelet "$i")" "$CLUSTER/$(node_proc kubelet "$i").kubeconfig"
  [ "$i" -eq 0 ] || return 0
  # Node 0's pods leave the top of its /24 to the other nodes' addresses.
  node_cni_config 0 "$POD_SUBNET" "$NODE_IP" "${NODE_IP%.*}.$NODE_POD_RANGE_END"
  read -r DNS_HEALTH_PORT DNS_READY_PORT DNS_METRICS_PORT <<<"$(free_ports 3)"
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@HEALTH_PORT@|$DNS_HEALTH_PORT|g" \
    -e "s|@READY_PORT@|$DNS_READY_PORT|g" -e "s|@METRICS_PORT@|$DNS_METRICS_PORT|g" \
    "$ROOT/ci/node/Corefile" >"$d/Corefile"
  kubeconfig kube-proxy "$CLUSTER/kube-proxy.kubeconfig"
  kubeconfig coredns "$CLUSTER/coredns.kubeconfig"
}

# node_cni_config INDEX SUBNET GATEWAY RANGE_END: the node's bridge network for its pods.
node_cni_config() {
  local bridge=$NODE_BRIDGE d
  d=$(node_dir "$1")
  [ "$1" -eq 0 ] || bridge=dcpods$1
  sed -e "s|@DIR@|$d|g" -e "s|@BRIDGE@|$bridge|g" -e "s|@POD_SUBNET@|$2|g" \
    -e "s|@GATEWAY@|$3|g" -e "s|@RANGE_END@|$4|g" "$ROOT/ci/node/cni.conflist" >"$d/cni/net.d/10-dockercoins.conflist"
}

node_ready() {
  [ "$(kc get node "$(node_name "${1:-0}")" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

node_pod_cidr() { kc get node "$(node_name "$1")" -o jsonpath='{.spec.podCIDR}' 2>/dev/null; }
node_has_pod_cidr() { [ -n "$(node_pod_cidr "$1")" ]; }

# A cgroup root of node INDEX ≥ 1 in every v1 hierarchy (the kubelet wants it to exist), with
# cpuset's cpus and mems copied from the top (a new cpuset cgroup starts with none).
node_cgroups_up() {
  local root top
  root=$(node_cgroup_root "$1")
  for top in /sys/fs/cgroup/*/; do
    mkdir -p "$top${root#/}"
    if [ -f "${top}cpuset.cpus" ]; then
      cat "${top}cpuset.cpus" >"$top${root#/}/cpuset.cpus"
      cat "${top}cpuset.mems" >"$top${root#/}/cpuset.mems"
    fi
  done
}

# The pods' cgroups of node INDEX, deepest first (node 0: the kubelet's /kubepods).
node_cgroups_down() {
  local top dir
  for top in /sys/fs/cgroup/*/; do
    if [ "$1" -eq 0 ]; then dir=${top}kubepods; else dir=$top$(node_name "$1"); fi
    if [ -d "$dir" ]; then find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
}

# Node INDEX's containerd, kubelet and kube-proxy, in its network namespace. A per-node addon
# starts here too, with `start "$(node_proc NAME "$i")" $(node_exec_prefix "$i") COMMAND...`.
node_start() {
  local i=$1 d prefix
  d=$(node_dir "$i")
  # shellcheck disable=SC2207  # "nsenter --net=..." or nothing: no spaces inside its words
  prefix=($(node_exec_prefix "$i"))
  node_configs "$i"
  [ "$i" -eq 0 ] || node_cgroups_up "$i"
  start "$(node_proc containerd "$i")" ${prefix[@]+"${prefix[@]}"} containerd --config "$d/containerd/config.toml"
  wait_for "containerd of $(node_name "$i")" 30 ctr --address "$(node_socket "$i")" version
  start "$(node_proc kubelet "$i")" ${prefix[@]+"${prefix[@]}"} "$NODE_BIN/kubelet" --config "$d/kubelet/config.yaml" \
    --kubeconfig "$CLUSTER/$(node_proc kubelet "$i").kubeconfig" --hostname-override "$(node_name "$i")" \
    --node-ip "$(node_ip "$i")" --root-dir "$(node_run_dir "$i")/kubelet" \
    --cert-dir "$d/kubelet/pki" --v 1
  start "$(node_proc kube-proxy "$i")" ${prefix[@]+"${prefix[@]}"} "$NODE_BIN/kube-proxy" --config "$d/kube-proxy.yaml"
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
  node_start 0
  start coredns "$NODE_BIN/coredns" -conf "$NODE_DIR/Corefile"
  # Node 0 registers first, so the controller manager gives it the first range, the one its
  # bridge already has; then the others, each with the next free range.
  wait_for "a pod range for $NODE_NAME" 60 node_has_pod_cidr 0
  [ "$(node_pod_cidr 0)" = "$POD_SUBNET" ] ||
    die "$NODE_NAME got the pod range $(node_pod_cidr 0), not $POD_SUBNET"
  local i
  for i in $(seq 1 $((NODE_COUNT - 1))); do node_start "$i"; done
  for i in $(seq 1 $((NODE_COUNT - 1))); do
    wait_for "a pod range for $(node_name "$i")" 60 node_has_pod_cidr "$i"
    node_pod_network "$i"
  done
  node_objects
  for i in $(seq 0 $((NODE_COUNT - 1))); do
    wait_for "node $(node_name "$i") Ready" 90 node_ready "$i"
  done
  wait_for "CoreDNS ready" 60 curl -sf "http://127.0.0.1:$DNS_READY_PORT/ready"
}

# The pid/log names of every process a node cluster may have started, the nodes' first.
node_procs() {
  local i name
  for i in $(seq 0 $((MAX_NODES - 1))); do
    for name in kube-proxy kubelet containerd; do node_proc "$name" "$i"; done
  done
  echo coredns registry registry-nodes
}

# Every container of every node, its mounts and network namespaces, then the network.
node_down() {
  local pids=() name i sock
  for i in $(seq 0 $((MAX_NODES - 1))); do
    for name in "$(node_proc kube-proxy "$i")" "$(node_proc kubelet "$i")"; do
      [ -f "$CLUSTER/pids/$name" ] && pids+=("$(cat "$CLUSTER/pids/$name")")
    done
  done
  [ -f "$CLUSTER/pids/coredns" ] && pids+=("$(cat "$CLUSTER/pids/coredns")")
  [ ${#pids[@]} -gt 0 ] && { kill "${pids[@]}" 2>/dev/null || true; }
  # Each node's policy controller, its chains and ipsets (while the node's namespace is there).
  for i in $(seq 0 $((MAX_NODES - 1))); do
    kube_router_down "$(node_name "$i")" "$([ "$i" -eq 0 ] || node_netns "$i")"
  done
  # The pods' processes: each runs under a containerd shim of its node's containerd.
  for i in $(seq 0 $((MAX_NODES - 1))); do
    sock=$(node_socket "$i")
    if [ -S "$sock" ]; then
      local task
      for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
      done
    fi
    pkill -9 -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
    name=$(node_proc containerd "$i")
    if [ -f "$CLUSTER/pids/$name" ]; then
      kill "$(cat "$CLUSTER/pids/$name")" 2>/dev/null || true
    fi
  done
  local pid
  for name in $(node_procs); do
    [ -f "$CLUSTER/pids/$name" ] || continue
    pid=$(cat "$CLUSTER/pids/$name")
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # Mounts: volumes, container roots, sandbox /dev/shm; deepest first.
  local mnt
  for mnt in $(findmnt -rn -o TARGET | grep -F -e "$NODE_DIR/" -e "$RUN_DIR/" -e "$RUN_DIR-" | sort -r); do
    umount -l "$mnt" 2>/dev/null || true
  done
  # (The pods' network namespaces are mounts under containerd's state directory too, so their
  # veths went with them.)
  if [ -f "$NODE_DIR/owns-network" ]; then
    # kube-proxy's own rules (KUBE-* chains) on this machine, removed the way kube-proxy documents
    # (the other nodes' went with their namespaces).
    "$NODE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    # The pods' cgroups, in each v1 hierarchy (kubelet's cgroupfs driver: <root>/kubepods/...).
    for i in $(seq 0 $((MAX_NODES - 1))); do node_cgroups_down "$i"; done
    node_network_down
  fi
  rm -rf "$NODE_DIR" "$RUN_DIR" "$RUN_DIR"-[0-9]
}
