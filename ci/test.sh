#!/usr/bin/env bash
#/ Install everything the tests need (apt-get, pip, npm, go install), then run the suite.
#/ Exits non-zero on any failure, and when no test ran.
#/
#/   ci/test.sh                               everything: every tier
#/   ci/test.sh fast                          one tier (tests/tiers.txt): fast, cluster,
#/                                            images, node; any pytest arguments may follow
#/   ci/test.sh tests/services -k rng         any pytest arguments; only the named test
#/                                            folders' tools are installed
#/   ci/test.sh --tiers                       each tier and its folders
#/   ci/test.sh -h | --help                   this text (pytest's own: .venv/bin/pytest --help)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
case "${1:-}" in -h | --help) usage 0 ;; esac

# A tier's folders, from tests/tiers.txt (a line: the tier, then its folders under tests/).
tier_folders() {
  awk -v tier="$1" '$1 == tier { for (i = 2; i <= NF; i++) print "tests/" $i }' tests/tiers.txt
}
tiers() { awk '$1 !~ /^#/ && NF { print $1 }' tests/tiers.txt; }
case "${1:-}" in
  --tiers)
    for tier in $(tiers); do echo "$tier: $(tier_folders "$tier" | tr '\n' ' ' | sed 's/ $//')"; done
    exit 0 ;;
  [a-z]*)   # a word that is not a path: a tier's name
    if [ ! -e "$1" ]; then
      folders=$(tier_folders "$1")
      [ -n "$folders" ] || die "no tier named '$1'; the tiers: $(tiers | tr '\n' ' ')"
      shift
      # shellcheck disable=SC2086  # the folders are words of tests/tiers.txt
      set -- $folders "$@"
    fi ;;
esac

# Which test folders run: the paths among the arguments, or all of tests/.
selected=()
for arg in "$@"; do
  case "$arg" in tests|tests/*|./tests|./tests/*) selected+=("${arg#./}") ;; esac
done
[ ${#selected[@]} -gt 0 ] || selected=(tests)
wants() {
  local path
  for path in "${selected[@]}"; do
    case "$path" in tests|tests/|"tests/$1"|"tests/$1"/*) return 0 ;; esac
  done
  return 1
}

ensure_redis
ensure_venv tests/requirements.txt   # pyproject.toml's test extra, pinned
if wants containers || wants rendered; then ci/podman-setup.sh; fi
if wants chart || wants cluster || wants rendered; then ci/tools.sh; fi
if wants lab; then ci/tools.sh helm kubectl; fi   # dockercoins-lab rng-kind runs helm
if wants pipeline || wants cluster || wants node; then
  ensure_npm_tool gitlab-ci-local
  apt_install rsync   # gitlab-ci-local copies the tracked files with rsync before it runs a job
fi
if wants pipeline; then ci/tools.sh helm kubectl checkov registry; fi
if wants dashboard || wants node; then   # tests/node opens the cluster view in Chromium too
  apt_install chromium      # Debian's browser for Playwright; never `playwright install`
fi
if wants dashboard; then
  command -v npm >/dev/null || apt_install npm   # ci/vendor-webui.sh --check runs npm ci
fi
if wants workshop; then
  apt_install httping       # the workshop times rng and hasher with it
  ci/tools.sh helm kubectl
fi
# The control plane (etcd, kube-*, kwok, ct: ~9 min on a new machine, cached) for the cluster
# tier and everything after it; the real node's parts (tests/node, tests/nodes: containerd and
# CNI from apt, kubelet, kube-proxy and CoreDNS; tests/netpol: kube-router and ipset;
# tests/autoscale: Prometheus, KEDA and metrics-server: ~20 min of Go builds on a new machine,
# cached) for the node tiers. They are built in the background at the lowest CPU priority while
# the tiers that need none of it run: the fast tier needs neither; the cluster and images tiers
# need no node. Those tests mostly sleep, so the build takes their idle CPU, and they keep
# theirs. pytest runs the tiers cheapest first (tests/conftest.py), and the first `up` that needs
# a part waits for it (ci/cluster.sh takes a lock for the control plane, and one for the node).
node_parts=()
if wants node || wants nodes; then node_parts=(--node); fi
if wants netpol; then node_parts=(--node --network-policy); fi
if wants autoscale; then node_parts=(--node --network-policy --metrics); fi
# selects TIERS...: whether any folder of these tiers is selected.
selects() {
  local tier folder
  for tier in "$@"; do
    for folder in $(tier_folders "$tier"); do wants "${folder#tests/}" && return 0; done
  done
  return 1
}
control_plane=""
if selects cluster || [ ${#node_parts[@]} -gt 0 ]; then control_plane=yes; fi
background=()   # ci/cluster.sh's arguments for the background build, if any
if [ -n "$control_plane" ] && selects fast; then
  background=(build ${node_parts[@]+"${node_parts[@]}"})
elif [ ${#node_parts[@]} -gt 0 ] && selects cluster images; then
  ci/cluster.sh build
  background=(build "${node_parts[@]}")
elif [ -n "$control_plane" ]; then
  ci/cluster.sh build ${node_parts[@]+"${node_parts[@]}"}   # nothing to overlap with: now
fi

export PATH="$ROOT/.tools/bin:$PATH"
# Every temporary file of the run (pytest's tmp_path, process logs, gitlab-ci-local's folders)
# goes under one directory, removed at the end: a run leaves nothing in /tmp. (The node's lock,
# /tmp/dockercoins-node.lock, is machine-wide on purpose.)
RUN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dockercoins-test.XXXXXX")
# (and a background build still running when the run ends early is stopped: its own session)
trap '[ -z "${build_pid:-}" ] || kill -- "-$build_pid" 2>/dev/null; rm -rf "$RUN_TMP"' EXIT
tmp_before=$(ls -A /tmp)
export TMPDIR=$RUN_TMP
if [ ${#background[@]} -gt 0 ]; then
  say "ci/cluster.sh ${background[*]} in the background (log: $RUN_TMP/build.log)"
  # Its own session (so the EXIT trap can stop all of it) is its own scheduler autogroup, where
  # `nice` alone counts only against its own processes: lower the group's nice too, or the build
  # takes half the CPU from the tests (kernel.sched_autogroup_enabled, sched(7)).
  setsid sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 "$@"' build \
    ci/cluster.sh "${background[@]}" >"$RUN_TMP/build.log" 2>&1 &
  build_pid=$!
fi
set +e
python -m pytest --durations=25 "$@"   # the slowest steps, for the clock
status=$?
if [ -n "${build_pid:-}" ]; then
  if ! wait "$build_pid"; then
    tail -n 30 "$RUN_TMP/build.log" >&2
    say "the background build failed (its log above)"
    [ "$status" -ne 0 ] || status=1
  fi
  build_pid=""
fi
set -e
left=$(comm -13 <(sort <<<"$tmp_before") <(ls -A /tmp | sort) |
  grep -vE '^(dockercoins-test\..+|dockercoins-node\.lock)$' || true)   # runs' own, and the lock
if [ -n "$left" ]; then
  say "the run left these in /tmp (each test must clean up after itself):"$'\n'"$left"
  [ "$status" -ne 0 ] || status=1
fi
if [ "$status" -eq 5 ]; then
  echo "ci/test.sh: no test ran; that is a failure" >&2
  exit 1
fi
exit "$status"
