"""webui: the dashboard, and /json with the numbers it draws, read from redis."""
import json
import statistics
import time

import redis
from flask import Flask, jsonify, render_template

from dockercoins_common import Readiness, add_ops_routes, env_str, redis_client, setup_logging

HEARTBEAT_PATTERN = "dockercoins:worker:*"  # written by each worker, see worker.py
RECENT_ERROR_SECONDS = 10.0


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(REDIS_URL=env_str("REDIS_URL", "redis://redis:6379/0"))
    app.config.update(config or {})
    log = setup_logging("webui")
    # Short timeouts and no retries: the page polls every second anyway.
    store = redis_client(app.config["REDIS_URL"], socket_timeout=0.5,
                         socket_connect_timeout=0.5, retry_on_timeout=False)

    @app.get("/")
    def dashboard():
        return render_template("index.html")

    @app.get("/json")
    def numbers():
        try:
            return jsonify(read_numbers(store))
        except redis.RedisError as error:
            log.warning("redis unreachable: %s", error)
            return jsonify(error=f"redis unreachable: {error}", now=time.time()), 503

    def redis_problem():
        try:
            store.ping()
        except redis.RedisError as error:
            return f"redis: {error}"
        return None

    add_ops_routes(app, Readiness(), ready_check=redis_problem)
    return app


def read_numbers(store):
    """The seed's keys, plus what the workers' heartbeats say about speed and latency."""
    pipe = store.pipeline(transaction=False)
    pipe.hlen("wallet")
    pipe.get("hashes")
    coins, hashes = pipe.execute()
    beats = [json.loads(raw) for raw in mget_heartbeats(store) if raw]
    now = time.time()
    return {
        "coins": int(coins),
        "hashes": int(hashes or 0),
        "now": now,
        # The sum of each worker's own loop rate: exact, unlike a difference of a counter
        # that is flushed once a second (the seed's 4-4-4-0).
        "speed": round(sum(beat["rate"] for beat in beats), 3),
        "workers": len(beats),
        "rng_seconds": mean_of(beat["rng_seconds"] for beat in beats),
        "hasher_seconds": mean_of(beat["hasher_seconds"] for beat in beats),
        "errors": sorted({beat["error"]["stage"] for beat in beats if beat.get("error")
                          and now - beat["error"]["at"] < RECENT_ERROR_SECONDS}),
    }


def mget_heartbeats(store):
    keys = list(store.scan_iter(match=HEARTBEAT_PATTERN, count=1000))
    return store.mget(keys) if keys else []


def mean_of(values):
    values = [value for value in values if value is not None]
    return round(statistics.fmean(values), 4) if values else None
