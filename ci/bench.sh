#!/usr/bin/env bash
# The benchmark: speed against the model, latency, CPU per hash and memory, per
# (workers, rng) cell of the app run as ci/up.sh runs it. Writes out/bench.png.
#
#   ci/bench.sh [--quick] [--json] [--seconds S]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ensure_redis
ensure_venv tests/dashboard/requirements.txt   # playwright, for the dashboard row
exec python "$ROOT/ci/bench.py" "$@"
