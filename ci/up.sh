#!/usr/bin/env bash
#/ Run the whole app on this machine, no Docker, no cluster: a real redis-server, rng, hasher,
#/ webui and N workers as plain processes under honcho. Ctrl-C stops them all.
#/
#/   ci/up.sh [--workers N] [--rng R]
#/
#/ Dashboard on http://localhost:8000 (WEBUI_PORT), rng on :8001 (RNG_PORT), hasher on :8002
#/ (HASHER_PORT), redis on :6379 (REDIS_PORT). Worker metrics: :9500, :9501, ... (honcho's
#/ PORT, from METRICS_PORT_BASE + 400). Everything listens on 127.0.0.1 only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

workers=1 rng=1
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:-}; shift 2 || usage ;;
    --rng) rng=${2:-}; shift 2 || usage ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ "$workers" =~ ^[0-9]+$ && "$rng" =~ ^[1-9][0-9]*$ ]] || { echo "--workers takes N >= 0 and --rng R >= 1" >&2; exit 2; }

ensure_redis
ensure_venv

WEBUI_PORT=${WEBUI_PORT:-8000} RNG_PORT=${RNG_PORT:-8001} HASHER_PORT=${HASHER_PORT:-8002}
REDIS_PORT=${REDIS_PORT:-6379}
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export RNG_URL="http://127.0.0.1:$RNG_PORT/32" HASHER_URL="http://127.0.0.1:$HASHER_PORT/"
export PYTHONPATH="$ROOT/images/common" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
gunicorn="gunicorn -c $ROOT/images/common/gunicorn.conf.py"

# --rng R is R units of rng capacity: one rng process whose cap is R. That is R replicas
# behind a balancer that sends each call to a free replica. Separate processes would share
# calls at random, and at the knee (6 workers, 2 rng) lose a fifth of the capacity to
# one busy while the other idles; kube-proxy's random balancing does the same on a cluster.
work=$(mktemp -d)
redis_pid=""
cleanup() {
  [ -z "$redis_pid" ] || { kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid"; } || true
  rm -rf "$work"
}
trap cleanup EXIT
# honcho gives the Nth entry's processes PORT = base + 100 (N - 1) + i: the workers (4th) add
# 100 to keep their documented ports (:9500, :9501, ...).
cat > "$work/Procfile" <<PROCS
rng: RNG_CONCURRENCY=$rng exec $gunicorn --chdir $ROOT/images/rng -b 127.0.0.1:$RNG_PORT 'rng:create_app()'
hasher: exec $gunicorn --chdir $ROOT/images/hasher -b 127.0.0.1:$HASHER_PORT 'hasher:create_app()'
webui: CLUSTER_VIEW=local LOCAL_RNG_REPLICAS=$rng LOCAL_HASHER_REPLICAS=1 exec $gunicorn --chdir $ROOT/images/webui -b 127.0.0.1:$WEBUI_PORT 'webui:create_app()'
worker: METRICS_PORT=\$((PORT + 100)) METRICS_HOST=127.0.0.1 exec python $ROOT/images/worker/worker.py
PROCS

# redis runs outside honcho, in a session of its own, so Ctrl-C (and honcho's SIGTERM to all
# at once) reaches the workers first: each hands its last count to redis, then redis stops.
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  > >(sed -u 's/^/redis      | /') 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  kill -0 "$redis_pid" 2>/dev/null || { echo "redis-server did not start on :$REDIS_PORT" >&2; exit 1; }
  sleep 0.1
done

echo "DockerCoins: $workers worker(s), rng capacity $rng. Dashboard: http://localhost:$WEBUI_PORT" >&2
honcho start -f "$work/Procfile" -d "$ROOT" -p "${METRICS_PORT_BASE:-9100}" -c "worker=$workers" &
honcho_pid=$!
# Ctrl-C reaches honcho directly; a SIGTERM or SIGINT sent to this script alone is passed on.
trap 'kill -INT "$honcho_pid" 2>/dev/null || true' INT TERM
while :; do
  status=0
  wait "$honcho_pid" || status=$?
  kill -0 "$honcho_pid" 2>/dev/null || break   # still running: a trap interrupted the wait
done
exit "$status"
