# NetworkPolicy enforcement on a real node: kube-router's network-policy controller alone (no
# router, no service proxy), pinned here and built from the Go module proxy. It turns each
# NetworkPolicy into iptables chains and ipsets in the node's network namespace, the way k3s's
# embedded copy of the same controller does. (kube-router's advisory GHSA-phqm-jgc3-qf8g is in its
# service proxy, which stays off.)
# Sourced by ci/cluster.sh after ci/node/node.sh (CACHE, CLUSTER, timed, go_build_module, start,
# wait_for, kc, apt_install). Not a command of its own.
#
#   kube_router_build                      once, cached under $CACHE/kube-router-<version>
#   kube_router_up NODE KUBECONFIG NETNS   start it for node NODE (NETNS empty: the host's)
#   kube_router_down NODE NETNS            stop it, then remove every chain, rule and ipset it made

KUBE_ROUTER_VERSION=v2.1.0   # github.com/cloudnativelabs/kube-router/v2 (the proxy serves only it)
KUBE_ROUTER_BIN=$CACHE/kube-router-$KUBE_ROUTER_VERSION

kube_router_build() {
  apt_install ipset   # kube-router drives the kernel's ipsets through Debian's ipset command
  [ -f "$KUBE_ROUTER_BIN/.complete" ] && return 0
  mkdir -p "$KUBE_ROUTER_BIN"
  timed "kube-router $KUBE_ROUTER_VERSION" go_build_module github.com/cloudnativelabs/kube-router/v2 \
    "$KUBE_ROUTER_VERSION" ./cmd/kube-router "$KUBE_ROUTER_BIN/kube-router" \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
  touch "$KUBE_ROUTER_BIN/.complete"
}

# in_netns NETNS COMMAND...: runs COMMAND in that network namespace (empty: the host's).
in_netns() {
  local ns=$1
  shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# The chains kube-router's policy controller makes in the filter table, one "family chain" a line.
kube_router_chains() {
  local family
  for family in iptables ip6tables; do
    in_netns "$1" "$family-save" -t filter 2>/dev/null |
      sed -n "s/^:\(KUBE-ROUTER-[^ ]*\|KUBE-NWPLCY-[^ ]*\|KUBE-POD-FW-[^ ]*\) .*/$family \1/p"
  done
}

# The read access its informers need (pods, namespaces, policies; services, endpoints and nodes
# are watched too, even with the proxy off), for the identity of the kubeconfig it is given.
kube_router_rbac() {
  kc apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: dockercoins:kube-router}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dockercoins:kube-router}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dockercoins:kube-router}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: system:kube-router}
EOF
}

kube_router_up() {
  local node=$1 kubeconfig=$2 ns=${3:-} dir=$CLUSTER/kube-router/$1
  mkdir -p "$dir"
  # The ipsets there before, so that down destroys only kube-router's.
  in_netns "$ns" ipset list -n >"$dir/ipsets.before"
  [ -n "$ns" ] && echo "$ns" >"$dir/netns"
  kube_router_rbac
  # No health or metrics listener (each would bind every address).
  local cmd=("$KUBE_ROUTER_BIN/kube-router" --kubeconfig "$kubeconfig" --hostname-override "$node"
    --run-firewall=true --run-router=false --run-service-proxy=false
    --health-port 0 --metrics-port 0 --v 1)
  if [ -n "$ns" ]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
  start "kube-router-$node" "${cmd[@]}"
  # Ready once its top-level chain is in FORWARD: from then on every pod's traffic passes it.
  wait_for "kube-router's policy chains on $node" 60 kube_router_ready "$ns"
}

# (The jump carries a comment of kube-router's, so `iptables -C` without it would not match.)
kube_router_ready() {
  in_netns "$1" iptables -w -t filter -S FORWARD | grep -q -- "-j KUBE-ROUTER-FORWARD\( \|\$\)"
}

kube_router_down() {
  local node=$1 ns=${2:-} dir=$CLUSTER/kube-router/$1 pid
  [ -d "$dir" ] || return 0
  if [ -f "$CLUSTER/pids/kube-router-$node" ]; then
    pid=$(cat "$CLUSTER/pids/kube-router-$node")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Its chains: the rules that jump to them first, then the chains, then the ipsets they matched.
  local chains family chain rule
  chains=$(kube_router_chains "$ns")
  if [ -n "$chains" ]; then
    while read -r family chain; do
      in_netns "$ns" "$family" -w -t filter -S 2>/dev/null | { grep -E -- "-j $chain( |\$)" || true; } |
        while read -r rule; do
          eval "in_netns \"\$ns\" $family -w -t filter -D ${rule#-A }" 2>/dev/null || true
        done
    done <<<"$chains"
    while read -r family chain; do in_netns "$ns" "$family" -w -t filter -F "$chain" 2>/dev/null || true; done <<<"$chains"
    while read -r family chain; do in_netns "$ns" "$family" -w -t filter -X "$chain" 2>/dev/null || true; done <<<"$chains"
  fi
  local set
  for set in $(in_netns "$ns" ipset list -n | grep -vxF -f "$dir/ipsets.before" || true); do
    in_netns "$ns" ipset destroy "$set" 2>/dev/null || true
  done
  rm -rf "$dir"
}
