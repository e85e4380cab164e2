#!/usr/bin/env bash
# The benchmark: speed against the model, latency, CPU per hash and memory, per
# (workers, rng) cell of the app run as ci/up.sh runs it, and the speed shown after a scale
# change. Writes out/bench.png, and (full runs) docs/benchmarks.md with its plot.
#
#   ci/bench.sh [--quick] [--json] [--seconds S] [--worker-baseline REV]
#                                      --worker-baseline: the worker's CPU per hash against
#                                      the worker at git REV, side by side
#   ci/bench.sh --node [--seconds S]   the same cells on real pods of `ci/cluster.sh up --node`
#                                      (root): build, up, install and idle figures, the table
#                                      against the model, out/bench-node.png
#   ci/bench.sh --nodes 3 [--seconds S]  the DaemonSet chapter on 3 real nodes (`up --nodes 3`):
#                                      random against PreferSameNode, up, idle and drain
#                                      figures, out/bench-nodes.png
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ "${1:-}" = --node ]; then
  shift
  ensure_venv
  exec python "$ROOT/ci/node_bench.py" "$@"
fi
if [ "${1:-}" = --nodes ]; then
  ensure_venv
  exec python "$ROOT/ci/node_bench.py" "$@"
fi
ensure_redis
ensure_venv   # playwright too, for the dashboard row (pyproject.toml's bench extra)
export PYTHONPATH="$ROOT/harness"   # bench.py runs the app with the tests' harness
exec python "$ROOT/ci/bench.py" "$@"
